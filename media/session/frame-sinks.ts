/**
 * The consumers attached to a session: inbound sinks (agent STT, bridges,
 * mixers, recorders, forks), each optionally at its own sample rate, and the
 * duplex ones that also get what the session sends (stereo recording, forks).
 * The session knows nothing about what a sink is: callers attach and detach.
 */
import type { AudioFrame, DuplexFrameSink, FrameSink, SampleRate } from '../../audio/frame.ts'
import { StreamResampler } from '../../codecs/stream-resampler.ts'

interface Resampled { adapter: StreamResampler; frame: AudioFrame }

export class FrameSinks {
  private readonly inbound: FrameSink[] = []
  private readonly duplex: DuplexFrameSink[] = []
  private readonly resampled = new Map<FrameSink, Resampled>()
  /** Rates consumers asked for, so a codec change can add an adapter later. */
  private readonly wantRate = new Map<FrameSink, SampleRate>()

  get count(): number { return this.inbound.length }
  get duplexCount(): number { return this.duplex.length }

  /** `codecRate`: the negotiated codec's PCM rate, null before negotiation. */
  add(sink: FrameSink, sampleRate: SampleRate | undefined, codecRate: SampleRate | null): void {
    this.inbound.push(sink)
    if ('onOutboundFrame' in sink && typeof (sink as DuplexFrameSink).onOutboundFrame === 'function') this.duplex.push(sink as DuplexFrameSink)
    if (sampleRate) this.wantRate.set(sink, sampleRate)
    if (sampleRate && codecRate !== null && sampleRate !== codecRate) this.resampled.set(sink, resampledFor(codecRate, sampleRate))
  }

  remove(sink: FrameSink): void {
    const i = this.inbound.indexOf(sink)
    if (i >= 0) this.inbound.splice(i, 1)
    const j = this.duplex.indexOf(sink as DuplexFrameSink)
    if (j >= 0) this.duplex.splice(j, 1)
    this.resampled.delete(sink)
    this.wantRate.delete(sink)
  }

  /** A codec change: consumers that asked for a fixed rate keep it. */
  setCodecRate(codecRate: SampleRate): void {
    this.resampled.clear()
    for (const [sink, rate] of this.wantRate) {
      if (rate !== codecRate) this.resampled.set(sink, resampledFor(codecRate, rate))
    }
  }

  /** One decoded inbound frame (at the codec's rate) to every sink, resampled where asked. */
  deliverInbound(frame: AudioFrame, now: number): void {
    const sinks = this.inbound
    for (let i = 0; i < sinks.length; i++) {
      const sink = sinks[i]!
      const conv = this.resampled.get(sink)
      if (conv) {
        conv.frame.samples = conv.adapter.processFrame(frame.samples)
        conv.frame.rtpTimestamp = frame.rtpTimestamp
        conv.frame.receivedAt = now
        sink.onFrame(conv.frame)
      } else {
        sink.onFrame(frame)
      }
    }
  }

  /** One frame the session sent, after mute, to the duplex sinks. */
  deliverOutbound(frame: AudioFrame): void {
    for (const s of this.duplex) s.onOutboundFrame(frame)
  }

  /** The session closed: nothing is delivered any more. */
  clear(): void {
    this.inbound.length = 0
    this.duplex.length = 0
    this.resampled.clear()
    this.wantRate.clear()
  }
}

function resampledFor(from: SampleRate, to: SampleRate): Resampled {
  return { adapter: new StreamResampler(from, to), frame: { samples: new Int16Array(to / 50), sampleRate: to, rtpTimestamp: 0, receivedAt: 0 } }
}
