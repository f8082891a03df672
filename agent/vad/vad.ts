/**
 * The contract of a frame-level voice activity detector on inbound audio
 * (DESIGN.md "Barge-in at the packet level": VAD runs on inbound frames in the
 * media path). An engine classifies one frame at a time; the onset/hangover
 * timing that rejects clicks and short bursts is the turn-taker's
 * (`turn-taker.ts`), so an engine only says whether one frame is speech.
 */
import type { AudioFrame } from '../../audio/frame.ts'

/** RMS level of a frame in dBFS (-120 for digital silence): the energy gate of every VAD here. */
export function frameLevelDb(s: Int16Array): number {
  let sum = 0
  for (let i = 0; i < s.length; i++) {
    const v = s[i]!
    sum += v * v
  }
  const rms = Math.sqrt(sum / Math.max(1, s.length))
  return rms > 0 ? 20 * Math.log10(rms / 32768) : -120
}

export interface VadDecision {
  speech: boolean
  /** Frame level in dBFS. */
  levelDb: number
}

export interface Vad {
  readonly name: string
  process(frame: AudioFrame): VadDecision
  reset(): void
}
