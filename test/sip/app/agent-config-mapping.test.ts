/**
 * A stored agent (API shape, store/agents.ts) becomes the runtime's config
 * (agent/config.ts): every field the API accepts must reach the runtime, or
 * setting it through the API would silently do nothing.
 */
import t from 'tap'
import { agentConfigFrom } from '../../../sip/app/agent-media-binder.ts'
import { resolveAgentConfig } from '../../../agent/config.ts'
import type { Agent } from '../../../store/agents.ts'

const base: Agent = {
  id: '00000000-0000-4000-8000-000000000001', accountId: '00000000-0000-4000-8000-000000000002', name: 'support', type: 'pipeline',
  createdAt: '2026-11-26T00:00:00.000Z', updatedAt: '2026-11-26T00:00:00.000Z',
}

t.test('API agent fields reach the runtime config', async (t) => {
  const cfg = resolveAgentConfig(agentConfigFrom({
    ...base,
    prompt: 'Be brief.', greeting: 'Hello.', vad: 'silero', aiSpeaksFirst: false, greetingInterruptible: false,
    expectedPhrases: ['billing', 'sales'], amd: { onMachine: 'leave_message', message: 'Call us back.', maxWaitMs: 20_000 },
    summary: { enabled: true, prompt: 'One line.' }, silenceTimeoutSec: 30, maxDurationSec: 600,
    transferTargets: [{ name: 'sales', destination: '+14155550100' }],
  }))
  t.equal(cfg.systemPrompt, 'Be brief.')
  t.equal(cfg.vad, 'silero')
  t.equal(cfg.aiSpeaksFirst, false)
  t.equal(cfg.greetingInterruptible, false)
  t.same(cfg.expectedPhrases, ['billing', 'sales'])
  t.match(cfg.amd, { onMachine: 'leave_message', message: 'Call us back.', maxWaitMs: 20_000 })
  t.equal(cfg.summary, true)
  t.equal(cfg.summaryPrompt, 'One line.')
  t.equal(cfg.maxSilenceSeconds, 30)
  t.equal(cfg.maxCallDurationMinutes, 10)
})

t.test('unset API fields keep the runtime defaults', async (t) => {
  const cfg = resolveAgentConfig(agentConfigFrom(base))
  t.equal(cfg.vad, undefined, 'the runtime picks its default VAD')
  t.equal(cfg.aiSpeaksFirst, true)
  t.same(cfg.expectedPhrases, [])
  t.equal(cfg.amd, undefined)
  t.equal(cfg.summary, false)
})
