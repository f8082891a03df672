/**
 * The media side of the engine in one call: either one media plane on this
 * thread (MEDIA_WORKERS=0) or MEDIA_WORKERS worker threads each running one
 * (worker-planes.ts). Either way the engine gets the same four things: the
 * binder sip/app hands answered calls to, the media half of CallControl, a
 * health reading and one stop. engine.ts does not need to know which.
 */
import type { Logger } from 'pino'
import type { Registry } from 'prom-client'
import type { LogLevel } from '../../config/config.ts'
import { MediaEngine, type MediaEngineOptions } from '../../media/media-engine.ts'
import { registerMediaMetrics } from '../../media/media-metrics.ts'
import type { RtpengineAnchor } from '../../media/rtpengine/anchor.ts'
import type { AgentMetrics } from '../../agent/index.ts'
import type { MediaBinder } from '../../sip/app/media-binding.ts'
import type { AgentControl } from '../agent-binder.ts'
import type { CallControl } from '../call-control.ts'
import { createMediaPlane } from './media-plane.ts'
import type { MediaStore } from './media-store.ts'
import { WorkerMediaPlanes } from './worker-planes.ts'

export interface StartMediaPlaneOptions {
  /** 0: media on this thread; N: N worker threads. */
  workers: number
  engine: Omit<MediaEngineOptions, 'logger' | 'registry'>
  /** Media gauges (in process: the engine's own; workers: read over messages). */
  registry: Registry
  store: MediaStore
  logger: Logger
  logLevel: LogLevel
  /** RTPENGINE_NG: the anchor on this thread; each worker opens its own client to `rtpengineNg`. */
  anchor?: RtpengineAnchor | undefined
  rtpengineNg?: string | undefined
  /** Tenants' URLs may reach this host's network (the embedded mode only). */
  allowPrivateUrls: boolean
  recordingsDir: string
  mediaRoots: string[]
  /** Where agent runtimes report turn and barge-in timings. */
  agentMetrics: Pick<AgentMetrics, 'observeTurn' | 'observeBargeIn'>
  /** Whether a call's signalling lives on this node. */
  isLocal: (callId: string) => boolean
  /** What an agent may do to its call's signalling (hang up, transfer); `lost` ends a call whose media worker died. */
  control: () => (AgentControl & { lost(callId: string, endedReason: string): Promise<void> }) | null
}

export interface MediaPlaneHealth {
  status: 'up' | 'down'
  detail: Record<string, unknown>
}

export interface RunningMediaPlane {
  /** The in-process MediaEngine, or the worker planes (tests and benches look inside). */
  readonly media: MediaEngine | WorkerMediaPlanes
  /** What sip/app hands each answered call to. */
  readonly binder: MediaBinder
  /** The media half of CallControl (say, play, dtmf, record, mute, conferences, bridges, streams). */
  readonly actions: CallControl
  health(): MediaPlaneHealth | Promise<MediaPlaneHealth>
  /** Ends every session and closes what the plane opened (the engine's StopOrder calls it once). */
  stop(): Promise<void>
}

export async function startMediaPlane(o: StartMediaPlaneOptions): Promise<RunningMediaPlane> {
  if (o.workers > 0) {
    const planes = await WorkerMediaPlanes.start({
      workers: o.workers, engine: o.engine, allowPrivateUrls: o.allowPrivateUrls, recordingsDir: o.recordingsDir, mediaRoots: o.mediaRoots,
      logLevel: o.logLevel, ...(o.rtpengineNg ? { rtpengineNg: o.rtpengineNg } : {}),
      store: o.store, logger: o.logger, agentMetrics: o.agentMetrics, isLocal: o.isLocal, control: o.control,
    })
    registerMediaMetrics(o.registry, async () => (await planes.stats()).map((w) => w.engine))
    return {
      media: planes,
      binder: planes,
      actions: planes.api(),
      health: async () => {
        const st = await planes.stats()
        return {
          status: st.length === planes.size ? 'up' : 'down',
          detail: { workers: st.map((w) => ({ index: w.index, activeSessions: w.engine.activeSessions, ports: w.engine.ports, lateTicks: w.engine.scheduler.lateTicks })) },
        }
      },
      stop: () => planes.stop(),
    }
  }
  const engine = new MediaEngine({ ...o.engine, registry: o.registry })
  const plane = createMediaPlane({
    media: engine, store: o.store, logger: o.logger, ...(o.anchor ? { anchor: o.anchor } : {}), allowPrivateUrls: o.allowPrivateUrls,
    control: o.control, isLocal: o.isLocal, recordingsDir: o.recordingsDir, mediaRoots: o.mediaRoots,
  })
  return {
    media: engine,
    binder: plane.binder,
    actions: plane.actions.api(),
    health: () => {
      const st = engine.stats()
      return { status: 'up', detail: { activeSessions: st.activeSessions, ports: st.ports, lateTicks: st.scheduler.lateTicks } }
    },
    // The URL policy's connection pool (fetches pinned to approved addresses) closes once the calls are gone.
    stop: async () => { await plane.urlPolicy.close(); await engine.stop() },
  }
}
