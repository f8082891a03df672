import t from 'tap'
import { DigestAuthenticator, computeDigestResponse, computeHa1, ha1Pair } from '../../../sip/app/digest-auth.ts'
import { TrunkIdentifier, type InboundTrunk } from '../../../sip/app/trunk-identifier.ts'

const ipTrunk: InboundTrunk = { id: 't-ip', accountId: 'a', name: 'carrier-ip', inboundIps: ['203.0.113.0/24'] }
const narrow: InboundTrunk = { id: 't-narrow', accountId: 'a', name: 'carrier-narrow', inboundIps: ['203.0.113.7'] }
const digestTrunk: InboundTrunk = { id: 't-dig', accountId: 'a', name: 'carrier-digest', inboundIps: ['198.51.100.0/24'], inboundAuth: { username: 'carrier', realm: 'trunks.test', ...ha1Pair('carrier', 'trunks.test', 'pw') } }

function auth(challenge: string, password: string): string {
  const nonce = /nonce="([^"]+)"/.exec(challenge)![1]!
  const ha1 = computeHa1('SHA-256', 'carrier', 'trunks.test', password)
  const response = computeDigestResponse(ha1, 'INVITE', { algorithm: 'SHA-256', nonce, uri: 'sip:+1@x', qop: 'auth', nc: '00000001', cnonce: 'c' })
  return `Digest username="carrier", realm="trunks.test", nonce="${nonce}", uri="sip:+1@x", response="${response}", algorithm=SHA-256, qop=auth, nc=00000001, cnonce="c"`
}

t.test('IP allow-list identifies the most specific trunk', async (t) => {
  const id = new TrunkIdentifier(new DigestAuthenticator(), [ipTrunk, narrow, digestTrunk])
  t.match(await id.identify({ source: '203.0.113.7', method: 'INVITE', requestHost: 'x' }), { kind: 'trunk', via: 'ip', trunk: { id: 't-narrow' } })
  t.match(await id.identify({ source: '203.0.113.8', method: 'INVITE', requestHost: 'x' }), { kind: 'trunk', via: 'ip', trunk: { id: 't-ip' } })
})

t.test('unknown source → 403', async (t) => {
  const id = new TrunkIdentifier(new DigestAuthenticator(), [ipTrunk, digestTrunk])
  t.match(await id.identify({ source: '192.0.2.1', method: 'INVITE', requestHost: 'x' }), { kind: 'reject', status: 403 })
})

t.test('digest trunk: 407 challenge, then the right credentials identify it, wrong ones get 403', async (t) => {
  const id = new TrunkIdentifier(new DigestAuthenticator(), [ipTrunk, digestTrunk])
  const ch = await id.identify({ source: '198.51.100.9', method: 'INVITE', requestHost: 'x' })
  t.match(ch, { kind: 'challenge', realm: 'trunks.test' })
  const header = (ch as { headers: string[] }).headers[0]!
  t.match(await id.identify({ source: '198.51.100.9', method: 'INVITE', requestHost: 'x', proxyAuthorization: auth(header, 'pw') }), { kind: 'trunk', via: 'digest', trunk: { id: 't-dig' } })
  const ch2 = (await id.identify({ source: '198.51.100.9', method: 'INVITE', requestHost: 'x' }) as { headers: string[] }).headers[0]!
  t.match(await id.identify({ source: '198.51.100.9', method: 'INVITE', requestHost: 'x', proxyAuthorization: auth(ch2, 'wrong') }), { kind: 'reject', status: 403 })
})

t.test('credential-only trunk (no allow-list) challenges any source', async (t) => {
  const open: InboundTrunk = { ...digestTrunk, id: 't-open', inboundIps: [] }
  const id = new TrunkIdentifier(new DigestAuthenticator(), [open])
  t.match(await id.identify({ source: '192.0.2.1', method: 'INVITE', requestHost: 'x' }), { kind: 'challenge' })
})

t.test('extensions of the target domain authenticate with the account realm', async (t) => {
  const ext = { id: 'e1', accountId: 'a', username: '101', realm: 'acme.test', ...ha1Pair('101', 'acme.test', 'x') }
  const id = new TrunkIdentifier(new DigestAuthenticator(), [ipTrunk], {
    realmFor: (h) => (h === 'acme.test' ? 'acme.test' : null),
    find: (u, r) => (u === '101' && r === 'acme.test' ? ext : null),
  })
  const ch = await id.identify({ source: '192.0.2.50', method: 'INVITE', requestHost: 'acme.test' })
  t.match(ch, { kind: 'challenge', realm: 'acme.test' })
  const nonce = /nonce="([^"]+)"/.exec((ch as { headers: string[] }).headers[0]!)![1]!
  const resp = computeDigestResponse(ext.ha1Md5, 'INVITE', { algorithm: 'MD5', nonce, uri: 'sip:1@acme.test', qop: 'auth', nc: '00000001', cnonce: 'z' })
  const h = `Digest username="101", realm="acme.test", nonce="${nonce}", uri="sip:1@acme.test", response="${resp}", algorithm=MD5, qop=auth, nc=00000001, cnonce="z"`
  t.match(await id.identify({ source: '192.0.2.50', method: 'INVITE', requestHost: 'acme.test', proxyAuthorization: h }), { kind: 'extension', extension: { id: 'e1' } })
  t.match(await id.identify({ source: '192.0.2.50', method: 'INVITE', requestHost: 'other.test' }), { kind: 'reject', status: 403 })
})
