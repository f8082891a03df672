import type { FrameEndpoint, FrameSink, FrameSource, SampleRate } from '../../audio/frame.ts'
import { StreamResampler } from '../../codecs/stream-resampler.ts'
import type { MediaSession, PlaybackResult } from './media-session.ts'

/**
 * What a call sends: the output arbiter, the one source queued on the call's
 * MediaSession. Callers that want the call to play something (API say/play,
 * MOH, a stream socket, a bridge leg, a conference mix) play it here, not on
 * the session.
 *
 * The session plays its queue head until it ends, and the agent's Playout is
 * a live source that never ends: anything queued behind it (an API prompt,
 * music-on-hold, audio from a stream socket) would wait for the whole call.
 * The arbiter sits at the head instead and arbitrates per 20 ms frame: queued
 * foreground sources (API say/play, MOH, stream audio) play in order and the
 * agent's audio waits meanwhile (paused, not dropped); with nothing in the
 * foreground the agent speaks.
 *
 * session.flush() (the agent's barge-in) drops the session's queue, this
 * source included; it re-queues itself from the 'flushed' event so the next
 * tick is served again. Foreground sources survive that flush: they stop only
 * through their own handles (stop(), the source ending, or end()).
 */
interface Foreground { source: FrameSource; resolve: (r: PlaybackResult) => void }

export class OutputArbiter implements FrameSource {
  private agent: FrameSource | null = null
  private readonly fg: Foreground[] = []
  private readonly adapters = new Map<number, StreamResampler>()
  private closed = false
  /**
   * The call as a mixer or the conference recorder sees it: it hears the
   * session's inbound frames and plays through this arbiter. One object per
   * call, so add/remove compare it by identity.
   */
  readonly endpoint: FrameEndpoint

  constructor(private readonly session: MediaSession) {
    session.on('flushed', () => this.install())
    session.on('closed', () => this.end())
    this.install()
    this.endpoint = {
      addSink: (sink: FrameSink, opts?: { sampleRate?: SampleRate }) => session.addSink(sink, opts),
      removeSink: (sink: FrameSink) => session.removeSink(sink),
      play: (source: FrameSource) => this.play(source),
      get isClosed() { return session.isClosed },
    }
  }

  /** The negotiated codec's rate, so the session never resamples this source (it may be set up before the SDP is). */
  get sampleRate(): SampleRate {
    return this.session.codecSampleRate()
  }

  /** A bridge leg or conference mix in the foreground: the session sends after every ingress (MediaScheduler). */
  get fedByIngress(): boolean {
    const head = this.fg[0]
    return head ? head.source.fedByIngress === true : this.agent?.fedByIngress === true
  }

  private install(): void {
    if (this.closed || this.session.isClosed) return
    void this.session.play(this)
  }

  /** The agent's live source (its Playout), heard when nothing else plays. */
  setAgent(source: FrameSource | null): void {
    this.agent = source
  }

  /** Queues a foreground source; resolves 'done' when it ended, 'flushed' when stopped, 'closed' with the call. */
  play(source: FrameSource): Promise<PlaybackResult> {
    if (this.closed) return Promise.resolve('closed')
    return new Promise((resolve) => { this.fg.push({ source, resolve }) })
  }

  /** Removes one foreground source (MOH off, a stopped prompt). */
  stop(source: FrameSource): void {
    const i = this.fg.findIndex((f) => f.source === source)
    if (i < 0) return
    const [f] = this.fg.splice(i, 1)
    f!.source.close?.()
    f!.resolve('flushed')
  }

  private adapt(f: Int16Array, rate: SampleRate): Int16Array {
    const to = this.sampleRate
    if (rate === to) return f
    const key = rate * 100000 + to
    let a = this.adapters.get(key)
    if (!a) { a = new StreamResampler(rate, to); this.adapters.set(key, a) }
    return a.processFrame(f)
  }

  nextFrame(): Int16Array | null {
    while (this.fg.length > 0) {
      const head = this.fg[0]!
      const f = head.source.nextFrame()
      if (f) return this.adapt(f, head.source.sampleRate)
      if (head.source.ended) {
        this.fg.shift()
        head.source.close?.()
        head.resolve('done')
        continue
      }
      // A live foreground source with nothing yet (TTS still synthesising):
      // hold the line rather than letting the agent talk in between.
      return null
    }
    const a = this.agent?.nextFrame() ?? null
    return a && this.agent ? this.adapt(a, this.agent.sampleRate) : null
  }

  /**
   * The call is over: pending foreground sources resolve 'closed'. Not named
   * close(): the session calls a source's close() whenever it drops it (a
   * flush), and this source must survive that.
   */
  end(): void {
    if (this.closed) return
    this.closed = true
    for (const f of this.fg.splice(0)) { f.source.close?.(); f.resolve('closed') }
  }
}
