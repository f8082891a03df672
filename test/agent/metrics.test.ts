/**
 * The Prometheus histograms fill from a real runtime call: real-time frames
 * through the TestMediaPort, espeak-ng caller speech, zero-latency stub
 * adapters (so the test is about the wiring, not about vendor speed).
 */
import t from 'tap'
import { Registry } from 'prom-client'
import { createAgent, registerAgentMetrics } from '../../agent/index.ts'
import { speechPcm } from './helpers/audio.ts'
import { TestMediaPort } from './helpers/test-port.ts'

interface HistogramValue {
  labels: Record<string, string | number>
  value: number
  metricName?: string
}

async function values(registry: Registry, name: string): Promise<HistogramValue[]> {
  const m = registry.getSingleMetric(name)
  if (!m) throw new Error(`metric ${name} not registered`)
  return (await m.get()).values as HistogramValue[]
}

function pick(vals: HistogramValue[], suffix: '_count' | '_sum', labels: Record<string, string>): number | undefined {
  return vals.find((v) => v.metricName?.endsWith(suffix) && Object.entries(labels).every(([k, x]) => String(v.labels[k]) === x))?.value
}

t.test('turn-stage and barge-in histograms fill after a call, with the transcript\'s own figures', async (t) => {
  const registry = new Registry()
  const metrics = registerAgentMetrics(registry)
  t.teardown(() => metrics.unregister())
  const port = new TestMediaPort(8000)
  const agent = createAgent({
    port,
    call: { id: 'metrics-1' },
    config: {
      greeting: 'Hello.',
      stt: { provider: 'stub', options: { text: 'tell me something' } },
      llm: { provider: 'stub' },
      tts: { provider: 'stub' },
      bargeIn: { minSpeechMs: 200 },
    },
  })
  t.teardown(() => {
    port.stop()
    void agent.stop()
  })
  port.start()
  await agent.start()
  await port.waitFor(() => agent.transcript.turns.length >= 1 && port.out.slice(-10).every((f) => !f.samples) && port.out.some((f) => f.samples), 5000, 'greeting played')

  port.say(speechPcm('tell me about the store'))
  await port.waitFor(() => agent.transcript.turns.some((x) => x.trigger === 'speech' && x.marks.firstReplyFrame !== undefined), 5000, 'reply starts')
  await new Promise((r) => setTimeout(r, 600))
  // Talk over the (long) stub reply: a barge-in that stands.
  port.say(speechPcm('what are your opening hours'))
  await port.waitFor(() => agent.transcript.bargeIns.length > 0, 5000, 'barge-in')
  await port.waitFor(() => agent.transcript.turns.filter((x) => x.trigger === 'speech' && x.marks.firstReplyFrame !== undefined).length >= 2, 5000, 'second reply starts')
  const result = await agent.stop()
  // The aborted reply reports its turn from its own cleanup, a few ticks after stop().
  await new Promise((r) => setTimeout(r, 200))

  const turnVals = await values(registry, 'callplane_agent_turn_stage_seconds')
  const speechTurns = result.transcript.turns.filter((x) => x.trigger === 'speech')
  // Every stage with a figure in the stored waterfall was observed once per turn, with the same value.
  for (const [stage, field] of [['stt', 'sttMs'], ['llm', 'llmMs'], ['tts', 'ttsMs'], ['playout', 'playoutMs'], ['total', 'totalMs'], ['engine', 'engineMs']] as const) {
    const figures = speechTurns.map((x) => x[field]).filter((v): v is number => typeof v === 'number')
    t.ok(figures.length >= 1, `stage ${stage} has figures in the transcript (${figures.join(', ')})`)
    t.equal(pick(turnVals, '_count', { stage, trigger: 'speech' }), figures.length, `${stage}: one observation per speech turn`)
    const sum = pick(turnVals, '_sum', { stage, trigger: 'speech' })!
    t.ok(Math.abs(sum - figures.reduce((a, b) => a + b, 0) / 1000) < 1e-6, `${stage}: histogram sum ${sum.toFixed(4)} s matches the waterfall`)
  }
  t.equal(pick(turnVals, '_count', { stage: 'playout', trigger: 'greeting' }), 1, 'the greeting turn is observed too')
  t.equal(pick(turnVals, '_count', { stage: 'stt', trigger: 'greeting' }), undefined, 'but not for stages it does not have')

  const bargeVals = await values(registry, 'callplane_agent_barge_in_seconds')
  const stood = result.transcript.bargeIns.filter((b) => b.stood)
  t.ok(stood.length >= 1, 'the interruption stood')
  t.equal(pick(bargeVals, '_count', { stood: 'true' }), stood.length, 'barge-in observed')
  const bsum = pick(bargeVals, '_sum', { stood: 'true' })!
  t.ok(Math.abs(bsum - stood.reduce((a, b) => a + b.latencyMs, 0) / 1000) < 1e-6, `barge-in sum ${bsum} s matches the records`)
  t.match(await registry.metrics(), /callplane_agent_turn_stage_seconds_bucket\{le="0.001",stage="total",trigger="speech"\}/, 'exposition text has the buckets')

  // After unregister the registry no longer moves.
  metrics.unregister()
  const before = pick(await values(registry, 'callplane_agent_turn_stage_seconds'), '_count', { stage: 'total', trigger: 'speech' })
  const port2 = new TestMediaPort(8000)
  const agent2 = createAgent({ port: port2, call: { id: 'metrics-2' }, config: { greeting: 'Hi.', stt: { provider: 'stub' }, llm: { provider: 'stub' }, tts: { provider: 'stub' } } })
  port2.start()
  await agent2.start()
  port2.say(speechPcm('hello'))
  await port2.waitFor(() => agent2.transcript.turns.some((x) => x.trigger === 'speech' && x.marks.firstReplyFrame !== undefined), 5000, 'reply on the second call')
  await agent2.stop()
  port2.stop()
  t.equal(pick(await values(registry, 'callplane_agent_turn_stage_seconds'), '_count', { stage: 'total', trigger: 'speech' }), before, 'unregistered registry is left alone')
})
