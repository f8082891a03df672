/**
 * Prometheus histograms for the per-turn latency waterfall (DESIGN.md: end of
 * speech → final transcript → first LLM token → first TTS audio → first reply
 * packet) and for barge-in latency.
 *
 * `registerAgentMetrics(registry)` creates the histograms in that registry and
 * makes them a sink for every agent runtime in the process: the engine calls it
 * once where it builds its registry, and nothing on the call path needs to know
 * about prom-client. Observations happen on the runtime's `turn` / `barge_in`
 * events, i.e. once per turn, never per packet.
 */
import { Histogram, type Registry } from 'prom-client'
import type { BargeInRecord, TurnTiming } from './transcript.ts'

/** Waterfall stages, named after the TurnTiming fields they come from. */
export type TurnStage = 'stt' | 'llm' | 'tts' | 'playout' | 'total' | 'engine'

const STAGE_FIELD: Record<TurnStage, keyof TurnTiming> = {
  stt: 'sttMs',
  llm: 'llmMs',
  tts: 'ttsMs',
  playout: 'playoutMs',
  total: 'totalMs',
  engine: 'engineMs',
}

// Seconds. From sub-ms (engine share, playout wait) to multi-second (a slow vendor on a loaded box).
const TURN_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10]
// DESIGN.md target is p95 ≤ 60 ms: resolution around that.
const BARGE_IN_BUCKETS = [0.005, 0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.08, 0.1, 0.15, 0.25, 0.5, 1]

export interface AgentMetrics {
  observeTurn(timing: TurnTiming): void
  observeBargeIn(record: BargeInRecord): void
  /** Stop feeding this registry from new observations (engine shutdown, tests). */
  unregister(): void
}

const sinks = new Set<AgentMetrics>()

export function registerAgentMetrics(registry: Registry): AgentMetrics {
  const turnStage = new Histogram({
    name: 'callplane_agent_turn_stage_seconds',
    help: 'Per-turn latency waterfall by stage: stt = end of speech → final transcript, llm = → first LLM token, tts = → first TTS audio, playout = → first reply packet, total = end of speech → first reply packet, engine = the engine\'s own share (total minus adapters)',
    labelNames: ['stage', 'trigger'] as const,
    buckets: TURN_BUCKETS,
    registers: [registry],
  })
  const bargeIn = new Histogram({
    name: 'callplane_agent_barge_in_seconds',
    help: 'Barge-in latency: first voiced inbound frame → last agent frame out; stood = the policy let the interruption stand',
    labelNames: ['stood'] as const,
    buckets: BARGE_IN_BUCKETS,
    registers: [registry],
  })
  const metrics: AgentMetrics = {
    observeTurn(timing) {
      // An interrupted turn's later stages never happened; a missing mark is not a zero.
      for (const stage of Object.keys(STAGE_FIELD) as TurnStage[]) {
        const v = timing[STAGE_FIELD[stage]]
        if (typeof v === 'number' && Number.isFinite(v) && v >= 0) turnStage.observe({ stage, trigger: timing.trigger }, v / 1000)
      }
    },
    observeBargeIn(record) {
      bargeIn.observe({ stood: String(record.stood) }, record.latencyMs / 1000)
    },
    unregister() {
      sinks.delete(metrics)
    },
  }
  sinks.add(metrics)
  return metrics
}

/** The sinks every runtime reports to (those registered so far). */
export function agentMetricSinks(): ReadonlySet<AgentMetrics> {
  return sinks
}

/**
 * Adds a sink that is not a prom-client registry: a media worker thread
 * (MEDIA_WORKERS) forwards its runtimes' observations to the main thread's
 * registry, the one /metrics serves.
 */
export function addAgentMetricSink(sink: Pick<AgentMetrics, 'observeTurn' | 'observeBargeIn'>): AgentMetrics {
  const metrics: AgentMetrics = { ...sink, unregister: () => { sinks.delete(metrics) } }
  sinks.add(metrics)
  return metrics
}
