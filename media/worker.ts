/**
 * Media worker thread: owns one MediaEngine (its sockets, scheduler and
 * sessions) and serves WorkerRequests from the parent over the MessagePort.
 * Signalling never blocks on media: all calls are asynchronous messages.
 */
import { parentPort, workerData } from 'node:worker_threads'
import { randomUUID } from 'node:crypto'
import { MediaEngine } from './engine.ts'
import type { MediaSession } from './session.ts'
import { Bridge } from './bridge.ts'
import { sourceFromSpec } from './playback.ts'
import type { WavRecorder } from './recorder.ts'
import type { WebSocketFork } from './fork.ts'
import type { AudioFrame, FrameSink, SampleRate } from './frame.ts'
import type { EventMessage, RequestMessage, ResponseMessage, WorkerInit, WorkerOp } from './worker-protocol.ts'

if (!parentPort) throw new Error('media/worker.ts must run in a worker thread')
const port = parentPort
const init = workerData as WorkerInit
const engine = new MediaEngine(init.engine)

interface Entry {
  session: MediaSession
  recorders: Map<string, WavRecorder>
  forks: Map<string, WebSocketFork>
  frameSink: FrameSink | null
  bridge: Bridge | null
}
const sessions = new Map<string, Entry>()

function post(msg: EventMessage | ResponseMessage, transfer: ArrayBuffer[] = []): void {
  port.postMessage(msg, transfer)
}

function entry(id: string | undefined): Entry {
  const e = id ? sessions.get(id) : undefined
  if (!e) throw new Error(`no media session ${id}`)
  return e
}

async function handle(msg: RequestMessage): Promise<unknown> {
  const op: WorkerOp = msg.op
  const a = msg.args as unknown[]
  switch (op) {
    case 'createSession': {
      const s = await engine.createSession(a[0] as Parameters<MediaEngine['createSession']>[0])
      const e: Entry = { session: s, recorders: new Map(), forks: new Map(), frameSink: null, bridge: null }
      sessions.set(s.id, e)
      s.on('dtmf', (p) => post({ kind: 'event', sessionId: s.id, name: 'dtmf', payload: p }))
      s.on('timeout', (p) => post({ kind: 'event', sessionId: s.id, name: 'timeout', payload: p }))
      s.on('flushed', (p) => post({ kind: 'event', sessionId: s.id, name: 'flushed', payload: p }))
      s.on('negotiated', (p) => post({ kind: 'event', sessionId: s.id, name: 'negotiated', payload: p }))
      s.on('closed', () => { sessions.delete(s.id); post({ kind: 'event', sessionId: s.id, name: 'closed', payload: {} }) })
      return { id: s.id, localPort: s.localPort }
    }
    case 'engineStats': return engine.stats()
    case 'stop': await engine.stop(); return undefined
    default: break
  }
  const e = entry(msg.sessionId)
  const s = e.session
  switch (op) {
    case 'createOffer': return s.createOffer()
    case 'createAnswer': return s.createAnswer(a[0] as string)
    case 'setRemoteDescription': return s.setRemoteDescription(a[0] as string)
    case 'hold': return s.hold()
    case 'unhold': return s.unhold()
    case 'play': return s.play(await sourceFromSpec(a[0] as Parameters<typeof sourceFromSpec>[0], s.codecSampleRate()))
    case 'enqueue': s.enqueue(a[0] as Int16Array, a[1] as SampleRate); return undefined
    case 'endEnqueue': s.endEnqueue(); return undefined
    case 'flush': s.flush(); return undefined
    case 'sendDtmf': return s.sendDtmf(a[0] as string, a[1] as number)
    case 'injectDtmf': s.injectDtmf(a[0] as string, a[1] as number); return undefined
    case 'mute': s.mute(a[0] as 'in'); return undefined
    case 'unmute': s.unmute(a[0] as 'in'); return undefined
    case 'startRecording': {
      const id = randomUUID()
      e.recorders.set(id, s.startRecording(a[0] as string, a[1] as 'stereo'))
      return id
    }
    case 'stopRecording': {
      const rec = e.recorders.get(a[0] as string)
      if (!rec) throw new Error('no such recording')
      e.recorders.delete(a[0] as string)
      return s.stopRecording(rec)
    }
    case 'startFork': {
      const id = randomUUID()
      e.forks.set(id, await s.startFork(a[0] as Parameters<MediaSession['startFork']>[0]))
      return id
    }
    case 'stopFork': {
      const f = e.forks.get(a[0] as string)
      if (f) { e.forks.delete(a[0] as string); await s.stopFork(f) }
      return undefined
    }
    case 'subscribeFrames': {
      if (e.frameSink) s.removeSink(e.frameSink)
      const rate = a[0] as SampleRate | null
      const sink: FrameSink = {
        onFrame(f: AudioFrame) {
          const samples = f.samples.slice()
          post({ kind: 'event', sessionId: s.id, name: 'frame', payload: { samples, sampleRate: f.sampleRate, rtpTimestamp: f.rtpTimestamp, receivedAt: f.receivedAt } }, [samples.buffer as ArrayBuffer])
        },
      }
      e.frameSink = sink
      s.addSink(sink, rate ? { sampleRate: rate } : {})
      return undefined
    }
    case 'bridge': {
      const other = entry(a[0] as string)
      const b = new Bridge(s, other.session)
      e.bridge = b
      other.bridge = b
      return b.mode
    }
    case 'unbridge': e.bridge?.unbridge(); e.bridge = null; return undefined
    case 'stats': return s.stats()
    case 'close': await s.close(); return undefined
    default: throw new Error(`unknown op ${op}`)
  }
}

port.on('message', (msg: RequestMessage) => {
  handle(msg).then(
    (result) => post({ kind: 'res', id: msg.id, ok: true, result }),
    (err: Error & { status?: number }) => post({ kind: 'res', id: msg.id, ok: false, error: { message: err.message, status: err.status } }),
  )
})
port.postMessage({ kind: 'ready' })
