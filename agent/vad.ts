/**
 * Frame-level voice activity detection on inbound audio (DESIGN.md "Barge-in
 * at the packet level": VAD runs on inbound frames in the media path).
 *
 * The default is an energy gate with an adaptive noise floor: O(samples) per
 * 20 ms frame with no allocation, cheap enough to run on every frame of every
 * call. It is deliberately paired with the turn-taker's onset/hangover timing,
 * which is what rejects clicks and short bursts. A heavier classifier can be
 * plugged in through the `Vad` interface.
 */
import type { AudioFrame } from '../audio/frame.ts'

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

export interface EnergyVadOptions {
  /** Never call anything below this speech (dBFS). Telephone speech sits around -30..-15. */
  minSpeechDb?: number
  /** Speech must exceed the tracked noise floor by this much (dB). */
  marginDb?: number
  /**
   * 0..1 sensitivity knob in the Leadlock sense (`vad_threshold`, higher = less
   * sensitive): shifts both limits by up to ±10 dB around the defaults.
   */
  threshold?: number
}

export class EnergyVad implements Vad {
  readonly name = 'energy'
  private floorDb = -70
  private readonly minSpeechDb: number
  private readonly marginDb: number

  constructor(opts: EnergyVadOptions = {}) {
    const shift = opts.threshold === undefined ? 0 : (opts.threshold - 0.5) * 20
    this.minSpeechDb = (opts.minSpeechDb ?? -45) + shift
    this.marginDb = (opts.marginDb ?? 12) + shift / 2
  }

  process(frame: AudioFrame): VadDecision {
    const levelDb = frameLevelDb(frame.samples)
    // Floor follows quiet frames quickly and loud ones very slowly, so a long
    // monologue does not raise the floor to the speech level.
    if (levelDb < this.floorDb) this.floorDb = 0.7 * this.floorDb + 0.3 * levelDb
    else this.floorDb += Math.min(0.05, levelDb - this.floorDb)
    const speech = levelDb > this.minSpeechDb && levelDb > this.floorDb + this.marginDb
    return { speech, levelDb }
  }

  reset(): void {
    this.floorDb = -70
  }
}
