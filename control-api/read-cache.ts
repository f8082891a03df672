import type { EventBus } from '../store/outbox.ts'

/** Share of the TTL after which a hit starts a background reload (late enough to keep database reads rare). */
const REFRESH_AT = 0.75

interface Entry {
  value: unknown
  loadedAt: number
  until: number
  accountId: string
  callId: string | null
}

interface Load {
  promise: Promise<unknown>
  accountId: string
  callId: string | null
  /** Set by invalidate(): the load may have read the state from before the change, so its result is not kept. */
  stale: boolean
}

/**
 * A small read-through cache for the hottest read routes (GET /v1/calls/:id
 * of finished calls, GET /v1/calls pages). Entries live `ttlMs` at most and
 * are dropped as soon as an event for the same account (or call) reaches the
 * bus — on PostgreSQL that includes other nodes' events, through NOTIFY. Call
 * columns that change without an event (timings, quality) may be up to
 * `ttlMs` (plus the read's own duration) stale. ttlMs = 0 disables it.
 *
 * Under load it must not make requests wait for the database: concurrent
 * misses on one key share a single load (no stampede when an entry expires
 * with hundreds of requests in flight), and a hit on an entry past three quarters
 * of its life starts one background reload, so a hot key is replaced before it
 * expires and readers keep getting answers within the TTL bound. Routes cache
 * the serialized JSON, not objects, so a hit costs no serialization.
 */
export class ReadCache {
  private readonly entries = new Map<string, Entry>()
  private readonly byAccount = new Map<string, Set<string>>()
  private readonly inflight = new Map<string, Load>()
  private readonly unsubscribe: () => void
  hits = 0
  misses = 0
  refreshes = 0

  constructor(bus: EventBus, readonly ttlMs: number, private readonly maxEntries = 5000) {
    this.unsubscribe = bus.subscribe((evt) => this.invalidate(evt.accountId, evt.callId))
  }

  /**
   * `load` gets the value it replaces when it runs as a background refresh, so
   * it can keep work derived from it (EncodedBody keeps its compressed
   * encodings when the new bytes are the same); on a miss it gets nothing.
   */
  async get<T>(key: string, accountId: string, callId: string | null, load: (previous?: T) => Promise<T>, cacheable: (v: T) => boolean = () => true): Promise<T> {
    if (this.ttlMs <= 0) return load()
    const k = `${accountId}|${key}`
    const hit = this.entries.get(k)
    const now = Date.now()
    if (hit && hit.until > now) {
      this.hits++
      if (now - hit.loadedAt > this.ttlMs * REFRESH_AT && !this.inflight.has(k)) {
        this.refreshes++
        // Errors of a background reload only drop the entry; the next miss reports them.
        const previous = hit.value as T
        this.load(k, accountId, callId, () => load(previous), cacheable).catch(() => this.drop(k))
      }
      return hit.value as T
    }
    this.misses++
    const pending = this.inflight.get(k)
    if (pending) return pending.promise as Promise<T>
    return this.load(k, accountId, callId, () => load(), cacheable)
  }

  private load<T>(k: string, accountId: string, callId: string | null, load: () => Promise<T>, cacheable: (v: T) => boolean): Promise<T> {
    const record: Load = { promise: Promise.resolve(), accountId, callId, stale: false }
    const p = load().then((value) => {
      if (!cacheable(value)) this.drop(k)
      else if (!record.stale) this.store(k, accountId, callId, value, Date.now())
      return value
    }).finally(() => {
      if (this.inflight.get(k) === record) this.inflight.delete(k)
    })
    record.promise = p
    this.inflight.set(k, record)
    return p
  }

  private store(k: string, accountId: string, callId: string | null, value: unknown, loadedAt: number): void {
    if (this.entries.size >= this.maxEntries && !this.entries.has(k)) this.clear()
    // The age counts from when the read completed. Counting from its start would,
    // on an overloaded event loop (reads slower than the TTL), store entries
    // already expired and turn every request into another read: a feedback loop.
    this.entries.set(k, { value, loadedAt, until: loadedAt + this.ttlMs, accountId, callId })
    let set = this.byAccount.get(accountId)
    if (!set) this.byAccount.set(accountId, (set = new Set()))
    set.add(k)
  }

  private drop(k: string): void {
    const e = this.entries.get(k)
    if (!e) return
    this.entries.delete(k)
    this.byAccount.get(e.accountId)?.delete(k)
  }

  /** Drops the account's list pages and the call's detail. */
  invalidate(accountId: string, callId: string | null): void {
    // Loads already running may have read the state from before this change:
    // they neither store their result nor serve requests that arrive from now on.
    for (const [k, l] of this.inflight) {
      if (l.accountId === accountId && (l.callId === null || l.callId === callId)) {
        l.stale = true
        this.inflight.delete(k)
      }
    }
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
    for (const l of this.inflight.values()) l.stale = true
    this.inflight.clear()
    this.entries.clear()
    this.byAccount.clear()
  }

  close(): void {
    this.unsubscribe()
    this.clear()
  }
}
