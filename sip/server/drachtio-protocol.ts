/**
 * The drachtio wire protocol, server side: `<byte length>#<msgId>|<type>|tokens...[CRLF<sip message>]`
 * over TCP. Message types and token positions follow what drachtio-srf's
 * `lib/drachtio-agent.js` sends and parses.
 */
import { createServer, type Server, type Socket } from 'node:net'
import { EventEmitter } from 'node:events'
import { randomUUID } from 'node:crypto'

export interface ClientMessage {
  msgId: string
  type: string
  /** Tokens after the type. */
  args: string[]
  /** Raw SIP message following the leader line, if any. */
  sip?: string
}

const MAX_FRAME = 4 * 1024 * 1024

let nextConnId = 1

/** One application connection (an Srf instance). */
export class AppConnection extends EventEmitter<{ message: [ClientMessage]; close: [] }> {
  readonly id = `app${nextConnId++}`
  authenticated = false
  tags: string[] = []
  /** Routed verbs, lowercase (methods, and `cdr:attempt` etc.). */
  readonly routes = new Set<string>()
  private buf: Buffer = Buffer.alloc(0)
  private corked = false
  closed = false

  constructor(readonly socket: Socket) {
    super()
    socket.setNoDelay(true)
    socket.setKeepAlive(true)
    socket.on('data', (d: Buffer) => this.onData(d))
    socket.on('error', () => { /* close follows */ })
    socket.on('close', () => { this.closed = true; this.emit('close') })
  }

  private onData(d: Buffer): void {
    this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d
    for (;;) {
      const hash = this.buf.indexOf(0x23) // '#'
      if (hash < 0) {
        if (this.buf.length > 12) return this.fail()
        return
      }
      const lenStr = this.buf.toString('latin1', 0, hash)
      if (!/^\d{1,9}$/.test(lenStr)) return this.fail()
      const len = Number(lenStr)
      if (len <= 0 || len > MAX_FRAME) return this.fail()
      if (this.buf.length < hash + 1 + len) return
      const frame = this.buf.toString('utf8', hash + 1, hash + 1 + len)
      this.buf = this.buf.subarray(hash + 1 + len)
      const msg = parseClientMessage(frame)
      if (!msg) return this.fail()
      this.emit('message', msg)
      if (this.closed) return
    }
  }

  private fail(): void {
    // A framing error leaves the stream unsynchronised; drachtio-server drops the client too.
    this.buf = Buffer.alloc(0)
    this.socket.destroy()
  }

  /** Sends `msgId|payload`; returns the msgId. */
  send(payload: string): string {
    const id = randomUUID()
    if (this.closed || this.socket.destroyed) return id
    // Encode once: the frame length is in bytes, so the UTF-8 form is needed anyway.
    const body = Buffer.from(`${id}|${payload}`, 'utf8')
    // Coalesce the frames produced while handling one event (e.g. a request and its cdr) into one
    // write. Not across events: an app awaiting a promise resolved by one frame must get a
    // microtask turn before the next frame (drachtio-srf apps attach dialog listeners after `await`).
    if (!this.corked) {
      this.corked = true
      this.socket.cork()
      process.nextTick(() => { this.corked = false; this.socket.uncork() })
    }
    this.socket.write(Buffer.concat([Buffer.from(`${body.length}#`, 'latin1'), body]))
    return id
  }

  /** Replies to a client request: `response|<clientMsgId>|<text>[CRLF<sip>]`. */
  respond(clientMsgId: string, text: string, sip?: string): void {
    this.send(`response|${clientMsgId}|${text}${sip !== undefined ? '\r\n' + sip : ''}`)
  }

  routesVerb(verb: string): boolean { return this.routes.has(verb.toLowerCase()) }

  close(): void {
    this.socket.end()
    setTimeout(() => this.socket.destroy(), 200).unref()
  }
}

export function parseClientMessage(frame: string): ClientMessage | undefined {
  const crlf = frame.indexOf('\r\n')
  const leader = crlf >= 0 ? frame.slice(0, crlf) : frame
  const tokens = leader.split('|')
  if (tokens.length < 2) return undefined
  return {
    msgId: tokens[0]!,
    type: tokens[1]!,
    args: tokens.slice(2),
    sip: crlf >= 0 ? frame.slice(crlf + 2) : undefined,
  }
}

/** Message metadata in drachtio's order: source|len|protocol|address|port|time. */
export interface Meta { source: 'network' | 'application'; length: number; protocol: string; address: string; port: number; time: string }

export function formatMeta(m: Meta): string {
  return `${m.source}|${m.length}|${m.protocol}|${m.address}|${m.port}|${m.time}`
}

/** drachtio stamps messages with a wall-clock time of day. */
let lastMs = 0
let lastTime = ''
export function stackTime(): string {
  const now = Date.now()
  if (now !== lastMs) {
    lastMs = now
    lastTime = new Date(now).toISOString().slice(11, 23)
  }
  return lastTime
}

export class ControlServer extends EventEmitter<{ connection: [AppConnection] }> {
  private server?: Server
  readonly apps = new Set<AppConnection>()

  async listen(host: string, port: number): Promise<void> {
    const srv = createServer((sock) => {
      const app = new AppConnection(sock)
      this.apps.add(app)
      app.on('close', () => this.apps.delete(app))
      this.emit('connection', app)
    })
    this.server = srv
    await new Promise<void>((resolve, reject) => {
      srv.once('error', reject)
      srv.listen(port, host, () => { srv.off('error', reject); resolve() })
    })
  }

  get port(): number {
    const a = this.server?.address()
    return typeof a === 'object' && a ? a.port : 0
  }

  async close(): Promise<void> {
    for (const a of this.apps) a.socket.destroy()
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()))
  }
}
