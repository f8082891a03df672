import type { MediaSessionStats } from '../media/session/media-session.ts'
import type { CallQuality } from '../store/calls.ts'

/**
 * A call's `quality` (GET /v1/calls/:id, the end-of-call report) from its
 * media session's counters: what we measured on the caller's stream
 * (RFC 3550 §6.4.1 interarrival jitter, loss from sequence gaps), the round
 * trip from the peer's RTCP receiver reports (§6.4.1 LSR/DLSR; null until
 * the peer has sent one), and an E-model MOS estimate (ITU-T G.107,
 * media/rtp/rtcp.ts). `remote` is what the peer reported about our stream.
 */
export function callQualityOf(s: MediaSessionStats): CallQuality {
  return {
    codec: s.codec,
    jitterMs: s.jitterMs,
    maxJitterMs: s.maxJitterMs,
    lossPct: s.fractionLostPercent,
    packetsLost: s.packetsLost,
    rttMs: s.rttMs,
    mos: Math.round(s.mos * 100) / 100,
    packetsIn: s.packetsReceived,
    packetsOut: s.packetsSent,
    late: s.late,
    concealed: s.concealed,
    rtcpIn: s.rtcpReceived,
    rtcpOut: s.rtcpSent,
    remote: s.remoteReport,
    measuredAt: new Date().toISOString(),
  }
}
