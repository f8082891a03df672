import { isFinal, type Call } from '../../store/calls.ts'
import type { Store } from '../../store/index.ts'

/**
 * Waits for a placed call's final record: `call.ended` / `call.failed` on
 * the store's bus, with a look at the record first and every few seconds
 * (an event published before the wait began, or one this node missed, still
 * ends it). Null when `signal` aborts first (the node is stopping: the job
 * runs again elsewhere and waits on the same call).
 *
 * A re-run after a lost node waits on a call that node placed; if that node
 * is gone its record never ends (no other node can end it), so the wait
 * would hold the job for ever. `owner` says how to tell: `nodeAlive` (a
 * relay ping, several nodes on one PostgreSQL), else a call never answered
 * still open NODE_LOST_GRACE_MS past its ring timeout. Such a call resolves
 * `{ call, lost: true }` with the record as it was left.
 */
const RECHECK_MS = 5_000
/** A call another node placed and never answered, still not final this long after its ring timeout: its node is gone. */
const NODE_LOST_GRACE_MS = 30_000

export interface CallOwnerCheck {
  /** This node: a call it placed itself is never taken for lost. */
  nodeId: string
  ringTimeoutSec: number
  nodeAlive?: ((nodeId: string) => Promise<boolean>) | null | undefined
}

export type CallEnd = Call & { lost?: true }

export interface CallOutcomeOptions {
  /**
   * What the wait starts from: `check` reads the record at once (a re-run, a call placed a
   * while ago); a final Call given here is the answer; null waits for the call's events
   * (a call just placed here: its end comes on the bus, the re-check is the safety net).
   */
  first?: 'check' | Call | null | undefined
}

export function callOutcome(store: Pick<Store, 'bus' | 'calls'>, callId: string, signal: AbortSignal, owner?: CallOwnerCheck, opts: CallOutcomeOptions = {}): Promise<CallEnd | null> {
  return new Promise((resolve) => {
    let done = false
    let probing = false
    const finish = (c: CallEnd | null) => {
      if (done) return
      done = true
      unsubscribe()
      clearInterval(timer)
      signal.removeEventListener('abort', onAbort)
      resolve(c)
    }
    const check = async () => {
      const c = await store.calls.getById(callId).catch(() => undefined)
      // A record gone (its account deleted) ends the wait: nothing will ever end it.
      if (c === null) return finish({ status: 'failed', endedReason: 'call-record-missing', id: callId } as CallEnd)
      if (c && isFinal(c.status)) return finish(c)
      if (!c || !owner || !c.nodeId || c.nodeId === owner.nodeId || probing) return
      probing = true
      try {
        if (await ownerGone(c, owner)) {
          const again = await store.calls.getById(callId).catch(() => null)
          finish(again && isFinal(again.status) ? again : { ...(again ?? c), lost: true })
        }
      } catch { /* asked again at the next check */ } finally { probing = false }
    }
    const onAbort = () => finish(null)
    const unsubscribe = store.bus.subscribe((e) => {
      if (e.callId === callId && (e.type === 'call.ended' || e.type === 'call.failed')) void check()
    })
    const timer = setInterval(() => void check(), RECHECK_MS)
    timer.unref()
    if (signal.aborted) return finish(null)
    signal.addEventListener('abort', onAbort)
    const first = opts.first === undefined ? 'check' : opts.first
    if (first === 'check') void check()
    else if (first) finish(first)
  })
}

async function ownerGone(call: Call, owner: CallOwnerCheck): Promise<boolean> {
  if (owner.nodeAlive) return !(await owner.nodeAlive(call.nodeId!))
  if (call.answeredAt) return false
  return Date.now() - Date.parse(call.createdAt) > owner.ringTimeoutSec * 1000 + NODE_LOST_GRACE_MS
}

/** Why a finished call did not reach anyone, or null when it was answered. */
export function failureOf(c: CallEnd): string | null {
  if (c.lost) return c.answeredAt ? null : `node-lost: the node that placed call ${c.id} stopped before it was answered`
  if (c.answeredAt) return null
  return c.endedReason && c.endedReason !== c.status ? `${c.status}: ${c.endedReason}` : c.status
}
