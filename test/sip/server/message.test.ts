import t from 'tap'
import { parseMessage, parseNameAddr, parseUri, parseVia, validateRequest, makeResponse } from '../../../sip/server/message.ts'

const raw = (lines: string[], body = ''): Buffer => Buffer.from(lines.join('\r\n') + '\r\n\r\n' + body)

t.test('compact forms, folding, multi-valued headers, quoted display names, IPv6', async (t) => {
  const m = parseMessage(raw([
    'INVITE sip:bob@[2001:db8::1]:5070;transport=tcp SIP/2.0',
    'v: SIP/2.0/TCP [2001:db8::9]:5062;branch=z9hG4bK1;rport, SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK0',
    'Via: SIP/2.0/UDP 10.0.0.2:5060;branch=z9hG4bKz',
    'f: "Doe, \\"J\\"" <sip:j@example.com>;tag=abc',
    't: <sip:bob@[2001:db8::1]>',
    'i: call-1@host',
    'CSeq: 7 INVITE',
    'm: <sip:j@10.0.0.1>;expires=60, "x" <sip:k@10.0.0.3>',
    'Subject: folded',
    '  across lines',
    'c: application/sdp',
    'l: 3',
  ], 'abc'))
  t.equal(m.get('call-id'), 'call-1@host')
  t.equal(m.getAll('via').length, 3, 'Via values split across lines and commas')
  t.same(m.topVia && { host: m.topVia.host, port: m.topVia.port, transport: m.topVia.transport }, { host: '[2001:db8::9]', port: 5062, transport: 'TCP' })
  t.equal(m.getAll('contact').length, 2)
  t.equal(m.fromTag, 'abc')
  t.equal(parseNameAddr(m.get('from')!)!.display, '"Doe, \\"J\\""')
  t.equal(m.get('subject'), 'folded across lines')
  t.equal(m.body.toString(), 'abc')
  t.equal(validateRequest(m), undefined)
  t.same(parseUri(m.uri), { scheme: 'sip', user: 'bob', password: undefined, host: '[2001:db8::1]', port: 5070, params: { transport: 'tcp' }, headers: '' })
  const res = makeResponse(m, 180, undefined, 'totag')
  t.match(res.toString(), /^SIP\/2\.0 180 Ringing\r\n/)
  t.match(res.get('to')!, /;tag=totag$/)
  t.equal(res.getAll('via').length, 3)
})

t.test('limits and framing errors', async (t) => {
  t.throws(() => parseMessage(Buffer.alloc(70_000, 0x41)), { message: 'Message Too Large' })
  const many = ['OPTIONS sip:a@b SIP/2.0', ...Array.from({ length: 300 }, (_, i) => `X-${i}: y`)]
  t.throws(() => parseMessage(raw(many)), { message: 'Too Many Headers' })
  t.throws(() => parseMessage(raw(['OPTIONS sip:a@b SIP/2.0', 'Content-Length: 10'], 'abc')), { message: 'Content-Length Exceeds Message' })
  t.throws(() => parseMessage(raw(['OPTIONS sip:a@b SIP/2.0']), { stream: true }), { message: 'Missing Content-Length' })
  t.throws(() => parseMessage(raw(['OPTIONS sip:a@b SIP/3.0', 'Via: SIP/2.0/UDP h;branch=z9hG4bKx'])), { message: 'Version Not Supported' })
  const body = parseMessage(raw(['MESSAGE sip:a@b SIP/2.0', 'Content-Length: 2'], 'hello'))
  t.equal(body.body.toString(), 'he', 'extra datagram bytes beyond Content-Length are ignored (§18.3)')
})

t.test('Via parsing with rport and received', async (t) => {
  const v = parseVia('SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKa;rport;received=10.1.1.1')
  t.same(v?.params, { branch: 'z9hG4bKa', rport: null, received: '10.1.1.1' })
  t.equal(parseVia('SIP/2.0/UDP'), undefined)
})
