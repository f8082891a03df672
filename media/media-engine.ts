/**
 * MediaEngine: the per-thread owner of the RTP port pool, the shared
 * scheduler and all media sessions. Signalling asks it for sessions; with
 * MEDIA_WORKERS > 0 one engine runs in each worker thread, inside a whole media
 * plane (call/plane/worker-planes.ts).
 */
import type { Registry } from 'prom-client'
import { registerMediaMetrics } from './media-metrics.ts'
import { PortPool, type PortPair } from './port-pool.ts'
import { MediaScheduler, type SchedulerStats } from './scheduler.ts'
import { MediaSession, type MediaSessionOptions, type SessionHost } from './session/media-session.ts'
import { IdleGc, type IdleGcStats } from './idle-gc.ts'

export interface MediaLogger {
  info(obj: object, msg?: string): void
  warn(obj: object, msg?: string): void
  debug?(obj: object, msg?: string): void
}

export interface MediaEngineOptions {
  rtpPortMin?: number
  rtpPortMax?: number
  /** Address sockets bind to (default 0.0.0.0). */
  bindHost?: string
  /** Address written into SDP c= lines (default 127.0.0.1 or bindHost). */
  externalAddress?: string
  logger?: MediaLogger
  /** prom-client registry for media metrics. */
  registry?: Registry
  /** Defaults applied to every session. */
  sessionDefaults?: MediaSessionOptions
  /** Young-generation GC between ticks instead of inside them (media/idle-gc.ts); default on. */
  idleGc?: boolean
}

export interface MediaEngineStats {
  activeSessions: number
  sessionsCreated: number
  sessionsClosed: number
  timeouts: number
  ports: { capacity: number; used: number }
  scheduler: SchedulerStats
  idleGc: IdleGcStats | null
  totals: { packetsIn: number; packetsOut: number; lost: number; garbage: number; concealed: number }
  /** The worst interarrival jitter among active sessions (RFC 3550 §6.4.1), ms. */
  maxJitterMs: number
}

export class MediaEngine {
  readonly scheduler: MediaScheduler
  private readonly idleGc: IdleGc | null
  private readonly pool: PortPool
  private readonly sessions = new Set<MediaSession>()
  private readonly externalAddress: string
  private readonly logger?: MediaLogger
  private readonly defaults: MediaSessionOptions
  private created = 0
  private closedCount = 0
  private timeouts = 0
  /** Counters of sessions already closed, so totals survive them. */
  private readonly closedTotals = { packetsIn: 0, packetsOut: 0, lost: 0, garbage: 0, concealed: 0 }
  private readonly host: SessionHost

  constructor(opts: MediaEngineOptions = {}) {
    const bindHost = opts.bindHost ?? '0.0.0.0'
    this.pool = new PortPool(opts.rtpPortMin ?? 10000, opts.rtpPortMax ?? 20000, bindHost)
    // One failing session must not stop the clock for every other call.
    const idleGc = opts.idleGc === false ? null : new IdleGc()
    this.idleGc = idleGc?.available ? idleGc : null
    this.scheduler = new MediaScheduler({
      onError: (err, task) => this.logger?.warn({ err, callId: (task as { id?: string }).id }, 'media tick failed'),
      ...(this.idleGc ? { afterTick: (slack: number) => this.idleGc!.afterTick(slack) } : {}),
    })
    this.externalAddress = opts.externalAddress ?? (bindHost === '0.0.0.0' ? '127.0.0.1' : bindHost)
    this.logger = opts.logger
    this.defaults = opts.sessionDefaults ?? {}
    this.host = {
      scheduler: this.scheduler,
      externalAddress: this.externalAddress,
      release: (pair: PortPair) => this.pool.release(pair),
      onClosed: (s: MediaSession) => this.onSessionClosed(s),
    }
    if (opts.registry) registerMediaMetrics(opts.registry, () => [this.stats()])
  }

  async createSession(opts: MediaSessionOptions = {}): Promise<MediaSession> {
    const pair = await this.pool.allocate()
    const session = new MediaSession(this.host, pair, { ...this.defaults, ...opts })
    this.sessions.add(session)
    this.created++
    session.on('timeout', (e) => {
      this.timeouts++
      this.logger?.warn({ callId: session.id, idleMs: e.idleMs }, 'rtp inactivity timeout')
    })
    this.logger?.debug?.({ callId: session.id, port: pair.port }, 'media session created')
    return session
  }

  getSession(id: string): MediaSession | undefined {
    for (const s of this.sessions) if (s.id === id) return s
    return undefined
  }

  private onSessionClosed(s: MediaSession): void {
    if (!this.sessions.delete(s)) return
    this.closedCount++
    const st = s.stats()
    this.closedTotals.packetsIn += st.packetsReceived
    this.closedTotals.packetsOut += st.packetsSent
    this.closedTotals.lost += st.packetsLost
    this.closedTotals.concealed += st.concealed
    this.closedTotals.garbage += Object.values(st.garbage).reduce((a, b) => a + b, 0)
    this.logger?.info({ callId: s.id, stats: st }, 'media session closed')
  }

  stats(): MediaEngineStats {
    const totals = { ...this.closedTotals }
    let maxJitterMs = 0
    for (const s of this.sessions) {
      const st = s.stats()
      maxJitterMs = Math.max(maxJitterMs, st.jitterMs)
      totals.packetsIn += st.packetsReceived
      totals.packetsOut += st.packetsSent
      totals.lost += st.packetsLost
      totals.concealed += st.concealed
      totals.garbage += Object.values(st.garbage).reduce((a, b) => a + b, 0)
    }
    return {
      activeSessions: this.sessions.size,
      sessionsCreated: this.created,
      sessionsClosed: this.closedCount,
      timeouts: this.timeouts,
      ports: { capacity: this.pool.capacity, used: this.pool.used },
      scheduler: this.scheduler.getStats(),
      idleGc: this.idleGc?.stats() ?? null,
      totals,
      maxJitterMs,
    }
  }

  /** Closes every session and stops the clock. */
  async stop(): Promise<void> {
    await Promise.all([...this.sessions].map((s) => s.close()))
    this.scheduler.stop()
  }
}
