/**
 * One media plane: the parts that terminate calls' media on one thread. The
 * MediaEngine's sessions, the AgentMediaBinder with each call's agent, the
 * API's media actions (MediaActions) and the URL policy their fetches go
 * through. The engine builds one on its main thread when MEDIA_WORKERS=0;
 * each media worker builds its own (media-plane-worker.ts).
 */
import type { Logger } from 'pino'
import { OutboundUrlPolicy } from '../../config/outbound-url-policy.ts'
import type { MediaEngine } from '../../media/media-engine.ts'
import type { RtpengineAnchor } from '../../media/rtpengine/anchor.ts'
import { AgentMediaBinder, type AgentControl } from '../agent-binder.ts'
import { MediaActions } from '../media-actions.ts'
import { MediaSessionRegistry } from '../live-media.ts'
import type { MediaStore } from './media-store.ts'

export interface MediaPlaneOptions {
  media: MediaEngine
  store: MediaStore
  logger: Logger
  /** RTPENGINE_NG: every offer/answer goes through the daemon. */
  anchor?: RtpengineAnchor
  /** Tenants' URLs may reach this host's network (the embedded mode only). */
  allowPrivateUrls: boolean
  control: () => AgentControl | null
  /** Whether a call's signalling lives on this node (404 vs 409 for a call without media). */
  isLocal: (callId: string) => boolean
  recordingsDir: string
  mediaRoots: string[]
}

export interface MediaPlane {
  binder: AgentMediaBinder
  actions: MediaActions
  /** Close its connection pool (the fetches pinned to approved addresses) when the calls are gone. */
  urlPolicy: OutboundUrlPolicy
}

export function createMediaPlane(o: MediaPlaneOptions): MediaPlane {
  const urlPolicy = new OutboundUrlPolicy({ allowPrivate: o.allowPrivateUrls })
  const sessions = new MediaSessionRegistry()
  const binder = new AgentMediaBinder({
    media: o.media, store: o.store, logger: o.logger, sessions, urlPolicy, control: o.control, ...(o.anchor ? { anchor: o.anchor } : {}),
    // Agents with recording.enabled and `record` on POST /v1/calls: the same recorder, row and call.recording.ready as the API's record/start.
    record: async (callId) => {
      const call = await o.store.calls.getById(callId)
      if (call) await actions.startRecording(call, {})
    },
    joinConference: async (callId, conferenceId) => {
      const call = await o.store.calls.getById(callId)
      if (!call) throw new Error(`call ${callId} has no record`)
      await actions.conferenceJoin(call, conferenceId, false)
    },
  })
  // The API's call actions: media actions on the sessions the binder lists.
  const actions = new MediaActions({
    sessions, store: o.store, logger: o.logger, isLocal: o.isLocal,
    recordingsDir: o.recordingsDir, mediaRoots: o.mediaRoots, urlPolicy, scheduler: o.media.scheduler, control: o.control,
  })
  return { binder, actions, urlPolicy }
}
