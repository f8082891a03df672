/**
 * MediaWorkerPool: runs MediaEngines in MEDIA_WORKERS worker threads and
 * hands out RemoteMediaSession proxies with the same asynchronous API as a
 * local MediaSession. The RTP port range is split evenly between workers so
 * each owns its sockets outright.
 */
import { Worker } from 'node:worker_threads'
import { EventEmitter } from 'node:events'
import type { MediaEngineOptions, MediaEngineStats } from './engine.ts'
import type { MediaSessionOptions, MediaSessionStats, PlaybackResult, MuteDirection, MediaSessionEvents } from './session.ts'
import type { RecordingMode, RecordingResult } from './recorder.ts'
import type { ForkOptions } from './fork.ts'
import type { PlaySpec } from './playback.ts'
import type { AudioFrame, SampleRate } from './frame.ts'
import type { RequestMessage, WorkerInit, WorkerMessage, WorkerOp, WorkerRequests } from './worker-protocol.ts'

class WorkerHandle {
  private readonly worker: Worker
  private nextId = 1
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>()
  readonly sessions = new Map<string, RemoteMediaSession>()
  readonly ready: Promise<void>

  constructor(init: WorkerInit) {
    // From TypeScript sources the worker needs tsx registered inside it
    // (module hooks are per thread); a compiled build loads worker.js directly.
    const fromSource = import.meta.url.endsWith('.ts')
    this.worker = new Worker(new URL(fromSource ? './worker-entry.mjs' : './worker.js', import.meta.url), { workerData: init })
    this.ready = new Promise((resolve, reject) => {
      const onMsg = (m: WorkerMessage) => { if (m.kind === 'ready') { this.worker.off('message', onMsg); resolve() } }
      this.worker.on('message', onMsg)
      this.worker.once('error', reject)
    })
    this.worker.on('message', (m: WorkerMessage) => this.onMessage(m))
    this.worker.on('error', (err: Error) => { for (const p of this.pending.values()) p.reject(err); this.pending.clear() })
  }

  private onMessage(m: WorkerMessage): void {
    if (m.kind === 'res') {
      const p = this.pending.get(m.id)
      if (!p) return
      this.pending.delete(m.id)
      if (m.ok) p.resolve(m.result)
      else p.reject(Object.assign(new Error(m.error.message), { status: m.error.status }))
    } else if (m.kind === 'event') {
      const s = this.sessions.get(m.sessionId)
      if (!s) return
      s.deliver(m.name, m.payload)
      if (m.name === 'closed') this.sessions.delete(m.sessionId)
    }
  }

  request<K extends WorkerOp>(op: K, sessionId: string | undefined, args: WorkerRequests[K]['args'], transfer: ArrayBuffer[] = []): Promise<WorkerRequests[K]['result']> {
    const id = this.nextId++
    const msg: RequestMessage<K> = { kind: 'req', id, op, sessionId, args }
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject })
      this.worker.postMessage(msg, transfer)
    })
  }

  async terminate(): Promise<void> {
    try { await this.request('stop', undefined, []) } catch { /* already gone */ }
    await this.worker.terminate()
  }
}

/** Events a remote session re-emits (same names and payloads as MediaSession). */
export interface RemoteMediaSessionEvents {
  dtmf: MediaSessionEvents['dtmf']
  timeout: MediaSessionEvents['timeout']
  flushed: MediaSessionEvents['flushed']
  negotiated: MediaSessionEvents['negotiated']
  frame: [AudioFrame]
  closed: []
}

/** Proxy for a MediaSession living in a worker. All methods are async messages. */
export class RemoteMediaSession extends EventEmitter<RemoteMediaSessionEvents> {
  constructor(private readonly h: WorkerHandle, readonly id: string, readonly localPort: number, readonly workerIndex: number) { super() }

  /** @internal */
  deliver(name: string, payload: unknown): void {
    if (name === 'closed') { this.emit('closed'); this.removeAllListeners(); return }
    ;(this.emit as (n: string, p: unknown) => boolean)(name, payload)
  }

  createOffer(): Promise<string> { return this.h.request('createOffer', this.id, []) }
  createAnswer(offer: string): Promise<string> { return this.h.request('createAnswer', this.id, [offer]) }
  setRemoteDescription(answer: string): Promise<void> { return this.h.request('setRemoteDescription', this.id, [answer]) }
  hold(): Promise<string> { return this.h.request('hold', this.id, []) }
  unhold(): Promise<string> { return this.h.request('unhold', this.id, []) }
  play(spec: PlaySpec): Promise<PlaybackResult> { return this.h.request('play', this.id, [spec]) }
  /** Transfers `pcm`'s buffer to the worker: do not use it afterwards. */
  enqueue(pcm: Int16Array, sampleRate: SampleRate): Promise<void> { return this.h.request('enqueue', this.id, [pcm, sampleRate], [pcm.buffer as ArrayBuffer]) }
  endEnqueue(): Promise<void> { return this.h.request('endEnqueue', this.id, []) }
  flush(): Promise<void> { return this.h.request('flush', this.id, []) }
  sendDtmf(digits: string, durationMs = 100): Promise<boolean> { return this.h.request('sendDtmf', this.id, [digits, durationMs]) }
  injectDtmf(digit: string, durationMs = 100): Promise<void> { return this.h.request('injectDtmf', this.id, [digit, durationMs]) }
  mute(direction: MuteDirection = 'both'): Promise<void> { return this.h.request('mute', this.id, [direction]) }
  unmute(direction: MuteDirection = 'both'): Promise<void> { return this.h.request('unmute', this.id, [direction]) }
  startRecording(path: string, mode: RecordingMode = 'stereo'): Promise<string> { return this.h.request('startRecording', this.id, [path, mode]) }
  stopRecording(recordingId: string): Promise<RecordingResult> { return this.h.request('stopRecording', this.id, [recordingId]) }
  startFork(opts: ForkOptions): Promise<string> { return this.h.request('startFork', this.id, [opts]) }
  stopFork(forkId: string): Promise<void> { return this.h.request('stopFork', this.id, [forkId]) }
  /** Starts 'frame' events (copied across the thread boundary), optionally resampled. */
  subscribeFrames(sampleRate: SampleRate | null = null): Promise<void> { return this.h.request('subscribeFrames', this.id, [sampleRate]) }
  /** Bridges with another session of the same worker (create it with `colocateWith`). */
  bridge(other: RemoteMediaSession): Promise<'relay' | 'transcode'> {
    if (other.h !== this.h) return Promise.reject(new Error('bridged sessions must live in the same media worker'))
    return this.h.request('bridge', this.id, [other.id])
  }
  unbridge(): Promise<void> { return this.h.request('unbridge', this.id, []) }
  stats(): Promise<MediaSessionStats> { return this.h.request('stats', this.id, []) }
  close(): Promise<void> { return this.h.request('close', this.id, []) }
}

export interface MediaWorkerPoolOptions extends Omit<MediaEngineOptions, 'logger' | 'registry'> {
  workers: number
}

export class MediaWorkerPool {
  private readonly handles: WorkerHandle[] = []
  private rr = 0

  constructor(opts: MediaWorkerPoolOptions) {
    const min = opts.rtpPortMin ?? 10000
    const max = opts.rtpPortMax ?? 20000
    const n = Math.max(1, opts.workers)
    const span = Math.floor((max - min + 1) / n) & ~1
    if (span < 2) throw new RangeError('RTP port range too small for the worker count')
    for (let i = 0; i < n; i++) {
      const lo = min + i * span
      const hi = i === n - 1 ? max : lo + span - 1
      const { workers: _w, ...engine } = opts
      this.handles.push(new WorkerHandle({ engine: { ...engine, rtpPortMin: lo, rtpPortMax: hi }, index: i }))
    }
  }

  get size(): number { return this.handles.length }

  async ready(): Promise<void> { await Promise.all(this.handles.map((h) => h.ready)) }

  /** Least-loaded worker (round-robin on ties), or the worker of `colocateWith`. */
  async createSession(opts: MediaSessionOptions & { colocateWith?: RemoteMediaSession } = {}): Promise<RemoteMediaSession> {
    const { colocateWith, ...sessionOpts } = opts
    let idx: number
    if (colocateWith) {
      idx = colocateWith.workerIndex
    } else {
      const loads = this.handles.map((h) => h.sessions.size)
      const min = Math.min(...loads)
      idx = this.rr % this.handles.length
      for (let k = 0; k < this.handles.length; k++) {
        const j = (this.rr + k) % this.handles.length
        if (loads[j] === min) { idx = j; break }
      }
      this.rr++
    }
    const h = this.handles[idx]!
    await h.ready
    const { id, localPort } = await h.request('createSession', undefined, [sessionOpts])
    const s = new RemoteMediaSession(h, id, localPort, idx)
    h.sessions.set(id, s)
    return s
  }

  stats(): Promise<MediaEngineStats[]> {
    return Promise.all(this.handles.map((h) => h.request('engineStats', undefined, [])))
  }

  async stop(): Promise<void> {
    await Promise.all(this.handles.map((h) => h.terminate()))
  }
}
