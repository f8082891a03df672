/**
 * Concurrent call limits per key (a trunk, an account). Past the limit a new
 * call is refused with 503 and Retry-After (RFC 3261 §21.5.4) by the caller.
 * Counts live on this node: with several nodes, give each its share.
 */
export class ConcurrencyLimiter {
  private readonly counts = new Map<string, number>()

  /** Takes one slot for every key whose limit allows it, or none at all; null limit = unlimited. */
  tryAcquire(slots: Array<{ key: string; limit: number | null | undefined }>): Lease | null {
    for (const s of slots) {
      if (s.limit === null || s.limit === undefined) continue
      if ((this.counts.get(s.key) ?? 0) >= s.limit) return null
    }
    const keys = slots.map((s) => s.key)
    for (const k of keys) this.counts.set(k, (this.counts.get(k) ?? 0) + 1)
    let released = false
    return {
      release: () => {
        if (released) return
        released = true
        for (const k of keys) {
          const n = (this.counts.get(k) ?? 1) - 1
          if (n <= 0) this.counts.delete(k)
          else this.counts.set(k, n)
        }
      },
    }
  }

  count(key: string): number {
    return this.counts.get(key) ?? 0
  }
}

export interface Lease {
  release(): void
}
