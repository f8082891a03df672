import t from 'tap'
import { Webhook } from 'standardwebhooks'
import { buildTestApp, call } from './helpers.ts'
import { signatureHeaders } from '../../store/webhook-signature.ts'

t.test('GET /v1/signing-secret: one secret per account, created on first use, rotatable', async (t) => {
  const h = await buildTestApp()
  t.teardown(() => h.close())

  const first = await call(h.app, h.adminKey, 'GET', '/v1/signing-secret')
  t.equal(first.statusCode, 200, first.body)
  const s1 = first.json() as { secret: string; createdAt: string; rotatedAt: string | null }
  t.match(s1, { secret: /^whsec_[A-Za-z0-9+/]{32}$/, createdAt: String, rotatedAt: null })

  const again = (await call(h.app, h.adminKey, 'GET', '/v1/signing-secret')).json() as typeof s1
  t.equal(again.secret, s1.secret, 'the same secret on the next read')
  t.equal(await h.store.signingSecrets.secret(h.accountId), s1.secret, 'the store hands the engine the same secret')

  const other = (await call(h.app, h.other.key, 'GET', '/v1/signing-secret')).json() as typeof s1
  t.not(other.secret, s1.secret, 'another account has its own secret')

  const readOnly = await h.keyWith(['calls:read'])
  t.equal((await call(h.app, readOnly, 'GET', '/v1/signing-secret')).statusCode, 403, 'needs webhooks:manage')
  t.equal((await call(h.app, null, 'GET', '/v1/signing-secret')).statusCode, 401)

  const rotated = await call(h.app, h.adminKey, 'POST', '/v1/signing-secret/rotate')
  t.equal(rotated.statusCode, 200, rotated.body)
  const s2 = rotated.json() as typeof s1
  t.match(s2, { secret: /^whsec_/, rotatedAt: String })
  t.not(s2.secret, s1.secret, 'rotation replaces the secret')
  t.equal(s2.createdAt, s1.createdAt)
  t.equal(((await call(h.app, h.adminKey, 'GET', '/v1/signing-secret')).json() as typeof s1).secret, s2.secret, 'reads return the new one')
  t.equal(((await call(h.app, h.other.key, 'GET', '/v1/signing-secret')).json() as typeof s1).secret, other.secret, 'the other account keeps its own')

  // Concurrent first reads agree on one secret.
  const fresh = await h.store.accounts.create('fresh')
  const all = await Promise.all(Array.from({ length: 5 }, () => h.store.signingSecrets.secret(fresh.id)))
  t.equal(new Set(all).size, 1, 'racing first reads create one secret')
})

t.test('signatureHeaders: verifiable with any Standard Webhooks verifier', async (t) => {
  const secret = 'whsec_' + Buffer.from('a-test-secret-of-24-bytes').toString('base64')
  const body = JSON.stringify({ CallSid: 'x', CallStatus: 'ringing' })
  const headers = signatureHeaders(secret, body, { id: 'msg_1' })
  t.equal(headers['webhook-id'], 'msg_1')
  t.match(headers['webhook-signature'], /^v1,[A-Za-z0-9+/=]+$/)
  t.same(new Webhook(secret).verify(body, { ...headers }), JSON.parse(body))
  t.throws(() => new Webhook(secret).verify(body + ' ', { ...headers }), 'a changed body does not verify')
})
