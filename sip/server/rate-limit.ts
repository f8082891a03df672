/**
 * Per-source limit on new transactions (token bucket per source IP). Only
 * requests that would create a server transaction are counted; retransmissions
 * and in-transaction messages are not, so a legitimate call is never cut in
 * the middle by its own retransmissions.
 */
export class SourceRateLimiter {
  private buckets = new Map<string, { tokens: number; last: number }>()
  private sweep: NodeJS.Timeout

  constructor(private readonly perSecond: number, private readonly burst = perSecond) {
    this.sweep = setInterval(() => this.gc(), 10_000)
    this.sweep.unref()
  }

  /** True when a new transaction from `source` is allowed. */
  allow(source: string, now = Date.now()): boolean {
    if (!(this.perSecond > 0)) return true
    let b = this.buckets.get(source)
    if (!b) {
      b = { tokens: this.burst, last: now }
      this.buckets.set(source, b)
    }
    b.tokens = Math.min(this.burst, b.tokens + ((now - b.last) / 1000) * this.perSecond)
    b.last = now
    if (b.tokens < 1) return false
    b.tokens -= 1
    return true
  }

  private gc(): void {
    const now = Date.now()
    for (const [k, b] of this.buckets) if (now - b.last > 10_000) this.buckets.delete(k)
  }

  close(): void { clearInterval(this.sweep) }
}
