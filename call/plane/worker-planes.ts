/**
 * MEDIA_WORKERS > 0: call media runs in worker threads, one media plane per
 * worker (media-plane-worker.ts: engine, agent runtimes, media actions),
 * and this main-thread side keeps only signalling, the store and the API.
 *
 * It is the MediaBinder sip/app sees and the media half of the API's
 * CallControl. Each call is placed on the least-loaded worker when its first
 * leg is created; later legs of the same call (a transfer's whisper leg) go
 * to the same worker, and every media action on the call is routed there.
 * The RTP port range is split evenly, so each worker owns its sockets.
 *
 * Calls on different workers still bridge and share conferences: the main
 * thread hands the two workers the ends of a MessageChannel, and decoded
 * audio flows between them one 20 ms frame per tick each way
 * (media/frame-link.ts), or, for a bridge of two calls with the same codec,
 * RTP packets undecoded (relay, as on one worker). A conference is mixed on
 * the worker of its first participant; members on other workers are linked
 * to it. Decoded links add up to a tick or two of delay, since the two
 * workers' clocks are not in phase.
 *
 * A worker that dies takes its calls' media with it: those calls are hung up
 * (endedReason `error-media-worker`), so no call record stays live forever.
 */
import { MessageChannel, Worker } from 'node:worker_threads'
import { randomUUID } from 'node:crypto'
import type Srf from 'drachtio-srf'
import type { Logger } from 'pino'
import type { MediaEngineStats } from '../../media/media-engine.ts'
import type { AgentMetrics } from '../../agent/index.ts'
import type { Call } from '../../store/calls.ts'
import { CallControlError, type ActionResult, type AgentTalkResult, type CallControl, type MachineDetection, type ListenResult, type MediaStreamHandle, type PromptResult } from '../call-control.ts'
import type { CallContext, MediaBinder, MediaLeg } from '../../sip/app/media-binding.ts'
import type { AgentControl } from '../agent-binder.ts'
import { noMediaError } from '../media-actions.ts'
import { serveMediaStore, type MediaStore } from './media-store.ts'
import { RpcChannel, type MessageEndpoint } from './rpc-channel.ts'
import { asBuffer, type MediaPlaneInit, type PlaneAction } from './protocol.ts'

/** What every worker starts with (its index and port share are filled in per worker), plus the main thread's side. */
export interface WorkerMediaPlanesOptions extends Omit<MediaPlaneInit, 'index'> {
  workers: number
  store: MediaStore
  logger: Logger
  control: () => (AgentControl & { lost(callId: string, endedReason: string): Promise<void> }) | null
  /** Whether the call's signalling lives on this node (for the 404 vs 409 of a call without media). */
  isLocal: (callId: string) => boolean
  /** Where the workers' agent runtimes report turn and barge-in timings (the main registry). */
  agentMetrics?: Pick<AgentMetrics, 'observeTurn' | 'observeBargeIn'>
}

export interface MediaPlaneStats { index: number; engine: MediaEngineStats; legs: number }

class PlaneWorker {
  readonly channel: RpcChannel
  readonly ready: Promise<void>
  /** Call ids with at least one leg here → how many legs. */
  readonly calls = new Map<string, number>()
  alive = true

  constructor(readonly index: number, readonly worker: Worker) {
    this.channel = new RpcChannel(worker as unknown as MessageEndpoint)
    this.ready = new Promise((resolve, reject) => {
      this.channel.handle('ready', () => resolve())
      worker.once('error', reject)
      worker.once('exit', (code) => reject(new Error(`media worker ${index} exited (${code}) while starting`)))
    })
  }
}

export class WorkerMediaPlanes implements MediaBinder {
  private readonly planes: PlaneWorker[] = []
  private readonly callWorker = new Map<string, PlaneWorker>()
  private readonly conferenceWorker = new Map<string, PlaneWorker>()
  /** Calls joined to each conference through this router, so a dead mixing worker's rooms can be closed in the store. */
  private readonly conferenceMembers = new Map<string, Set<string>>()
  private readonly dialogs = new Map<string, Srf.Dialog>()
  private readonly streams = new Map<string, { plane: PlaneWorker; send: (msg: string | Buffer) => void; close: () => void }>()
  private rr = 0
  private stopping = false

  private constructor(private readonly o: WorkerMediaPlanesOptions) {
    const min = o.engine.rtpPortMin ?? 10000
    const max = o.engine.rtpPortMax ?? 20000
    const n = Math.max(1, o.workers)
    const span = Math.floor((max - min + 1) / n) & ~1
    if (span < 2) throw new RangeError(`RTP port range ${min}-${max} is too small for ${n} media workers`)
    const fromSource = import.meta.url.endsWith('.ts')
    for (let i = 0; i < n; i++) {
      const lo = min + i * span
      const hi = i === n - 1 ? max : lo + span - 1
      const init: MediaPlaneInit = {
        index: i, engine: { ...o.engine, rtpPortMin: lo, rtpPortMax: hi }, allowPrivateUrls: o.allowPrivateUrls,
        recordingsDir: o.recordingsDir, mediaRoots: o.mediaRoots, logLevel: o.logLevel,
        ...(o.rtpengineNg ? { rtpengineNg: o.rtpengineNg } : {}),
      }
      // From TypeScript sources the worker needs tsx registered inside it (module hooks are per thread).
      const url = new URL(fromSource ? './media-plane-entry.mjs' : './media-plane-worker.js', import.meta.url)
      const plane = new PlaneWorker(i, new Worker(url, { workerData: init }))
      this.serve(plane)
      this.planes.push(plane)
    }
  }

  static async start(o: WorkerMediaPlanesOptions): Promise<WorkerMediaPlanes> {
    const planes = new WorkerMediaPlanes(o)
    try {
      await Promise.all(planes.planes.map((p) => p.ready))
    } catch (err) {
      await planes.stop().catch(() => {})
      throw err
    }
    return planes
  }

  get size(): number {
    return this.planes.length
  }

  /** The worker threads, by index (operators' diagnostics; tests end one to check that its calls are hung up). */
  get threads(): readonly Worker[] {
    return this.planes.map((p) => p.worker)
  }

  /** Which worker a call's media runs on, if it runs on one. */
  workerOf(callId: string): number | undefined {
    return this.callWorker.get(callId)?.index
  }

  /** What a worker may ask of the main thread. */
  private serve(p: PlaneWorker): void {
    const ch = p.channel
    serveMediaStore(ch, this.o.store)
    ch.handle('control.hangup', async (callId: string, endedReason?: string) => { await this.o.control()?.hangup(callId, endedReason) })
    ch.handle('control.transfer', async (callId: string, to: string, opts?: { whisper?: string }) => { await this.o.control()?.transfer(callId, to, opts) })
    ch.handle('dialog.request', async (callId: string, opts: Record<string, unknown>) => {
      const d = this.dialogs.get(callId)
      if (!d) throw new CallControlError('invalid_state', `call ${callId} has no dialog to send SIP INFO on`)
      await d.request(opts as unknown as Srf.SrfRequest)
    })
    ch.handle('metrics.turn', (timing: Parameters<AgentMetrics['observeTurn']>[0]) => this.o.agentMetrics?.observeTurn(timing))
    ch.handle('metrics.bargeIn', (record: Parameters<AgentMetrics['observeBargeIn']>[0]) => this.o.agentMetrics?.observeBargeIn(record))
    ch.handle('stream.send', (id: string, msg: string | Uint8Array) => { this.streams.get(id)?.send(asBuffer(msg)) })
    ch.handle('stream.closed', (id: string) => {
      const s = this.streams.get(id)
      this.streams.delete(id)
      s?.close()
    })
    const lost = (why: string) => {
      if (!p.alive) return
      p.alive = false
      // What was waiting on it (an API action, a leg's SDP) answers 503, not 500.
      p.channel.fail(new CallControlError('unavailable', `media worker ${p.index} ${why}`))
      if (this.stopping) return
      // Its media stream sockets will hear nothing more: close them now.
      for (const [id, st] of this.streams) {
        if (st.plane !== p) continue
        this.streams.delete(id)
        st.close()
      }
      this.o.logger.error({ mediaWorker: p.index, calls: p.calls.size }, `media worker ${why}: ending its calls`)
      // Rooms it mixed, taken before its calls are forgotten (which may empty them here).
      const rooms = [...this.conferenceWorker].filter(([, home]) => home === p).map(([id]) => id)
      for (const callId of p.calls.keys()) {
        this.forget(p, callId, true)
        void this.o.control()?.lost(callId, 'error-media-worker').catch(() => {})
      }
      for (const conferenceId of rooms) void this.closeLostConference(conferenceId)
    }
    p.worker.on('error', (err: Error) => lost(`failed: ${err.message}`))
    p.worker.on('exit', (code) => lost(`exited (${code})`))
  }

  // ------------------------------------------------------------------ placement

  private place(callId: string): PlaneWorker {
    const existing = this.callWorker.get(callId)
    if (existing?.alive) return existing
    const alive = this.planes.filter((p) => p.alive)
    if (alive.length === 0) throw new Error('no media worker is running')
    const least = Math.min(...alive.map((p) => p.calls.size))
    // Round-robin among the least loaded, so an idle pool still spreads calls.
    for (let k = 0; k < this.planes.length; k++) {
      const p = this.planes[(this.rr + k) % this.planes.length]!
      if (p.alive && p.calls.size === least) { this.rr = (p.index + 1) % this.planes.length; return p }
    }
    return alive[0]!
  }

  private remember(p: PlaneWorker, callId: string): void {
    p.calls.set(callId, (p.calls.get(callId) ?? 0) + 1)
    this.callWorker.set(callId, p)
  }

  private forget(p: PlaneWorker, callId: string, all = false): void {
    const n = (p.calls.get(callId) ?? 0) - 1
    if (n > 0 && !all) { p.calls.set(callId, n); return }
    p.calls.delete(callId)
    if (this.callWorker.get(callId) === p) { this.callWorker.delete(callId); this.dialogs.delete(callId) }
    this.dropMember(callId)
  }

  /** The call's media is gone: it left its room, and a room with no one left is forgotten here too. */
  private dropMember(callId: string): void {
    for (const [conferenceId, members] of this.conferenceMembers) {
      if (!members.delete(callId) || members.size > 0) continue
      this.conferenceMembers.delete(conferenceId)
      this.conferenceWorker.delete(conferenceId)
    }
  }

  // ------------------------------------------------------------------ MediaBinder

  answer(ctx: CallContext, remoteSdp: string): Promise<MediaLeg> {
    return this.newLeg(ctx, (p) => p.channel.request('answer', [ctx, remoteSdp]))
  }

  offer(ctx: CallContext): Promise<MediaLeg> {
    return this.newLeg(ctx, (p) => p.channel.request('offer', [ctx]))
  }

  private async newLeg(ctx: CallContext, make: (p: PlaneWorker) => Promise<{ legId: string; localSdp: string }>): Promise<MediaLeg> {
    const p = this.place(ctx.callId)
    this.remember(p, ctx.callId)
    try {
      const { legId, localSdp } = await make(p)
      return new RemoteLeg(this, p, ctx.callId, legId, localSdp)
    } catch (err) {
      this.forget(p, ctx.callId)
      throw err
    }
  }

  /** A number whose target is a conference: the call joins it as through the API (mixed on the room's worker, linked if elsewhere). */
  async joinConference(callId: string, conferenceId: string): Promise<void> {
    const call = await this.o.store.calls.getById(callId)
    if (!call) throw new Error(`call ${callId} has no record`)
    await this.api().conferenceJoin!(call, conferenceId, {})
  }

  /** @internal RemoteLeg */
  attachDialog(callId: string, dialog: Srf.Dialog): void {
    this.dialogs.set(callId, dialog)
  }

  /** @internal RemoteLeg */
  legClosed(p: PlaneWorker, callId: string): void {
    this.forget(p, callId)
  }

  // ------------------------------------------------------------------ API media actions

  private planeOf(call: Call): PlaneWorker {
    const p = this.callWorker.get(call.id)
    if (p?.alive) return p
    throw noMediaError(call, false, this.o.isLocal(call.id))
  }

  private act<T>(p: PlaneWorker, name: PlaneAction, args: unknown[]): Promise<T> {
    return p.channel.request<T>('action', [name, args])
  }

  private async conferenceHome(conferenceId: string): Promise<PlaneWorker | undefined> {
    const p = this.conferenceWorker.get(conferenceId)
    if (p?.alive && await p.channel.request<boolean>('conference.active', [conferenceId])) return p
    this.conferenceWorker.delete(conferenceId)
    return undefined
  }

  private joined(conferenceId: string, callId: string): void {
    // A join moves the call out of any other room (ConferenceRooms does the same in-process).
    for (const members of this.conferenceMembers.values()) members.delete(callId)
    let members = this.conferenceMembers.get(conferenceId)
    if (!members) this.conferenceMembers.set(conferenceId, (members = new Set()))
    members.add(callId)
  }

  /**
   * The worker mixing a conference died: its members on other workers were
   * unlinked with it (their links closed) and hear their agents again; the
   * store is told the room is gone, as the last member leaving would have.
   */
  private async closeLostConference(conferenceId: string): Promise<void> {
    this.conferenceWorker.delete(conferenceId)
    const members = this.conferenceMembers.get(conferenceId) ?? new Set<string>()
    this.conferenceMembers.delete(conferenceId)
    try {
      for (const callId of members) {
        if (this.callWorker.get(callId)?.alive) await this.o.store.calls.attach(callId, { conferenceId: null })
      }
      await this.o.store.conferences.setStatus(conferenceId, 'completed')
    } catch (err) {
      this.o.logger.error({ err, conferenceId }, 'conference of a dead media worker could not be closed in the store')
    }
  }

  /** The CallControl methods this provides, to pass as `media` to createApiCallControl. */
  api(): CallControl {
    const byCall = (name: PlaneAction) => (call: Call, opts: unknown) => this.act<never>(this.planeOf(call), name, [call, opts])
    const methods = Object.fromEntries(
      (['say', 'play', 'sendDtmf', 'startRecording', 'stopRecording', 'mute', 'unmute', 'transcribe', 'externalMedia', 'interrupt'] as const satisfies readonly PlaneAction[]).map((n) => [n, byCall(n)]),
    ) as Pick<CallControl, 'say' | 'play' | 'sendDtmf' | 'startRecording' | 'stopRecording' | 'mute' | 'unmute' | 'transcribe' | 'externalMedia' | 'interrupt'>
    /**
     * prompt, listen and echo wait for as long as their media runs (the RPC has
     * no timeout). A worker that dies meanwhile takes the call with it (it is
     * hung up): they end as the call's end ends them, 'ended', not with a 503.
     */
    const untilEnded = <T>(name: PlaneAction, ended: T) => async (call: Call, opts: unknown): Promise<T> => {
      const p = this.planeOf(call)
      try {
        return await this.act<T>(p, name, [call, opts])
      } catch (err) {
        if (!p.alive) return ended
        throw err
      }
    }
    return {
      ...methods,
      prompt: untilEnded<PromptResult>('prompt', { result: 'ended' }),
      listen: untilEnded<ListenResult>('listen', { reason: 'ended', digits: '' }),
      echo: untilEnded<void>('echo', undefined),
      agentTalk: untilEnded<AgentTalkResult>('agentTalk', { reason: 'ended' }),
      detectMachine: (call, opts) => untilEnded<MachineDetection>('detectMachine', { result: 'ended' })(call, opts),
      bridge: async (call, other) => {
        const a = this.planeOf(call)
        const b = this.planeOf(other)
        if (a === b) return this.act(a, 'bridge', [call, other])
        // Relay when the codecs match, as a local Bridge would; else decoded frames.
        type Codec = { name: string; clockRate: number; sampleRate: number } | null
        const [ca, cb] = await Promise.all([a.channel.request<Codec>('link.codec', [call]), b.channel.request<Codec>('link.codec', [other])])
        if (!ca || !cb) throw new CallControlError('invalid_state', 'both calls must have negotiated media before bridging')
        const mode = ca.name === cb.name && ca.clockRate === cb.clockRate && ca.sampleRate === cb.sampleRate ? 'relay' : 'transcode'
        // Each worker links its own call; the first failure closes its port, which ends the other half.
        const { port1, port2 } = new MessageChannel()
        const r = await a.channel.request<ActionResult>('link.call', [call, { callId: other.id, mode }, port1], [port1])
        await b.channel.request('link.call', [other, { callId: call.id, mode }, port2], [port2])
        return r
      },
      conferenceJoin: async (call, conferenceId, opts) => {
        const p = this.planeOf(call)
        const home = await this.conferenceHome(conferenceId)
        if (home && home !== p) {
          const { port1, port2 } = new MessageChannel()
          await p.channel.request('link.call', [call, { conferenceId, muted: opts.muted ?? false }, port1], [port1])
          const r = await home.channel.request<ActionResult>('link.member', [call, conferenceId, opts.muted ?? false, port2], [port2])
          this.joined(conferenceId, call.id)
          return r
        }
        const r = await this.act<ActionResult>(p, 'conferenceJoin', [call, conferenceId, opts])
        this.conferenceWorker.set(conferenceId, p)
        this.joined(conferenceId, call.id)
        return r
      },
      conferenceKick: async (call, conferenceId) => {
        const p = this.planeOf(call)
        // A member linked from another worker is kicked where the room is mixed.
        const r = await this.act<ActionResult>((await this.conferenceHome(conferenceId)) ?? p, 'conferenceKick', [call, conferenceId])
        this.dropMember(call.id)
        return r
      },
      conferenceRecord: async (conferenceId, accountId, on) => {
        // No home: any worker gives the same "no such conference" answer.
        const p = (await this.conferenceHome(conferenceId)) ?? this.planes.find((w) => w.alive)
        if (!p) throw new CallControlError('unavailable', 'no media worker is running')
        return this.act(p, 'conferenceRecord', [conferenceId, accountId, on])
      },
      openStream: (call, opts) => this.openStream(call, opts),
    }
  }

  private async openStream(call: Call, opts: { encapsulation: string; send: (msg: string | Buffer) => void; close: () => void }): Promise<MediaStreamHandle> {
    const p = this.planeOf(call)
    const id = randomUUID()
    this.streams.set(id, { plane: p, send: opts.send, close: opts.close })
    try {
      await p.channel.request('stream.open', [id, call, opts.encapsulation])
    } catch (err) {
      this.streams.delete(id)
      throw err
    }
    return {
      onMessage: (msg) => p.channel.notify('stream.message', [id, msg]),
      close: () => { this.streams.delete(id); p.channel.notify('stream.close', [id]) },
    }
  }

  // ------------------------------------------------------------------ lifecycle

  stats(): Promise<MediaPlaneStats[]> {
    return Promise.all(this.planes.filter((p) => p.alive).map((p) => p.channel.request<MediaPlaneStats>('stats')))
  }

  async stop(): Promise<void> {
    if (this.stopping) return
    this.stopping = true
    await Promise.all(this.planes.map(async (p) => {
      if (p.alive) await p.channel.request('stop').catch(() => {})
      await p.worker.terminate()
    }))
  }
}

/** A call's leg in a worker: every MediaLeg call is one message, localSdp kept in step. */
class RemoteLeg implements MediaLeg {
  private closed = false

  constructor(private readonly planes: WorkerMediaPlanes, private readonly p: PlaneWorker, private readonly callId: string, private readonly legId: string, public localSdp: string) {}

  async setRemote(sdp: string): Promise<string> {
    const r = await this.p.channel.request<{ answer: string; localSdp: string }>('leg.setRemote', [this.legId, sdp])
    this.localSdp = r.localSdp
    return r.answer
  }

  attach(dialog: Srf.Dialog): void {
    this.planes.attachDialog(this.callId, dialog)
    this.p.channel.notify('leg.attach', [this.legId, this.callId])
  }

  async holdOffer(held: boolean): Promise<string> {
    const r = await this.p.channel.request<{ offer: string; localSdp: string }>('leg.holdOffer', [this.legId, held])
    this.localSdp = r.localSdp
    return r.offer
  }

  setHold(held: boolean): Promise<void> {
    return this.p.channel.request('leg.setHold', [this.legId, held])
  }

  say(text: string): Promise<void> {
    return this.p.channel.request('leg.say', [this.legId, text])
  }

  injectDtmf(digit: string, durationMs?: number): void {
    if (!this.closed && this.p.alive) this.p.channel.notify('leg.injectDtmf', [this.legId, digit, durationMs])
  }

  /** The worker's leg has stored what the end-of-call report needs (quality, recordings, summary). */
  async settled(): Promise<void> {
    if (this.p.alive) await this.p.channel.request('leg.settled', [this.legId])
  }

  async close(reason: string): Promise<void> {
    if (this.closed) return
    this.closed = true
    try {
      if (this.p.alive) await this.p.channel.request('leg.close', [this.legId, reason])
    } finally {
      this.planes.legClosed(this.p, this.callId)
    }
  }
}
