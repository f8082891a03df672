import type { LiveMedia } from './live-media.ts'

/** Why a running prompt, listen or echo was ended from outside: interrupt(), or the call ending. */
export type StopReason = 'stopped' | 'ended'

/**
 * The prompts, listens and echoes running on each call (the media primitives
 * the flow verbs await), so `interrupt()` can end them all at once and the
 * end of the call ends them with 'ended'. Each call's entry is made with its
 * first activity and dropped when the call's media ends (one end handler per
 * call, however many prompts a long IVR plays).
 */
export class CallActivities {
  private readonly byCall = new Map<string, Set<(why: StopReason) => void>>()

  /**
   * Registers `stop` for the call's end and for interrupt(); returns the
   * function that unregisters it (call it when the activity is over). Must be
   * called while the call is listed live (right after looking it up), so the
   * end handler is sure to run.
   */
  add(live: LiveMedia, stop: (why: StopReason) => void): () => void {
    const id = live.ctx.callId
    let set = this.byCall.get(id)
    if (!set) {
      const created = new Set<(why: StopReason) => void>()
      this.byCall.set(id, (set = created))
      live.onEnd(() => {
        if (this.byCall.get(id) === created) this.byCall.delete(id)
        for (const fn of [...created]) fn('ended')
        created.clear()
      })
    }
    const entry = set
    entry.add(stop)
    return () => { entry.delete(stop) }
  }

  /** Stops everything running on the call ('stopped'); returns how many there were. */
  interrupt(callId: string): number {
    const set = this.byCall.get(callId)
    if (!set) return 0
    const all = [...set]
    for (const fn of all) fn('stopped')
    return all.length
  }

  /** Calls with an entry (tests check nothing is left behind). */
  get size(): number {
    return this.byCall.size
  }
}
