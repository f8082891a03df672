/**
 * What the main thread and a media-plane worker (media-plane-worker.ts,
 * worker-planes.ts) agree on beyond RpcChannel itself: the worker's
 * start-up data, the API media actions it serves, and the clone fix-up for
 * stream messages.
 */
import type { MediaEngineOptions } from '../../media/media-engine.ts'
import type { LogLevel } from '../../config/config.ts'

export interface MediaPlaneInit {
  index: number
  engine: Omit<MediaEngineOptions, 'logger' | 'registry'>
  /** RTPENGINE_NG: each worker keeps its own ng client (plain UDP). */
  rtpengineNg?: string
  allowPrivateUrls: boolean
  recordingsDir: string
  mediaRoots: string[]
  logLevel: LogLevel
}

/** The API media actions a worker serves (CallControl methods; openStream has its own messages). */
export const PLANE_ACTIONS = [
  'say', 'play', 'sendDtmf', 'startRecording', 'stopRecording', 'mute', 'unmute', 'bridge', 'conferenceJoin', 'conferenceKick', 'conferenceRecord',
  'prompt', 'listen', 'echo', 'transcribe', 'externalMedia', 'interrupt',
  'agentTalk', 'detectMachine',
] as const
export type PlaneAction = (typeof PLANE_ACTIONS)[number]

/** A structured clone turns a Buffer into a plain Uint8Array; the stream code wants Buffers back. */
export function asBuffer(msg: string | Uint8Array): string | Buffer {
  return typeof msg === 'string' || Buffer.isBuffer(msg) ? msg : Buffer.from(msg.buffer, msg.byteOffset, msg.byteLength)
}
