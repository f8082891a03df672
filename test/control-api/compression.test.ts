import t from 'tap'
import { brotliDecompressSync, gunzipSync } from 'node:zlib'
import { buildTestApp } from './helpers.ts'
import { COMPRESS_MIN_BYTES, EncodedBody, negotiateCoding } from '../../control-api/encoded-body.ts'

/**
 * Compressed call reads: the cached body is compressed once per cache entry,
 * negotiated per request from Accept-Encoding (RFC 9110 §12.5.3), with Vary,
 * Content-Encoding and Content-Length right, and the same JSON as identity.
 */
t.test('Accept-Encoding negotiation', async (t) => {
  t.equal(negotiateCoding(undefined), null, 'no header: identity')
  t.equal(negotiateCoding(''), null, 'empty header: identity')
  t.equal(negotiateCoding('identity'), null)
  t.equal(negotiateCoding('gzip'), 'gzip')
  t.equal(negotiateCoding('GZip'), 'gzip', 'codings are case-insensitive')
  t.equal(negotiateCoding('x-gzip'), 'gzip', 'x-gzip is gzip')
  t.equal(negotiateCoding('gzip, deflate, br'), 'br', 'br before gzip at equal q')
  t.equal(negotiateCoding('gzip;q=1.0, br;q=0.5'), 'gzip', 'higher q wins')
  t.equal(negotiateCoding('gzip;q=0'), null, 'q=0 is "not acceptable"')
  t.equal(negotiateCoding('br;q=0, gzip'), 'gzip')
  t.equal(negotiateCoding('*'), 'br', '* covers the codings not listed')
  t.equal(negotiateCoding('gzip;q=0, *;q=0.5'), 'br', 'an explicit q=0 is not overridden by *')
  t.equal(negotiateCoding('*;q=0'), null)
  t.equal(negotiateCoding('deflate'), null, 'codings we do not make: identity')
  t.equal(negotiateCoding('gzip;q=abc'), null, 'a malformed qvalue does not count as acceptable')
  t.equal(negotiateCoding('gzip;q=2'), null, 'q above 1 is malformed')
  t.equal(negotiateCoding('gzip;q=0.001'), 'gzip', 'three decimals are fine')
  t.equal(negotiateCoding('gzip;q=0.0001'), null, 'four are malformed')
  t.equal(negotiateCoding(['deflate', 'gzip']), 'gzip', 'repeated header fields combine')
  t.equal(negotiateCoding(' , ;q=1, gzip ; q = 0.8 '), 'gzip', 'stray separators and spaces')
})

t.test('EncodedBody compresses once, shares concurrent work and skips small bodies', async (t) => {
  const json = Buffer.from(JSON.stringify({ data: Array.from({ length: 40 }, (_, i) => ({ i, text: 'some words spoken here' })) }))
  t.ok(json.length >= COMPRESS_MIN_BYTES)
  const body = await EncodedBody.of(json, { eager: true })
  const [a, b] = await Promise.all([body.encoded('gzip'), body.encoded('gzip')])
  t.equal(a, b, 'the same Buffer: compressed once')
  t.same(gunzipSync(a!), json)
  t.same(brotliDecompressSync(await body.encoded('br')), json)
  t.equal(await body.encoded('br'), await body.encoded('br'), 'br also kept once made')
  t.notOk((await EncodedBody.of(Buffer.from('{"a":1}'))).compressible, 'small bodies stay identity')

  // A refresh that reads the same bytes keeps the body and its encodings; changed bytes get a new one.
  t.equal(await EncodedBody.of(Buffer.from(json), { eager: true, previous: body }), body, 'same bytes: the previous body, not compressed again')
  const changed = Buffer.from(json.toString().replace('"i":0', '"i":9'))
  const next = await EncodedBody.of(changed, { eager: true, previous: body })
  t.not(next, body)
  t.same(gunzipSync(await next.encoded('gzip')), changed, 'changed bytes: compressed afresh')
})

t.test('GET /v1/calls and /v1/calls/:id answer in the coding asked for; invalidation still holds', async (t) => {
  const h = await buildTestApp()
  t.teardown(() => h.close())
  const key = await h.keyWith(['calls:read'])
  const ids: string[] = []
  for (let i = 0; i < 5; i++) {
    const c = await h.store.calls.create({ accountId: h.accountId, direction: 'inbound', from: `+49151123456${i}0`, to: '1000', status: 'ringing' })
    for (let k = 0; k < 8; k++) await h.store.calls.appendTranscript(c.id, { role: k % 2 ? 'user' : 'assistant', text: `turn ${k} of call ${i}: a few words about an appointment next week`, offsetMs: k * 1000 })
    await h.store.calls.end(c.id, { status: 'completed', endedReason: 'customer-ended', hangupBy: 'caller' })
    ids.push(c.id)
  }
  const get = (url: string, ae?: string) => h.app.inject({ method: 'GET', url, headers: { authorization: `Bearer ${key}`, ...(ae !== undefined ? { 'accept-encoding': ae } : {}) } })

  for (const url of ['/v1/calls?limit=50', `/v1/calls/${ids[2]}`]) {
    const plain = await get(url)
    t.equal(plain.statusCode, 200)
    t.notOk(plain.headers['content-encoding'], `${url}: no Accept-Encoding → identity`)
    t.equal(plain.headers.vary, 'accept-encoding', `${url}: Vary on identity answers too`)
    t.ok(plain.rawPayload.length >= COMPRESS_MIN_BYTES, `${url}: large enough to be compressed`)

    const gz = await get(url, 'gzip, deflate')
    t.equal(gz.statusCode, 200)
    t.equal(gz.headers['content-encoding'], 'gzip', `${url}: gzip`)
    t.equal(gz.headers.vary, 'accept-encoding')
    t.match(gz.headers['content-type'], /^application\/json; charset=utf-8/)
    t.equal(Number(gz.headers['content-length']), gz.rawPayload.length, `${url}: Content-Length is the compressed length`)
    t.ok(gz.rawPayload.length < plain.rawPayload.length / 2, `${url}: compressed ${plain.rawPayload.length} → ${gz.rawPayload.length} bytes`)
    t.same(gunzipSync(gz.rawPayload), plain.rawPayload, `${url}: gunzipped it is the identity body`)

    const br = await get(url, 'br')
    t.equal(br.headers['content-encoding'], 'br')
    t.same(brotliDecompressSync(br.rawPayload), plain.rawPayload, `${url}: br decodes to the identity body`)

    const refused = await get(url, 'gzip;q=0, br;q=0')
    t.notOk(refused.headers['content-encoding'], `${url}: q=0 everywhere → identity`)
    t.same(refused.rawPayload, plain.rawPayload)
  }

  // A change with an event reaches gzip readers at once (the encoding lives in the cache entry it was made from).
  const before = JSON.parse(gunzipSync((await get(`/v1/calls/${ids[2]}`, 'gzip')).rawPayload).toString()) as { summary: string | null }
  t.equal(before.summary, null)
  // The cache drops entries when the event reaches this node's bus: at once on
  // PGlite, after the NOTIFY round trip on PostgreSQL; wait for it either way.
  const seen = new Promise<void>((resolve) => {
    const off = h.store.bus.subscribe((e) => {
      if (e.type === 'call.summary' && e.callId === ids[2]) {
        off()
        resolve()
      }
    })
  })
  await h.store.calls.setSummary(ids[2]!, 'caller asked for the opening hours')
  await seen
  const detail = JSON.parse(gunzipSync((await get(`/v1/calls/${ids[2]}`, 'gzip')).rawPayload).toString()) as { summary: string }
  t.equal(detail.summary, 'caller asked for the opening hours', 'detail: fresh after the event')
  const page = JSON.parse(gunzipSync((await get('/v1/calls?limit=50', 'gzip')).rawPayload).toString()) as { data: Array<{ id: string; summary: string | null }> }
  t.equal(page.data.find((c) => c.id === ids[2])!.summary, 'caller asked for the opening hours', 'list: fresh after the event')

  // Errors are not affected: plain JSON errors, no coding.
  const missing = await get('/v1/calls/00000000-0000-4000-8000-000000000000', 'gzip')
  t.equal(missing.statusCode, 404)
  t.notOk(missing.headers['content-encoding'])
  t.equal(missing.json().error.code, 'not_found')
})

t.test('a live call (not cached) is still served compressed when asked', async (t) => {
  const h = await buildTestApp()
  t.teardown(() => h.close())
  const key = await h.keyWith(['calls:read'])
  const c = await h.store.calls.create({ accountId: h.accountId, direction: 'outbound', from: '+4930123456', to: '+4915112345678', status: 'ringing' })
  await h.store.calls.markAnswered(c.id)
  for (let k = 0; k < 10; k++) await h.store.calls.appendTranscript(c.id, { role: 'user', text: `live words number ${k} spoken into the call`, offsetMs: k * 500 })
  const gz = await h.app.inject({ method: 'GET', url: `/v1/calls/${c.id}`, headers: { authorization: `Bearer ${key}`, 'accept-encoding': 'gzip' } })
  t.equal(gz.statusCode, 200)
  t.equal(gz.headers['content-encoding'], 'gzip')
  const body = JSON.parse(gunzipSync(gz.rawPayload).toString()) as { status: string; transcript: unknown[] }
  t.equal(body.status, 'in-progress')
  t.equal(body.transcript.length, 10)
})
