/**
 * Overload detection. Past saturation a SIP server must answer new work 503
 * (RFC 3261 §21.5.4, with Retry-After) instead of letting it time out: a
 * timed-out INVITE is retransmitted by the client and makes the overload
 * worse, a 503 is one cheap datagram. Signals, per 250 ms window:
 * - sustained saturation over a run of windows: the process burns a core
 *   (CPU time, not just event-loop utilization, which also rises when other
 *   processes starve us of CPU) with a busy event loop (libuv drains datagrams in
 *   batches, so the socket backlog can grow while timers still fire on time), or
 *   the event-loop delay itself is large;
 * - queueing delay seen through retransmissions: a client retransmits at T1
 *   (500 ms); when the retransmission reaches us within a fraction of T1 of the
 *   original, both sat in our socket queue, so we are late by ~T1. A retransmission
 *   caused by loss arrives a full interval after the original and is not counted;
 * - INVITEs still waiting for an application's answer (the app is the bottleneck).
 * Rather than an on/off switch, the share of new requests admitted adapts
 * (multiplicative decrease on a bad window, additive increase on a good one,
 * in the spirit of RFC 7339's loss-based control), so a short hiccup costs a
 * few calls and a sustained overload converges on what the server can carry.
 */
import { monitorEventLoopDelay, performance, type ELDHistogram, type EventLoopUtilization } from 'node:perf_hooks'

export interface OverloadOptions {
  /** Event-loop utilization (0..1) above which a window counts as saturated (together with CPU). */
  maxUtilization: number
  /** Process CPU time per wall time (share of one core) above which a window counts as saturated. */
  maxCpuShare: number
  /** Median event-loop delay (ms) above which a window counts as saturated. */
  maxLoopDelayMs: number
  /** Saturated windows in a row before new requests are refused (filters one-off pauses: JIT, major GC). */
  windows: number
  /** New INVITEs delivered to apps and not yet answered finally. */
  maxPendingInvites: number
}

export const DEFAULT_OVERLOAD: OverloadOptions = { maxUtilization: 0.95, maxCpuShare: 0.85, maxLoopDelayMs: 200, windows: 4, maxPendingInvites: 3000 }

export class OverloadGuard {
  private hist: ELDHistogram
  private timer: NodeJS.Timeout
  private elu: EventLoopUtilization
  private cpu = process.cpuUsage()
  private wall = performance.now()
  /** Share of new requests admitted, 0.05..1. */
  admitShare = 1
  private hotWindows = 0
  private late = 0
  private fresh = 0
  pendingInvites = 0

  constructor(private readonly opts: OverloadOptions = DEFAULT_OVERLOAD) {
    this.hist = monitorEventLoopDelay({ resolution: 10 })
    this.hist.enable()
    this.elu = performance.eventLoopUtilization()
    this.timer = setInterval(() => {
      const now = performance.eventLoopUtilization()
      const window = performance.eventLoopUtilization(now, this.elu)
      this.elu = now
      const cpuNow = process.cpuUsage()
      const wallNow = performance.now()
      const cpuShare = ((cpuNow.user - this.cpu.user + cpuNow.system - this.cpu.system) / 1000) / Math.max(1, wallNow - this.wall)
      this.cpu = cpuNow
      this.wall = wallNow
      const saturated = window.utilization > this.opts.maxUtilization && cpuShare > this.opts.maxCpuShare
      const hot = saturated || this.hist.percentile(50) / 1e6 > this.opts.maxLoopDelayMs
      this.hotWindows = hot ? this.hotWindows + 1 : 0
      // late: at least 10 retransmissions and 5% of the new requests of the window
      const late = this.late >= 10 && this.late >= 0.05 * this.fresh
      const bad = this.hotWindows >= this.opts.windows || late
      this.late = 0
      this.fresh = 0
      this.admitShare = bad ? Math.max(0.05, this.admitShare * 0.7) : Math.min(1, this.admitShare + 0.1)
      this.hist.reset()
    }, 250)
    this.timer.unref()
  }

  /** A request retransmission arrived `ageMs` after its transaction was created. */
  noteRetransmission(ageMs: number, t1: number): void {
    if (ageMs < t1 / 2) this.late++
  }

  /**
   * True when this new request should be refused. A `light` source (well under its per-source
   * rate) is spared while the overload is moderate: when one source floods, the share-based
   * shedding then falls on that source, not on everyone (issue 14: a flood from one source
   * must not fail other sources' calls). Severe overload (admitted share under 30%) or too many
   * INVITEs waiting for the application shed everyone.
   */
  shouldShed(light = false): boolean {
    this.fresh++
    if (this.pendingInvites >= this.opts.maxPendingInvites) return true
    if (this.admitShare >= 1) return false
    if (light && this.admitShare >= 0.3) return false
    return Math.random() >= this.admitShare
  }

  close(): void {
    clearInterval(this.timer)
    this.hist.disable()
  }
}
