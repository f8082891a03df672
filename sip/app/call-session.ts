import type Srf from 'drachtio-srf'
import type { Logger } from 'pino'
import type { HangupBy } from '../../store/calls.ts'
import type { CallRecord } from './call-records.ts'
import type { Lease } from './concurrency-limiter.ts'
import type { MediaLeg } from './media-binding.ts'
import { withDirection } from './hold.ts'
import { parseInfoDtmf } from './sip-info-dtmf.ts'

/**
 * A live call on this node: its record, its SIP legs and, when the engine
 * terminates the media (agent calls), its media leg. Whatever ends first (a
 * BYE from either side, the API, a drain) ends everything exactly once.
 *
 *  - `caller`: the dialog with the party who placed the call (inbound A leg);
 *  - `callee`: the dialog with the party we called (outbound, B2BUA B leg, transfer target);
 *  - `mediaDialog`: the one of the two that talks to `media`.
 */
export class ActiveCall {
  caller: Srf.Dialog | null = null
  callee: Srf.Dialog | null = null
  media: MediaLeg | null = null
  mediaDialog: Srf.Dialog | null = null
  readonly leases: Lease[] = []
  /** Cancels a leg being placed (set by the dialer). */
  readonly control: { cancel?: () => void } = {}
  held = false
  /** Set while a transfer swaps legs, so the BYE to the old leg does not end the call. */
  private readonly retiring = new Set<Srf.Dialog>()
  private finished = false
  readonly log: Logger

  constructor(readonly record: CallRecord, logger: Logger, private readonly onDone: (c: ActiveCall) => void) {
    this.log = logger.child({ callId: record.id })
  }

  get id(): string { return this.record.id }
  get isFinished(): boolean { return this.finished }

  /** Watches a leg: its remote BYE ends the call (hangupBy caller/callee). */
  watch(dialog: Srf.Dialog, role: 'caller' | 'callee'): void {
    if (role === 'caller') this.caller = dialog
    else this.callee = dialog
    dialog.on('destroy', () => {
      if (this.retiring.delete(dialog)) return
      if (this.caller !== dialog && this.callee !== dialog) return
      void this.finish('completed', role === 'caller' ? 'caller-hangup' : 'callee-hangup', role === 'caller' ? 'caller' : 'callee', dialog)
    })
  }

  /** Drops a leg we are replacing (transfer) without ending the call. */
  async retire(dialog: Srf.Dialog | null): Promise<void> {
    if (!dialog) return
    this.retiring.add(dialog)
    if (this.caller === dialog) this.caller = null
    if (this.callee === dialog) this.callee = null
    if (this.mediaDialog === dialog) this.mediaDialog = null
    try { await dialog.destroy() } catch { /* already gone */ }
  }

  /**
   * Relays in-dialog re-INVITEs between two bridged legs (RFC 3261 §14 for
   * each side): what one offers, the other answers.
   */
  bridge(a: Srf.Dialog, b: Srf.Dialog): void {
    const relay = (from: Srf.Dialog, to: Srf.Dialog) => {
      from.removeAllListeners('modify')
      from.on('modify', (req: Srf.SrfRequest, res: Srf.SrfResponse) => {
        to.modify(req.body).then(
          (sdp) => res.send(200, { body: sdp }),
          (err: { status?: number }) => res.send(err?.status ?? 500),
        )
      })
    }
    relay(a, b)
    relay(b, a)
  }

  /** Answers re-INVITEs on the media leg's dialog through the media leg (hold from the far end, codec change). */
  serveMedia(dialog: Srf.Dialog, media: MediaLeg): void {
    this.media = media
    this.mediaDialog = dialog
    dialog.removeAllListeners('modify')
    dialog.on('modify', (req: Srf.SrfRequest, res: Srf.SrfResponse) => {
      media.setRemote(req.body).then(
        (sdp) => res.send(200, { body: sdp }),
        () => res.send(488),
      )
    })
    // DTMF by SIP INFO (RFC 2976): to the media leg, as if it came by RFC 4733.
    dialog.removeAllListeners('info')
    dialog.on('info', (req: Srf.SrfRequest, res: Srf.SrfResponse) => {
      const d = parseInfoDtmf(req.get('Content-Type'), req.body)
      res.send(200)
      if (d && this.media === media) media.injectDtmf?.(d.digit, d.durationMs)
    })
    media.attach(dialog)
  }

  /**
   * Hold (RFC 3264 §8.4): re-INVITE the held party with our offer as
   * sendonly and play music-on-hold; unhold with sendrecv.
   */
  async setHold(held: boolean): Promise<void> {
    const target = this.mediaDialog ?? this.caller
    if (!target) throw new Error('call has no established leg to hold')
    if (this.held === held) return
    const ours = this.media && this.mediaDialog === target ? this.media : null
    const offer = ours?.holdOffer ? await ours.holdOffer(held) : withDirection(target.local.sdp, held ? 'sendonly' : 'sendrecv')
    const remote = await target.modify(offer)
    if (this.media && this.mediaDialog === target) {
      await this.media.setRemote(remote)
      await this.media.setHold?.(held)
    }
    this.held = held
  }

  /** Ends the call from our side (API, agent, drain). */
  hangup(by: HangupBy, reason: string): Promise<void> {
    return this.finish('completed', reason, by, null)
  }

  async finish(status: 'completed' | 'failed' | 'busy' | 'no-answer' | 'canceled', reason: string, by: HangupBy | null, gone: Srf.Dialog | null): Promise<void> {
    if (this.finished) return
    this.finished = true
    this.control.cancel?.()
    const legs = [this.caller, this.callee].filter((d): d is Srf.Dialog => !!d && d !== gone)
    await Promise.allSettled(legs.map((d) => d.destroy()))
    if (this.media) await this.media.close(reason).catch((err: unknown) => this.log.warn({ err }, 'media close failed'))
    for (const l of this.leases) l.release()
    await this.record.end(status, reason, by)
    this.log.info({ status: this.record.currentStatus, reason, hangupBy: by }, 'call ended')
    this.onDone(this)
    // The end-of-call report waits for the summary and the final figures, not the caller.
    const media = this.media
    void (async () => {
      await media?.settled?.().catch((err: unknown) => this.log.warn({ err }, 'media did not settle'))
      await this.record.report()
    })()
  }
}

/** The live calls of this node by call id. */
export class ActiveCalls {
  private readonly calls = new Map<string, ActiveCall>()

  add(c: ActiveCall): void { this.calls.set(c.id, c) }
  remove(c: ActiveCall): void { this.calls.delete(c.id) }
  get(id: string): ActiveCall | undefined { return this.calls.get(id) }
  get size(): number { return this.calls.size }
  all(): ActiveCall[] { return [...this.calls.values()] }
}
