/**
 * Which VAD an agent runs on its inbound frames (agent config `vad`).
 *
 * bench/vad-compare.ts decided the default: the WebRTC VAD (mode 2) behind an
 * energy gate. On its espeak-ng corpus (noise, hum, DTMF, 0–20 dB SNR, phone
 * band) it scores frame F1 0.84 against the energy VAD's 0.60 for ~2 µs per
 * frame, and it reacts on the frame (onset p50 0 ms), which barge-in needs.
 * Silero v5 is more accurate still (F1 0.87, almost no false onsets on DTMF
 * or noise) but costs ~45× the CPU and its onset lags (p50 80 ms, p90 180 ms),
 * which alone breaks the 60 ms barge-in target; it is an opt-in per agent.
 */
import type { AgentConfig } from '../config.ts'
import { EnergyVad } from './energy.ts'
import type { Vad } from './vad.ts'
import { SileroVad } from './silero.ts'
import { WebRtcVad, type WebRtcVadMode } from './webrtc.ts'

export type VadEngine = NonNullable<AgentConfig['vad']>
export const VAD_ENGINES: readonly VadEngine[] = ['webrtc', 'energy', 'silero']
export const DEFAULT_VAD: VadEngine = 'webrtc'

/**
 * `vadThreshold` (0..1, higher = less sensitive, Leadlock's knob) maps onto
 * each engine's own: the energy VAD's dB limits, WebRTC's aggressiveness mode
 * and energy gate, Silero's probability threshold.
 */
export function createVad(config: Pick<AgentConfig, 'vad' | 'vadThreshold'>): Vad {
  const engine = config.vad ?? DEFAULT_VAD
  // Out-of-range thresholds are clamped, not thrown: a call must not fail on a config knob.
  const t = config.vadThreshold === undefined || Number.isNaN(config.vadThreshold) ? undefined : Math.min(1, Math.max(0, config.vadThreshold))
  switch (engine) {
    case 'energy':
      return new EnergyVad(t !== undefined ? { threshold: t } : {})
    case 'webrtc':
      // The classifier's aggressiveness and the energy gate in front of it both follow the knob
      // (0.5 = the defaults, mode 2 and -50 dBFS; 1 = mode 3 and -40 dBFS: quiet speech is not a turn).
      return new WebRtcVad(t !== undefined ? { mode: Math.min(3, Math.floor(t * 4)) as WebRtcVadMode, gateDb: -50 + (t - 0.5) * 20 } : {})
    case 'silero':
      return new SileroVad({ threshold: t ?? 0.5 })
    default:
      throw new RangeError(`unknown VAD "${String(engine)}" (expected ${VAD_ENGINES.join(', ')})`)
  }
}
