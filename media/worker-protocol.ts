/**
 * Messages across the signalling ↔ media boundary (MediaWorkerPool ↔ media
 * worker). Everything is structured-cloneable; PCM travels as transferable
 * Int16Array buffers.
 */
import type { MediaEngineOptions, MediaEngineStats } from './engine.ts'
import type { MediaSessionOptions, MediaSessionStats, PlaybackResult, MuteDirection, SessionDtmfEvent, SessionTimeoutEvent, FlushEvent } from './session.ts'
import type { RecordingMode, RecordingResult } from './recorder.ts'
import type { ForkOptions } from './fork.ts'
import type { PlaySpec } from './playback.ts'
import type { SampleRate } from './frame.ts'
import type { NegotiatedMedia } from './sdp/negotiator.ts'

export interface WorkerInit {
  engine: Omit<MediaEngineOptions, 'logger' | 'registry'>
  index: number
}

/** Request → result type map; `sessionId` addresses a session where relevant. */
export interface WorkerRequests {
  createSession: { args: [MediaSessionOptions]; result: { id: string; localPort: number } }
  createOffer: { args: []; result: string }
  createAnswer: { args: [string]; result: string }
  setRemoteDescription: { args: [string]; result: void }
  hold: { args: []; result: string }
  unhold: { args: []; result: string }
  play: { args: [PlaySpec]; result: PlaybackResult }
  enqueue: { args: [Int16Array, SampleRate]; result: void }
  endEnqueue: { args: []; result: void }
  flush: { args: []; result: void }
  sendDtmf: { args: [string, number]; result: boolean }
  injectDtmf: { args: [string, number]; result: void }
  mute: { args: [MuteDirection]; result: void }
  unmute: { args: [MuteDirection]; result: void }
  startRecording: { args: [string, RecordingMode]; result: string }
  stopRecording: { args: [string]; result: RecordingResult }
  startFork: { args: [ForkOptions]; result: string }
  stopFork: { args: [string]; result: void }
  subscribeFrames: { args: [SampleRate | null]; result: void }
  bridge: { args: [string]; result: 'relay' | 'transcode' }
  unbridge: { args: []; result: void }
  stats: { args: []; result: MediaSessionStats }
  close: { args: []; result: void }
  engineStats: { args: []; result: MediaEngineStats }
  stop: { args: []; result: void }
}

export type WorkerOp = keyof WorkerRequests

export interface RequestMessage<K extends WorkerOp = WorkerOp> {
  kind: 'req'
  id: number
  op: K
  sessionId?: string
  args: WorkerRequests[K]['args']
}

export type ResponseMessage =
  | { kind: 'res'; id: number; ok: true; result: unknown }
  | { kind: 'res'; id: number; ok: false; error: { message: string; status?: number } }

export interface SessionEventPayloads {
  dtmf: SessionDtmfEvent
  timeout: SessionTimeoutEvent
  flushed: FlushEvent
  negotiated: NegotiatedMedia
  frame: { samples: Int16Array; sampleRate: SampleRate; rtpTimestamp: number; receivedAt: number }
  closed: Record<string, never>
}

export type EventMessage = {
  [K in keyof SessionEventPayloads]: { kind: 'event'; sessionId: string; name: K; payload: SessionEventPayloads[K] }
}[keyof SessionEventPayloads]

export type WorkerMessage = ResponseMessage | EventMessage | { kind: 'ready' }
