/**
 * Where the peer is. The SDP says where it receives; we send there until the
 * receiver latches onto the source RTP actually comes from (symmetric RTP,
 * RFC 4961), then to that source. RTCP goes to where RTCP last came from,
 * else to the RTP port (rtcp-mux, RFC 5761) or the SDP's RTCP port.
 */
export class RemotePeer {
  /** Where the SDP says the peer receives. */
  sdpAddr: string | null = null
  sdpPort = 0
  /** Where we send: the SDP address until latched, then the source we latched. */
  addr: string | null = null
  port = 0
  latched = false
  rtcpMux = false
  /** The SDP's RTCP port (a=rtcp, or RTP port + 1). */
  sdpRtcpPort = 0
  /** Where the peer's RTCP came from, once it did. */
  rtcpAddr: string | null = null
  rtcpPort = 0

  /**
   * Applies negotiated addresses. A new address or port (re-INVITE) drops
   * the latch, to be learnt again; returns true then.
   */
  setFromSdp(address: string, rtpPort: number, rtcpPort: number, rtcpMux: boolean): boolean {
    let moved = false
    if (address !== this.sdpAddr || rtpPort !== this.sdpPort) {
      this.sdpAddr = address
      this.sdpPort = rtpPort
      this.addr = address
      this.port = rtpPort
      this.latched = false
      this.rtcpAddr = null
      moved = true
    }
    this.sdpRtcpPort = rtcpPort
    this.rtcpMux = rtcpMux
    return moved
  }

  /** RTP from now on comes from, and goes to, this source. */
  latch(address: string, port: number): void {
    this.latched = true
    this.addr = address
    this.port = port
  }

  /** Destination address for RTCP (only meaningful while `addr` is set). */
  get rtcpDestAddr(): string {
    return this.rtcpAddr ?? this.addr!
  }

  /** Destination port for RTCP; 0 when there is none. */
  get rtcpDestPort(): number {
    return this.rtcpAddr ? this.rtcpPort : this.rtcpMux ? this.port : this.sdpRtcpPort
  }
}
