import type { Call } from '../../store/calls.ts'
import { CallControlError as ApiError, type CallControl as ApiCallControl, type CallControlErrorCode } from '../../control-api/call-control.ts'
import { CallControlError } from './call-control.ts'
import type { SipApplication } from './index.ts'

/**
 * The control API's CallControl seam (control-api/call-control.ts) served by
 * sip/app: originate, hangup, hold/unhold and transfer. Media actions (say,
 * play, dtmf, record, mute, streams) belong to the media/agent layer: pass its
 * implementation as `media` and those methods are delegated to it.
 */
export function createApiCallControl(app: SipApplication, media: ApiCallControl = {}): ApiCallControl {
  const wrap = async <T>(fn: () => Promise<T>): Promise<T> => {
    try {
      return await fn()
    } catch (err) {
      if (err instanceof CallControlError) throw new ApiError(codeFor(err.status), err.message, { code: err.code })
      throw err
    }
  }
  const local = (call: Call): void => {
    if (!app.calls.isLocal(call.id)) throw new ApiError('not_found', `call ${call.id} is not live on this node`)
  }
  return {
    ...media,
    originate: (req) => wrap(() => app.calls.originate({
      accountId: req.accountId, from: req.from, to: req.to, agentId: req.agentId ?? null, trunkId: req.trunkId ?? null,
      ringTimeoutSec: req.timeoutSec, ...(req.metadata ? { metadata: req.metadata } : {}), ...(req.record ? { record: true } : {}),
    })),
    hangup: (call) => wrap(async () => { local(call); await app.calls.hangup(call.id, 'api') }),
    hold: (call) => wrap(async () => { local(call); await app.calls.hold(call.id); return {} }),
    unhold: (call) => wrap(async () => { local(call); await app.calls.unhold(call.id); return {} }),
    transfer: (call, opts) => wrap(async () => {
      local(call)
      const r = await app.calls.transfer(call.id, { to: opts.to, mode: opts.mode ?? 'blind' })
      return { mode: r.mode, target: r.target }
    }),
  }
}

function codeFor(status: number): CallControlErrorCode {
  if (status === 404) return 'not_found'
  if (status === 409) return 'invalid_state'
  if (status === 501) return 'unsupported'
  if (status === 503) return 'unavailable'
  if (status === 429) return 'busy'
  return 'rejected'
}
