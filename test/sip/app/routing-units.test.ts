import t from 'tap'
import type Srf from 'drachtio-srf'
import { calledNumber } from '../../../sip/app/inbound-router.ts'
import { ConcurrencyLimiter } from '../../../sip/app/concurrency-limiter.ts'
import { trunkUri, receivedToProxy } from '../../../sip/app/outbound-dialer.ts'
import { withDirection, directionOf, isHoldOffer } from '../../../sip/app/hold.ts'

/** Just enough of a parsed request for calledNumber (header access). */
function req(uri: string, headers: Record<string, string>): Srf.SrfRequest {
  const h = Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), v]))
  return { uri, get: (n: string) => h[n.toLowerCase()] ?? '', has: (n: string) => n.toLowerCase() in h } as unknown as Srf.SrfRequest
}

t.test('called number by trunk configuration', async (t) => {
  const r = req('sip:+15550001@10.0.0.1', {
    To: '<sip:+15550002@carrier>',
    Diversion: '<sip:+15550009@x>;reason=unconditional, <sip:+15550003@carrier>;reason=user-busy',
    'P-Called-Party-ID': '<sip:+15550004@carrier>',
  })
  t.equal(calledNumber(r), '+15550001', 'Request-URI by default')
  t.equal(calledNumber(r, 'to'), '+15550002')
  t.equal(calledNumber(r, 'diversion'), '+15550003', 'Diversion: the last entry is the original called number (RFC 5806)')
  t.equal(calledNumber(r, 'p-called-party-id'), '+15550004')
  t.equal(calledNumber(req('sip:123@h', {}), 'diversion'), '123', 'falls back to the Request-URI')
})

t.test('concurrency limiter: all-or-nothing across keys, release once', async (t) => {
  const l = new ConcurrencyLimiter()
  const a = l.tryAcquire([{ key: 'trunk:1', limit: 1 }, { key: 'account:a', limit: 2 }])!
  t.ok(a)
  t.equal(l.tryAcquire([{ key: 'trunk:1', limit: 1 }, { key: 'account:a', limit: 2 }]), null, 'trunk full')
  t.equal(l.count('account:a'), 1, 'a refused call takes no account slot')
  const b = l.tryAcquire([{ key: 'trunk:2', limit: null }, { key: 'account:a', limit: 2 }])!
  t.equal(l.tryAcquire([{ key: 'trunk:3', limit: 5 }, { key: 'account:a', limit: 2 }]), null, 'account full')
  a.release(); a.release()
  t.equal(l.count('account:a'), 1, 'double release counts once')
  b.release()
  t.equal(l.count('account:a'), 0)
})

t.test('trunk Request-URI and NAT proxy', async (t) => {
  t.equal(trunkUri({ host: 'sip.carrier.com', techPrefix: '99#' }, '+4930123'), 'sip:99#+4930123@sip.carrier.com')
  t.equal(trunkUri({ host: '10.0.0.1', port: 5080, transport: 'tcp' }, '+1'), 'sip:+1@10.0.0.1:5080;transport=tcp')
  t.equal(trunkUri({ host: '2001:db8::1', port: 5060 }, '+1'), 'sip:+1@[2001:db8::1]:5060')
  t.equal(receivedToProxy('udp:203.0.113.9:40000'), 'sip:203.0.113.9:40000;transport=udp')
  t.equal(receivedToProxy('tcp:2001:db8::5:5060'), 'sip:[2001:db8::5]:5060;transport=tcp')
  t.equal(receivedToProxy(null), undefined)
})

t.test('hold SDP (RFC 3264 §8.4)', async (t) => {
  const sdp = 'v=0\r\no=- 1 5 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n'
  const held = withDirection(sdp, 'sendonly')
  t.match(held, /a=sendonly\r\n$/)
  t.notMatch(held, /a=sendrecv/)
  t.match(held, /^o=- 1 6 IN IP4/m, 'version bumped')
  t.equal(directionOf(held), 'sendonly')
  t.ok(isHoldOffer(held))
  t.notOk(isHoldOffer(sdp))
  t.ok(isHoldOffer(sdp.replace('c=IN IP4 1.2.3.4', 'c=IN IP4 0.0.0.0')), 'RFC 2543 0.0.0.0 hold')
})
