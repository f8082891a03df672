import { isFinal, type Call } from '../../store/calls.ts'
import type { Store } from '../../store/index.ts'

/**
 * Waits for a placed call's final record: `call.ended` / `call.failed` on
 * the store's bus, with a look at the record first and every few seconds
 * (an event published before the wait began, or one this node missed, still
 * ends it). Null when `signal` aborts first (the node is stopping: the job
 * runs again elsewhere and waits on the same call).
 */
const RECHECK_MS = 5_000

export function callOutcome(store: Pick<Store, 'bus' | 'calls'>, callId: string, signal: AbortSignal): Promise<Call | null> {
  return new Promise((resolve) => {
    let done = false
    const finish = (c: Call | null) => {
      if (done) return
      done = true
      unsubscribe()
      clearInterval(timer)
      signal.removeEventListener('abort', onAbort)
      resolve(c)
    }
    const check = async () => {
      const c = await store.calls.getById(callId).catch(() => null)
      if (c && isFinal(c.status)) finish(c)
    }
    const onAbort = () => finish(null)
    const unsubscribe = store.bus.subscribe((e) => {
      if (e.callId === callId && (e.type === 'call.ended' || e.type === 'call.failed')) void check()
    })
    const timer = setInterval(() => void check(), RECHECK_MS)
    timer.unref()
    if (signal.aborted) return finish(null)
    signal.addEventListener('abort', onAbort)
    void check()
  })
}

/** Why a finished call did not reach anyone, or null when it was answered. */
export function failureOf(c: Call): string | null {
  if (c.answeredAt) return null
  return c.endedReason && c.endedReason !== c.status ? `${c.status}: ${c.endedReason}` : c.status
}
