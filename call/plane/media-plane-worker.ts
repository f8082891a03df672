/**
 * One media plane in a worker thread (MEDIA_WORKERS): its own MediaEngine
 * (sockets, scheduler, sessions), the AgentMediaBinder with each call's agent
 * runtime, and the API's media actions (MediaActions), all exactly as the
 * main thread runs them when MEDIA_WORKERS=0. The agent's Playout stays a
 * pull source read on this thread's ticks, so barge-in is as tight here as
 * in-process: nothing per frame crosses the thread boundary.
 *
 * What does cross, as RpcChannel messages (worker-planes.ts is the
 * other end):
 * - from the main thread: the MediaBinder/MediaLeg calls sip/app makes
 *   (answer, offer, setRemote, attach, hold, close), the API's media actions,
 *   and stream sockets' messages;
 * - between two workers, directly over a MessagePort the main thread hands
 *   both: the decoded audio of a bridge or conference whose calls live on
 *   different workers (media/frame-link.ts), one frame per tick each way;
 * - to the main thread: store reads and writes (media-store.ts), the agent's
 *   hangup and transfer, SIP INFO on a call's dialog, agent metrics, and what
 *   a media stream sends to its client.
 */
import { parentPort, workerData, type MessagePort } from 'node:worker_threads'
import { randomUUID } from 'node:crypto'
import type Srf from 'drachtio-srf'
import { MediaEngine } from '../../media/media-engine.ts'
import { RtpengineAnchor } from '../../media/rtpengine/anchor.ts'
import { createRootLogger } from '../../config/logger.ts'
import { addAgentMetricSink } from '../../agent/index.ts'
import type { Call } from '../../store/calls.ts'
import type { CallControl, MediaStreamHandle } from '../call-control.ts'
import type { MediaActions } from '../media-actions.ts'
import { createMediaPlane } from './media-plane.ts'
import { mediaStoreOverChannel } from './media-store.ts'
import { RpcChannel, type MessageEndpoint } from './rpc-channel.ts'
import type { CallContext, MediaLeg } from '../../sip/app/media-binding.ts'
import { PLANE_ACTIONS, asBuffer, type MediaPlaneInit, type PlaneAction } from './protocol.ts'

if (!parentPort) throw new Error('media-plane-worker.ts must run in a worker thread')
const init = workerData as MediaPlaneInit
const channel = new RpcChannel(parentPort as unknown as MessageEndpoint)
const logger = createRootLogger(init.logLevel, false).child({ component: 'media', mediaWorker: init.index })

const media = new MediaEngine(init.engine)
const anchor = init.rtpengineNg ? new RtpengineAnchor({ ng: init.rtpengineNg }) : undefined
const store = mediaStoreOverChannel(channel)
// The main thread routes an action here only for a call whose leg lives here, hence isLocal.
const { binder, actions, urlPolicy } = createMediaPlane({
  media, store, logger, ...(anchor ? { anchor } : {}), allowPrivateUrls: init.allowPrivateUrls, isLocal: () => true,
  recordingsDir: init.recordingsDir, mediaRoots: init.mediaRoots,
  control: () => ({
    hangup: (callId, endedReason) => channel.request('control.hangup', [callId, endedReason]),
    transfer: (callId, to, opts) => channel.request('control.transfer', [callId, to, opts]),
  }),
})
const api = actions.api() as Required<Pick<CallControl, PlaneAction | 'openStream'>>
addAgentMetricSink({
  observeTurn: (timing) => channel.notify('metrics.turn', [timing]),
  observeBargeIn: (record) => channel.notify('metrics.bargeIn', [record]),
})

const legs = new Map<string, MediaLeg>()
/** Closed legs whose end-of-call data (summary, final quality) is still being stored. */
const settling = new Map<string, Promise<void>>()
const streams = new Map<string, MediaStreamHandle>()

function leg(id: string): MediaLeg {
  const l = legs.get(id)
  if (!l) throw new Error(`no media leg ${id} in worker ${init.index}`)
  return l
}

/** SIP INFO is the only use media makes of a dialog (DTMF fallback); the real dialog stays on the main thread. */
function dialogOnMainThread(callId: string): Srf.Dialog {
  const request = async (opts: { method: string; headers?: Record<string, string>; body?: string }) => { await channel.request('dialog.request', [callId, opts]) }
  return { request } as unknown as Srf.Dialog
}

async function newLeg(make: Promise<MediaLeg>): Promise<{ legId: string; localSdp: string }> {
  const l = await make
  const legId = randomUUID()
  legs.set(legId, l)
  return { legId, localSdp: l.localSdp }
}

channel
  .handle('answer', (ctx: CallContext, sdp: string) => newLeg(binder.answer(ctx, sdp)))
  .handle('offer', (ctx: CallContext) => newLeg(binder.offer(ctx)))
  .handle('leg.setRemote', async (id: string, sdp: string) => {
    const l = leg(id)
    const answer = await l.setRemote(sdp)
    return { answer, localSdp: l.localSdp }
  })
  .handle('leg.attach', (id: string, callId: string) => { leg(id).attach(dialogOnMainThread(callId)) })
  .handle('leg.holdOffer', async (id: string, held: boolean) => {
    const l = leg(id)
    const offer = await l.holdOffer!(held)
    return { offer, localSdp: l.localSdp }
  })
  .handle('leg.setHold', (id: string, held: boolean) => leg(id).setHold!(held))
  .handle('leg.say', (id: string, text: string) => leg(id).say!(text))
  .handle('leg.close', async (id: string, reason: string) => {
    const l = legs.get(id)
    legs.delete(id)
    await l?.close(reason)
    const done = l?.settled?.()
    if (done) {
      settling.set(id, done)
      void done.catch(() => {}).finally(() => settling.delete(id))
    }
  })
  .handle('leg.settled', async (id: string) => { await settling.get(id) })
  .handle('leg.injectDtmf', (id: string, digit: string, durationMs?: number) => { legs.get(id)?.injectDtmf?.(digit, durationMs) })
  .handle('action', (name: PlaneAction, args: unknown[]) => {
    if (!(PLANE_ACTIONS as readonly string[]).includes(name)) throw new Error(`unknown media action ${name}`)
    return (api[name] as (...a: unknown[]) => Promise<unknown>)(...args)
  })
  .handle('link.call', (call: Call, partner: Parameters<MediaActions['linkCall']>[1], port: MessagePort) => actions.linkCall(call, partner, port))
  .handle('link.codec', (call: Call) => actions.codecOf(call))
  .handle('link.member', (call: Call, conferenceId: string, muted: boolean, port: MessagePort) => actions.conferenceJoinLinked(call, conferenceId, muted, port))
  .handle('conference.active', (conferenceId: string) => actions.conferenceActive(conferenceId))
  .handle('stream.open', async (streamId: string, call: Call, encapsulation: string) => {
    const handle = await api.openStream(call, {
      encapsulation,
      send: (msg) => channel.notify('stream.send', [streamId, msg]),
      close: () => { streams.delete(streamId); channel.notify('stream.closed', [streamId]) },
    })
    streams.set(streamId, handle)
  })
  .handle('stream.message', (streamId: string, msg: string | Uint8Array) => { streams.get(streamId)?.onMessage(asBuffer(msg)) })
  .handle('stream.close', (streamId: string) => { streams.get(streamId)?.close(); streams.delete(streamId) })
  .handle('stats', () => ({ index: init.index, engine: media.stats(), legs: legs.size }))
  .handle('stop', async () => {
    for (const [id, l] of legs) { legs.delete(id); await l.close('shutdown').catch(() => {}) }
    await media.stop()
    await urlPolicy.close()
    anchor?.close()
  })

channel.notify('ready', [])
