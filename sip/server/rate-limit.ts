/**
 * Per-source limit on new transactions (token bucket per source IP). Only
 * requests that would create a server transaction are counted; retransmissions
 * and in-transaction messages are not, so a legitimate call is never cut in
 * the middle by its own retransmissions. The check runs before any transaction
 * state exists, so a dropped request costs a parse and a map lookup.
 */
export class SourceRateLimiter {
  private buckets = new Map<string, { tokens: number; last: number }>()
  private sweep: NodeJS.Timeout

  /**
   * @param perSecond sustained new requests per second per source; 0 disables the limit
   * @param burst     requests a source may send at once (bucket size)
   * @param maxSources buckets kept at most: a spray of spoofed sources cannot grow memory
   *                  without bound (the oldest bucket goes, which at worst forgives a flooder)
   */
  constructor(private readonly perSecond: number, private readonly burst = perSecond, private readonly maxSources = 100_000) {
    this.sweep = setInterval(() => this.gc(), 10_000)
    this.sweep.unref()
  }

  get enabled(): boolean { return this.perSecond > 0 }

  /** True when a new transaction from `source` is allowed. */
  allow(source: string, now = Date.now()): boolean {
    if (!(this.perSecond > 0)) return true
    let b = this.buckets.get(source)
    if (!b) {
      if (this.buckets.size >= this.maxSources) {
        const oldest = this.buckets.keys().next()
        if (!oldest.done) this.buckets.delete(oldest.value)
      }
      b = { tokens: this.burst, last: now }
      this.buckets.set(source, b)
    }
    b.tokens = Math.min(this.burst, b.tokens + ((now - b.last) / 1000) * this.perSecond)
    b.last = now
    if (b.tokens < 1) return false
    b.tokens -= 1
    return true
  }

  /** True when `source` has a token left now, without taking it (for the pre-parse drop). */
  hasToken(source: string, now = Date.now()): boolean {
    if (!(this.perSecond > 0)) return true
    const b = this.buckets.get(source)
    if (!b) return true
    return Math.min(this.burst, b.tokens + ((now - b.last) / 1000) * this.perSecond) >= 1
  }

  /**
   * True when `source` has used less than half its burst lately: a light sender, whom
   * overload shedding spares while heavy senders are there to shed (see server.ts).
   */
  isLight(source: string, now = Date.now()): boolean {
    if (!(this.perSecond > 0)) return false
    const b = this.buckets.get(source)
    if (!b) return true
    return Math.min(this.burst, b.tokens + ((now - b.last) / 1000) * this.perSecond) >= this.burst / 2
  }

  get size(): number { return this.buckets.size }

  private gc(): void {
    const now = Date.now()
    // A bucket idle long enough to have refilled carries no state worth keeping.
    const idle = Math.max(10_000, (this.burst / Math.max(this.perSecond, 1e-9)) * 1000)
    for (const [k, b] of this.buckets) if (now - b.last > idle) this.buckets.delete(k)
  }

  close(): void { clearInterval(this.sweep) }
}

/** Per-source limits the server applies to new out-of-dialog requests; 0 turns one off. */
export interface SourceLimits {
  /** New INVITEs per second per source IP (challenge retries count: a call that authenticates costs two). */
  invitesPerSecond: number
  /** Other new out-of-dialog requests (REGISTER, OPTIONS, MESSAGE, SUBSCRIBE, ...) per second per source IP. */
  requestsPerSecond: number
  /** Bucket size, in seconds of the sustained rate: how much a source may send at once. */
  burstSeconds: number
}

/** Off: a library embedder chooses its limits (the engine turns them on through config). */
export const NO_SOURCE_LIMITS: SourceLimits = { invitesPerSecond: 0, requestsPerSecond: 0, burstSeconds: 2 }

const TO_HEADER = /\r\n(?:to|t)[ \t]*:([^\r\n]*)/i
const TAG_PARAM = /;[ \t]*tag[ \t]*=/i

/**
 * True when a raw datagram is an INVITE outside any dialog (no To tag): what a flood is made
 * of. Looks only at the request line and the To header, so that an over-limit source's
 * INVITEs can be dropped before the full parse (about 50 µs each), which at flood rates is
 * most of the cost of refusing them. Retransmissions of an INVITE already admitted also match;
 * dropping those is harmless (the transaction's responses are driven by its own timers).
 */
export function isOutOfDialogInvite(data: Buffer): boolean {
  // 'INVITE ' = 49 4e 56 49 54 45 20
  if (data.length < 64 || data[0] !== 0x49 || data[1] !== 0x4e || data[6] !== 0x20 || data.toString('latin1', 0, 7) !== 'INVITE ') return false
  const end = data.indexOf('\r\n\r\n', 0, 'latin1')
  const head = data.toString('latin1', 0, end < 0 ? Math.min(data.length, 4096) : end)
  const to = TO_HEADER.exec(head)
  return !!to && !TAG_PARAM.test(to[1]!)
}
