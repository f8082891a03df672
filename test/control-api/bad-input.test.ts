import t from 'tap'
import { buildTestApp, call } from './helpers.ts'

/**
 * The bad-input corpus: text that is not text (NUL, lone surrogates), JSON
 * nested thousands deep and wrongly typed values get a 400 that says what
 * and where, in every part of a request, on every resource; nothing is
 * stored, and the engine answers normally afterwards.
 */

const NUL = '\u0000'
const LONE_HIGH = '\ud83d'
const LONE_LOW = '\ude00'
const deep = (n: number) => `${'['.repeat(n)}${']'.repeat(n)}`
const deepObject = (n: number) => `${'{"a":'.repeat(n)}1${'}'.repeat(n)}`

t.test('bad text and deep JSON are 400 everywhere', async (t) => {
  const h = await buildTestApp()
  t.teardown(() => h.close())
  const raw = (method: string, url: string, body?: string) => h.app.inject({
    method: method as 'POST', url, headers: { authorization: `Bearer ${h.adminKey}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(body !== undefined ? { payload: body } : {}),
  })
  const agent = (await call(h.app, h.adminKey, 'POST', '/v1/agents', { name: 'ok' })).json() as { id: string }

  // Each resource's create, with a bad string in a top-level field and deeper inside.
  const bodies: Array<[string, string, Record<string, unknown>]> = [
    ['/v1/agents', 'name', { name: 'x' }],
    ['/v1/agents', 'greeting', { name: 'x', greeting: 'hi' }],
    ['/v1/agents', 'rules/0/reply', { name: 'x', rules: [{ match: 'hi', reply: 'r' }] }],
    ['/v1/agents', 'metadata/k', { name: 'x', metadata: { k: 'v' } }],
    ['/v1/numbers', 'name', { number: '+4930555001', name: 'n' }],
    ['/v1/tools', 'description', { name: 'lookup', description: 'd', url: 'https://example.com/x' }],
    ['/v1/trunks', 'name', { name: 'n' }],
    ['/v1/webhooks', 'description', { url: 'https://example.com/h', events: ['call.started'], description: 'd' }],
    ['/v1/extensions', 'name', { extension: '2001', password: 'password123', name: 'n' }],
    ['/v1/api-keys', 'name', { name: 'k' }],
    ['/v1/accounts', 'name', { name: 'a' }],
    ['/v1/conferences', 'name', { name: 'c' }],
  ]
  for (const [url, field, good] of bodies) {
    for (const [label, bad] of [['NUL', `a${NUL}b`], ['lone high surrogate', `a${LONE_HIGH}`], ['lone low surrogate', `${LONE_LOW}b`]] as const) {
      const body = structuredClone(good)
      setPath(body, field, bad)
      const r = await raw('POST', url, JSON.stringify(body))
      t.equal(r.statusCode, 400, `POST ${url} with ${label} in /${field}: 400`)
      const msg = (r.json() as { error: { message: string } }).error.message
      t.match(msg, new RegExp(`/${field.replace(/\//g, '\\/')}.*(NUL|surrogate)`), `the message names /${field} and the problem: ${msg}`)
    }
    const key = structuredClone(good)
    ;(key as Record<string, unknown>)[`k${NUL}`] = 'v'
    t.equal((await raw('POST', url, JSON.stringify(key))).statusCode, 400, `POST ${url} with a NUL in a key: 400`)
  }
  // PATCH too, and text escaped in the JSON source rather than raw.
  const p = await raw('PATCH', `/v1/agents/${agent.id}`, '{"prompt":"a\\u0000b"}')
  t.equal(p.statusCode, 400, 'PATCH with an escaped NUL: 400')
  t.equal((await raw('PATCH', `/v1/agents/${agent.id}`, '{"prompt":"a\\ud800b"}')).statusCode, 400, 'PATCH with an escaped lone surrogate: 400')
  t.equal((await raw('PATCH', `/v1/agents/${agent.id}`, '{"prompt":"\\ud83d\\ude00 fine"}')).statusCode, 200, 'a real surrogate pair (emoji) is fine')

  for (const n of [33, 1000, 100_000]) {
    for (const [shape, text] of [['arrays', deep(n)], ['objects', deepObject(n)]] as const) {
      const r = await raw('POST', '/v1/agents', `{"name":"x","metadata":{"k":${text}}}`)
      t.equal(r.statusCode, 400, `${n} nested ${shape}: 400`)
      t.match((r.json() as { error: { message: string } }).error.message, /nested deeper than/)
    }
  }
  t.equal((await raw('POST', '/v1/agents', `{"name":"x","rules":[{"match":"a","args":${deepObject(20)}}]}`)).statusCode, 201, 'nesting within the limit is accepted')

  // Query strings and path parameters.
  for (const url of ['/v1/calls?status=%00', '/v1/calls?cursor=a%00b', '/v1/agents?cursor=%ED%A0%80', '/v1/agents/%00', `/v1/agents/${agent.id}%00`]) {
    const r = await raw('GET', url)
    t.equal(r.statusCode, 400, `GET ${url}: 400`)
  }

  // Wrong types in a body are refused, not coerced.
  for (const [url, body] of [
    ['/v1/agents', { name: 123 }],
    ['/v1/agents', { name: 'x', aiSpeaksFirst: 'true' }],
    ['/v1/agents', { name: 'x', silenceTimeoutSec: '30' }],
    ['/v1/agents', { name: 'x', expectedPhrases: 'hello' }],
    ['/v1/numbers', { number: 4930555002 }],
    ['/v1/tools', { name: 'n', description: 'd', url: 'https://example.com/x', timeoutMs: '1000' }],
  ] as const) {
    const r = await call(h.app, h.adminKey, 'POST', url, body)
    t.equal(r.statusCode, 400, `POST ${url} ${JSON.stringify(body)}: 400, not coerced`)
  }
  // Query strings are still coerced.
  t.equal((await raw('GET', '/v1/agents?limit=2')).statusCode, 200, '?limit=2 is read as a number')

  const list = (await call(h.app, h.adminKey, 'GET', '/v1/agents?limit=100')).json() as { data: Array<{ name: string }> }
  t.same(list.data.map((a) => a.name).sort(), ['ok', 'x'], 'nothing bad was stored (only the good agents exist)')
  t.equal((await raw('GET', '/health')).statusCode, 200, 'health still 200')
})

t.test('phone numbers: E.164 valid for its country, or a local number of 2-8 digits', async (t) => {
  const h = await buildTestApp()
  t.teardown(() => h.close())
  for (const good of ['+4930123456', '+14155550100', '+442079460958', '2002', '77', '*97']) {
    const r = await call(h.app, h.adminKey, 'POST', '/v1/numbers', { number: good })
    t.equal(r.statusCode, 201, `number ${good} is accepted ${r.statusCode !== 201 ? r.body : ''}`)
  }
  for (const bad of ['+123', '+4930 123456', '+49301234567890123', '+15550100', '+0123456789', '123456789012', '1', 'abc', '+', '1000 ', 'tel:+4930123456']) {
    const r = await call(h.app, h.adminKey, 'POST', '/v1/numbers', { number: bad })
    t.equal(r.statusCode, 400, `number ${JSON.stringify(bad)} is refused`)
    t.match((r.json() as { error: { message: string } }).error.message, /\/number must be an E\.164 number .* or a local number of 2-8 digits/, 'the message says the rule')
  }
  const agent = (await call(h.app, h.adminKey, 'POST', '/v1/agents', { name: 'a' })).json() as { id: string }
  for (const [destination, status] of [['+4930123456', 200], ['sip:desk@example.com', 200], ['201', 200], ['+999', 400], ['desk', 400]] as const) {
    const r = await call(h.app, h.adminKey, 'PATCH', `/v1/agents/${agent.id}`, { transferTargets: [{ name: 'x', destination }] })
    t.equal(r.statusCode, status, `transfer destination ${destination}: ${status}`)
  }
  for (const [to, status] of [['+999', 400], ['my friend', 400], ['004930123456789', 400]] as const) {
    const r = await call(h.app, h.adminKey, 'POST', '/v1/calls', { to, from: '+4930123456' })
    t.equal(r.statusCode, status, `call to ${to}: ${status}`)
  }
  t.equal((await call(h.app, h.adminKey, 'POST', '/v1/extensions', { extension: '301', password: 'password123', callerId: '+1415' })).statusCode, 400, 'extension callerId is checked too')
  const doc = (await h.app.inject({ method: 'GET', url: '/openapi.json' })).body
  t.match(doc, /E\.164 number \(\+, country code and number/, 'the rule is in the OpenAPI description')
})

function setPath(obj: Record<string, unknown>, path: string, value: unknown): void {
  const parts = path.split('/')
  let cur: Record<string, unknown> = obj
  for (const p of parts.slice(0, -1)) cur = cur[p] as Record<string, unknown>
  cur[parts.at(-1)!] = value
}
