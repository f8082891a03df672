/**
 * Overload detection. Past saturation a SIP server must answer new work 503
 * (RFC 3261 §21.5.4, with Retry-After) instead of letting it time out: a
 * timed-out INVITE is retransmitted by the client and makes the overload
 * worse, a 503 is one cheap datagram. Signals, per 250 ms window:
 * - sustained event-loop saturation (utilization or delay) over a run of
 *   windows: the process is CPU-bound (libuv drains datagrams in batches, so the
 *   socket backlog can grow while timers still fire on time). Request
 *   retransmissions are deliberately not a signal: on a lossy path they say
 *   nothing about our load;
 * - INVITEs still waiting for an application's answer (the app is the bottleneck).
 * Rather than an on/off switch, the share of new requests admitted adapts
 * (multiplicative decrease on a bad window, additive increase on a good one,
 * in the spirit of RFC 7339's loss-based control), so a short hiccup costs a
 * few calls and a sustained overload converges on what the server can carry.
 */
import { monitorEventLoopDelay, performance, type ELDHistogram, type EventLoopUtilization } from 'node:perf_hooks'

export interface OverloadOptions {
  /** Event-loop utilization (0..1) above which a window counts as saturated. */
  maxUtilization: number
  /** Median event-loop delay (ms) above which a window counts as saturated. */
  maxLoopDelayMs: number
  /** Saturated windows in a row before new requests are refused (filters one-off pauses: JIT, major GC). */
  windows: number
  /** New INVITEs delivered to apps and not yet answered finally. */
  maxPendingInvites: number
}

export const DEFAULT_OVERLOAD: OverloadOptions = { maxUtilization: 0.97, maxLoopDelayMs: 200, windows: 6, maxPendingInvites: 3000 }

export class OverloadGuard {
  private hist: ELDHistogram
  private timer: NodeJS.Timeout
  private elu: EventLoopUtilization
  /** Share of new requests admitted, 0.05..1. */
  admitShare = 1
  private hotWindows = 0
  pendingInvites = 0

  constructor(private readonly opts: OverloadOptions = DEFAULT_OVERLOAD) {
    this.hist = monitorEventLoopDelay({ resolution: 10 })
    this.hist.enable()
    this.elu = performance.eventLoopUtilization()
    this.timer = setInterval(() => {
      const now = performance.eventLoopUtilization()
      const window = performance.eventLoopUtilization(now, this.elu)
      this.elu = now
      const hot = window.utilization > this.opts.maxUtilization || this.hist.percentile(50) / 1e6 > this.opts.maxLoopDelayMs
      this.hotWindows = hot ? this.hotWindows + 1 : 0
      const bad = this.hotWindows >= this.opts.windows
      this.admitShare = bad ? Math.max(0.05, this.admitShare * 0.7) : Math.min(1, this.admitShare + 0.1)
      this.hist.reset()
    }, 250)
    this.timer.unref()
  }

  /** True when this new request should be refused. */
  shouldShed(): boolean {
    if (this.pendingInvites > this.opts.maxPendingInvites) return true
    return this.admitShare < 1 && Math.random() >= this.admitShare
  }

  close(): void {
    clearInterval(this.timer)
    this.hist.disable()
  }
}
