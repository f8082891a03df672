import t from 'tap'
import { randomUUID } from 'node:crypto'
import { buildTestApp, call } from './helpers.ts'

/**
 * PATCH validates every field exactly as POST does (one definition per
 * resource): valid values are stored and read back, garbage is a 400 and
 * changes nothing, and the resource stays readable and usable afterwards.
 */

const GARBAGE: unknown[] = [{ junk: 1 }, 'not-the-type', 12345, [1, 'two', { three: 3 }], true]
type Doc = { paths: Record<string, Record<string, { requestBody?: { content: { 'application/json': { schema: { properties?: Record<string, Record<string, unknown>> } } } } }>> }

/** The JSON types a schema admits (type, enum or anyOf members). */
function typesOf(s: Record<string, unknown>): Set<string> {
  const out = new Set<string>()
  if (typeof s.type === 'string') out.add(s.type === 'integer' ? 'number' : s.type)
  for (const m of (s.anyOf as Array<Record<string, unknown>> | undefined) ?? []) for (const x of typesOf(m)) out.add(x)
  return out
}
const jsonType = (v: unknown) => (Array.isArray(v) ? 'array' : v === null ? 'null' : typeof v)

/** Values of a type the PATCH field (per /openapi.json) does not admit. */
async function garbageFor(h: { app: { inject: (o: { method: 'GET'; url: string }) => Promise<{ json: () => unknown }> } }, path: string, field: string): Promise<unknown[]> {
  const doc = (await h.app.inject({ method: 'GET', url: '/openapi.json' })).json() as Doc
  const schema = doc.paths[path]?.patch?.requestBody?.content['application/json'].schema.properties?.[field]
  if (!schema) throw new Error(`no PATCH schema for ${path} ${field}`)
  const admitted = typesOf(schema)
  return GARBAGE.filter((g) => !admitted.has(jsonType(g)))
}

t.test('every PATCH field is typed like its POST field (from /openapi.json)', async (t) => {
  const h = await buildTestApp()
  t.teardown(() => h.close())
  const doc = (await h.app.inject({ method: 'GET', url: '/openapi.json' })).json() as Doc
  let checked = 0
  for (const [path, ops] of Object.entries(doc.paths)) {
    const patch = ops.patch?.requestBody?.content['application/json'].schema.properties
    const collection = path.replace(/\/\{id\}$/, '')
    const post = doc.paths[collection]?.post?.requestBody?.content['application/json'].schema.properties
    if (!patch || !post) continue
    for (const [field, p] of Object.entries(patch)) {
      t.ok(post[field], `${path} PATCH ${field} exists on POST`)
      const members = (p.anyOf as Array<Record<string, unknown>> | undefined)
      // Either the POST schema itself, or the POST schema or null.
      const { default: _d, ...postField } = post[field]!
      const same = JSON.stringify(p) === JSON.stringify(postField) ||
        (members?.length === 2 && members.some((m) => m.type === 'null') && members.some((m) => JSON.stringify(m) === JSON.stringify(postField)))
      if (!same && field !== 'outbound') t.fail(`${path} PATCH ${field} differs from POST: ${JSON.stringify(p).slice(0, 200)} vs ${JSON.stringify(post[field]).slice(0, 200)}`)
      // An untyped object is the bug this test exists for.
      t.not(JSON.stringify(p).includes('"type":"object","properties":{}'), true, `${path} ${field} is typed`)
      checked++
    }
  }
  t.ok(checked > 40, `${checked} PATCH fields compared`)
})

t.test('PATCH /v1/agents: valid values stored, garbage refused, the agent still works', async (t) => {
  const h = await buildTestApp()
  t.teardown(() => h.close())
  const tool = (await call(h.app, h.adminKey, 'POST', '/v1/tools', { name: 'lookup', description: 'd', url: 'https://example.com/t' })).json() as { id: string }
  const agent = (await call(h.app, h.adminKey, 'POST', '/v1/agents', { name: 'a', greeting: 'hello' })).json() as { id: string }
  const url = `/v1/agents/${agent.id}`
  const valid: Record<string, unknown> = {
    rules: [{ match: 'opening hours', reply: 'Nine to five.' }, { match: 'bye', reply: 'Bye.', hangup: true }],
    expectedPhrases: ['opening hours', 'goodbye'],
    vad: 'energy',
    transferTargets: [{ name: 'sales', destination: '+4930123456', description: 'sales desk' }],
    tools: [tool.id],
    metadata: { company: 'Acme' },
    bargeIn: { enabled: false },
    greeting: 'hi {{company}}',
  }
  for (const [field, value] of Object.entries(valid)) {
    const r = await call(h.app, h.adminKey, 'PATCH', url, { [field]: value })
    t.equal(r.statusCode, 200, `PATCH ${field} with a valid value: 200 ${r.statusCode !== 200 ? r.body : ''}`)
    t.same((r.json() as Record<string, unknown>)[field], value, `${field} is stored as sent`)
  }
  const before = (await call(h.app, h.adminKey, 'GET', url)).json()
  for (const field of [...Object.keys(valid), 'stt', 'llm', 'tts', 'amd', 'recording', 'summary', 'websocket', 'silenceTimeoutSec', 'name', 'type']) {
    for (const g of await garbageFor(h, '/v1/agents/{id}', field)) {
      const r = await call(h.app, h.adminKey, 'PATCH', url, { [field]: g })
      t.equal(r.statusCode, 400, `PATCH ${field}=${JSON.stringify(g)}: 400`)
    }
  }
  for (const [field, g] of [['rules', [{ match: 'x', reply: 5 }]], ['rules', [{ reply: 'no match' }]], ['transferTargets', [{ name: 'x' }]],
    ['tools', [randomUUID()]], ['metadata', { k: { nested: true } }], ['vad', 'loud'], ['name', null], ['type', null]] as const) {
    const r = await call(h.app, h.adminKey, 'PATCH', url, { [field]: g })
    t.ok(r.statusCode === 400, `PATCH ${field}=${JSON.stringify(g)}: 400 (${r.statusCode})`)
  }
  t.same((await call(h.app, h.adminKey, 'GET', url)).json(), before, 'no refused PATCH changed the agent')
  t.equal((await call(h.app, h.adminKey, 'GET', '/v1/agents')).statusCode, 200, 'the agent list still answers')

  const cleared = await call(h.app, h.adminKey, 'PATCH', url, { rules: null, metadata: null, vad: null })
  t.equal(cleared.statusCode, 200, 'null removes optional fields')
  const c = cleared.json() as Record<string, unknown>
  t.notOk('rules' in c || 'metadata' in c || 'vad' in c, 'removed fields are gone')
  t.equal(c.type, 'pipeline', 'type keeps its value (defaults are not re-applied on PATCH)')
  const ws = await call(h.app, h.adminKey, 'PATCH', url, { type: 'websocket', websocket: { url: 'wss://example.com/agent' } })
  t.equal(ws.statusCode, 200)
  const again = await call(h.app, h.adminKey, 'PATCH', url, { greeting: 'x' })
  t.equal((again.json() as { type: string }).type, 'websocket', 'a PATCH of another field leaves type alone')
})

t.test('PATCH on every other resource: valid stored, garbage refused and nothing changed', async (t) => {
  const h = await buildTestApp()
  t.teardown(() => h.close())
  const create = async (url: string, body: unknown) => {
    const r = await call(h.app, h.adminKey, 'POST', url, body)
    t.equal(r.statusCode, 201, `POST ${url}`)
    const j = r.json() as { id?: string; account?: { id: string } }
    return j.id ?? j.account!.id
  }
  const trunk = await create('/v1/trunks', { name: 't', outbound: { host: 'carrier.example.com' } })
  const cases: Array<{ url: string; valid: Record<string, unknown>; fields: string[] }> = [
    { url: `/v1/numbers/${await create('/v1/numbers', { number: '+4930555100' })}`, valid: { name: 'front desk', number: '+4930555101', trunkId: trunk, target: { type: 'sip', uri: 'sip:desk@example.com' } }, fields: ['name', 'number', 'trunkId', 'target'] },
    { url: `/v1/tools/${await create('/v1/tools', { name: 'lookup', description: 'd', url: 'https://example.com/t' })}`, valid: { description: 'new', method: 'GET', timeoutMs: 2000, enabled: false, headers: { 'X-A': 'b' } }, fields: ['name', 'description', 'url', 'method', 'headers', 'inputSchema', 'timeoutMs', 'enabled'] },
    { url: `/v1/trunks/${trunk}`, valid: { name: 'renamed', concurrencyLimit: 5, codecs: ['PCMA'], outbound: { port: 5070 } }, fields: ['name', 'description', 'inbound', 'outbound', 'codecs', 'concurrencyLimit'] },
    { url: `/v1/webhooks/${await create('/v1/webhooks', { url: 'https://example.com/h', events: ['call.started'] })}`, valid: { description: 'ops', events: ['call.ended'], enabled: false }, fields: ['url', 'events', 'description', 'enabled'] },
    { url: `/v1/extensions/${await create('/v1/extensions', { extension: '2001', password: 'password123' })}`, valid: { name: 'Bob', callerId: '+4930555102', description: 'desk' }, fields: ['extension', 'password', 'name', 'description', 'callerId'] },
    { url: `/v1/routes/${await create('/v1/routes', { name: 'r', prefix: '+49', trunkId: trunk })}`, valid: { name: 'r2', prefix: '+4930', priority: 3, enabled: false }, fields: ['name', 'description', 'prefix', 'trunkId', 'priority', 'enabled'] },
    { url: `/v1/accounts/${await create('/v1/accounts', { name: 'acct' })}`, valid: { name: 'acct2', sipDomain: 'acct.example.com' }, fields: ['name', 'sipDomain'] },
  ]
  t.ok(cases.length === 7)
  for (const c of cases) {
    for (const [field, value] of Object.entries(c.valid)) {
      const r = await call(h.app, h.adminKey, 'PATCH', c.url, { [field]: value })
      t.equal(r.statusCode, 200, `PATCH ${c.url.split('/')[2]} ${field}: 200 ${r.statusCode !== 200 ? r.body : ''}`)
    }
    const before = (await call(h.app, h.adminKey, 'GET', c.url)).body
    for (const field of c.fields) {
      for (const g of await garbageFor(h, `/v1/${c.url.split('/')[2]}/{id}`, field)) {
        const r = await call(h.app, h.adminKey, 'PATCH', c.url, { [field]: g })
        t.equal(r.statusCode, 400, `PATCH ${c.url.split('/')[2]} ${field}=${JSON.stringify(g)}: 400`)
      }
    }
    t.equal((await call(h.app, h.adminKey, 'PATCH', c.url, {})).statusCode, 400, `${c.url.split('/')[2]}: an empty PATCH is 400`)
    t.equal((await call(h.app, h.adminKey, 'PATCH', c.url, { nope: 1 })).statusCode, 400, `${c.url.split('/')[2]}: an unknown field is 400`)
    t.equal((await call(h.app, h.adminKey, 'GET', c.url)).body, before, `${c.url.split('/')[2]}: refused PATCHes changed nothing`)
  }
})
