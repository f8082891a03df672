/**
 * A session's RTCP (RFC 3550 §6): a sender/receiver report with SDES CNAME
 * every ~5 s at randomised intervals, the peer's reports in (round-trip time,
 * what the peer saw of our stream), and BYE on close. The packet codec is
 * ../rtp/rtcp.ts; this is the per-session state and timing.
 */
import type { RemoteInfo, Socket } from 'node:dgram'
import { estimateMos, ntpMiddle, ntpNow, parseRtcp, rttMs, writeRtcpBye, writeRtcpReport, type RtcpInfo } from '../rtp/rtcp.ts'
import { RTP_HEADER_SIZE } from '../rtp/packet.ts'
import { hrtimeMs } from '../scheduler.ts'
import type { RemotePeer } from './remote-peer.ts'
import type { RtpReceiver } from './rtp-receiver.ts'
import type { RtpSender } from './rtp-sender.ts'
import type { GarbageCounters, MediaSessionStats, SessionEvents } from './types.ts'

export interface RtcpSockets { rtp: Socket; rtcp: Socket }

export class RtcpChannel {
  private readonly buf = new Uint8Array(256)
  private readonly ntp = new Uint32Array(2)
  private readonly info: RtcpInfo = { senderSsrc: 0, srNtpMiddle: -1, fractionLost: 0, cumulativeLost: 0, jitter: 0, lsr: 0, dlsr: 0, hasBlockForUs: false, bye: false }
  private lastSrMiddle = 0
  private lastSrArrivalMs = 0
  private tickCount = 0
  private intervalTicks: number
  private readonly cname: string
  private closed = false
  /** The RTP clock rate, for the peer's jitter in ms; 0 before negotiation. */
  clockRate = 0
  rtt: number | null = null
  remoteReport: MediaSessionStats['remoteReport'] = null
  sent = 0
  received = 0

  constructor(
    private readonly sockets: RtcpSockets,
    private readonly peer: RemotePeer,
    private readonly sender: RtpSender,
    private readonly receiver: RtpReceiver,
    private readonly events: SessionEvents,
    private readonly garbage: GarbageCounters,
    private readonly intervalMs: number,
    sessionId: string,
  ) {
    this.cname = `${sessionId.slice(0, 16)}@callplane`
    sockets.rtcp.on('message', this.onMessage)
    // RFC 3550 §6.3.2: the first report comes after half the interval, randomised
    // over [0.5, 1.5]: sessions created in one burst (a bench, a mass call-out)
    // must not all send RTCP in the same tick, which showed as late ticks.
    this.intervalTicks = Math.max(1, Math.round((intervalMs / 2 / 20) * (0.5 + Math.random())))
  }

  private readonly onMessage = (msg: Buffer, rinfo: RemoteInfo): void => {
    if (this.closed) return
    this.receive(msg, msg.length, rinfo.address, rinfo.port)
  }

  /** An RTCP compound packet, on the RTCP port or demuxed from the RTP port. */
  receive(msg: Uint8Array, len: number, address: string, port: number): void {
    if (!parseRtcp(msg, len, this.sender.ssrc, this.info)) { this.garbage.rtcpInvalid++; return }
    // RTCP comes from the peer we latched RTP from (same host).
    if (this.peer.latched && address !== this.peer.addr) { this.garbage.wrongSource++; return }
    this.received++
    this.peer.rtcpAddr = address
    this.peer.rtcpPort = port
    const info = this.info
    const now = hrtimeMs()
    if (info.srNtpMiddle >= 0) {
      this.lastSrMiddle = info.srNtpMiddle
      this.lastSrArrivalMs = now
    }
    if (info.hasBlockForUs) {
      const rtt = rttMs(ntpMiddle(ntpNow(this.ntp)), info.lsr, info.dlsr)
      if (rtt >= 0) this.rtt = rtt
      this.remoteReport = {
        fractionLostPercent: Math.round((info.fractionLost / 256) * 1000) / 10,
        cumulativeLost: info.cumulativeLost,
        jitterMs: this.clockRate ? Math.round((info.jitter * 10000) / this.clockRate) / 10 : 0,
      }
    }
    this.events.emit('rtcp', { ...info })
  }

  /** Once per egress tick: a report when the interval is up. */
  tick(): void {
    if (++this.tickCount < this.intervalTicks) return
    // §6.3.1: randomise each interval over [0.5, 1.5] × T so sessions started together do not synchronise.
    this.tickCount = 0
    this.intervalTicks = Math.max(1, Math.round((this.intervalMs / 20) * (0.5 + Math.random())))
    this.sendReport()
  }

  /** SR if we sent anything (else RR), with one report block on the stream we latched (§6.4). */
  private sendReport(): void {
    if (!this.clockRate || !this.peer.addr) return
    const port = this.peer.rtcpDestPort
    if (!port) return
    const ntp = ntpNow(this.ntp)
    const s = this.sender
    const sender = s.packetsSent > 0 ? { rtpTimestamp: s.ts, packetCount: s.packetsSent, octetCount: Math.max(0, s.bytesSent - s.packetsSent * RTP_HEADER_SIZE) } : null
    let block = null
    const rx = this.receiver.rxStats
    if (this.receiver.latchedSsrc >= 0 && rx.received > 0) {
      const dlsr = this.lastSrArrivalMs ? Math.round(((hrtimeMs() - this.lastSrArrivalMs) / 1000) * 65536) : 0
      block = {
        ssrc: this.receiver.latchedSsrc,
        fractionLost: rx.takeFractionLost(),
        cumulativeLost: rx.lost,
        extendedMaxSeq: rx.extendedMaxSeq >>> 0,
        jitter: rx.jitter,
        lsr: this.lastSrMiddle,
        dlsr,
      }
    }
    const len = writeRtcpReport(this.buf, s.ssrc, ntp, sender, block, this.cname)
    this.socket.send(this.buf, 0, len, port, this.peer.rtcpDestAddr)
    this.sent++
  }

  /** With rtcp-mux (RFC 5761) RTCP leaves from the RTP socket. */
  private get socket(): Socket {
    return this.peer.rtcpMux ? this.sockets.rtp : this.sockets.rtcp
  }

  /** RFC 3550 §6.6: an empty RR and BYE as the session ends; resolves once sent. */
  async sendBye(): Promise<void> {
    if (!this.peer.addr || !this.clockRate) return
    const len = writeRtcpReport(this.buf, this.sender.ssrc, ntpNow(this.ntp), null, null, this.cname)
    const byeLen = writeRtcpBye(this.buf.subarray(len), this.sender.ssrc)
    const port = this.peer.rtcpDestPort
    const addr = this.peer.rtcpDestAddr
    await new Promise<void>((resolve) => this.socket.send(this.buf, 0, len + byeLen, port, addr, () => resolve()))
  }

  /** Mean opinion score from the round-trip time, the jitter buffer's delay and loss (ITU-T G.107 E-model). */
  mos(jitterTargetDepth: number, lossPercent: number, codec: Parameters<typeof estimateMos>[2]): number {
    const oneWay = (this.rtt ?? 0) / 2 + jitterTargetDepth * 20
    return estimateMos(oneWay, lossPercent, codec)
  }

  close(): void {
    this.closed = true
    this.sockets.rtcp.off('message', this.onMessage)
  }
}
