/**
 * RTP/RTCP port allocation over RTP_PORT_MIN..RTP_PORT_MAX. RTP uses even
 * ports and RTCP the next odd one (RFC 3550 §11); both are bound even when
 * rtcp-mux (RFC 5761) is negotiated, so a late fallback to separate RTCP has
 * its port. Allocation walks a cursor round-robin so a just-freed port is not
 * reused immediately (late packets of the old call would hit the new one).
 */
import { createSocket, type Socket } from 'node:dgram'

export interface PortPair {
  port: number
  rtp: Socket
  rtcp: Socket
}

const RTP_RCVBUF = 1 << 20

function syncLookup(hostname: string, _opts: unknown, cb: (err: Error | null, address: string, family: number) => void): void {
  cb(null, hostname, 4)
}

function bindSocket(port: number, host: string): Promise<Socket | null> {
  return new Promise((resolve) => {
    // A synchronous lookup for IP literals keeps dgram.send() synchronous (no
    // nextTick DNS hop), so the caller's send buffer can be reused right away.
    const s = createSocket({ type: 'udp4', reuseAddr: false, lookup: syncLookup as never })
    const onError = () => { s.close(); resolve(null) }
    s.once('error', onError)
    s.bind(port, host, () => {
      s.off('error', onError)
      resolve(s)
    })
  })
}

export class PortPool {
  readonly min: number
  readonly max: number
  private readonly host: string
  private cursor: number
  private readonly inUse = new Set<number>()

  constructor(min: number, max: number, host = '0.0.0.0') {
    const evenMin = min % 2 === 0 ? min : min + 1
    if (max - evenMin < 1) throw new RangeError(`RTP port range ${min}-${max} holds no even/odd pair`)
    this.min = evenMin
    this.max = max
    this.host = host
    this.cursor = evenMin
  }

  get capacity(): number { return Math.floor((this.max - this.min + 1) / 2) }
  get used(): number { return this.inUse.size }

  async allocate(): Promise<PortPair> {
    const slots = this.capacity
    for (let i = 0; i < slots; i++) {
      const port = this.cursor
      this.cursor += 2
      if (this.cursor + 1 > this.max) this.cursor = this.min
      if (this.inUse.has(port)) continue
      this.inUse.add(port)
      const rtp = await bindSocket(port, this.host)
      if (!rtp) { this.inUse.delete(port); continue }
      // A deeper receive queue (a cap, not an allocation) lets a burst or a
      // flood of foreign packets be read and counted instead of overflowing
      // the default ~200 KB queue and taking the call's own packets with it.
      try { rtp.setRecvBufferSize(RTP_RCVBUF) } catch { /* capped by net.core.rmem_max */ }
      const rtcp = await bindSocket(port + 1, this.host)
      if (!rtcp) { rtp.close(); this.inUse.delete(port); continue }
      return { port, rtp, rtcp }
    }
    throw new Error(`RTP port pool ${this.min}-${this.max} exhausted (${this.inUse.size} in use)`)
  }

  release(pair: PortPair): void {
    try { pair.rtp.close() } catch { /* already closed */ }
    try { pair.rtcp.close() } catch { /* already closed */ }
    this.inUse.delete(pair.port)
  }
}
