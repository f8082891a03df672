/**
 * SIP transports (RFC 3261 §18): UDP datagrams and TCP streams framed by
 * Content-Length. The rest of the server sees only `Remote` endpoints and raw
 * message buffers, so TLS/WS can be added as more `protocol` values later.
 */
import { createSocket, type Socket as UdpSocket } from 'node:dgram'
import { createServer, connect, type Server, type Socket } from 'node:net'
import { EventEmitter } from 'node:events'
import { isIPv4, isIPv6 } from 'node:net'

export type Protocol = 'udp' | 'tcp'

export interface Remote {
  protocol: Protocol
  address: string
  port: number
}

export interface Inbound extends Remote {
  /** Local address/port the message arrived on. */
  localAddress: string
  localPort: number
}

export interface TransportOptions {
  host: string
  port: number
  maxMessageBytes: number
  logger?: { warn: (o: object, msg: string) => void; debug: (o: object, msg: string) => void }
}

export interface TransportEvents {
  message: [data: Buffer, from: Inbound, stream: boolean]
}

export function remoteKey(r: Remote): string {
  return `${r.protocol}:${r.address}:${r.port}`
}

/** Strips the IPv4-mapped prefix Node reports on dual-stack sockets. */
function normAddr(a: string | undefined): string {
  if (!a) return ''
  return a.startsWith('::ffff:') && a.includes('.') ? a.slice(7) : a
}

export class Transport extends EventEmitter<TransportEvents> {
  private udp?: UdpSocket
  private tcp?: Server
  private conns = new Map<string, Socket>()
  private pendingConnects = new Map<string, Buffer[]>()
  private closed = false
  private udp6 = false
  boundPort = 0

  constructor(private readonly opts: TransportOptions) { super() }

  async listen(): Promise<void> {
    const { host } = this.opts
    const family = isIPv6(host) ? 'udp6' : 'udp4'
    this.udp6 = family === 'udp6'
    const udp = createSocket({ type: family, reuseAddr: false })
    this.udp = udp
    udp.on('message', (msg, rinfo) => {
      this.emit('message', msg, {
        protocol: 'udp', address: normAddr(rinfo.address), port: rinfo.port,
        localAddress: this.opts.host, localPort: this.boundPort,
      }, false)
    })
    udp.on('error', (err) => this.opts.logger?.warn({ err }, 'udp socket error'))
    await new Promise<void>((resolve, reject) => {
      udp.once('error', reject)
      udp.bind(this.opts.port, host, () => { udp.off('error', reject); resolve() })
    })
    this.boundPort = udp.address().port
    // Bigger kernel buffers absorb bursts at high call rates.
    try { udp.setRecvBufferSize(8 * 1024 * 1024); udp.setSendBufferSize(8 * 1024 * 1024) } catch { /* not permitted */ }

    const tcp = createServer((sock) => this.adopt(sock))
    this.tcp = tcp
    await new Promise<void>((resolve, reject) => {
      tcp.once('error', reject)
      tcp.listen(this.boundPort, host, () => { tcp.off('error', reject); resolve() })
    })
  }

  get udpAddress(): string { return `udp:${this.hostForUri()}:${this.boundPort}` }
  get tcpAddress(): string { return `tcp:${this.hostForUri()}:${this.boundPort}` }
  private hostForUri(): string { return isIPv6(this.opts.host) ? `[${this.opts.host}]` : this.opts.host }

  private adopt(sock: Socket, key?: string): void {
    const remote: Inbound = {
      protocol: 'tcp', address: normAddr(sock.remoteAddress), port: sock.remotePort ?? 0,
      localAddress: normAddr(sock.localAddress), localPort: sock.localPort ?? this.boundPort,
    }
    const k = key ?? remoteKey(remote)
    this.conns.set(k, sock)
    sock.setNoDelay(true)
    let buf: Buffer = Buffer.alloc(0)
    sock.on('data', (chunk: Buffer) => {
      buf = buf.length ? Buffer.concat([buf, chunk]) : chunk
      buf = this.frame(buf, remote, sock)
    })
    sock.on('error', () => { /* close follows */ })
    sock.on('close', () => { if (this.conns.get(k) === sock) this.conns.delete(k) })
  }

  /**
   * Extracts complete messages from a TCP byte stream (§18.3: framing by
   * Content-Length). Returns the unconsumed remainder.
   */
  private frame(buf: Buffer, remote: Inbound, sock: Socket): Buffer {
    for (;;) {
      // RFC 5626 §3.5.1 keep-alive: CRLFCRLF ping is answered with a CRLF pong.
      let skip = 0
      while (skip + 1 < buf.length && buf[skip] === 0x0d && buf[skip + 1] === 0x0a) skip += 2
      if (skip) {
        if (skip >= 4) sock.write('\r\n')
        buf = buf.subarray(skip)
      }
      if (buf.length === 0) return buf
      const end = buf.indexOf('\r\n\r\n')
      if (end < 0) {
        if (buf.length > this.opts.maxMessageBytes) { sock.destroy(); return Buffer.alloc(0) }
        return buf
      }
      const head = buf.toString('latin1', 0, end)
      const m = /(?:^|\r\n)(?:content-length|l)[ \t]*:[ \t]*(\d+)/i.exec(head)
      const cl = m ? Number(m[1]) : 0
      const total = end + 4 + cl
      if (total > this.opts.maxMessageBytes) {
        // Cannot resynchronize a stream after an oversized message; drop the connection.
        sock.destroy()
        return Buffer.alloc(0)
      }
      if (buf.length < total) return buf
      const msg = Buffer.from(buf.subarray(0, total))
      buf = buf.subarray(total)
      this.emit('message', msg, remote, true)
    }
  }

  /** Sends to a remote; TCP reuses the connection the peer opened, else connects (§18.2.2). */
  send(to: Remote, data: Buffer): void {
    if (this.closed) return
    if (to.protocol === 'udp') {
      // A dual-stack socket ('::') reaches IPv4 peers through their v4-mapped address.
      const address = this.udp6 && isIPv4(to.address) ? `::ffff:${to.address}` : to.address
      this.udp?.send(data, to.port, address)
      return
    }
    const key = remoteKey(to)
    const sock = this.conns.get(key)
    if (sock && !sock.destroyed) { sock.write(data); return }
    const pending = this.pendingConnects.get(key)
    if (pending) { pending.push(data); return }
    const queue = [data]
    this.pendingConnects.set(key, queue)
    const s = connect({ host: to.address, port: to.port })
    s.once('connect', () => {
      this.pendingConnects.delete(key)
      this.adopt(s, key)
      for (const d of queue) s.write(d)
    })
    s.once('error', (err) => {
      this.pendingConnects.delete(key)
      this.opts.logger?.warn({ err, to }, 'tcp connect failed')
    })
  }

  async close(): Promise<void> {
    this.closed = true
    for (const s of this.conns.values()) s.destroy()
    this.conns.clear()
    await Promise.all([
      new Promise<void>((r) => (this.udp ? this.udp.close(() => r()) : r())),
      new Promise<void>((r) => (this.tcp ? this.tcp.close(() => r()) : r())),
    ])
  }
}
