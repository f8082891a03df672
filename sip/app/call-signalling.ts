import type Srf from 'drachtio-srf'
import type { Logger } from 'pino'
import type { Store } from '../../store/index.ts'
import type { Call } from '../../store/calls.ts'
import { CallRecord } from './call-records.ts'
import { ActiveCall, type ActiveCalls } from './call-session.ts'
import { DialError, type OutboundDialer } from './outbound-dialer.ts'
import type { AmdOverride, CallProgramHost, MediaBinder, MediaLeg } from './media-binding.ts'
import type { CallProgram } from '../../store/calls.ts'
import type { StatusCallback } from '../../store/status-callbacks.ts'
import { failureStatus } from './carrier-route-plan.ts'
import { CallControlError, errorCodeForStatus } from './call-control-error.ts'
import { transferCall, TransferError, type TransferRequest, type TransferResult } from './transfer.ts'

/**
 * The signalling half of acting on a call (originate, hang up, hold,
 * transfer): what call/ composes with its media actions into the one
 * CallControl, and what the agent runtime uses to hang up or transfer.
 * Errors are CallControlError (call-control-error.ts).
 */
export interface CallSignalling {
  /** Places an outbound call; resolves once the record exists (status queued), dialing goes on. */
  originate(input: OriginateInput): Promise<Call>
  /** `endedReason` overrides the default `<by>-hangup` (e.g. the agent's `machine-detected`). */
  hangup(callId: string, by?: 'api' | 'agent' | 'system', endedReason?: string): Promise<void>
  hold(callId: string): Promise<void>
  unhold(callId: string): Promise<void>
  transfer(callId: string, t: TransferRequest): Promise<TransferResult>
  /** True when this node holds the call's live legs. */
  isLocal(callId: string): boolean
}

export interface OriginateInput {
  accountId: string
  /** E.164 number, extension username, or SIP URI. */
  to: string
  /** Caller ID: a number (or extension caller ID) the account owns. */
  from: string
  agentId?: string | null
  /** Place the call over this trunk only, instead of the account's carrier routes. */
  trunkId?: string | null
  ringTimeoutSec?: number
  metadata?: Record<string, unknown>
  /** Record the call from answer (a recording resource, `call.recording.ready` when the call ends). */
  record?: boolean
  /** What the call runs once answered (a flow, verbs, a webhook app), kept on its record. */
  program?: CallProgram
  /**
   * The live call this one is placed for (a flow's `connect`): its caller ID
   * may be that call's own `from` or `to`, not only a number of the account,
   * as a B2BUA forwards the caller's number.
   */
  parentCallId?: string
  /** Telefon `status_callback`: the call's status changes are sent there (store/status-callbacks.ts). */
  statusCallback?: StatusCallback
  /** The agent's answering-machine detection for this call (a campaign's `amd`), over the agent's own. */
  amd?: AmdOverride
}

export interface SipCallSignallingOptions {
  srf: Srf
  store: Store
  dialer: OutboundDialer
  active: ActiveCalls
  media: () => MediaBinder | null
  /** Starts an answered call's program (call/flow). */
  programs?: () => CallProgramHost | null
  logger: Logger
  nodeId: string
  localHost: () => string
  accountCallLimit?: number | null
  /** Registers an answered outbound dialog with SrfConnection (active-calls gauge, drain). */
  track?: (sipCallId: string, dialog: Srf.Dialog) => void
}

export class SipCallSignalling implements CallSignalling {
  private readonly log: Logger
  constructor(private readonly opts: SipCallSignallingOptions) {
    this.log = opts.logger
  }

  isLocal(callId: string): boolean {
    return !!this.opts.active.get(callId)
  }

  private live(callId: string): ActiveCall {
    const c = this.opts.active.get(callId)
    if (!c || c.isFinished) throw new CallControlError('not_found', `call ${callId} is not live on this node`, { code: 'call_not_active' })
    return c
  }

  async originate(input: OriginateInput): Promise<Call> {
    const o = this.opts
    if (!(await this.callerIdAllowed(input))) {
      throw new CallControlError('rejected', `from ${input.from} is not a number of this account`, { code: 'caller_id_not_owned' })
    }
    let attempts
    try {
      attempts = await o.dialer.plan(input.accountId, input.to, input.from, input.trunkId ?? undefined)
    } catch (err) {
      if (err instanceof DialError) throw new CallControlError(err.code === 'not-registered' ? 'invalid_state' : 'rejected', err.message, { code: err.code.replace(/-/g, '_') })
      throw err
    }
    const binder = o.media()
    if (!binder) throw new CallControlError('unavailable', 'no media engine is installed', { code: 'no_media' })
    const record = await CallRecord.create(o.store.calls, {
      accountId: input.accountId, direction: 'outbound', from: input.from, to: input.to, status: 'queued',
      agentId: input.agentId ?? null, nodeId: o.nodeId, ...(input.metadata ? { metadata: input.metadata } : {}),
      ...(input.program ? { program: input.program } : {}),
      ...(input.statusCallback ? { statusCallback: input.statusCallback } : {}),
    }, this.log)
    const call = new ActiveCall(record, this.log, (c) => o.active.remove(c))
    o.active.add(call)
    void this.place(call, attempts, binder, input).catch(async (err: unknown) => {
      this.log.error({ err, callId: record.id }, 'originate failed')
      await call.finish('failed', 'internal-error', 'system', null)
    })
    return record.call
  }

  private async place(call: ActiveCall, attempts: Awaited<ReturnType<OutboundDialer['plan']>>, binder: MediaBinder, input: OriginateInput): Promise<void> {
    const o = this.opts
    let leg: MediaLeg
    try {
      leg = await binder.offer({ callId: call.id, accountId: input.accountId, direction: 'outbound', agentId: input.agentId ?? null, from: input.from, to: input.to, ...(input.metadata ? { metadata: input.metadata } : {}), ...(input.record ? { record: true } : {}), ...(input.amd ? { amd: input.amd } : {}) })
    } catch (err) {
      this.log.warn({ err, callId: call.id }, 'media offer failed')
      await call.finish('failed', 'media-unavailable', 'system', null)
      return
    }
    call.media = leg
    if (call.isFinished) {
      // Hung up while its media was set up (a group dial canceling its legs): nothing to dial, and
      // finish() ran before there was a media leg to close.
      await leg.close('canceled').catch((err: unknown) => this.log.warn({ err, callId: call.id }, 'media close failed'))
      return
    }
    const result = await o.dialer.dial(o.srf, attempts, leg.localSdp, {
      ringTimeoutMs: (input.ringTimeoutSec ?? 60) * 1000,
      onRinging: () => { void call.record.ringing() },
      onAttempt: (a) => { if (a.trunkId) void call.record.attach({ trunkId: a.trunkId }) },
      control: call.control,
      accountKey: { key: `account:${input.accountId}`, limit: o.accountCallLimit },
    })
    if (!result.ok) {
      const fin = failureStatus(result.outcome)
      await call.finish(fin.status, fin.endedReason, result.outcome.kind === 'canceled' ? 'api' : null, null)
      return
    }
    if (call.isFinished) {
      // Hung up by the API while the far end answered.
      result.dialog.destroy()
      result.lease?.release()
      return
    }
    if (result.lease) call.leases.push(result.lease)
    const dialog = result.dialog
    try {
      await leg.setRemote(dialog.remote.sdp)
    } catch (err) {
      this.log.warn({ err, callId: call.id }, 'answer SDP not usable')
      await call.record.attach({ sipCallId: dialog.sip.callId })
      call.watch(dialog, 'callee')
      await call.finish('failed', 'media-negotiation-failed', 'system', null)
      return
    }
    o.track?.(dialog.sip.callId, dialog)
    call.watch(dialog, 'callee')
    call.serveMedia(dialog, leg)
    // The SIP Call-ID is stored with the answer: one statement on the way from the 200 OK to `call.answered`.
    await call.record.answered(dialog.sip.callId)
    if (input.program && !call.isFinished) {
      const programs = o.programs?.()
      if (programs) programs.start(call.id)
      else await call.hangup('system', 'app-error')
    }
  }

  /** A number the account owns, or (placing a call for a live one) that call's own parties. */
  private async callerIdAllowed(input: OriginateInput): Promise<boolean> {
    // A live parent here answers from memory: a leg presenting its caller's number (a queue's agent leg, a
    // connect) costs no query on the way to its INVITE.
    const live = input.parentCallId ? this.opts.active.get(input.parentCallId)?.record.call : undefined
    if (live && partyOf(live, input)) return true
    if (await this.opts.dialer.ownsCallerId(input.accountId, input.from)) return true
    if (!input.parentCallId || live) return false
    const parent = await this.opts.store.calls.getById(input.parentCallId)
    return !!parent && partyOf(parent, input)
  }

  async hangup(callId: string, by: 'api' | 'agent' | 'system' = 'api', endedReason?: string): Promise<void> {
    const call = this.live(callId)
    await call.hangup(by, endedReason ?? (by === 'api' ? 'api-hangup' : by === 'agent' ? 'agent-hangup' : 'system-hangup'))
  }

  async hold(callId: string): Promise<void> {
    await this.holdState(callId, true)
  }

  async unhold(callId: string): Promise<void> {
    await this.holdState(callId, false)
  }

  private async holdState(callId: string, held: boolean): Promise<void> {
    const call = this.live(callId)
    if (call.record.currentStatus !== 'in-progress') throw new CallControlError('invalid_state', 'only an answered call can be held', { code: 'call_not_answered' })
    try {
      await call.setHold(held)
    } catch (err) {
      throw new CallControlError('rejected', `re-INVITE failed: ${(err as { status?: number }).status ?? (err as Error).message}`, { code: 'reinvite_failed' })
    }
  }

  async transfer(callId: string, t: TransferRequest): Promise<TransferResult> {
    const call = this.live(callId)
    try {
      return await transferCall(call, t, { srf: this.opts.srf, dialer: this.opts.dialer, media: this.opts.media, localHost: this.opts.localHost })
    } catch (err) {
      if (err instanceof TransferError) throw new CallControlError(errorCodeForStatus(err.status), err.message, { code: 'transfer_failed' })
      throw err
    }
  }
}

/** `from` is a party of the parent call, of the same account. */
function partyOf(parent: Call, input: OriginateInput): boolean {
  return parent.accountId === input.accountId && (parent.from === input.from || parent.to === input.from)
}
