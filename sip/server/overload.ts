/**
 * Overload detection. Past saturation a SIP server must answer new work 503
 * (RFC 3261 §21.5.4, with Retry-After) instead of letting it time out: a
 * timed-out INVITE is retransmitted by the client and makes the overload
 * worse, a 503 is one cheap datagram. Signals: event-loop delay (the process
 * is CPU-bound) and INVITEs still waiting for an application's answer (the
 * app is the bottleneck).
 */
import { monitorEventLoopDelay, type ELDHistogram } from 'node:perf_hooks'

export interface OverloadOptions {
  /** Event-loop delay (median over a window, ms) above which new requests are refused, once sustained for two windows. */
  maxLoopDelayMs: number
  /** New INVITEs delivered to apps and not yet answered finally. */
  maxPendingInvites: number
}

export const DEFAULT_OVERLOAD: OverloadOptions = { maxLoopDelayMs: 100, maxPendingInvites: 3000 }

export class OverloadGuard {
  private hist: ELDHistogram
  private timer: NodeJS.Timeout
  private loopOverloaded = false
  private hotWindows = 0
  pendingInvites = 0

  constructor(private readonly opts: OverloadOptions = DEFAULT_OVERLOAD) {
    this.hist = monitorEventLoopDelay({ resolution: 10 })
    this.hist.enable()
    this.timer = setInterval(() => {
      // ns → ms, per 250 ms window; two hot windows in a row so that a one-off
      // pause (JIT warm-up, a major GC) does not turn callers away.
      const hot = this.hist.percentile(50) / 1e6 > this.opts.maxLoopDelayMs
      this.hotWindows = hot ? this.hotWindows + 1 : 0
      this.loopOverloaded = this.hotWindows >= 2
      this.hist.reset()
    }, 250)
    this.timer.unref()
  }

  get overloaded(): boolean {
    return this.loopOverloaded || this.pendingInvites > this.opts.maxPendingInvites
  }

  close(): void {
    clearInterval(this.timer)
    this.hist.disable()
  }
}
