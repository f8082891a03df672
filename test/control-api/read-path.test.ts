import t from 'tap'
import { buildTestApp } from './helpers.ts'

/**
 * The hot read path under concurrency: many simultaneous requests cost one
 * key lookup and one call read, the cached body is exactly what the route
 * serializes, and a change is visible at once.
 */
t.test('concurrent reads share the key lookup and the call read; changes show at once', async (t) => {
  const h = await buildTestApp()
  t.teardown(() => h.close())
  const key = await h.keyWith(['calls:read'])
  const call = await h.store.calls.create({ accountId: h.accountId, direction: 'inbound', from: '+4915112345678', to: '1000', status: 'ringing' })
  await h.store.calls.appendTranscript(call.id, { role: 'user', text: 'hello there', offsetMs: 10 })
  await h.store.calls.end(call.id, { status: 'completed', endedReason: 'customer-ended', hangupBy: 'caller' })

  let keyLookups = 0
  let detailReads = 0
  const findKey = h.store.apiKeys.findActiveByToken.bind(h.store.apiKeys)
  h.store.apiKeys.findActiveByToken = async (token: string) => {
    keyLookups++
    return findKey(token)
  }
  const getDetail = h.store.calls.getDetail.bind(h.store.calls)
  h.store.calls.getDetail = async (accountId: string, id: string) => {
    detailReads++
    return getDetail(accountId, id)
  }

  const get = () => h.app.inject({ method: 'GET', url: `/v1/calls/${call.id}`, headers: { authorization: `Bearer ${key}` } })
  const replies = await Promise.all(Array.from({ length: 100 }, get))
  t.ok(replies.every((r) => r.statusCode === 200), 'all 100 answered 200')
  t.equal(keyLookups, 1, 'one key lookup for 100 concurrent requests')
  t.equal(detailReads, 1, 'one call read for 100 concurrent requests')
  t.ok(replies.every((r) => r.body === replies[0]!.body), 'every reply carries the same body')
  t.match(replies[0]!.headers['content-type'], /^application\/json; charset=utf-8/)
  const body = replies[0]!.json() as Record<string, unknown>
  t.equal(body.id, call.id)
  t.equal(body.status, 'completed')
  t.same(body.transcript, [{ role: 'user', text: 'hello there', offsetMs: 10 }])
  t.same(body.recordings, [])
  t.equal(Number(replies[0]!.headers['content-length']), Buffer.byteLength(replies[0]!.body), 'content-length matches the body')

  // A change with an event (call.summary) reaches the next reader at once.
  await h.store.calls.setSummary(call.id, 'caller said hello')
  const after = await get()
  t.equal((after.json() as { summary: string }).summary, 'caller said hello')
  t.equal(detailReads, 2)

  // Pages: same body for concurrent readers, one read.
  let pageReads = 0
  const list = h.store.calls.list.bind(h.store.calls)
  h.store.calls.list = async (...a: Parameters<typeof list>) => {
    pageReads++
    return list(...a)
  }
  const pages = await Promise.all(Array.from({ length: 50 }, () => h.app.inject({ method: 'GET', url: '/v1/calls?limit=50', headers: { authorization: `Bearer ${key}` } })))
  t.ok(pages.every((r) => r.statusCode === 200 && r.body === pages[0]!.body))
  t.equal(pageReads, 1, 'one page read for 50 concurrent requests')
  const page = pages[0]!.json() as { data: Array<{ id: string; summary: string | null }>; nextCursor: string | null }
  t.equal(page.data[0]!.id, call.id)
  t.equal(page.data[0]!.summary, 'caller said hello')

  // Another account still gets 404 for the call (the cache is per account).
  const other = await h.app.inject({ method: 'GET', url: `/v1/calls/${call.id}`, headers: { authorization: `Bearer ${h.other.key}` } })
  t.equal(other.statusCode, 404)
})

t.test('a key revoked while its lookup is in flight is not cached as valid', async (t) => {
  const h = await buildTestApp()
  t.teardown(() => h.close())
  const key = await h.keyWith(['calls:read'])
  const keys = (await h.app.inject({ method: 'GET', url: '/v1/api-keys', headers: { authorization: `Bearer ${h.adminKey}` } })).json() as { data: Array<{ id: string; name: string }> }
  const id = keys.data.find((k) => k.name === 'test calls:read')!.id
  let release!: () => void
  const gate = new Promise<void>((r) => { release = r })
  const findKey = h.store.apiKeys.findActiveByToken.bind(h.store.apiKeys)
  h.store.apiKeys.findActiveByToken = async (token: string) => {
    const k = await findKey(token)
    if (token === key) await gate // the lookup has read the key; hold it while the key is revoked
    return k
  }
  const first = h.app.inject({ method: 'GET', url: '/v1/calls', headers: { authorization: `Bearer ${key}` } })
  await new Promise((r) => setTimeout(r, 50))
  const del = await h.app.inject({ method: 'DELETE', url: `/v1/api-keys/${id}`, headers: { authorization: `Bearer ${h.adminKey}` } })
  t.equal(del.statusCode, 204)
  release()
  t.equal((await first).statusCode, 200, 'the request that was already authenticating completes')
  const next = await h.app.inject({ method: 'GET', url: '/v1/calls', headers: { authorization: `Bearer ${key}` } })
  t.equal(next.statusCode, 401, 'the revoked key is refused right after')
})
