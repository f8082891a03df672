import t from 'tap'
import fc from 'fast-check'
import { startStack } from '../harness/stack.ts'
import { SCOPES } from '../../store/api-keys.ts'

/**
 * The API fuzzed from its own /openapi.json against a real in-process engine:
 * for every operation, requests generated from its schemas (valid-shaped
 * bodies, query strings and path ids) and mutations of them (NUL and lone
 * surrogates, huge and negative numbers, wrong types, deep nesting, broken
 * JSON, odd ids). Nothing may answer 5xx or hang, and /health stays 200.
 * Fixed seed: the same requests every run; FUZZ_RUNS (per operation) changes how many.
 */

const SEED = 1414
// The requests of the whole fuzz must stay under what its keys may send in the minute it takes
// (1200/min each): this many, spread over however many operations the API has (175 each for 88).
const REQUEST_BUDGET = 15_400
const REQUEST_TIMEOUT_MS = 15_000
const CONCURRENCY = 6

type Schema = {
  type?: string | string[]; properties?: Record<string, Schema>; required?: string[]; items?: Schema; anyOf?: Schema[]; oneOf?: Schema[]
  enum?: unknown[]; const?: unknown; format?: string; pattern?: string; minimum?: number; maximum?: number; minLength?: number; maxLength?: number
  minItems?: number; maxItems?: number; additionalProperties?: boolean | Schema; patternProperties?: Record<string, Schema>; $ref?: string
}
type Operation = {
  parameters?: Array<{ in: string; name: string; required?: boolean; schema: Schema }>
  requestBody?: { content: Record<string, { schema: Schema }> }
  responses?: Record<string, unknown>
}
type Doc = { paths: Record<string, Record<string, Operation>>; components?: { schemas?: Record<string, Schema> } }
type Req = { method: string; path: string; query: Record<string, string>; body?: { json: unknown } | { raw: string } }

const ODD_STRINGS = ['', ' ', 'a\u0000b', '\u0000', 'x\ud800', '\udc00y', '💥'.repeat(50), 'x'.repeat(20_000), '../../etc/passwd', '%00', '{"a":1}',
  '<script>', '\'; DROP TABLE calls; --', 'null', '__proto__', '1e999', '-1', 'sip:', 'sip:a@b;c', '+', '+99999999999999999', 'ä', '\r\nX-Injected: 1']
const ODD_VALUES: unknown[] = [...ODD_STRINGS, 0, -1, -0.5, 1e308, -1e308, 2 ** 53 + 1, 1.5, true, false, null, [], {}, [null], { __proto__: { admin: true } },
  { constructor: { prototype: { x: 1 } } }, ['x'.repeat(1000)], Object.fromEntries(Array.from({ length: 200 }, (_, i) => [`k${i}`, i]))]

/** encodeURIComponent, except that a lone surrogate goes out as the (invalid UTF-8) bytes it would be, instead of throwing. */
const encodePathValue = (v: string) => v.split(/([\ud800-\udfff])/).map((part) => (/^[\ud800-\udfff]$/.test(part) ? '%ED%A0%80' : encodeURIComponent(part))).join('')

const nest = (n: number): unknown => (n === 0 ? 1 : { a: nest(n - 1) })

// About 15,000 requests: 2-3 minutes on a 2-core box; room for a loaded one.
t.setTimeout(600_000)

t.test('fuzzing every operation from /openapi.json', async (t) => {
  const stack = await startStack()
  t.teardown(() => stack.stop())
  // The API allows 1200 requests a minute per key: the fuzz spreads its load over several keys.
  const keys = [stack.apiKey]
  let turn = 0
  const send = async (r: Req): Promise<{ status: number; body: string }> => {
    const qs = new URLSearchParams(r.query).toString()
    const headers: Record<string, string> = { authorization: `Bearer ${keys[turn++ % keys.length]}` }
    let body: string | undefined
    if (r.body) {
      headers['content-type'] = 'application/json'
      body = 'raw' in r.body ? r.body.raw : JSON.stringify(r.body.json)
    }
    const res = await fetch(`${stack.baseUrl}${r.path}${qs ? `?${qs}` : ''}`, { method: r.method, headers, body, signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) })
    return { status: res.status, body: await res.text() }
  }
  const post = async (path: string, json: unknown): Promise<string> => {
    const r = await send({ method: 'POST', path, query: {}, body: { json } })
    if (r.status !== 201) throw new Error(`setup POST ${path}: ${r.status} ${r.body}`)
    const j = JSON.parse(r.body) as { id?: string; account?: { id: string } }
    return j.id ?? j.account!.id
  }

  for (let i = 0; i < 7; i++) {
    const r = await send({ method: 'POST', path: '/v1/api-keys', query: {}, body: { json: { name: `fuzz ${i}`, scopes: SCOPES } } })
    keys.push((JSON.parse(r.body) as { token: string }).token)
  }
  // A key the fuzz never uses, for the checks after it: the fuzz may leave its
  // own keys at their rate limit (whether it does depends on how many operations there are).
  const afterKey = (JSON.parse((await send({ method: 'POST', path: '/v1/api-keys', query: {}, body: { json: { name: 'after the fuzz', scopes: SCOPES } } })).body) as { token: string }).token
  // One of each resource, so generated ids hit real rows too. The trunk points
  // at a port nothing answers on: generated outbound calls fail fast and locally.
  const trunk = await post('/v1/trunks', { name: 'fuzz', outbound: { host: '127.0.0.1', port: 9, transport: 'udp' } })
  const ids = [
    trunk,
    await post('/v1/agents', { name: 'fuzz', rules: [{ match: 'hello', reply: 'hi' }] }),
    await post('/v1/tools', { name: 'fuzzTool', description: 'd', url: 'http://127.0.0.1:9/tool' }),
    await post('/v1/numbers', { number: '+4930123456' }),
    await post('/v1/extensions', { extension: '7001', password: 'password123' }),
    await post('/v1/routes', { name: 'all', prefix: '*', trunkId: trunk }),
    await post('/v1/webhooks', { url: 'http://127.0.0.1:9/hook', events: ['call.started'] }),
    await post('/v1/conferences', { name: 'fuzz' }),
    await post('/v1/flows', { name: 'fuzz', actions: [{ id: 'a', type: 'talk', option: { text: 'hello' } }, { type: 'goto', option: { target_id: 'a', loop_count: 1 } }] }),
    await post('/v1/api-keys', { name: 'fuzz', scopes: ['calls:read'] }),
    await post('/v1/accounts', { name: 'fuzz' }),
  ]
  // The contact centre's resources (issue 17), each referring to the ones above.
  const agentId = ids[1]!
  const flowId = ids[8]!
  const contactAgent = await post('/v1/contact-agents', { name: 'fuzz', addresses: [{ type: 'extension', target_name: '7001' }], tag_ids: ['fuzz'] })
  const outplan = await post('/v1/outplans', { name: 'fuzz', source: { type: 'tel', target: '+4930123456' } })
  const outdial = await post('/v1/outdials', { name: 'fuzz' })
  ids.push(
    contactAgent, outplan, outdial,
    await post('/v1/queues', { name: 'fuzz', tag_ids: ['fuzz'], wait_flow_id: flowId }),
    await post('/v1/campaigns', { name: 'fuzz', type: 'flow', flow_id: flowId, outplan_id: outplan, outdial_id: outdial }),
    await post('/v1/scheduled-calls', { agent_id: agentId, to_phone_number: '+4930123499', from: '+4930123456', scheduled_for: '2099-01-01T00:00:00Z' }),
    await post('/v1/sequences', { name: 'fuzz', agent_id: agentId, from: '+4930123456', steps: [{ type: 'wait', delay_minutes: 1 }] }),
  )
  // A resource's own id for its routes' first path parameter (/v1/queues/{id} → the queue), so
  // generated requests reach a real row as often as a missing one, however many resources there are.
  const ownId = new Map(['trunks', 'agents', 'tools', 'numbers', 'extensions', 'routes', 'webhooks', 'conferences', 'flows', 'api-keys', 'accounts',
    'contact-agents', 'outplans', 'outdials', 'queues', 'campaigns', 'scheduled-calls', 'sequences'].map((r, i) => [r, ids[i]!]))


  const doc = JSON.parse((await send({ method: 'GET', path: '/openapi.json', query: {} })).body) as Doc
  const resolve = (s: Schema): Schema => (s.$ref ? resolve(doc.components!.schemas![s.$ref.split('/').at(-1)!]!) : s)

  /** Values shaped like the schema (fast-check arbitraries). */
  const shaped = (s0: Schema, depth = 0): fc.Arbitrary<unknown> => {
    const s = resolve(s0)
    if (s.const !== undefined) return fc.constant(s.const)
    if (s.enum) return fc.constantFrom(...s.enum)
    const alts = s.anyOf ?? s.oneOf
    if (alts) return fc.oneof(...alts.map((a) => shaped(a, depth)))
    const type = Array.isArray(s.type) ? s.type[0] : s.type
    switch (type) {
      case 'string': return stringFor(s)
      case 'integer': return fc.integer({ min: Math.max(s.minimum ?? -1000, -1e9), max: Math.min(s.maximum ?? 100_000, 1e9) })
      case 'number': return fc.double({ min: s.minimum ?? -1000, max: s.maximum ?? 1000, noNaN: true, noDefaultInfinity: true })
      case 'boolean': return fc.boolean()
      case 'null': return fc.constant(null)
      case 'array': return depth > 4 ? fc.constant([]) : fc.array(shaped(s.items ?? {}, depth + 1), { minLength: s.minItems ?? 0, maxLength: Math.max(s.minItems ?? 0, Math.min(s.maxItems ?? 3, 3)) })
      case 'object': {
        if (depth > 4) return fc.constant({})
        const props = s.properties ?? {}
        if (Object.keys(props).length) {
          const rec = Object.fromEntries(Object.entries(props).map(([k, v]) => [k, shaped(v, depth + 1)]))
          return fc.record(rec, { requiredKeys: (s.required ?? []).filter((k) => k in props) })
        }
        const values = typeof s.additionalProperties === 'object' ? s.additionalProperties : Object.values(s.patternProperties ?? {})[0] ?? {}
        return fc.dictionary(fc.stringMatching(/^[A-Za-z][A-Za-z0-9-]{0,10}$/), shaped(values, depth + 1), { maxKeys: 3 })
      }
      default: return fc.jsonValue({ maxDepth: 2 })
    }
  }
  const stringFor = (s: Schema): fc.Arbitrary<unknown> => {
    switch (s.format) {
      case 'uuid': return fc.oneof(fc.constantFrom(...ids), fc.uuid())
      case 'uri': return fc.constantFrom('http://127.0.0.1:9/x', 'https://example.invalid/y', 'wss://127.0.0.1:9/ws', 'file:///etc/passwd', 'http://169.254.169.254/')
      case 'date-time': return fc.date({ min: new Date('2000-01-01'), max: new Date('2100-01-01'), noInvalidDate: true }).map((d) => d.toISOString())
      case 'phone-number': return fc.constantFrom('+4930123457', '1000', '2002', '+14155550100', '*97')
      case 'phone-number-or-sip-uri': return fc.constantFrom('+4930123457', '1000', 'sip:nobody@127.0.0.1:9', '7001')
    }
    const max = Math.min(s.maxLength ?? 40, 40)
    if (s.pattern) return fc.stringMatching(new RegExp(s.pattern)).filter((x) => x.length <= (s.maxLength ?? 300) && x.length >= (s.minLength ?? 0))
    return fc.string({ minLength: s.minLength ?? 0, maxLength: Math.max(max, s.minLength ?? 0), unit: 'grapheme' })
  }
  /** The value with one node (chosen by `at`) replaced by `odd`. */
  const mutate = (v: unknown, at: number, odd: unknown): unknown => {
    const nodes: Array<{ parent: Record<string, unknown> | unknown[]; key: string | number }> = []
    const walk = (x: unknown) => {
      if (Array.isArray(x)) x.forEach((c, i) => { nodes.push({ parent: x, key: i }); walk(c) })
      else if (x && typeof x === 'object') for (const [k, c] of Object.entries(x)) { nodes.push({ parent: x as Record<string, unknown>, key: k }); walk(c) }
    }
    const copy = structuredClone(v)
    walk(copy)
    if (!nodes.length) return odd
    const n = nodes[at % nodes.length]!
    ;(n.parent as Record<string | number, unknown>)[n.key] = odd
    return copy
  }
  const odd = fc.oneof(fc.constantFrom(...ODD_VALUES), fc.integer(), fc.string(), fc.nat({ max: 60 }).map((d) => nest(d)))
  const rawBodies = fc.constantFrom('{', '[]', 'null', '"x"', '1', '{"a":1,}', `{"name":"${'['.repeat(5000)}"}`, '['.repeat(100_000) + ']'.repeat(100_000),
    '{"name":"a","name":"b"}', '{"__proto__":{"x":1}}', '{"constructor":{"prototype":{"x":1}}}', '\u0000', '{"a":"\\ud800"}')

  const ops: Array<{ method: string; path: string; op: Operation }> = []
  for (const [path, byMethod] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(byMethod)) {
      if (!['get', 'post', 'put', 'patch', 'delete'].includes(method)) continue
      if (path === '/v1/events' || path.endsWith('/stream')) continue // WebSocket upgrades
      ops.push({ method: method.toUpperCase(), path, op })
    }
  }
  t.ok(ops.length > 30, `${ops.length} operations`)
  const RUNS = Number(process.env.FUZZ_RUNS ?? Math.floor(REQUEST_BUDGET / ops.length))

  const requestsFor = ({ method, path, op }: { method: string; path: string; op: Operation }): fc.Arbitrary<Req> => {
    const pathParams = (op.parameters ?? []).filter((p) => p.in === 'path')
    const queryParams = (op.parameters ?? []).filter((p) => p.in === 'query')
    const own = ownId.get(path.split('/')[2] ?? '')
    const pathArb = fc.tuple(...pathParams.map((_, i) => fc.oneof(
      { weight: 6, arbitrary: i === 0 && own ? fc.constant(own) : fc.constantFrom(...ids) },
      { weight: i === 0 && own ? 2 : 0, arbitrary: fc.constantFrom(...ids) },
      { weight: 2, arbitrary: fc.uuid() },
      { weight: 2, arbitrary: fc.constantFrom(...ODD_STRINGS.filter((s) => s !== ''), 'not-a-uuid') })))
      .map((vals) => pathParams.reduce((p, param, i) => p.replace(`{${param.name}}`, encodePathValue(String(vals[i]))), path))
    const queryArb = fc.record(Object.fromEntries(queryParams.map((q) => [q.name, fc.oneof({ weight: 4, arbitrary: shaped(q.schema) }, { weight: 1, arbitrary: fc.constantFrom(...ODD_STRINGS) })])), { requiredKeys: [] })
      .map((q) => Object.fromEntries(Object.entries(q).map(([k, v]) => [k, typeof v === 'string' ? v : JSON.stringify(v)])))
    const bodySchema = op.requestBody?.content['application/json']?.schema
    let bodyArb: fc.Arbitrary<Req['body']> = fc.constant(undefined)
    if (bodySchema) {
      let valid = shaped(bodySchema)
      // Outbound calls go through the fuzz trunk, which fails fast and locally.
      if (method === 'POST' && path === '/v1/calls') valid = valid.map((b) => ({ ...(b as object), trunkId: trunk }))
      bodyArb = fc.oneof(
        { weight: 5, arbitrary: valid.map((json) => ({ json })) },
        { weight: 4, arbitrary: fc.tuple(valid, fc.nat(), odd).map(([v, at, o]) => ({ json: mutate(v, at, o) })) },
        { weight: 1, arbitrary: rawBodies.map((raw) => ({ raw })) },
      )
    }
    return fc.record({ path: pathArb, query: queryArb, body: bodyArb }).map((r) => ({ method, ...r, ...(r.body === undefined ? { body: undefined } : {}) }))
  }

  const failures: string[] = []
  const statuses = new Map<number, number>()
  let sent = 0
  const started = Date.now()
  for (const [i, op] of ops.entries()) {
    // Placing calls costs a SIP transaction each: fewer of those.
    const runs = op.method === 'POST' && op.path === '/v1/calls' ? Math.min(RUNS, 40) : RUNS
    const reqs = fc.sample(requestsFor(op), { seed: SEED + i, numRuns: runs })
    let next = 0
    await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
      while (next < reqs.length) {
        const r = reqs[next++]!
        sent++
        try {
          const res = await send(r)
          statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1)
          if (res.status >= 500) failures.push(`${res.status} ${r.method} ${r.path} ${JSON.stringify(r.query)} ${JSON.stringify(r.body)?.slice(0, 300)} → ${res.body.slice(0, 200)}`)
        } catch (err) {
          failures.push(`no answer (${(err as Error).name}: ${(err as Error).message}) ${r.method} ${r.path} ${JSON.stringify(r.body)?.slice(0, 300)}`)
        }
      }
    }))
  }
  t.comment(`${sent} requests over ${ops.length} operations in ${Math.round((Date.now() - started) / 1000)} s`)
  t.comment(`statuses: ${JSON.stringify(Object.fromEntries([...statuses].sort((a, b) => a[0] - b[0])))}`)
  // The fuzz reaches the handlers: rate limiting does not answer for it, and generated requests do succeed.
  t.ok((statuses.get(429) ?? 0) < sent * 0.02, 'almost no request was rate limited')
  t.ok([...statuses].filter(([s]) => s < 300).reduce((n, [, c]) => n + c, 0) > sent * 0.1, 'more than a tenth of the requests succeeded')
  t.same(failures.slice(0, 30), [], `no 5xx and no hang (${failures.length} failures)`)
  keys.splice(0, keys.length, afterKey)
  const health = await send({ method: 'GET', path: '/health', query: {} })
  t.comment(`/health right after the fuzz: ${health.status} ${health.body.slice(0, 400)}`)
  // Trunks the fuzz created with outbound.register (to made-up carriers) rightly
  // turn the sip-bridge component down (503 while a registration that should be
  // up is not); with them gone, everything else must be healthy.
  for (let cursor: string | null = null, pages = 0; pages === 0 || (cursor && pages < 50); pages++) {
    const page = JSON.parse((await send({ method: 'GET', path: '/v1/trunks', query: { limit: '100', ...(cursor ? { cursor } : {}) } })).body) as { data: Array<{ id: string; outbound: { register?: boolean } | null }>; nextCursor: string | null }
    for (const tr of page.data) if (tr.outbound?.register) await send({ method: 'DELETE', path: `/v1/trunks/${tr.id}`, query: {} })
    cursor = page.nextCursor
  }
  let healthy = 0
  for (const until = Date.now() + 60_000; Date.now() < until;) {
    healthy = (await send({ method: 'GET', path: '/health', query: {} })).status
    if (healthy === 200) break
    await new Promise((r) => setTimeout(r, 500))
  }
  t.equal(healthy, 200, '/health is 200')
  t.equal((await send({ method: 'GET', path: '/v1/agents', query: {} })).status, 200, 'the API still answers')
})
