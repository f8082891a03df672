/**
 * Turns per-frame VAD decisions into speech start / end events (endpointing by
 * silence). Times are the inbound frames' `receivedAt`, so every latency the
 * runtime reports is anchored on packet arrival, not on when we got round to it.
 */
import { FRAME_MS, type AudioFrame } from '../../audio/frame.ts'
import type { Vad } from './vad.ts'

export interface TurnTakerOptions {
  /** Voiced time needed to declare speech start (rejects clicks). Default 40 ms (2 frames). */
  onsetMs?: number
  /** Silence that ends a turn (Leadlock `vad_silence_duration_ms`). Default 500. */
  silenceMs?: number
}

export type TurnEvent =
  | {
      type: 'speech_start'
      firstVoicedAt: number
      /** RTP timestamp of the first voiced frame. */
      firstVoicedRtpTimestamp: number
      /** Level of the frame that completed the onset, dBFS. */
      levelDb: number
      at: number
    }
  | { type: 'speech_end'; startedAt: number; lastVoicedAt: number; voicedMs: number; at: number }

export class TurnTaker {
  private readonly onsetFrames: number
  private readonly silenceFrames: number
  private run = 0
  private runStart = 0
  private runStartRtp = 0
  private speaking = false
  private silentFrames = 0
  private startedAt = 0
  private lastVoicedAt = 0
  /** Voiced ms inside the current utterance. */
  voicedMs = 0

  constructor(
    private readonly vad: Vad,
    opts: TurnTakerOptions = {},
  ) {
    this.onsetFrames = Math.max(1, Math.round((opts.onsetMs ?? 40) / FRAME_MS))
    this.silenceFrames = Math.max(1, Math.round((opts.silenceMs ?? 500) / FRAME_MS))
  }

  get inSpeech(): boolean {
    return this.speaking
  }

  /** Feed one frame; returns an event when the state changes. */
  process(frame: AudioFrame, now = frame.receivedAt): TurnEvent | undefined {
    const { speech, levelDb } = this.vad.process(frame)
    if (!this.speaking) {
      if (speech) {
        if (this.run === 0) {
          this.runStart = frame.receivedAt
          this.runStartRtp = frame.rtpTimestamp
        }
        this.run++
        if (this.run >= this.onsetFrames) {
          this.speaking = true
          this.silentFrames = 0
          this.startedAt = this.runStart
          this.lastVoicedAt = frame.receivedAt
          this.voicedMs = this.run * FRAME_MS
          this.run = 0
          return { type: 'speech_start', firstVoicedAt: this.runStart, firstVoicedRtpTimestamp: this.runStartRtp, levelDb, at: now }
        }
      } else this.run = 0
      return undefined
    }
    if (speech) {
      this.silentFrames = 0
      this.voicedMs += FRAME_MS
      this.lastVoicedAt = frame.receivedAt
      return undefined
    }
    if (++this.silentFrames >= this.silenceFrames) {
      this.speaking = false
      this.silentFrames = 0
      return {
        type: 'speech_end',
        startedAt: this.startedAt,
        lastVoicedAt: this.lastVoicedAt,
        voicedMs: this.voicedMs,
        at: now,
      }
    }
    return undefined
  }
}
