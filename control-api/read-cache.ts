import type { EventBus } from '../store/outbox.ts'

/**
 * A small read-through cache for the hottest read routes (GET /v1/calls/:id
 * of finished calls, GET /v1/calls pages). Entries live `ttlMs` at most and
 * are dropped as soon as an event for the same account (or call) reaches the
 * bus — on PostgreSQL that includes other nodes' events, through NOTIFY. Call
 * columns that change without an event (timings, quality) may be up to
 * `ttlMs` stale. ttlMs = 0 disables it.
 */
export class ReadCache {
  private readonly entries = new Map<string, { value: unknown; until: number; accountId: string; callId: string | null }>()
  private readonly byAccount = new Map<string, Set<string>>()
  private readonly unsubscribe: () => void
  hits = 0
  misses = 0

  constructor(bus: EventBus, readonly ttlMs: number, private readonly maxEntries = 5000) {
    this.unsubscribe = bus.subscribe((evt) => this.invalidate(evt.accountId, evt.callId))
  }

  async get<T>(key: string, accountId: string, callId: string | null, load: () => Promise<T>, cacheable: (v: T) => boolean = () => true): Promise<T> {
    if (this.ttlMs <= 0) return load()
    const k = `${accountId}|${key}`
    const hit = this.entries.get(k)
    const now = Date.now()
    if (hit && hit.until > now) {
      this.hits++
      return hit.value as T
    }
    this.misses++
    const value = await load()
    if (!cacheable(value)) return value
    if (this.entries.size >= this.maxEntries) this.clear()
    this.entries.set(k, { value, until: now + this.ttlMs, accountId, callId })
    let set = this.byAccount.get(accountId)
    if (!set) this.byAccount.set(accountId, (set = new Set()))
    set.add(k)
    return value
  }

  /** Drops the account's list pages and the call's detail. */
  invalidate(accountId: string, callId: string | null): void {
    const keys = this.byAccount.get(accountId)
    if (!keys) return
    for (const k of keys) {
      const e = this.entries.get(k)
      if (!e || e.callId === null || e.callId === callId) {
        this.entries.delete(k)
        keys.delete(k)
      }
    }
  }

  clear(): void {
    this.entries.clear()
    this.byAccount.clear()
  }

  close(): void {
    this.unsubscribe()
    this.clear()
  }
}
