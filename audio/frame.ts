/**
 * The unit of audio inside the engine (DESIGN.md "Media path").
 *
 * A frame is 20 ms of mono 16-bit signed PCM. Ingress decodes each RTP payload
 * once into a frame; egress encodes once. Consumers must not keep a reference to
 * `samples` past the callback that delivered it: the media path reuses buffers
 * to avoid per-packet allocation, so copy if you need to hold on to audio.
 */
export interface AudioFrame {
  /** 20 ms of samples: sampleRate / 50 values. */
  samples: Int16Array
  /** 8000, 16000, 24000 or 48000. */
  sampleRate: SampleRate
  /** RTP timestamp of the first sample, in the stream's clock rate units. */
  rtpTimestamp: number
  /** Monotonic capture/arrival time in milliseconds (performance.now()). */
  receivedAt: number
}

export type SampleRate = 8000 | 16000 | 24000 | 48000

export const FRAME_MS = 20

export function samplesPerFrame(rate: SampleRate): number {
  return (rate / 1000) * FRAME_MS
}

/** Something that consumes frames (agent STT, recorder, fork, mixer, other leg). */
export interface FrameSink {
  onFrame(frame: AudioFrame): void
}

/**
 * Something that produces frames on demand when the shared scheduler ticks
 * (TTS, file playback, tones, other leg). Returns null when it has nothing to
 * send this tick, so the session can send comfort silence or skip.
 */
export interface FrameSource {
  readonly sampleRate: SampleRate
  nextFrame(): Int16Array | null
  /**
   * True once the source will never produce another frame; the session then
   * moves on to the next queued source. A source without it (a live stream)
   * plays until flushed or closed.
   */
  readonly ended?: boolean
  /** Called when the session drops the source (finished, flushed, closed). */
  close?(): void
  /**
   * True when the frames come from other sessions' inbound audio of the same
   * tick (a transcoding bridge leg, a conference mix): the session then sends
   * after every session's ingress (see MediaScheduler).
   */
  readonly fedByIngress?: boolean
}

/** A FrameSink that also wants the agent/outbound side (stereo recording, forks). */
export interface DuplexFrameSink extends FrameSink {
  /** Frames the session sent, after mute, at the codec's rate. */
  onOutboundFrame(frame: AudioFrame): void
}

/**
 * A party that frames flow to and from: a MediaSession, or a call on
 * another media worker seen through a FrameLink (frame-link.ts). The mixer
 * and the conference recorder need only this much of a session.
 */
export interface FrameEndpoint {
  /** Inbound frames, resampled to `sampleRate` when given. */
  addSink(sink: FrameSink, opts?: { sampleRate?: SampleRate }): void
  removeSink(sink: FrameSink): void
  /** Outbound frames: the endpoint pulls the source once per tick. */
  play(source: FrameSource): Promise<unknown>
  readonly isClosed: boolean
}
