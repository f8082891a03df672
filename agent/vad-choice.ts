/**
 * Which VAD an agent runs on its inbound frames (agent config `vad`).
 *
 * bench/vad-compare.ts decided the default: the WebRTC VAD behind an energy
 * gate. It is far more accurate than the energy VAD alone (speech at a quiet
 * talker's level, stationary noise down to ~10 dB SNR) for ~2 µs per frame,
 * and it reacts on the frame, which barge-in needs. Silero is more accurate
 * still (no false onsets on DTMF or 5 dB noise) but costs ~40× the CPU and
 * answers one 32 ms window late, so it is an opt-in per agent.
 */
import type { AgentConfig } from './config.ts'
import { EnergyVad, type Vad } from './vad.ts'
import { SileroVad } from './vad-silero.ts'
import { WebRtcVad, type WebRtcVadMode } from './vad-webrtc.ts'

export type VadEngine = NonNullable<AgentConfig['vad']>
export const VAD_ENGINES: readonly VadEngine[] = ['webrtc', 'energy', 'silero']
export const DEFAULT_VAD: VadEngine = 'webrtc'

/**
 * `vadThreshold` (0..1, higher = less sensitive, Leadlock's knob) maps onto
 * each engine's own: the energy VAD's dB limits, WebRTC's aggressiveness mode,
 * Silero's probability threshold.
 */
export function createVad(config: Pick<AgentConfig, 'vad' | 'vadThreshold'>): Vad {
  const engine = config.vad ?? DEFAULT_VAD
  // Out-of-range thresholds are clamped, not thrown: a call must not fail on a config knob.
  const t = config.vadThreshold === undefined || Number.isNaN(config.vadThreshold) ? undefined : Math.min(1, Math.max(0, config.vadThreshold))
  switch (engine) {
    case 'energy':
      return new EnergyVad(t !== undefined ? { threshold: t } : {})
    case 'webrtc':
      return new WebRtcVad(t !== undefined ? { mode: Math.min(3, Math.floor(t * 4)) as WebRtcVadMode } : {})
    case 'silero':
      return new SileroVad({ threshold: t ?? 0.5 })
    default:
      throw new RangeError(`unknown VAD "${String(engine)}" (expected ${VAD_ENGINES.join(', ')})`)
  }
}
