import t from 'tap'
import { createHash } from 'node:crypto'
import { DigestAuthenticator, computeDigestResponse, computeHa1, ha1Pair, parseDigestHeader, type DigestAlgorithm } from '../../../sip/app/digest-auth.ts'

const realm = 'acme.example'
const users = new Map([['alice', ha1Pair('alice', realm, 's3cret')]])
const lookup = (u: string) => users.get(u) ?? null

/** What a UA computes from a challenge (RFC 2617 §3.2.2). */
function answer(challenge: string, opts: { user?: string; password?: string; method?: string; nc?: number; alg?: DigestAlgorithm } = {}): string {
  const nonce = /nonce="([^"]+)"/.exec(challenge)![1]!
  const alg = opts.alg ?? (/algorithm=([A-Z0-9-]+)/.exec(challenge)![1] as DigestAlgorithm)
  const user = opts.user ?? 'alice'
  const uri = 'sip:acme.example'
  const nc = (opts.nc ?? 1).toString(16).padStart(8, '0')
  const cnonce = 'abcdef'
  const ha1 = computeHa1(alg, user, realm, opts.password ?? 's3cret')
  const response = computeDigestResponse(ha1, opts.method ?? 'REGISTER', { algorithm: alg, nonce, uri, qop: 'auth', nc, cnonce })
  return `Digest username="${user}", realm="${realm}", nonce="${nonce}", uri="${uri}", response="${response}", algorithm=${alg}, qop=auth, nc=${nc}, cnonce="${cnonce}"`
}

t.test('HA1 matches the RFC 2617 definition for MD5 and SHA-256', async (t) => {
  t.equal(computeHa1('MD5', 'alice', realm, 'pw'), createHash('md5').update(`alice:${realm}:pw`).digest('hex'))
  t.equal(computeHa1('SHA-256', 'alice', realm, 'pw'), createHash('sha256').update(`alice:${realm}:pw`).digest('hex'))
})

t.test('RFC 2617 §3.5 worked example', async (t) => {
  const ha1 = computeHa1('MD5', 'Mufasa', 'testrealm@host.com', 'Circle Of Life')
  const r = computeDigestResponse(ha1, 'GET', { algorithm: 'MD5', nonce: 'dcd98b7102dd2f0e8b11d0f600bfb0c093', uri: '/dir/index.html', qop: 'auth', nc: '00000001', cnonce: '0a4f113b' })
  t.equal(r, '6629fae49393a05397450978507c4ef1')
})

t.test('parses quoted and token params; rejects non-digest', async (t) => {
  const c = parseDigestHeader('Digest username="bob", realm="r", nonce="n", uri="sip:x", response="ABC", qop=auth, nc=00000001, cnonce="c", algorithm=SHA-256')
  t.match(c, { username: 'bob', realm: 'r', nonce: 'n', response: 'abc', qop: 'auth', nc: '00000001', algorithm: 'SHA-256' })
  t.equal(parseDigestHeader('Basic Zm9vOmJhcg=='), null)
  t.equal(parseDigestHeader('Digest username="x"'), null)
  t.equal(parseDigestHeader('Digest username="x", realm="r", nonce="n", uri="u", response="r", algorithm=MD5-sess'), null)
})

t.test('challenge offers MD5 then SHA-256 by default, both with qop=auth; order configurable', async (t) => {
  const a = new DigestAuthenticator()
  const ch = a.challenge(realm)
  t.equal(ch.length, 2)
  t.match(ch[0], /algorithm=MD5/)
  t.match(ch[1], /algorithm=SHA-256/)
  t.match(ch[0], /qop="auth"/)
  t.match(new DigestAuthenticator({ algorithms: ['SHA-256', 'MD5'] }).challenge(realm)[0], /algorithm=SHA-256/)
})

for (const alg of ['MD5', 'SHA-256'] as const) {
  t.test(`accepts a correct ${alg} response, rejects a wrong password`, async (t) => {
    const a = new DigestAuthenticator()
    const ch = a.challenge(realm).find((c) => c.includes(`algorithm=${alg}`))!
    const ok = await a.verify({ method: 'REGISTER', header: answer(ch), realm, source: '10.0.0.1', lookup })
    t.match(ok, { ok: true, username: 'alice', algorithm: alg })
    const bad = await a.verify({ method: 'REGISTER', header: answer(ch, { password: 'nope', nc: 2 }), realm, source: '10.0.0.1', lookup })
    t.match(bad, { ok: false, reason: 'bad-response' })
  })
}

t.test('missing credentials are not a failure', async (t) => {
  const a = new DigestAuthenticator({ lockout: { maxFailuresPerSource: 1 } })
  t.match(await a.verify({ method: 'REGISTER', header: undefined, realm, source: '1.1.1.1', lookup }), { ok: false, reason: 'missing' })
  t.match(await a.verify({ method: 'REGISTER', header: undefined, realm, source: '1.1.1.1', lookup }), { ok: false, reason: 'missing' })
})

t.test('a response for another method does not verify', async (t) => {
  const a = new DigestAuthenticator()
  const ch = a.challenge(realm)[0]!
  t.match(await a.verify({ method: 'INVITE', header: answer(ch, { method: 'REGISTER' }), realm, source: '1.1.1.1', lookup }), { ok: false, reason: 'bad-response' })
})

t.test('nonce replay: the same nc is refused, a higher nc accepted', async (t) => {
  const a = new DigestAuthenticator()
  const ch = a.challenge(realm)[0]!
  t.match(await a.verify({ method: 'REGISTER', header: answer(ch, { nc: 1 }), realm, source: 's', lookup }), { ok: true })
  t.match(await a.verify({ method: 'REGISTER', header: answer(ch, { nc: 1 }), realm, source: 's', lookup }), { ok: false, reason: 'replay' })
  t.match(await a.verify({ method: 'REGISTER', header: answer(ch, { nc: 2 }), realm, source: 's', lookup }), { ok: true })
})

t.test('expired and forged nonces are stale (re-challenge, stale=true)', async (t) => {
  let now = 1_000_000
  const a = new DigestAuthenticator({ nonceTtlMs: 10_000, now: () => now })
  const ch = a.challenge(realm)[0]!
  now += 11_000
  t.match(await a.verify({ method: 'REGISTER', header: answer(ch), realm, source: 's', lookup }), { ok: false, reason: 'stale' })
  const other = new DigestAuthenticator({ now: () => now })
  t.match(await a.verify({ method: 'REGISTER', header: answer(other.challenge(realm)[0]!), realm, source: 's', lookup }), { ok: false, reason: 'stale' })
  t.match(a.challenge(realm, true)[0], /stale=true/)
})

t.test('two nodes sharing the secret verify each other\'s nonces', async (t) => {
  const a = new DigestAuthenticator({ secret: 'shared' })
  const b = new DigestAuthenticator({ secret: 'shared' })
  t.match(await b.verify({ method: 'REGISTER', header: answer(a.challenge(realm)[0]!), realm, source: 's', lookup }), { ok: true })
})

t.test('per-user lockout is per source: the attacking address is locked out, the real user elsewhere is not; expires', async (t) => {
  let now = 5_000_000
  const a = new DigestAuthenticator({ now: () => now, lockout: { maxFailuresPerUser: 3, maxFailuresPerSource: 100, windowMs: 60_000, lockMs: 30_000 } })
  for (let i = 0; i < 3; i++) {
    const r = await a.verify({ method: 'REGISTER', header: answer(a.challenge(realm)[0]!, { password: 'guess' + i }), realm, source: '10.0.0.1', lookup })
    t.match(r, { ok: false, reason: 'bad-response' })
  }
  const locked = await a.verify({ method: 'REGISTER', header: answer(a.challenge(realm)[0]!), realm, source: '10.0.0.1', lookup })
  t.match(locked, { ok: false, reason: 'locked' }, 'the right password from the attacking source is refused')
  t.ok((locked as { retryAfterSec?: number }).retryAfterSec! > 0)
  t.match(await a.verify({ method: 'REGISTER', header: answer(a.challenge(realm)[0]!), realm, source: '10.9.9.9', lookup }), { ok: true }, 'the real user from another address is not locked out')
  now += 31_000
  t.match(await a.verify({ method: 'REGISTER', header: answer(a.challenge(realm)[0]!), realm, source: '10.0.0.1', lookup }), { ok: true }, 'the lockout expires')
})

t.test('failures spread over many sources lock no one out (no user-wide lockout)', async (t) => {
  const a = new DigestAuthenticator({ lockout: { maxFailuresPerUser: 3, maxFailuresPerSource: 100 } })
  for (let i = 0; i < 20; i++) {
    await a.verify({ method: 'REGISTER', header: answer(a.challenge(realm)[0]!, { password: 'guess' }), realm, source: `10.1.0.${i}`, lookup })
  }
  t.match(await a.verify({ method: 'REGISTER', header: answer(a.challenge(realm)[0]!), realm, source: '10.2.0.1', lookup }), { ok: true })
})

t.test('lockout state is bounded in memory under a spray from many addresses', async (t) => {
  const a = new DigestAuthenticator({ lockout: { maxFailuresPerUser: 2, maxFailuresPerSource: 2, maxEntries: 100 } })
  for (let i = 0; i < 1000; i++) {
    await a.verify({ method: 'REGISTER', header: answer(a.challenge(realm)[0]!, { password: 'guess' }), realm, source: `10.${i >> 8}.${i & 255}.1`, lookup })
  }
  const n = a.trackedEntries
  t.ok(n.sources <= 100 && n.userSources <= 100, `bounded (${JSON.stringify(n)})`)
  // the most recent attacker is still locked out after its second failure
  const last = '10.3.231.1'
  await a.verify({ method: 'REGISTER', header: answer(a.challenge(realm)[0]!, { password: 'guess' }), realm, source: last, lookup })
  t.match(await a.verify({ method: 'REGISTER', header: answer(a.challenge(realm)[0]!), realm, source: last, lookup }), { ok: false, reason: 'locked' })
})

t.test('per-source lockout covers unknown usernames (enumeration)', async (t) => {
  const a = new DigestAuthenticator({ lockout: { maxFailuresPerSource: 4, maxFailuresPerUser: 100 } })
  for (let i = 0; i < 4; i++) {
    t.match(await a.verify({ method: 'REGISTER', header: answer(a.challenge(realm)[0]!, { user: `u${i}` }), realm, source: '6.6.6.6', lookup }), { ok: false, reason: 'unknown-user' })
  }
  t.match(await a.verify({ method: 'REGISTER', header: answer(a.challenge(realm)[0]!), realm, source: '6.6.6.6', lookup }), { ok: false, reason: 'locked' })
  t.match(await a.verify({ method: 'REGISTER', header: answer(a.challenge(realm)[0]!), realm, source: '7.7.7.7', lookup }), { ok: true })
})

t.test('a success resets the user failure count', async (t) => {
  const a = new DigestAuthenticator({ lockout: { maxFailuresPerUser: 2, maxFailuresPerSource: 100 } })
  await a.verify({ method: 'REGISTER', header: answer(a.challenge(realm)[0]!, { password: 'x' }), realm, source: 's', lookup })
  t.match(await a.verify({ method: 'REGISTER', header: answer(a.challenge(realm)[0]!), realm, source: 's', lookup }), { ok: true })
  t.match(await a.verify({ method: 'REGISTER', header: answer(a.challenge(realm)[0]!, { password: 'x' }), realm, source: 's', lookup }), { ok: false, reason: 'bad-response' })
  t.match(await a.verify({ method: 'REGISTER', header: answer(a.challenge(realm)[0]!), realm, source: 's', lookup }), { ok: true })
})

t.test('responses without qop are refused unless allowed', async (t) => {
  const a = new DigestAuthenticator()
  const ch = a.challenge(realm)[0]!
  const nonce = /nonce="([^"]+)"/.exec(ch)![1]!
  const ha1 = computeHa1('MD5', 'alice', realm, 's3cret')
  const resp = computeDigestResponse(ha1, 'REGISTER', { algorithm: 'MD5', nonce, uri: 'sip:x' })
  const h = `Digest username="alice", realm="${realm}", nonce="${nonce}", uri="sip:x", response="${resp}"`
  t.match(await a.verify({ method: 'REGISTER', header: h, realm, source: 's', lookup }), { ok: false, reason: 'malformed' })
  const legacy = new DigestAuthenticator({ allowNoQop: true })
  const n2 = /nonce="([^"]+)"/.exec(legacy.challenge(realm)[0]!)![1]!
  const r2 = computeDigestResponse(ha1, 'REGISTER', { algorithm: 'MD5', nonce: n2, uri: 'sip:x' })
  t.match(await legacy.verify({ method: 'REGISTER', header: `Digest username="alice", realm="${realm}", nonce="${n2}", uri="sip:x", response="${r2}"`, realm, source: 's', lookup }), { ok: true })
})
