import t from 'tap'
import sdpTransform from 'sdp-transform'
import { SdpNegotiator, SdpError, combineDirections } from '../../media/sdp/negotiator.ts'

const offerFrom = (m: string, extra = '', c = '10.0.0.5') =>
  `v=0\r\no=- 1 1 IN IP4 ${c}\r\ns=-\r\nc=IN IP4 ${c}\r\nt=0 0\r\n${m}\r\n${extra}`

t.test('answer picks our preferred codec among the offered, keeps telephone-event PT', async (t) => {
  const n = new SdpNegotiator({ codecs: ['G722', 'PCMA', 'PCMU'], address: '192.0.2.1', port: 30000 })
  const { answer, negotiated } = n.processOffer(offerFrom('m=audio 4000 RTP/AVP 0 8 96', 'a=rtpmap:96 telephone-event/8000\r\na=ptime:20\r\n'))
  t.equal(negotiated.codec.name, 'PCMA')
  t.equal(negotiated.dtmfPayloadType, 96)
  t.equal(negotiated.remoteAddress, '10.0.0.5')
  t.equal(negotiated.remoteRtpPort, 4000)
  t.equal(negotiated.remoteRtcpPort, 4001, 'RTCP on port+1 without rtcp-mux')
  const parsed = sdpTransform.parse(answer)
  t.equal(parsed.media[0]!.payloads, '8 96')
  t.equal(parsed.media[0]!.port, 30000)
  t.equal(parsed.connection?.ip, '192.0.2.1')
  t.notOk(parsed.media[0]!.rtcpMux, 'no rtcp-mux when the offer lacks it')
})

t.test('opus offer with fmtp and rtcp-mux', async (t) => {
  const n = new SdpNegotiator({ codecs: ['opus', 'PCMU'], address: '192.0.2.1', port: 30000 })
  const { negotiated, answer } = n.processOffer(offerFrom('m=audio 5000 RTP/AVP 111 0 101', 'a=rtpmap:111 opus/48000/2\r\na=fmtp:111 useinbandfec=1;stereo=1\r\na=rtpmap:101 telephone-event/48000\r\na=rtcp-mux\r\n'))
  t.match(negotiated.codec, { name: 'opus', payloadType: 111, clockRate: 48000, fmtp: 'useinbandfec=1;stereo=1' })
  t.ok(negotiated.rtcpMux)
  t.equal(negotiated.remoteRtcpPort, 5000)
  t.match(answer, /a=rtpmap:111 opus\/48000\/2/)
  t.match(answer, /a=rtcp-mux/)
})

t.test('no common codec is a 488', async (t) => {
  const n = new SdpNegotiator({ codecs: ['PCMU'], address: '192.0.2.1', port: 30000 })
  let status = 0
  try { n.processOffer(offerFrom('m=audio 4000 RTP/AVP 18', 'a=rtpmap:18 G729/8000\r\n')) } catch (err) { status = (err as SdpError).status }
  t.equal(status, 488)
  t.throws(() => n.processOffer('garbage'), { message: /no audio|unparseable/ })
})

t.test('hold: directions combine per RFC 3264 §6.1, c=0.0.0.0 is hold', async (t) => {
  t.equal(combineDirections('sendrecv', 'sendonly'), 'recvonly')
  t.equal(combineDirections('sendrecv', 'recvonly'), 'sendonly')
  t.equal(combineDirections('sendrecv', 'inactive'), 'inactive')
  t.equal(combineDirections('sendonly', 'sendrecv'), 'sendonly')
  t.equal(combineDirections('sendonly', 'sendonly'), 'inactive')
  const n = new SdpNegotiator({ codecs: ['PCMU'], address: '192.0.2.1', port: 30000 })
  const a1 = n.processOffer(offerFrom('m=audio 4000 RTP/AVP 0', 'a=sendonly\r\n'))
  t.equal(a1.negotiated.direction, 'recvonly')
  t.match(a1.answer, /a=recvonly/)
  const a2 = n.processOffer(offerFrom('m=audio 4000 RTP/AVP 0', '', '0.0.0.0'))
  t.equal(a2.negotiated.direction, 'recvonly', 'old-style hold: we must not send')
  t.ok(Number(sdpTransform.parse(a2.answer).origin!.sessionVersion) > Number(sdpTransform.parse(a1.answer).origin!.sessionVersion), 'o= version increments')
})

t.test('offer/answer as offerer: answer codec and re-INVITE address change', async (t) => {
  const n = new SdpNegotiator({ codecs: ['PCMU', 'opus'], address: '192.0.2.1', port: 30000 })
  const offer = n.createOffer()
  t.match(offer, /m=audio 30000 RTP\/AVP 0 111 101 110/)
  const ans = n.processAnswer(offerFrom('m=audio 6000 RTP/AVP 111 101', 'a=rtpmap:111 opus/48000/2\r\na=rtpmap:101 telephone-event/8000\r\n'))
  t.equal(ans.codec.name, 'opus')
  t.equal(ans.dtmfPayloadType, 101)
  const hold = n.createOffer('sendonly')
  t.match(hold, /a=sendonly/)
  const ans2 = n.processAnswer(offerFrom('m=audio 6002 RTP/AVP 0', 'a=recvonly\r\n', '10.0.0.9'), 'sendonly')
  t.equal(ans2.remoteAddress, '10.0.0.9')
  t.equal(ans2.remoteRtpPort, 6002)
  t.equal(ans2.direction, 'sendonly')
  t.throws(() => n.processAnswer(offerFrom('m=audio 6002 RTP/AVP 9', 'a=rtpmap:9 G722/8000\r\n')), /no codec from our offer/)
})
