/**
 * The energy VAD: a level gate with an adaptive noise floor, O(samples) per
 * 20 ms frame with no allocation, cheap enough to run on every frame of every
 * call. A frame is speech when it is both above an absolute minimum and
 * `marginDb` above the tracked noise floor. It is the one energy VAD of the
 * engine: the agent's `energy` engine, the pocketsphinx adapter's gate, the
 * AMD's voice detector and (through `speech-detector.ts`) the call layer's
 * caller-speech events.
 */
import type { AudioFrame } from '../../audio/frame.ts'
import { frameLevelDb, type Vad, type VadDecision } from './vad.ts'

export interface EnergyVadOptions {
  /** Never call anything below this speech (dBFS). Telephone speech sits around -30..-15. Default -45. */
  minSpeechDb?: number
  /** Speech must exceed the tracked noise floor by this much (dB). Default 12. */
  marginDb?: number
  /**
   * 0..1 sensitivity knob in the Leadlock sense (`vad_threshold`, higher = less
   * sensitive): shifts both limits by up to ±10 dB around the defaults.
   */
  threshold?: number
  /**
   * How the floor follows a frame quieter than it: the share of the gap closed
   * per frame (1 = at once). Default 0.3, which smooths over single quiet frames.
   */
  floorFall?: number
  /**
   * How fast the floor rises towards louder frames, dB per frame. Default 0.05
   * (1 dB per 400 ms), so a long monologue does not raise the floor to the speech level.
   */
  floorRiseDb?: number
  /**
   * The lowest the floor goes. Digital silence measures -120 dBFS; the call
   * layer's caller-speech detector counts it as -100 (as it always has), so its
   * floor does not sink 20 dB on a muted line and take seconds to climb back.
   */
  floorMinDb?: number
}

const INITIAL_FLOOR_DB = -70

export class EnergyVad implements Vad {
  readonly name = 'energy'
  private floorDb = INITIAL_FLOOR_DB
  private readonly minSpeechDb: number
  private readonly marginDb: number
  private readonly floorFall: number
  private readonly floorKeep: number
  private readonly floorRiseDb: number
  private readonly floorMinDb: number

  constructor(opts: EnergyVadOptions = {}) {
    const shift = opts.threshold === undefined ? 0 : (opts.threshold - 0.5) * 20
    this.minSpeechDb = (opts.minSpeechDb ?? -45) + shift
    this.marginDb = (opts.marginDb ?? 12) + shift / 2
    this.floorFall = opts.floorFall ?? 0.3
    this.floorKeep = 1 - this.floorFall
    this.floorRiseDb = opts.floorRiseDb ?? 0.05
    this.floorMinDb = opts.floorMinDb ?? -120
  }

  process(frame: AudioFrame): VadDecision {
    const levelDb = frameLevelDb(frame.samples)
    // Floor follows quiet frames quickly and loud ones very slowly.
    if (levelDb < this.floorDb) this.floorDb = this.floorKeep * this.floorDb + this.floorFall * levelDb
    else this.floorDb += Math.min(this.floorRiseDb, levelDb - this.floorDb)
    if (this.floorDb < this.floorMinDb) this.floorDb = this.floorMinDb
    const speech = levelDb > this.minSpeechDb && levelDb > this.floorDb + this.marginDb
    return { speech, levelDb }
  }

  reset(): void {
    this.floorDb = INITIAL_FLOOR_DB
  }
}
