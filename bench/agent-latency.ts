/**
 * Agent runtime benchmark (issue 8), with zero-latency stub adapters so only
 * the engine's own share is measured:
 *
 * (a) barge-in latency: first voiced inbound frame → last agent frame out,
 *     measured on the wire side of the port (what the caller would hear), over
 *     many interruptions at N concurrent calls. Target p95 ≤ 60 ms.
 * (b) engine-added turn latency: final transcript → reply audio ready in the
 *     playout queue (engine work), and → first reply frame pulled by the next
 *     media tick (adds the 0–20 ms tick phase). Target p99 ≤ 5 ms.
 * (c) concurrent agent calls per core with VAD on: CPU time per call-second
 *     of the agent's per-frame work. Target ≥ 300.
 *
 * All calls share one 20 ms scheduler, like a media worker: each tick pulls
 * one outbound frame and delivers one inbound frame per call.
 *
 *   tsx bench/agent-latency.ts [--quick|--full] [--out result.json] [--only a|b|c] [--vad energy|webrtc|silero]
 *
 * `--only` runs one part (for profiling: node --cpu-prof --import tsx …).
 */
import { performance } from 'node:perf_hooks'
import { FRAME_MS, samplesPerFrame, type AudioFrame, type FrameSource, type SampleRate } from '../audio/frame.ts'
import { createAgent } from '../agent/index.ts'
import type { AgentMediaPort, Unsubscribe } from '../agent/media-port.ts'
import type { AgentRuntime } from '../agent/runtime.ts'
import { finishBench, parseBenchArgs, percentile, type BenchResult } from './bench-result.ts'
import { histogramFromSamples } from './svg-plot.ts'
import { phoneBand, synth } from './vad-corpus.ts'
import { DEFAULT_VAD, VAD_ENGINES, type VadEngine } from '../agent/vad/choice.ts'

const vadAt = process.argv.indexOf('--vad')
/** VAD engine of every agent (`--vad energy|webrtc|silero`); default: the agents' default. */
const VAD: VadEngine = vadAt >= 0 ? (process.argv[vadAt + 1] as VadEngine) : DEFAULT_VAD
if (!VAD_ENGINES.includes(VAD)) throw new Error(`--vad must be one of ${VAD_ENGINES.join(', ')}`)

const RATE: SampleRate = 8000
const N = samplesPerFrame(RATE)

/**
 * The caller's voice: real espeak-ng speech through the phone band at -20 dBFS,
 * every frame voiced (quiet frames cut out), so any VAD engine hears speech
 * from the first frame on. A tone would not do: the WebRTC VAD rightly calls
 * a steady sine non-speech.
 */
const CALLER_SPEECH: Int16Array[] = (() => {
  const x = Float64Array.from(synth('tell me more about your opening hours and the shops in the region', 'en-us', 170))
  phoneBand(x)
  const frames: Float64Array[] = []
  let peak = 0
  for (let i = 0; i + N <= x.length; i += N) {
    const f = x.subarray(i, i + N)
    const p = f.reduce((a, v) => a + v * v, 0) / N
    peak = Math.max(peak, p)
    frames.push(f)
  }
  const power = (f: Float64Array): number => f.reduce((a, v) => a + v * v, 0) / N
  const loud = frames.filter((f) => power(f) > peak * 10 ** (-20 / 10))
  const active = loud.reduce((a, f) => a + power(f), 0) / loud.length
  const gain = 10 ** (-20 / 20) / Math.sqrt(active)
  return loud.map((f) => Int16Array.from(f, (v) => Math.max(-32768, Math.min(32767, Math.round(v * gain * 32768)))))
})()

class BenchPort implements AgentMediaPort {
  readonly sampleRate = RATE
  source: FrameSource | undefined
  frameL: ((f: AudioFrame) => void) | undefined
  lastOutAt = 0
  outFrames = 0
  /** Frames of caller "speech" still to deliver. */
  speechLeft = 0
  firstVoicedAt = 0
  /** Set while we wait for the agent to go quiet after an interruption. */
  waitingStop = false
  bargeLatencies: number[] = []
  firstReplyFrameAt = 0
  private rtp = 0
  private speechPos = 0
  private readonly silence = new Int16Array(N)

  onFrame(l: (f: AudioFrame) => void): Unsubscribe {
    this.frameL = l
    return () => (this.frameL = undefined)
  }
  onDtmf(): Unsubscribe {
    return () => {}
  }
  onEnded(): Unsubscribe {
    return () => {}
  }
  play(s: FrameSource): void {
    this.source = s
  }
  flush(): void {}
  async sendDtmf(): Promise<void> {}
  async hangup(): Promise<void> {}
  async transfer(): Promise<void> {}

  tick(now: number): void {
    const out = this.source?.nextFrame() ?? null
    if (out) {
      this.lastOutAt = now
      this.outFrames++
      if (!this.firstReplyFrameAt) this.firstReplyFrameAt = now
    } else if (this.waitingStop) {
      this.waitingStop = false
      this.bargeLatencies.push(Math.max(0, this.lastOutAt - this.firstVoicedAt))
    }
    const voiced = this.speechLeft > 0
    if (voiced) {
      if (this.firstVoicedAt === 0) this.firstVoicedAt = now
      this.speechLeft--
    }
    const samples = voiced ? CALLER_SPEECH[this.speechPos++ % CALLER_SPEECH.length]! : this.silence
    this.frameL?.({ samples, sampleRate: RATE, rtpTimestamp: (this.rtp += N), receivedAt: now })
  }

  interrupt(frames: number): void {
    this.speechLeft = frames
    this.firstVoicedAt = 0
    this.waitingStop = true
  }
}

function agentFor(port: BenchPort, id: string): AgentRuntime {
  return createAgent({
    port,
    call: { id },
    config: {
      aiSpeaksFirst: false,
      stt: { provider: 'stub', options: { text: 'tell me more' } },
      llm: { provider: 'stub', options: { reply: 'Sure. Here is a long answer that keeps going for several seconds so that it can be interrupted at any point by the caller.' } },
      tts: { provider: 'stub' },
      maxSilenceSeconds: 0,
      vadSilenceDurationMs: 300,
      vad: VAD,
      bargeIn: { minSpeechMs: 200 },
    },
  })
}

/**
 * `precise` spins on setImmediate for the last millisecond before each tick so
 * latency figures are not blurred by timer slack; the capacity run turns it
 * off, since the spin is CPU the harness burns, not the agents.
 */
async function runScheduler(ports: BenchPort[], seconds: number, onTick: (tick: number, now: number) => void, precise = true): Promise<number[]> {
  const tickCost: number[] = []
  const t0 = performance.now()
  let tick = 0
  while (tick * FRAME_MS < seconds * 1000) {
    const due = t0 + tick * FRAME_MS
    const wait = due - performance.now()
    if (!precise) {
      if (wait > 0) await new Promise((r) => setTimeout(r, wait))
    } else {
      if (wait > 1) await new Promise((r) => setTimeout(r, wait - 0.5))
      while (performance.now() < due) await new Promise((r) => setImmediate(r))
    }
    const now = performance.now()
    for (const p of ports) p.tick(now)
    onTick(tick, now)
    tickCost.push(performance.now() - now)
    tick++
    // Let the agents' async work (STT events, LLM/TTS streams) run between ticks.
    await new Promise((r) => setImmediate(r))
  }
  return tickCost
}

async function bargeInBench(calls: number, seconds: number): Promise<{ latencies: number[]; recorded: number[]; tickCost: number[] }> {
  const ports = Array.from({ length: calls }, () => new BenchPort())
  const agents = ports.map((p, i) => agentFor(p, `barge-${i}`))
  await Promise.all(agents.map((a) => a.start()))
  // Each call: caller asks (0.4 s of speech), agent starts its long answer, caller interrupts
  // 1–3 s into it; repeat. Staggered so interruptions spread over ticks.
  const nextAt = ports.map((_, i) => 5 + (i % 50))
  const phase = ports.map(() => 'ask' as 'ask' | 'talking')
  let rnd = 12345
  const rand = (): number => ((rnd = (rnd * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff)
  const tickCost = await runScheduler(ports, seconds, (tick) => {
    ports.forEach((p, i) => {
      if (tick < nextAt[i]!) return
      if (phase[i] === 'ask') {
        p.speechLeft = 20
        phase[i] = 'talking'
        nextAt[i] = tick + 20 + 15 + 50 + Math.floor(rand() * 100)
      } else {
        if (p.source && (p.source as { hasAudio?: boolean }).hasAudio) p.interrupt(20)
        phase[i] = 'talking'
        nextAt[i] = tick + 20 + 15 + 50 + Math.floor(rand() * 100)
      }
    })
  })
  const latencies = ports.flatMap((p) => p.bargeLatencies)
  const recorded = agents.flatMap((a) => a.transcript.bargeIns.filter((b) => b.stood).map((b) => b.latencyMs))
  await Promise.all(agents.map((a) => a.stop()))
  return { latencies, recorded, tickCost }
}

async function turnBench(calls: number, seconds: number): Promise<{ engine: number[]; wire: number[] }> {
  const ports = Array.from({ length: calls }, () => new BenchPort())
  const agents = ports.map((p, i) =>
    createAgent({
      port: p,
      call: { id: `turn-${i}` },
      config: {
        aiSpeaksFirst: false,
        stt: { provider: 'stub', options: { text: 'what time is it' } },
        llm: { provider: 'stub', options: { reply: 'It is noon.' } },
        tts: { provider: 'stub' },
        maxSilenceSeconds: 0,
        vadSilenceDurationMs: 300,
        vad: VAD,
      },
    }),
  )
  await Promise.all(agents.map((a) => a.start()))
  // Every 2 s each caller says something (0.3 s), staggered across calls.
  await runScheduler(ports, seconds, (tick) => {
    ports.forEach((p, i) => {
      if ((tick + i * 3) % 100 === 0) p.speechLeft = 15
    })
  })
  const engine: number[] = []
  const wire: number[] = []
  for (const a of agents) {
    for (const turn of a.transcript.turns) {
      const m = turn.marks
      if (m.finalTranscript === undefined || m.firstTtsAudio === undefined || m.firstReplyFrame === undefined) continue
      engine.push(m.firstTtsAudio - m.finalTranscript)
      wire.push(m.firstReplyFrame - m.finalTranscript)
    }
  }
  await Promise.all(agents.map((a) => a.stop()))
  return { engine, wire }
}

async function capacityBench(calls: number, seconds: number): Promise<{ cpuMsPerCallSecond: number; callsPerCore: number }> {
  const ports = Array.from({ length: calls }, () => new BenchPort())
  const agents = ports.map((p, i) => agentFor(p, `cap-${i}`))
  await Promise.all(agents.map((a) => a.start()))
  const cpu0 = process.cpuUsage()
  const t0 = performance.now()
  // Conversation keeps going: every ~4 s each caller asks something, agent answers.
  await runScheduler(ports, seconds, (tick) => {
    ports.forEach((p, i) => {
      if ((tick + i * 7) % 200 === 0) p.speechLeft = 20
    })
  }, false)
  const wall = (performance.now() - t0) / 1000
  const cpu = process.cpuUsage(cpu0)
  await Promise.all(agents.map((a) => a.stop()))
  const cpuMs = (cpu.user + cpu.system) / 1000
  const cpuMsPerCallSecond = cpuMs / (calls * wall)
  return { cpuMsPerCallSecond, callsPerCore: 1000 / cpuMsPerCallSecond }
}

async function main(): Promise<void> {
  const args = parseBenchArgs()
  const full = args.mode === 'full'
  const started = performance.now()
  const startedAt = new Date().toISOString()
  const onlyAt = process.argv.indexOf('--only')
  const only = onlyAt >= 0 ? process.argv[onlyAt + 1] : undefined
  const runs = (part: 'a' | 'b' | 'c'): boolean => only === undefined || only === part
  const calls = 100
  if (runs('a')) console.log(`(a) barge-in: ${calls} concurrent calls…`)
  const b = runs('a') ? await bargeInBench(calls, full ? 30 : 12) : { latencies: [], recorded: [], tickCost: [] }
  const lat = [...b.latencies].sort((x, y) => x - y)
  const rec = [...b.recorded].sort((x, y) => x - y)
  const tick = [...b.tickCost].sort((x, y) => x - y)
  if (runs('a')) console.log(`    ${lat.length} interruptions, p50 ${percentile(lat, 50).toFixed(1)} ms, p95 ${percentile(lat, 95).toFixed(1)} ms; tick work p99 ${percentile(tick, 99).toFixed(2)} ms`)
  if (runs('b')) console.log('(b) engine-added turn latency…')
  const t = runs('b') ? await turnBench(50, full ? 30 : 10) : { engine: [], wire: [] }
  const eng = [...t.engine].sort((x, y) => x - y)
  const wire = [...t.wire].sort((x, y) => x - y)
  if (runs('b')) console.log(`    ${eng.length} turns, engine p50 ${percentile(eng, 50).toFixed(2)} p99 ${percentile(eng, 99).toFixed(2)} ms; to next tick p99 ${percentile(wire, 99).toFixed(2)} ms`)
  const capCalls = full ? 300 : 150
  if (runs('c')) console.log('(c) capacity…')
  const c = runs('c') ? await capacityBench(capCalls, full ? 20 : 8) : { cpuMsPerCallSecond: NaN, callsPerCore: NaN }
  if (runs('c')) console.log(`    ${c.cpuMsPerCallSecond.toFixed(3)} ms CPU per call-second → ${c.callsPerCore.toFixed(0)} calls/core`)

  const result: BenchResult = {
    bench: 'agent-latency',
    mode: args.mode,
    startedAt,
    durationSec: (performance.now() - started) / 1000,
    figures: [
      { id: 'agent.barge_in_p95_ms', label: `barge-in latency p95 (${lat.length} interruptions, ${calls} calls)`, value: percentile(lat, 95), unit: 'ms', better: 'lower', target: 60 },
      { id: 'agent.barge_in_p50_ms', label: 'barge-in latency p50', value: percentile(lat, 50), unit: 'ms', better: 'lower' },
      { id: 'agent.barge_in_recorded_p95_ms', label: 'barge-in latency p95 as recorded by the runtime', value: percentile(rec, 95), unit: 'ms', better: 'lower' },
      { id: 'agent.turn_engine_p99_ms', label: 'engine-added turn latency p99 (final transcript → first reply audio in the engine)', value: percentile(eng, 99), unit: 'ms', better: 'lower', target: 5 },
      { id: 'agent.turn_to_packet_p99_ms', label: 'final transcript → first reply frame pulled by the 20 ms tick, p99', value: percentile(wire, 99), unit: 'ms', better: 'lower' },
      { id: 'agent.calls_per_core', label: `agent calls per core (stub adapters, ${VAD} VAD, ${capCalls} calls)`, value: c.callsPerCore, unit: 'calls', better: 'higher', target: 300 },
    ].filter((f) => Number.isFinite(f.value)) as BenchResult['figures'],
    plots: [
      { id: 'agent.barge_in', title: 'Barge-in latency (first voiced inbound frame → last agent frame)', kind: 'histogram', xLabel: 'ms', yLabel: 'interruptions', series: [histogramFromSamples('barge-in', lat)], marks: [{ axis: 'x', value: 60, label: 'target p95' }] },
      { id: 'agent.turn', title: 'Engine-added turn latency', kind: 'histogram', xLabel: 'ms', yLabel: 'turns', series: [histogramFromSamples('engine', eng), histogramFromSamples('to next tick', wire)], marks: [{ axis: 'x', value: 5, label: 'target p99' }] },
    ],
    details: { bargeIn: { latencies: lat, recorded: rec, tickWorkP99Ms: percentile(tick, 99) }, turns: { engine: eng, wire }, capacity: c },
    notes: [
      'Stub adapters (zero latency): figures are the engine share only; real STT/LLM/TTS add their own time.',
      'Barge-in onset is 2 voiced frames (40 ms of audio); the outbound frame of the tick that detects speech is already out, so the floor is ~20 ms.',
      '"to next tick" includes waiting for the media tick (0–20 ms uniform); a session that sends on enqueue when idle would remove it.',
      'Capacity counts the agent work only (VAD, turn-taking, playout, stub adapters) on this process, not RTP/codec work in media/.',
    ],
  }
  finishBench(result, args)
  process.exit(0)
}

void main()
