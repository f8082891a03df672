import t from 'tap'
import { randomUUID } from 'node:crypto'
import { startStack } from '../harness/stack.ts'
import { buildTestApp, call } from './helpers.ts'

/**
 * An error in one request never changes the answer to another: not for the
 * same account, not for another account. The store's named (prepared)
 * statements are the sharpest edge: an SQL error makes pg-pool replace its
 * connection, and with the embedded PGlite every connection shares one
 * backend session.
 */

t.test('the poisoned-statement sequence through REST on a real stack', async (t) => {
  // Not under DATABASE_URL: the stack is the embedded one, as `make start` runs it.
  const stack = await startStack()
  t.teardown(() => stack.stop())
  const auth = { authorization: `Bearer ${stack.apiKey}`, 'content-type': 'application/json' }
  const get = (path: string) => fetch(`${stack.baseUrl}${path}`, { headers: auth })
  const id = randomUUID()

  t.equal((await get(`/v1/calls/${id}`)).status, 404, 'an unknown call is 404')
  const dup = await fetch(`${stack.baseUrl}/v1/numbers`, { method: 'POST', headers: auth, body: JSON.stringify({ number: '1000' }) })
  t.equal(dup.status, 409, 'the demo number exists: 409')
  for (let i = 0; i < 5; i++) {
    t.equal((await get(`/v1/calls/${id}`)).status, 404, `after the 409 an unknown call is still 404 (read ${i + 1})`)
  }
  const list = await get('/v1/calls')
  t.equal(list.status, 200, 'the call list still answers')
  t.equal((await get('/health')).status, 200, 'health stays 200')
})

t.test('no error in one request changes the answer to another', async (t) => {
  const h = await buildTestApp()
  t.teardown(() => h.close())
  const mine = await h.store.calls.create({ accountId: h.accountId, direction: 'inbound', from: '+4915112345678', to: '1000', status: 'ringing' })
  const theirs = await h.store.calls.create({ accountId: h.other.accountId, direction: 'inbound', from: '+4915112345679', to: '1001', status: 'ringing' })
  const num = await call(h.app, h.adminKey, 'POST', '/v1/numbers', { number: '+4930123456' })
  t.equal(num.statusCode, 201)
  const acct = await call(h.app, h.adminKey, 'POST', '/v1/accounts', { name: 'domain owner', sipDomain: 'taken.example.com' })
  t.equal(acct.statusCode, 201)

  // What the other requests answer before any error.
  const probes = [
    { key: h.adminKey, url: `/v1/calls/${mine.id}` },
    { key: h.adminKey, url: `/v1/calls/${randomUUID()}`, status: 404 },
    { key: h.other.key, url: `/v1/calls/${theirs.id}` },
    { key: h.other.key, url: `/v1/calls/${mine.id}`, status: 404 },
    { key: h.adminKey, url: '/v1/calls' },
    { key: h.other.key, url: '/v1/calls' },
    { key: h.adminKey, url: '/v1/numbers' },
  ]
  const answer = async () => Promise.all(probes.map(async (p) => {
    const r = await call(h.app, p.key, 'GET', p.url)
    return `${p.url} ${r.statusCode} ${r.statusCode === 200 ? JSON.stringify(stable(r.json())) : ''}`
  }))
  const before = await answer()
  t.ok(before.every((line, i) => line.includes(` ${probes[i]!.status ?? 200} `)), 'the probes answer as expected before any error')

  const failures: Array<{ kind: string; send: () => Promise<{ statusCode: number }>; status: number }> = [
    { kind: 'unique violation (number exists)', send: () => call(h.app, h.adminKey, 'POST', '/v1/numbers', { number: '+4930123456' }), status: 409 },
    { kind: 'foreign key (trunk of another account / none)', send: () => call(h.app, h.adminKey, 'POST', '/v1/numbers', { number: '+4930123457', trunkId: randomUUID() }), status: 400 },
    { kind: 'foreign key (agent target that does not exist)', send: () => call(h.app, h.adminKey, 'POST', '/v1/numbers', { number: '+4930123458', target: { type: 'agent', id: randomUUID() } }), status: 400 },
    { kind: 'bad uuid in the path', send: () => call(h.app, h.adminKey, 'GET', '/v1/calls/not-a-uuid'), status: 400 },
    { kind: 'bad uuid in a body reference', send: () => call(h.app, h.adminKey, 'PATCH', `/v1/numbers/${num.json().id}`, { trunkId: 'nope' }), status: 400 },
    { kind: 'aborted transaction (account with a taken SIP domain)', send: () => call(h.app, h.adminKey, 'POST', '/v1/accounts', { name: 'dup', sipDomain: 'taken.example.com' }), status: 409 },
    { kind: 'unknown cursor', send: () => call(h.app, h.adminKey, 'GET', '/v1/calls?cursor=zzzz'), status: 400 },
  ]
  for (const f of failures) {
    const r = await f.send()
    t.equal(r.statusCode, f.status, `${f.kind}: ${f.status}`)
    t.same(await answer(), before, `after a ${f.kind}, every other request answers as before`)
  }
  // And again, interleaved with the probes running concurrently.
  const mixed = await Promise.all([...failures.map((f) => f.send()), answer(), answer()])
  t.same(mixed.slice(-2), [before, before], 'errors running concurrently with reads do not change the reads')
  t.same(await answer(), before, 'and nothing changed afterwards')
})

/** A response with volatile read-tracking fields removed, so answers compare. */
function stable(v: unknown): unknown {
  return JSON.parse(JSON.stringify(v, (k, val) => (k === 'lastUsedAt' ? undefined : val)))
}
