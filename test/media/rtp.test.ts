import t from 'tap'
import { RtpPacketView, writeRtpHeader, seqDiff, looksLikeRtcp } from '../../media/rtp/packet.ts'
import { RtpReceiveStats } from '../../media/rtp/receive-stats.ts'
import { writeRtcpReport, parseRtcp, ntpNow, ntpMiddle, rttMs, estimateMos, writeRtcpBye, type RtcpInfo } from '../../media/rtp/rtcp.ts'

t.test('RTP header round trip and validation', async (t) => {
  const buf = new Uint8Array(172)
  writeRtpHeader(buf, 0, true, 65535, 0xfffffff0, 0xcafebabe)
  const v = new RtpPacketView()
  t.equal(v.parse(buf), null)
  t.match(v, { marker: true, payloadType: 0, sequence: 65535, timestamp: 0xfffffff0, ssrc: 0xcafebabe, payloadOffset: 12, payloadLength: 160 })
  t.equal(v.parse(buf, 11), 'short')
  const bad = buf.slice(); bad[0] = 0x40
  t.equal(v.parse(bad), 'version')
  // CSRC count + extension + padding.
  const ext = new Uint8Array(12 + 8 + 8 + 10 + 4)
  writeRtpHeader(ext, 8, false, 1, 2, 3)
  ext[0] = 0x80 | 0x20 | 0x10 | 2
  const eo = 12 + 8
  ext[eo + 3] = 1 // one word of extension
  ext[ext.length - 1] = 4 // 4 bytes padding
  t.equal(v.parse(ext), null)
  t.equal(v.payloadOffset, 12 + 8 + 8)
  t.equal(v.payloadLength, 10)
  const badPad = ext.slice(); badPad[badPad.length - 1] = 200
  t.equal(v.parse(badPad), 'padding')
  t.equal(seqDiff(2, 65534), 4)
  t.equal(seqDiff(65534, 2), -4)
})

t.test('receive stats: wrap, loss, duplicates, jitter (RFC 3550 A.1/A.3/A.8)', async (t) => {
  const s = new RtpReceiveStats(8000)
  for (let i = 0; i < 100; i++) {
    const seq = (65500 + i) & 0xffff
    if (i === 50 || i === 51) continue // lost
    t.not(s.update(seq), 'bad')
    s.updateJitter(i * 160, i * 20 + (i % 2 ? 4 : 0))
  }
  t.equal(s.update((65500 + 10) & 0xffff), 'duplicate')
  t.equal(s.expected, 100)
  t.equal(s.lost, 2)
  t.equal(s.extendedMaxSeq, 65536 + ((65500 + 99) & 0xffff))
  t.ok(s.jitterMs > 2 && s.jitterMs < 4.5, `jitter ${s.jitterMs.toFixed(2)} ms for ±4 ms alternation`)
  t.equal(s.takeFractionLost(), Math.floor((2 << 8) / 100))
  t.equal(s.update(30000), 'bad', 'huge jump dropped once')
  t.equal(s.update(30001), 'restart', 'then accepted as a restart')
})

t.test('RTCP SR/RR + SDES round trip gives RTT from LSR/DLSR', async (t) => {
  const buf = new Uint8Array(256)
  const ntp = ntpNow(new Uint32Array(2))
  const lsr = (ntpMiddle(ntp) - 65536 / 10) >>> 0 // we "sent" an SR 100 ms ago
  const len = writeRtcpReport(buf, 0x1111, ntp, { rtpTimestamp: 1234, packetCount: 50, octetCount: 8000 }, { ssrc: 0x2222, fractionLost: 64, cumulativeLost: 7, extendedMaxSeq: 70000, jitter: 40, lsr, dlsr: 65536 / 20 }, 'test@callplane')
  t.equal(len % 4, 0, '32-bit aligned')
  t.ok(looksLikeRtcp(buf, len), 'rtcp-mux demux recognises it (RFC 5761 §4)')
  const info: RtcpInfo = { senderSsrc: 0, srNtpMiddle: -1, fractionLost: 0, cumulativeLost: 0, jitter: 0, lsr: 0, dlsr: 0, hasBlockForUs: false, bye: false }
  t.ok(parseRtcp(buf, len, 0x2222, info))
  t.match(info, { senderSsrc: 0x1111, fractionLost: 64, cumulativeLost: 7, jitter: 40, hasBlockForUs: true })
  t.equal(info.srNtpMiddle, ntpMiddle(ntp))
  const rtt = rttMs(ntpMiddle(ntp), info.lsr, info.dlsr)
  t.ok(Math.abs(rtt - 50) < 1, `RTT ${rtt.toFixed(2)} ms = 100 ms since SR − 50 ms DLSR`)
  const bye = writeRtcpBye(buf.subarray(len), 0x1111)
  t.ok(parseRtcp(buf, len + bye, 0x2222, info))
  t.ok(info.bye)
  t.notOk(parseRtcp(buf.subarray(len), bye, 0x2222, info), 'BYE alone is not a valid compound')
})

t.test('E-model MOS estimate falls with loss and delay', async (t) => {
  const clean = estimateMos(20, 0, 'PCMU')
  t.ok(clean > 4.3 && clean <= 4.5, `clean ${clean}`)
  const lossy = estimateMos(20, 5, 'PCMU')
  t.ok(lossy < clean - 0.5, `5% loss ${lossy}`)
  t.ok(estimateMos(400, 0, 'PCMU') < clean - 0.5, 'long delay hurts')
})
