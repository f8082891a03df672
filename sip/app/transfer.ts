import type Srf from 'drachtio-srf'
import type { ActiveCall } from './call-session.ts'
import type { DialAttempt, OutboundDialer } from './outbound-dialer.ts'
import type { MediaBinder } from './media-binding.ts'
import { withDirection } from './hold.ts'

/**
 * Moving the caller to someone else.
 *
 *  - blind: REFER to the caller's side (RFC 3515), Refer-To the target; the
 *    REFER succeeds when the NOTIFY sipfrag (RFC 3420) reports 2xx, and then
 *    we leave the call. When the caller's side refuses REFER (405/501/403...),
 *    the call is re-routed inside our B2BUA instead (bridge without whisper).
 *  - bridge: we call the target and, when it answers, connect it to the caller
 *    (third-party call control, RFC 3725 flow I: the target is offered the
 *    caller's SDP, then the caller is re-INVITEd with the target's answer).
 *    With a whisper, the target first hears the text from our media leg, then
 *    gets re-INVITEd to the caller's media.
 *  - attended: the caller is put on hold (music-on-hold) while the target is
 *    called and whispered to, then both are connected and the caller unheld.
 */

export type TransferMode = 'blind' | 'bridge' | 'attended'

export interface TransferRequest {
  mode: TransferMode
  /** E.164 number, extension username or SIP URI. */
  to: string
  /** Caller ID shown to the target (an account-owned number); default: the original caller. */
  from?: string
  /** Text the target hears before being connected (bridge/attended). */
  whisper?: string
  /** For blind REFER: the URI put in Refer-To; default derived from `to`. */
  referTo?: string
}

export interface TransferResult {
  mode: TransferMode | 'bridge-fallback'
  target: string
}

export class TransferError extends Error {
  constructor(readonly status: number, message: string) {
    super(message)
    this.name = 'TransferError'
  }
}

export interface TransferDeps {
  srf: Srf
  dialer: OutboundDialer
  media: () => MediaBinder | null
  localHost: () => string
}

/** Waits for the NOTIFY whose sipfrag carries a final status (RFC 3515 §2.4.5). */
function awaitReferOutcome(dialog: Srf.Dialog, timeoutMs: number): Promise<number> & { cancel(): void } {
  let stop = () => {}
  const p = new Promise<number>((resolve) => {
    const timer = setTimeout(() => { dialog.removeListener('notify', onNotify); resolve(408) }, timeoutMs)
    stop = () => { clearTimeout(timer); dialog.removeListener('notify', onNotify); resolve(0) }
    function onNotify(req: Srf.SrfRequest, res: Srf.SrfResponse): void {
      res.send(200)
      const m = /^SIP\/2\.0\s+(\d{3})/m.exec(req.body ?? '')
      if (!m) return
      const status = Number(m[1])
      if (status >= 200) {
        clearTimeout(timer)
        dialog.removeListener('notify', onNotify)
        resolve(status)
      }
    }
    dialog.on('notify', onNotify)
  })
  return Object.assign(p, { cancel: () => stop() })
}

export async function transferCall(call: ActiveCall, t: TransferRequest, deps: TransferDeps): Promise<TransferResult> {
  const caller = call.caller ?? (call.record.call.direction === 'outbound' ? call.callee : null)
  if (!caller || call.record.currentStatus !== 'in-progress') throw new TransferError(409, 'only an answered call can be transferred')
  if (t.mode === 'blind') {
    // Refer-To must be something the caller's side can reach: a SIP URI as given,
    // else where our own routing would send the target (the carrier route, the
    // extension's contact), else us.
    let referTo = t.referTo ?? (/^sips?:/i.test(t.to) ? t.to : null)
    if (!referTo) {
      const planned = await deps.dialer.plan(call.record.call.accountId, t.to, t.from ?? call.record.call.from).catch(() => [])
      referTo = planned[0]?.uri ?? `sip:${t.to}@${deps.localHost()}`
    }
    let status: number
    // Listen first: the NOTIFY can arrive right behind the 202.
    const outcome = awaitReferOutcome(caller, 30_000)
    // RFC 3515 §2.4.1: REFER carries a Contact (the NOTIFYs come back to it).
    try {
      const res = await caller.request({ method: 'REFER', headers: { 'Refer-To': `<${referTo}>`, 'Referred-By': `<sip:${call.record.call.to}@${deps.localHost()}>`, Contact: `<sip:${deps.localHost()}>` } } as unknown as Srf.SrfRequest)
      status = res.status
    } catch (err) {
      status = (err as { status?: number }).status ?? 500
    }
    if (status >= 200 && status < 300) {
      const final = await outcome
      if (final >= 200 && final < 300) {
        await call.hangup('system', 'transferred')
        return { mode: 'blind', target: referTo }
      }
      throw new TransferError(502, `transfer target answered ${final}`)
    }
    outcome.cancel()
    // The caller's side does not do REFER: re-route inside the B2BUA.
    await bridgeTransfer(call, caller, { ...t, mode: 'bridge' }, deps)
    return { mode: 'bridge-fallback', target: t.to }
  }
  await bridgeTransfer(call, caller, t, deps)
  return { mode: t.mode, target: t.to }
}

async function bridgeTransfer(call: ActiveCall, caller: Srf.Dialog, t: TransferRequest, deps: TransferDeps): Promise<void> {
  const accountId = call.record.call.accountId
  const fromNumber = t.from ?? call.record.call.from
  let attempts: DialAttempt[]
  try {
    attempts = await deps.dialer.plan(accountId, t.to, fromNumber)
  } catch (err) {
    throw new TransferError(404, (err as Error).message)
  }
  const binder = deps.media()
  const whisper = t.whisper && binder && call.media?.say ? t.whisper : null
  if (t.mode === 'attended' && call.media) await call.setHold(true).catch(() => {})
  // Offer: our own media when we whisper first, else the caller's media directly.
  const whisperLeg = whisper ? await binder!.offer({ callId: call.id, accountId, direction: 'outbound', agentId: null, from: fromNumber, to: t.to, metadata: { whisper } }) : null
  // The caller's last SDP may carry our hold (sendonly/recvonly): the bridged media is two-way.
  const callerMedia = withDirection(caller.remote.sdp, 'sendrecv')
  const offer = whisperLeg ? whisperLeg.localSdp : callerMedia
  const result = await deps.dialer.dial(deps.srf, attempts, offer, { ringTimeoutMs: 30_000 })
  if (!result.ok) {
    await whisperLeg?.close('transfer-failed')
    if (t.mode === 'attended') await call.setHold(false).catch(() => {})
    throw new TransferError(502, `transfer target did not answer (${JSON.stringify(result.outcome)})`)
  }
  const target = result.dialog
  if (result.lease) call.leases.push(result.lease)
  let targetSdp = target.remote.sdp
  if (whisperLeg && whisper) {
    await whisperLeg.setRemote(targetSdp)
    whisperLeg.attach(target)
    await whisperLeg.say!(whisper)
    // Re-anchor the target onto the caller's media (RFC 3725 §4.1 re-INVITE).
    targetSdp = await target.modify(callerMedia)
    await whisperLeg.close('whisper-done')
  }
  // The caller now talks to the target.
  await caller.modify(withDirection(targetSdp, 'sendrecv'))
  const oldCallee = call.callee
  if (call.media) {
    const m = call.media
    call.media = null
    call.mediaDialog = null
    await m.close('transferred')
  }
  call.held = false
  if (oldCallee && oldCallee !== caller) await call.retire(oldCallee)
  if (call.caller !== caller) {
    // Outbound call: the party we had called becomes the "caller" side of the bridge.
    call.callee = null
    call.watch(caller, 'caller')
  }
  call.watch(target, 'callee')
  call.bridge(caller, target)
  if (result.attempt.trunkId) await call.record.attach({ trunkId: result.attempt.trunkId })
}
