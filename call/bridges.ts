import { Bridge, type BridgeMode } from '../media/bridge.ts'
import { LINK_RATE, LinkSink, LinkSource, type FrameLink } from '../media/frame-link.ts'
import type { SessionDtmfEvent } from '../media/session/media-session.ts'
import { CallControlError } from './call-control.ts'
import type { LiveMedia } from './live-media.ts'

/**
 * Two local calls talking to each other through media/Bridge: RTP relayed
 * untouched when both legs negotiated the same codec (the agents' audio is
 * then bypassed), else decoded and re-encoded per leg through each call's
 * OutputArbiter. Either call ending separates them; the survivor goes back to
 * its agent.
 *
 * With MEDIA_WORKERS a call's partner may live on another worker: then the
 * call is linked instead (connectLinked), its half of a FrameLink carrying
 * decoded audio to the other worker, where the partner call (a bridge) or
 * the conference mixer holds the other half.
 */
interface Entry { a: string; b: string; keys: string[]; stop(): void; conferenceId?: string }

export class CallBridges {
  private readonly bridges = new Map<string, Entry>()

  /** The other call (or, for a linked call, what it is linked to). */
  partnerOf(callId: string): string | undefined {
    const e = this.bridges.get(callId)
    return e ? (e.a === callId ? e.b : e.a) : undefined
  }

  /** The conference mixed on another worker that the call is linked to, if any. */
  linkedConferenceOf(callId: string): string | undefined {
    return this.bridges.get(callId)?.conferenceId
  }

  private free(ids: string[]): void {
    for (const id of ids) {
      if (this.bridges.has(id)) throw new CallControlError('invalid_state', `call ${id} is already bridged with ${this.partnerOf(id)}`)
    }
  }

  connect(a: LiveMedia, b: LiveMedia): { mode: BridgeMode } {
    const ida = a.ctx.callId
    const idb = b.ctx.callId
    this.free([ida, idb])
    if (!a.session.codec || !b.session.codec) throw new CallControlError('invalid_state', 'both calls must have negotiated media before bridging')
    const bridge = new Bridge({ session: a.session, output: a.output }, { session: b.session, output: b.output })
    const entry: Entry = { a: ida, b: idb, keys: [ida, idb], stop: () => bridge.unbridge() }
    this.bridges.set(ida, entry)
    this.bridges.set(idb, entry)
    a.onEnd(() => this.disconnect(ida))
    b.onEnd(() => this.disconnect(idb))
    return { mode: bridge.mode }
  }

  /**
   * The call's half of a link to media on another worker. `relay` (a bridge
   * of two calls with the same codec): RTP crosses undecoded, as in a local
   * relay bridge. Otherwise its voice goes into the link decoded and the
   * link's audio plays in its foreground (over its agent, as in a local
   * bridge). `partner` names the far side in 409s. `muteIn`: a listen-only
   * conference member, its voice zeroed before the link. Either end closing
   * the link (the far call hung up, a kick) separates it.
   */
  connectLinked(a: LiveMedia, partner: string, link: FrameLink, opts: { muteIn?: boolean; relay?: boolean; conferenceId?: string } = {}): void {
    const id = a.ctx.callId
    this.free([id])
    const session = a.session
    if (!session.codec) throw new CallControlError('invalid_state', `call ${id} has no negotiated media yet`)
    const stop = opts.relay ? this.relayHalf(a, link) : this.frameHalf(a, link, opts.muteIn === true)
    const entry: Entry = { a: id, b: partner, keys: [id], stop: () => { if (!session.isClosed) stop(); link.close() }, ...(opts.conferenceId ? { conferenceId: opts.conferenceId } : {}) }
    this.bridges.set(id, entry)
    link.onClose(() => this.disconnect(id))
    a.onEnd(() => this.disconnect(id))
  }

  /** Same codec on both calls: RTP crosses undecoded and is re-stamped (RFC 3550 §7.1), DTMF events included. */
  private relayHalf(a: LiveMedia, link: FrameLink): () => void {
    const session = a.session
    session.setRelayTarget({ relayRtp: (pkt, isDtmf) => link.sendRtp(pkt, isDtmf) })
    session.setRelaying(true)
    link.onRtp = (pkt, isDtmf) => { if (!session.isClosed) session.relayRtp(pkt, isDtmf) }
    return () => {
      session.setRelayTarget(null)
      session.setRelaying(false)
    }
  }

  /** Decoded audio both ways; the link's audio plays in the call's foreground. */
  private frameHalf(a: LiveMedia, link: FrameLink, muteIn: boolean): () => void {
    const session = a.session
    const sink = new LinkSink(link)
    session.addSink(sink, { sampleRate: LINK_RATE })
    // The LinkSource ends with the link, so the call's output drops it then.
    void a.output.play(new LinkSource(link))
    // DTMF crosses as digits and is regenerated on the far call (RFC 4733), as the local transcoding bridge does.
    const dtmf = (e: SessionDtmfEvent) => link.sendDtmf(e.digit, e.durationMs)
    session.on('dtmf', dtmf)
    link.onDtmf = (digit, ms) => { if (!session.isClosed) session.sendDtmf(digit, ms) }
    const mutedByUs = muteIn && !session.muted.in
    if (mutedByUs) session.mute('in')
    return () => {
      session.removeSink(sink)
      session.off('dtmf', dtmf)
      if (mutedByUs) session.unmute('in')
    }
  }

  disconnect(callId: string): void {
    const e = this.bridges.get(callId)
    if (!e) return
    for (const k of e.keys) this.bridges.delete(k)
    e.stop()
  }
}
