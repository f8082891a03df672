/**
 * Per-source fairness for new INVITEs at the applications. The rate limit bounds how many
 * INVITEs a source may send; this bounds how many of them may wait on the applications at
 * once. An application answers INVITEs in about the order it gets them, so a source that may
 * have K INVITEs in there delays anyone else's INVITE by at most K answers, however fast it
 * sends: a flood that passes the rate limit (or a flood of challenged, failing INVITEs) cannot
 * push other sources' calls to the back of a long queue.
 *
 * An INVITE counts as "at the application" from its delivery until the application's first
 * response beyond 100 (it has been looked at; ringing can last), its transaction ends, or
 * `holdMs` passes. Beyond K a source's INVITEs wait in its own FIFO (bounded: beyond that they
 * are refused, and the caller counts them); they are released as that source's slots free.
 */
export interface InviteGateOptions {
  /** INVITEs one source may have at the applications at once. */
  perSource: number
  /** INVITEs one source may have waiting beyond that. */
  queuePerSource: number
  /** After this long an INVITE no longer holds its source's slot, answered or not. */
  holdMs: number
}

export const DEFAULT_INVITE_GATE: InviteGateOptions = { perSource: 16, queuePerSource: 64, holdMs: 1000 }

interface Entry { id: string; source: string; deliver: () => void; timer?: NodeJS.Timeout; state: 'queued' | 'held' | 'done' }

export class InviteGate {
  private readonly held = new Map<string, number>()
  private readonly queues = new Map<string, Entry[]>()
  private readonly entries = new Map<string, Entry>()

  constructor(private readonly opts: InviteGateOptions = DEFAULT_INVITE_GATE) {}

  /**
   * Delivers now, or queues behind the source's own INVITEs. False when the source's queue is
   * full: the caller drops the INVITE.
   */
  submit(id: string, source: string, deliver: () => void): boolean {
    const e: Entry = { id, source, deliver, state: 'queued' }
    if ((this.held.get(source) ?? 0) < this.opts.perSource) {
      this.entries.set(id, e)
      this.hold(id, e)
      return true
    }
    let q = this.queues.get(source)
    if (!q) { q = []; this.queues.set(source, q) }
    if (q.length >= this.opts.queuePerSource) return false
    q.push(e)
    this.entries.set(id, e)
    return true
  }

  /** True when the INVITE is still waiting (the application has not seen it). */
  isQueued(id: string): boolean { return this.entries.get(id)?.state === 'queued' }

  /** The application answered beyond 100, or the transaction ended: the slot (or queue place) frees. */
  release(id: string): void {
    const e = this.entries.get(id)
    if (!e) return
    this.entries.delete(id)
    if (e.state === 'queued') {
      e.state = 'done'
      const q = this.queues.get(e.source)
      const i = q ? q.indexOf(e) : -1
      if (q && i >= 0) { q.splice(i, 1); if (!q.length) this.queues.delete(e.source) }
      return
    }
    if (e.state !== 'held') return
    e.state = 'done'
    if (e.timer) clearTimeout(e.timer)
    const n = (this.held.get(e.source) ?? 1) - 1
    if (n <= 0) this.held.delete(e.source)
    else this.held.set(e.source, n)
    this.next(e.source)
  }

  get waiting(): number { let n = 0; for (const q of this.queues.values()) n += q.length; return n }

  private hold(id: string, e: Entry): void {
    e.state = 'held'
    this.held.set(e.source, (this.held.get(e.source) ?? 0) + 1)
    e.timer = setTimeout(() => this.release(id), this.opts.holdMs)
    e.timer.unref()
    e.deliver()
  }

  private next(source: string): void {
    const q = this.queues.get(source)
    if (!q || (this.held.get(source) ?? 0) >= this.opts.perSource) return
    const e = q.shift()!
    if (!q.length) this.queues.delete(source)
    this.hold(e.id, e)
  }

  close(): void {
    for (const e of this.entries.values()) if (e.timer) clearTimeout(e.timer)
    this.entries.clear()
    this.queues.clear()
    this.held.clear()
  }
}
