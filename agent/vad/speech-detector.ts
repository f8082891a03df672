/**
 * Caller speech start / end as events on a media session's inbound frames (a
 * `FrameSink`), for the call layer: `call.speech_update` and barge-in on an
 * API `say`. It is the energy VAD (`energy.ts`) behind the turn-taker's
 * onset/hangover timing, with the floor tracking these events have always
 * used: the floor drops to a quieter frame at once and rises 0.1 dB per frame.
 *
 * Speech starts after `onsetFrames` voiced frames in a row, reported with the
 * time of the FIRST voiced frame so barge-in latency is measured from the real
 * onset, and ends after `hangoverFrames` unvoiced frames.
 */
import { EventEmitter } from 'node:events'
import { FRAME_MS, type AudioFrame, type FrameSink } from '../../audio/frame.ts'
import { EnergyVad } from './energy.ts'
import { TurnTaker } from './turn-taker.ts'

export interface SpeechDetectorOptions {
  marginDb?: number
  minLevelDb?: number
  /** Default 3 (60 ms). */
  onsetFrames?: number
  /** Default 15 (300 ms). */
  hangoverFrames?: number
}

export interface SpeechStartEvent { at: number; rtpTimestamp: number; levelDb: number }
export interface SpeechEndEvent { at: number; durationMs: number }

export interface SpeechDetectorEvents {
  speechStart: [SpeechStartEvent]
  speechEnd: [SpeechEndEvent]
}

export class SpeechDetector extends EventEmitter<SpeechDetectorEvents> implements FrameSink {
  private readonly turns: TurnTaker

  constructor(opts: SpeechDetectorOptions = {}) {
    super()
    const vad = new EnergyVad({ minSpeechDb: opts.minLevelDb ?? -45, marginDb: opts.marginDb ?? 12, floorFall: 1, floorRiseDb: 0.1, floorMinDb: -100 })
    this.turns = new TurnTaker(vad, { onsetMs: (opts.onsetFrames ?? 3) * FRAME_MS, silenceMs: (opts.hangoverFrames ?? 15) * FRAME_MS })
  }

  get speaking(): boolean { return this.turns.inSpeech }

  onFrame(frame: AudioFrame): void {
    const ev = this.turns.process(frame)
    if (ev?.type === 'speech_start') {
      this.emit('speechStart', { at: ev.firstVoicedAt, rtpTimestamp: ev.firstVoicedRtpTimestamp, levelDb: Math.round(ev.levelDb * 10) / 10 })
    } else if (ev?.type === 'speech_end') {
      this.emit('speechEnd', { at: ev.at, durationMs: Math.round(ev.at - ev.startedAt) })
    }
  }
}
