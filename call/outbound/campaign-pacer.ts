import type { Campaign, CampaignRepository, DialRequest } from '../../store/campaigns.ts'
import type { Outplan } from '../../store/outplans.ts'
import type { Campaigncall } from '../../store/campaigncalls.ts'
import type { DialReservations } from '../../store/campaigns.ts'

/**
 * One campaign's pacer on this node: the campaign's dial jobs that are ready
 * to dial wait here in turn (FIFO), and one loop reserves their attempts
 * (CampaignRepository.reserveDials: the row lock, the ceiling, the shared
 * `next_dial_at`) shortly before their slots — the slots starting within
 * HORIZON_MS plus three times what a reservation takes here (a slow
 * database gets its reservations made that much ahead), up to BATCH at once
 * — and hands each over at its slot. So a campaign at 20 calls/s takes one reservation
 * transaction per slot or fewer whatever the number of jobs waiting (no job
 * comes back to find its slot taken or the ceiling full), dials leave
 * evenly at 1/cps however many nodes share the campaign (their pacers take
 * turns on the same row), an attempt is reserved at most about the
 * horizon before it dials (it counts against max_concurrent_calls from then), a
 * pause on this node withdraws what was reserved (halt) and a pause
 * elsewhere is seen by the next reservation. At the ceiling it looks again
 * when an attempt settles here, or after FULL_POLL_MS.
 */

/** The pacer wakes this long before the slot it expects, plus how long a reservation takes (measured): the slot is reserved just in time. */
const LEAD_MS = 10
/** Slots are taken when they start within this plus three reservation times (≤ MAX_HORIZON_MS): with a slow database (PGlite's one connection under load) the next slots are reserved ahead and handed over on time, instead of late in clumps. */
const HORIZON_MS = 30
const MAX_HORIZON_MS = 1000
/** At the ceiling: look again after this, or at once when an attempt on this node settles. */
const FULL_POLL_MS = 200
/** The longest sleep before looking at the row again (another node's PATCH of the pace, its reservations). */
const MAX_SLEEP_MS = 1000

/** Reservations are made for up to this many waiting jobs at once (slots within the horizon, late ones caught up). */
const BATCH = 64

export type PacerAnswer =
  | { kind: 'reserved'; cc: Campaigncall; campaign: Campaign; outplan: Outplan }
  | { kind: 'missing'; reason: string }
  /** The contact was deleted. */
  | { kind: 'gone' }
  /** The campaign does not run (seen by the reservation, or a pause on this node), or the job's run was aborted. */
  | { kind: 'stopped' }
  /** Reserved, then halted (a pause on this node) or aborted before its slot: not to be dialled; the job withdraws it. */
  | { kind: 'withdraw'; cc: Campaigncall }

interface Waiter {
  req: DialRequest
  signal: AbortSignal
  resolve: (a: PacerAnswer) => void
}

export class CampaignPacer {
  private readonly waiters: Waiter[] = []
  private looping = false
  private wakeUp: (() => void) | null = null
  /** Moves on every halt(): a reservation made before it is not handed over. */
  private epoch = 0
  /** How long a reservation transaction takes here (ms, moving average). */
  private reserveMs = 10
  /** When the next slot is expected to start (ms, this node's clock), from the last reservation; null: unknown, ask. */
  private nextSlotAt: number | null = null

  constructor(private readonly campaigns: CampaignRepository, private readonly onError: (err: unknown) => void) {}

  get waiting(): number {
    return this.waiters.length
  }

  /** Waits for this request's turn and slot; the answer says whether it was reserved. */
  acquire(req: DialRequest, signal: AbortSignal): Promise<PacerAnswer> {
    return new Promise((resolve) => {
      if (signal.aborted) { resolve({ kind: 'stopped' }); return }
      const w: Waiter = { req, signal, resolve }
      this.waiters.push(w)
      // Given up (this node stops, the lease was lost): out of the line at once.
      signal.addEventListener('abort', () => { this.remove(w); resolve({ kind: 'stopped' }) }, { once: true })
      if (!this.looping) void this.loop()
    })
  }

  /** Look again now (an attempt settled here, the pace or hours changed). */
  wake(): void {
    this.wakeUp?.()
  }

  /** The campaign was paused or stopped on this node: nobody waiting dials, nor the reservation about to be handed over. */
  halt(): void {
    this.epoch++
    for (const w of this.waiters.splice(0)) w.resolve({ kind: 'stopped' })
    this.nextSlotAt = null
    this.wake()
  }

  private remove(w: Waiter): void {
    const i = this.waiters.indexOf(w)
    if (i >= 0) this.waiters.splice(i, 1)
  }

  private sleep(ms: number): Promise<void> {
    if (ms <= 0) return Promise.resolve()
    return new Promise((resolve) => {
      const done = () => { clearTimeout(t); this.wakeUp = null; resolve() }
      const t = setTimeout(done, ms)
      this.wakeUp = done
    })
  }

  private async loop(): Promise<void> {
    this.looping = true
    try {
      while (this.waiters.length > 0) {
        const w = this.waiters[0]!
        if (w.signal.aborted) { this.waiters.shift(); w.resolve({ kind: 'stopped' }); continue }
        if (this.nextSlotAt !== null) {
          const ms = this.nextSlotAt - LEAD_MS - this.reserveMs - Date.now()
          if (ms > 0) { await this.sleep(Math.min(ms, MAX_SLEEP_MS)); if (ms > MAX_SLEEP_MS) this.nextSlotAt = null; continue }
        }
        const batch = this.waiters.slice(0, BATCH).filter((x) => !x.signal.aborted)
        const epoch = this.epoch
        let r: DialReservations
        try {
          const t0 = Date.now()
          r = await this.campaigns.reserveDials(batch.map((x) => x.req), Math.min(MAX_HORIZON_MS, HORIZON_MS + 3 * this.reserveMs))
          this.reserveMs = 0.8 * this.reserveMs + 0.2 * (Date.now() - t0)
        } catch (err) {
          this.onError(err)
          await this.sleep(FULL_POLL_MS)
          continue
        }
        if (r.kind === 'stopped' || r.kind === 'missing') {
          this.nextSlotAt = null
          for (const x of this.waiters.splice(0)) x.resolve(r)
          continue
        }
        const byTarget = new Map(batch.map((x) => [x.req.targetId, x]))
        for (const id of r.gone) { const x = byTarget.get(id)!; this.remove(x); x.resolve({ kind: 'gone' }) }
        if (r.kind === 'full') { this.nextSlotAt = null; await this.sleep(FULL_POLL_MS); continue }
        if (r.kind === 'later') { this.nextSlotAt = Date.now() + r.inMs; continue }
        const { campaign, outplan } = r
        for (const { cc, inMs } of r.reserved) {
          const x = byTarget.get(cc.outdialTargetId)!
          this.remove(x)
          // Each dials at its slot, not before; halted meanwhile (paused here) or given up: the job withdraws it.
          const hand = () => x.resolve(this.epoch !== epoch || x.signal.aborted ? { kind: 'withdraw', cc } : { kind: 'reserved', cc, campaign, outplan })
          if (inMs > 1) setTimeout(hand, inMs)
          else hand()
        }
        // The slot after the last one taken (the row's next_dial_at as this node sees it).
        this.nextSlotAt = Date.now() + r.reserved.at(-1)!.inMs + r.gapMs
      }
    } finally {
      this.looping = false
    }
  }
}
