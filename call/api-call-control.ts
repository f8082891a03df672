import type { Call } from '../store/calls.ts'
import { CallControlError, type CallControl } from './call-control.ts'
import type { SipApplication } from '../sip/app/index.ts'
import type { CallPrograms } from './flow/call-programs.ts'
import type { DoNotCallRepository } from '../store/do-not-call.ts'
import { refuseListed } from './outbound/do-not-call.ts'

/**
 * The engine's CallControl (call-control.ts): originate, hangup, hold/unhold
 * and transfer come from sip/app's signalling (CallSignalling); the media
 * actions (say, play, dtmf, record, mute, conferences, bridges, streams) come
 * from the media plane, passed as `media`, in process or in workers; verbs
 * on a live call from this node's flow runs (`programs`, bound late: they
 * are built on this CallControl). With `doNotCall`, every originate to a
 * number on the account's do-not-call list is refused first
 * (outbound/do-not-call.ts): whoever dials, nothing reaches a listed number.
 */
export function createApiCallControl(app: SipApplication, media: CallControl = {}, programs?: () => CallPrograms | null,
  doNotCall?: Pick<DoNotCallRepository, 'listed'>): CallControl {
  const local = (call: Call): void => {
    if (!app.calls.isLocal(call.id)) throw new CallControlError('not_found', `call ${call.id} is not live on this node`)
  }
  const flows = (): CallPrograms => {
    const p = programs?.()
    if (!p) throw new CallControlError('unavailable', 'flows are not available on this node')
    return p
  }
  return {
    ...media,
    ...(programs ? {
      runActions: async (call, opts) => { local(call); return flows().runOnCall(call, opts.actions, opts.mode) },
      stopFlow: async (call, opts) => ({ stopped: await flows().stop(opts.activeflowId) }),
    } satisfies CallControl : {}),
    originate: async (req) => {
      if (doNotCall) await refuseListed(doNotCall, req.accountId, req.to)
      return app.calls.originate({
        accountId: req.accountId, from: req.from, to: req.to, agentId: req.agentId ?? null, trunkId: req.trunkId ?? null,
        ringTimeoutSec: req.timeoutSec, ...(req.metadata ? { metadata: req.metadata } : {}), ...(req.record ? { record: true } : {}),
        ...(req.program ? { program: req.program } : {}), ...(req.parentCallId ? { parentCallId: req.parentCallId } : {}),
        ...(req.statusCallback ? { statusCallback: req.statusCallback } : {}), ...(req.amd ? { amd: req.amd } : {}),
      })
    },
    hangup: async (call, opts) => { local(call); await app.calls.hangup(call.id, opts.by ?? 'api', opts.endedReason) },
    hold: async (call) => { local(call); await app.calls.hold(call.id); return {} },
    unhold: async (call) => { local(call); await app.calls.unhold(call.id); return {} },
    transfer: async (call, opts) => {
      local(call)
      const r = await app.calls.transfer(call.id, { to: opts.to, mode: opts.mode ?? 'blind' })
      return { mode: r.mode, target: r.target }
    },
  }
}
