import WebSocket from 'ws'
import type { Logger } from 'pino'
import type { OutboundUrlPolicy } from '../config/outbound-url-policy.ts'
import { CallControlError } from './call-control.ts'
import type { LiveMedia } from './live-media.ts'
import { CallMediaStream, type StreamEncapsulation } from './media-stream.ts'

/**
 * A call's audio forked to a WebSocket the engine dials out to (VoipBin
 * external_media_start/stop): the same encapsulations and both directions as
 * the API's `GET /v1/calls/:id/stream` (media-stream.ts CallMediaStream), but
 * we are the client. The URL is a tenant's, so it passes the outbound URL
 * policy, and the connection only goes to the addresses it approved. No
 * redirects are followed.
 *
 * It ends when turned off (a Twilio client gets `stop`, then the socket
 * closes), when the far end closes the socket, or with the call.
 */
export const EXTERNAL_MEDIA_ENCAPSULATIONS = ['twilio', 'raw', 'pcmu'] as const
export type ExternalMediaEncapsulation = (typeof EXTERNAL_MEDIA_ENCAPSULATIONS)[number]

/** How long the far end has to accept the WebSocket. */
const CONNECT_TIMEOUT_MS = 10_000

export class ExternalMediaFork {
  private closed = false
  private readonly closeListeners: Array<() => void> = []

  private constructor(private readonly ws: WebSocket, private readonly stream: CallMediaStream, readonly url: string, readonly encapsulation: ExternalMediaEncapsulation) {}

  /**
   * Connects and starts forking. Rejects with CallControlError 'rejected'
   * when the URL is refused or the far end does not accept the socket.
   */
  static async open(o: { live: LiveMedia; url: string; encapsulation: ExternalMediaEncapsulation; urlPolicy?: OutboundUrlPolicy | undefined; log: Logger }): Promise<ExternalMediaFork> {
    let u: URL
    try { u = new URL(o.url) } catch { throw new CallControlError('rejected', `externalMedia: ${o.url} is not a URL`) }
    if (u.protocol !== 'ws:' && u.protocol !== 'wss:') throw new CallControlError('rejected', `externalMedia: the URL must be ws:// or wss:// (got ${u.protocol})`)
    // The policy speaks http(s): ws→http, wss→https reach the same hosts.
    const asHttp = o.url.replace(/^ws/i, 'http')
    await o.urlPolicy?.check(asHttp).catch((err: unknown) => { throw new CallControlError('rejected', `externalMedia: ${(err as Error).message}`) })
    const lookup = o.urlPolicy?.lookupFor(asHttp)
    const ws = new WebSocket(o.url, { handshakeTimeout: CONNECT_TIMEOUT_MS, followRedirects: false, ...(lookup ? { lookup } : {}) })
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve())
      ws.once('error', (err) => reject(new CallControlError('rejected', `externalMedia: cannot connect to ${o.url}: ${err.message}`)))
      ws.once('unexpected-response', (_req, res) => { ws.terminate(); reject(new CallControlError('rejected', `externalMedia: ${o.url} answered HTTP ${res.statusCode}`)) })
    })
    ws.on('error', (err) => o.log.warn({ err: err.message }, 'external media: socket error'))
    const send = (msg: string | Buffer) => { if (ws.readyState === WebSocket.OPEN) ws.send(msg) }
    const stream = new CallMediaStream(o.live.session, o.live.output, o.encapsulation as StreamEncapsulation, send, o.live.ctx.callId)
    const fork = new ExternalMediaFork(ws, stream, o.url, o.encapsulation)
    ws.on('message', (data, isBinary) => stream.onMessage(isBinary ? toBuffer(data) : data.toString()))
    ws.on('close', () => fork.close())
    stream.start()
    return fork
  }

  /** Runs once when the fork ends, whoever ended it. */
  onClose(fn: () => void): void {
    if (this.closed) fn()
    else this.closeListeners.push(fn)
  }

  /** Stops forking: a Twilio client is told `stop`, then the socket closes. */
  close(): void {
    if (this.closed) return
    this.closed = true
    this.stream.close()
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) this.ws.close(1000)
    for (const fn of this.closeListeners.splice(0)) fn()
  }
}

function toBuffer(data: WebSocket.RawData): Buffer {
  return Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data)
}
