/**
 * Young-generation collection in the clock's idle time.
 *
 * V8 runs a scavenge when an allocation finds the young generation full, and
 * on the media path most allocation happens in the egress pass (dgram's
 * per-send objects): measured with tcpdump at 100 G.711 sessions, a
 * scavenge landing there held the rest of that tick's packets back by 1–3 ms,
 * every ~25 ticks, which alone put the p99 pacing deviation over 2 ms.
 *
 * V8 also schedules a scavenge as a foreground task once the young generation
 * is ~80 % full (--scavenge-task-trigger), which runs between callbacks,
 * often in the clock's final poll right before a target (seen with
 * --trace-gc: most scavenges were "task", some "allocation failure").
 *
 * So after each tick the scheduler asks IdleGc whether the young generation
 * would pass `triggerFill` (70 %, below V8's task trigger) within a few ticks
 * at the allocation rate measured tick to tick. If so, and the tick left
 * enough slack before the next target, it collects now with
 * gc({ type: 'minor' }): the same scavenge, at a moment no packet is due.
 *
 * The collector function comes from --expose-gc; without the flag it is
 * enabled at run time (v8.setFlagsFromString) and taken from a fresh context,
 * the documented way to reach it in an already started process.
 */
import { getHeapSpaceStatistics, setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'

export type GcFunction = (opts?: { type?: 'minor' | 'major'; execution?: 'sync' | 'async' }) => void

let cachedGc: GcFunction | null | undefined

/** V8's collector (no argument: a full GC), or null when it cannot be reached; the benches use it before memory readings. */
export function v8Collector(): GcFunction | null {
  if (cachedGc !== undefined) return cachedGc
  const exposed = (globalThis as { gc?: GcFunction }).gc
  if (typeof exposed === 'function') return (cachedGc = exposed)
  try {
    setFlagsFromString('--expose-gc')
    const fn = runInNewContext('gc') as unknown
    cachedGc = typeof fn === 'function' ? (fn as GcFunction) : null
  } catch {
    cachedGc = null
  }
  return cachedGc
}

function youngGeneration(): { used: number; available: number } | null {
  for (const s of getHeapSpaceStatistics()) {
    if (s.space_name === 'new_space') return { used: s.space_used_size, available: s.space_available_size }
  }
  return null
}

export interface IdleGcStats {
  /** Scavenges run between ticks. */
  collections: number
  /** Mean duration of one (ms). */
  meanMs: number
  /** Ticks where one was due but the tick left too little slack (the engine is behind). */
  skippedNoSlack: number
}

export class IdleGc {
  private readonly gc: GcFunction | null
  /** Bytes allocated per tick, smoothed (EWMA over ~8 ticks). */
  private perTick = 0
  private lastUsed = -1
  private collections = 0
  private totalMs = 0
  private skippedNoSlack = 0

  /**
   * @param headroomTicks collect when less than this many ticks of allocation fit
   * @param minSlackMs only collect when the next target is at least this far away
   */
  constructor(private readonly headroomTicks = 3, private readonly minSlackMs = 5, private readonly triggerFill = 0.7) {
    this.gc = v8Collector()
  }

  get available(): boolean { return this.gc !== null }

  /** Called by the clock after a tick's work, with the time left before the next target. */
  afterTick(slackMs: number): void {
    if (!this.gc) return
    const yg = youngGeneration()
    if (!yg) return
    // A drop in use means a scavenge ran (ours or V8's): no rate sample this tick.
    if (this.lastUsed >= 0 && yg.used >= this.lastUsed) this.perTick += (yg.used - this.lastUsed - this.perTick) / 8
    this.lastUsed = yg.used
    const capacity = yg.used + yg.available
    if (this.perTick <= 0 || yg.used + this.perTick * this.headroomTicks < capacity * this.triggerFill) return
    if (slackMs < this.minSlackMs) { this.skippedNoSlack++; return }
    const t0 = performance.now()
    this.gc({ type: 'minor' })
    this.totalMs += performance.now() - t0
    this.collections++
    this.lastUsed = youngGeneration()?.used ?? -1
  }

  stats(): IdleGcStats {
    return { collections: this.collections, meanMs: this.collections ? this.totalMs / this.collections : 0, skippedNoSlack: this.skippedNoSlack }
  }
}
