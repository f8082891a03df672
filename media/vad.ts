/**
 * Energy-based voice activity detector on inbound frames, for packet-level
 * barge-in (DESIGN.md "Barge-in at the packet level"): cheap enough to run on
 * every frame of every call in the media path, no model needed.
 *
 * Level is the frame's RMS in dBFS. The noise floor tracks the quietest
 * recent level (fast down, slow up). A frame is voiced when it is both
 * `marginDb` above the floor and above an absolute minimum. Speech starts
 * after `onsetFrames` voiced frames in a row (reported with the time of the
 * FIRST voiced frame, so barge-in latency is measured from real onset) and
 * ends after `hangoverFrames` unvoiced frames.
 */
import { EventEmitter } from 'node:events'
import type { AudioFrame, FrameSink } from '../audio/frame.ts'

export interface VadOptions {
  marginDb?: number
  minLevelDb?: number
  onsetFrames?: number
  hangoverFrames?: number
}

export interface SpeechStartEvent { at: number; rtpTimestamp: number; levelDb: number }
export interface SpeechEndEvent { at: number; durationMs: number }

export interface VadEvents {
  speechStart: [SpeechStartEvent]
  speechEnd: [SpeechEndEvent]
}

export class EnergyVad extends EventEmitter<VadEvents> implements FrameSink {
  private readonly marginDb: number
  private readonly minLevelDb: number
  private readonly onsetFrames: number
  private readonly hangoverFrames: number
  private noiseDb = -70
  private voicedRun = 0
  private unvoicedRun = 0
  private firstVoicedAt = 0
  private firstVoicedTs = 0
  private speechStartedAt = 0
  private inSpeech = false
  /** Level of the last frame, dBFS. */
  levelDb = -100

  constructor(opts: VadOptions = {}) {
    super()
    this.marginDb = opts.marginDb ?? 12
    this.minLevelDb = opts.minLevelDb ?? -45
    this.onsetFrames = opts.onsetFrames ?? 3
    this.hangoverFrames = opts.hangoverFrames ?? 15
  }

  get speaking(): boolean { return this.inSpeech }

  onFrame(frame: AudioFrame): void {
    const x = frame.samples
    let acc = 0
    for (let i = 0; i < x.length; i++) { const v = x[i]!; acc += v * v }
    const rms = Math.sqrt(acc / x.length)
    const db = rms > 0 ? 20 * Math.log10(rms / 32768) : -100
    this.levelDb = db
    // Noise floor: follow drops at once, rises slowly (≈ 1 dB per 200 ms).
    if (db < this.noiseDb) this.noiseDb = db
    else this.noiseDb += Math.min(db - this.noiseDb, 0.1)
    const voiced = db > this.minLevelDb && db > this.noiseDb + this.marginDb
    if (voiced) {
      if (this.voicedRun === 0) { this.firstVoicedAt = frame.receivedAt; this.firstVoicedTs = frame.rtpTimestamp }
      this.voicedRun++
      this.unvoicedRun = 0
      if (!this.inSpeech && this.voicedRun >= this.onsetFrames) {
        this.inSpeech = true
        this.speechStartedAt = this.firstVoicedAt
        this.emit('speechStart', { at: this.firstVoicedAt, rtpTimestamp: this.firstVoicedTs, levelDb: Math.round(db * 10) / 10 })
      }
    } else {
      this.voicedRun = 0
      if (this.inSpeech && ++this.unvoicedRun >= this.hangoverFrames) {
        this.inSpeech = false
        this.emit('speechEnd', { at: frame.receivedAt, durationMs: Math.round(frame.receivedAt - this.speechStartedAt) })
      }
    }
  }
}
