/**
 * The media gauges on /metrics, computed at scrape time from the counters the
 * sessions keep anyway, so the packet path never touches prom-client. The
 * source is one MediaEngine (in-process media) or every media worker's
 * engine (MEDIA_WORKERS, read over messages): counts add up across engines,
 * jitter takes the worst.
 */
import { Gauge, type Registry } from 'prom-client'

/** What the gauges read of one engine's stats (MediaStatsSample has it), so this module needs no import of engine.ts, which registers it. */
export interface MediaStatsSample {
  activeSessions: number
  totals: { packetsIn: number; packetsOut: number; lost: number; garbage: number }
  maxJitterMs: number
  scheduler: { lateTicks: number }
}

export type MediaStatsSource = () => MediaStatsSample[] | Promise<MediaStatsSample[]>

export function registerMediaMetrics(registry: Registry, source: MediaStatsSource): void {
  // One read per scrape, shared by the gauges (each collect() runs in the same scrape).
  let pending: Promise<MediaStatsSample[]> | null = null
  const read = (): Promise<MediaStatsSample[]> => {
    pending ??= Promise.resolve(source()).finally(() => { setImmediate(() => { pending = null }) })
    return pending
  }
  const sum = (all: MediaStatsSample[], f: (s: MediaStatsSample) => number) => all.reduce((a, s) => a + f(s), 0)
  new Gauge({ name: 'callplane_media_sessions_active', help: 'Active media sessions', registers: [registry], async collect() { this.set(sum(await read(), (s) => s.activeSessions)) } })
  new Gauge({ name: 'callplane_rtp_packets', help: 'RTP packets since start', labelNames: ['direction'], registers: [registry], async collect() {
    const all = await read()
    this.set({ direction: 'in' }, sum(all, (s) => s.totals.packetsIn))
    this.set({ direction: 'out' }, sum(all, (s) => s.totals.packetsOut))
  } })
  new Gauge({ name: 'callplane_rtp_lost_packets', help: 'RTP packets lost (RFC 3550 A.3) since start', registers: [registry], async collect() { this.set(sum(await read(), (s) => s.totals.lost)) } })
  new Gauge({ name: 'callplane_rtp_garbage_packets', help: 'Invalid or foreign packets dropped on RTP ports', registers: [registry], async collect() { this.set(sum(await read(), (s) => s.totals.garbage)) } })
  new Gauge({ name: 'callplane_rtp_jitter_ms', help: 'Interarrival jitter per active session (max)', registers: [registry], async collect() { this.set(Math.max(0, ...(await read()).map((s) => s.maxJitterMs))) } })
  new Gauge({ name: 'callplane_media_scheduler_late_ticks', help: 'Scheduler ticks started >2 ms late', registers: [registry], async collect() { this.set(sum(await read(), (s) => s.scheduler.lateTicks)) } })
}
