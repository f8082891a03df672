import t from 'tap'
import type { Scope } from '../../store/api-keys.ts'
import { Registry } from 'prom-client'
import { buildApiServer } from '../../control-api/app.ts'
import { HealthRegistry } from '../../control-api/health.ts'
import { CallControlSlot } from '../../call/call-control.ts'
import { v1Routes } from '../../control-api/routes/v1.ts'
import { buildTestApp, call, silent, type TestApp } from './helpers.ts'

/**
 * Every CRUD resource under /v1, table-driven: happy path, validation
 * failure, no auth, wrong scope, another account's resource (404) and
 * cursor pagination.
 */
interface Spec {
  path: string
  scope: Scope
  wrongScope: Scope
  body: (h: TestApp, i: number) => Promise<Record<string, unknown>>
  /** A body that must fail validation, and a fragment the error message must contain. */
  invalid: (h: TestApp) => Promise<{ body: Record<string, unknown>; mentions: string }>
  patch: Record<string, unknown>
  expectAfterPatch: Record<string, unknown>
  /** Fields that must never come back. */
  hidden?: string[]
}

let trunkSeq = 0
async function trunkId(h: TestApp, accountId = h.accountId): Promise<string> {
  return (await h.store.trunks.create(accountId, { name: `carrier ${trunkSeq++}`, outbound: { host: 'sip.carrier.example', port: 5060 } })).id
}

const specs: Spec[] = [
  {
    path: 'agents', scope: 'agents:manage', wrongScope: 'numbers:manage',
    body: async (_h, i) => ({ name: `agent ${i}`, greeting: 'Hello', prompt: 'Be nice', language: 'en-US', stt: { provider: 'pocketsphinx' }, llm: { provider: 'scripted' }, tts: { provider: 'espeak' }, bargeIn: { enabled: true, minSpeechMs: 200 }, vad: 'energy', aiSpeaksFirst: false, expectedPhrases: ['billing', 'sales'], amd: { onMachine: 'leave_message', message: 'Please call us back.' } }),
    invalid: async () => ({ body: { name: 'x', language: 'english please' }, mentions: '/language' }),
    patch: { greeting: 'Hi there', bargeIn: null }, expectAfterPatch: { greeting: 'Hi there' },
  },
  {
    path: 'tools', scope: 'tools:manage', wrongScope: 'agents:manage',
    body: async (_h, i) => ({ name: `lookupOrder${i}`, description: 'Look up an order', url: 'https://crm.example/orders', method: 'POST', inputSchema: { type: 'object' } }),
    invalid: async () => ({ body: { name: 'has spaces', description: 'd', url: 'https://x.example' }, mentions: '/name' }),
    patch: { enabled: false, description: 'Updated description' }, expectAfterPatch: { enabled: false, description: 'Updated description' },
  },
  {
    path: 'webhooks', scope: 'webhooks:manage', wrongScope: 'tools:manage',
    body: async (_h, i) => ({ url: `https://hooks.example/${i}`, events: ['call.started', 'call.ended'], description: 'CRM' }),
    invalid: async () => ({ body: { url: 'https://hooks.example/x', events: ['call.exploded'] }, mentions: '/events/0' }),
    patch: { events: ['call.ended'], enabled: false }, expectAfterPatch: { events: ['call.ended'], enabled: false },
    hidden: ['secret', 'secretSealed'],
  },
  {
    path: 'numbers', scope: 'numbers:manage', wrongScope: 'agents:manage',
    body: async (h, i) => {
      const agent = await h.store.agents.create(h.accountId, { name: 'target' })
      return { number: `+4930123456${String(i).padStart(2, '0')}`, name: 'Berlin', trunkId: await trunkId(h), target: { type: 'agent', id: agent.id } }
    },
    invalid: async () => ({ body: { number: '030 1234' }, mentions: '/number' }),
    patch: { name: 'Berlin office' }, expectAfterPatch: { name: 'Berlin office' },
  },
  {
    path: 'trunks', scope: 'numbers:manage', wrongScope: 'calls:write',
    body: async (_h, i) => ({
      name: `carrier ${i}`, description: 'primary',
      inbound: { allowedIps: ['203.0.113.0/24', '198.51.100.7'], username: `in${i}`, password: 'inbound-secret' },
      outbound: { host: 'sip.carrier.example', port: 5060, transport: 'udp', username: 'acct', password: 'outbound-secret', register: true, techPrefix: '00', headers: { 'X-Tenant': 'a' } },
      codecs: ['PCMA', 'PCMU'], concurrencyLimit: 30,
    }),
    invalid: async () => ({ body: { name: 'bad', inbound: { allowedIps: ['300.1.1.1'] } }, mentions: 'allowedIps/0' }),
    patch: { concurrencyLimit: 10, outbound: { port: 5080 } }, expectAfterPatch: { concurrencyLimit: 10 },
    hidden: ['password', 'inbound_ha1_md5', 'outbound_password'],
  },
  {
    path: 'routes', scope: 'numbers:manage', wrongScope: 'webhooks:manage',
    body: async (h, i) => ({ name: `de ${i}`, prefix: '+49', trunkId: await trunkId(h), priority: i }),
    invalid: async (h) => ({ body: { name: 'x', prefix: 'abc', trunkId: await trunkId(h) }, mentions: '/prefix' }),
    patch: { enabled: false, priority: 7 }, expectAfterPatch: { enabled: false, priority: 7 },
  },
  {
    path: 'extensions', scope: 'numbers:manage', wrongScope: 'tools:manage',
    body: async (_h, i) => ({ extension: `20${i}`, password: 'correct horse battery', name: `Desk ${i}`, callerId: '+4930123456' }),
    invalid: async () => ({ body: { extension: '201', password: 'short' }, mentions: '/password' }),
    patch: { name: 'Reception' }, expectAfterPatch: { name: 'Reception' },
    hidden: ['password', 'ha1Md5', 'ha1Sha256', 'ha1_md5'],
  },
]

t.test('resources', async (t) => {
  const h = await buildTestApp()
  t.teardown(() => h.close())
  let n = 0

  t.test('webhooks need https outside the embedded mode; at most 10 per account', async (t) => {
    const strict = await buildApiServer({
      logger: silent, registry: new Registry(), health: new HealthRegistry(), isDraining: () => false,
      registerRoutes: v1Routes({ store: h.store, callControl: new CallControlSlot(), allowInsecureWebhooks: false, rateLimit: false }),
    })
    t.teardown(() => strict.close())
    const plain = await call(strict, h.other.key, 'POST', '/v1/webhooks', { url: 'http://hooks.example/x', events: ['call.ended'] })
    t.equal(plain.statusCode, 400)
    t.match(plain.json().error.message, /https/)
    const codes: number[] = []
    for (let i = 0; i < 11; i++) codes.push((await call(strict, h.other.key, 'POST', '/v1/webhooks', { url: `https://hooks.example/${i}`, events: ['call.ended'] })).statusCode)
    t.same(codes, [...Array(10).fill(201), 409])
    const list = (await call(strict, h.other.key, 'GET', '/v1/webhooks?limit=100')).json()
    for (const w of list.data) await call(strict, h.other.key, 'DELETE', `/v1/webhooks/${w.id}`)
  })

  t.test('tools: at most 20 per account; names unique', async (t) => {
    const acct = (await call(h.app, h.adminKey, 'POST', '/v1/accounts', { name: 'tool limits' })).json()
    const key = acct.apiKey.token as string
    const body = (i: number) => ({ name: `tool${i}`, description: 'd', url: 'https://x.example/t' })
    t.equal((await call(h.app, key, 'POST', '/v1/tools', body(0))).statusCode, 201)
    const dup = await call(h.app, key, 'POST', '/v1/tools', body(0))
    t.equal(dup.statusCode, 409)
    t.equal((await call(h.app, key, 'GET', '/v1/tools')).statusCode, 200, 'the API keeps working after a failed insert')
    for (let i = 1; i < 20; i++) t.equal((await call(h.app, key, 'POST', '/v1/tools', body(i))).statusCode, 201)
    const over = await call(h.app, key, 'POST', '/v1/tools', body(20))
    t.equal(over.statusCode, 409)
    t.equal(over.json().error.code, 'limit_exceeded')
  })

  for (const s of specs) {
    t.test(`/v1/${s.path}`, async (t) => {
      const base = `/v1/${s.path}`

      t.test('happy path: create, get, update, list, delete', async (t) => {
        const created = await call(h.app, h.adminKey, 'POST', base, await s.body(h, n++))
        t.equal(created.statusCode, 201, created.body)
        const c = created.json()
        t.match(c, { id: String, accountId: h.accountId, createdAt: String })
        for (const f of s.hidden ?? []) t.notOk(JSON.stringify(c).includes(`"${f}"`) && f !== 'secret', `create hides ${f}`)
        const got = await call(h.app, h.adminKey, 'GET', `${base}/${c.id}`)
        t.equal(got.statusCode, 200)
        t.same(got.json(), Object.fromEntries(Object.entries(c).filter(([k]) => k !== 'secret')), 'get returns what create returned')
        for (const f of s.hidden ?? []) t.notOk(got.body.includes(`"${f}"`), `get hides ${f}`)
        const patched = await call(h.app, h.adminKey, 'PATCH', `${base}/${c.id}`, s.patch)
        t.equal(patched.statusCode, 200, patched.body)
        t.match(patched.json(), s.expectAfterPatch)
        const list = await call(h.app, h.adminKey, 'GET', `${base}?limit=100`)
        t.equal(list.statusCode, 200)
        t.ok(list.json().data.some((x: { id: string }) => x.id === c.id), 'listed')
        const del = await call(h.app, h.adminKey, 'DELETE', `${base}/${c.id}`)
        t.equal(del.statusCode, 204)
        const gone = await call(h.app, h.adminKey, 'GET', `${base}/${c.id}`)
        t.equal(gone.statusCode, 404)
        t.equal(gone.json().error.code, 'not_found')
      })

      t.test('validation failure is a 400 that names the field', async (t) => {
        const { body, mentions } = await s.invalid(h)
        const r = await call(h.app, h.adminKey, 'POST', base, body)
        t.equal(r.statusCode, 400, r.body)
        t.equal(r.json().error.code, 'validation_failed')
        t.match(r.json().error.message, mentions)
        const unknown = await call(h.app, h.adminKey, 'POST', base, { ...(await s.body(h, n++)), bogusField: 1 })
        t.equal(unknown.statusCode, 400, 'unknown fields are refused')
        const badId = await call(h.app, h.adminKey, 'GET', `${base}/not-a-uuid`)
        t.equal(badId.statusCode, 400)
        const emptyPatch = await call(h.app, h.adminKey, 'PATCH', `${base}/00000000-0000-4000-8000-000000000000`, {})
        t.equal(emptyPatch.statusCode, 400)
      })

      t.test('no auth → 401', async (t) => {
        for (const [m, u] of [['GET', base], ['POST', base], ['GET', `${base}/00000000-0000-4000-8000-000000000000`]] as const) {
          const r = await call(h.app, null, m, u, m === 'POST' ? {} : undefined)
          t.equal(r.statusCode, 401, `${m} ${u}`)
          t.equal(r.json().error.code, 'unauthorized')
        }
        const bad = await call(h.app, 'cp_not_a_real_key', 'GET', base)
        t.equal(bad.statusCode, 401)
        t.equal(bad.json().error.code, 'invalid_api_key')
      })

      t.test('wrong scope → 403, right scope → 2xx', async (t) => {
        const wrong = await h.keyWith([s.wrongScope])
        const r = await call(h.app, wrong, 'GET', base)
        t.equal(r.statusCode, 403)
        t.equal(r.json().error.code, 'insufficient_scope')
        t.match(r.json().error.message, s.scope)
        const w = await call(h.app, wrong, 'POST', base, await s.body(h, n++))
        t.equal(w.statusCode, 403)
        const right = await h.keyWith([s.scope])
        const ok = await call(h.app, right, 'POST', base, await s.body(h, n++))
        t.equal(ok.statusCode, 201, ok.body)
      })

      t.test("another account's resource → 404", async (t) => {
        const mine = (await call(h.app, h.adminKey, 'POST', base, await s.body(h, n++))).json()
        for (const [m, body] of [['GET', undefined], ['PATCH', s.patch], ['DELETE', undefined]] as const) {
          const r = await call(h.app, h.other.key, m, `${base}/${mine.id}`, body)
          t.equal(r.statusCode, 404, `${m} from the other account`)
          t.equal(r.json().error.code, 'not_found')
        }
        const theirs = await call(h.app, h.other.key, 'GET', `${base}?limit=100`)
        t.equal(theirs.statusCode, 200)
        t.notOk(theirs.json().data.some((x: { id: string }) => x.id === mine.id), 'not in their list')
        t.equal((await call(h.app, h.adminKey, 'GET', `${base}/${mine.id}`)).statusCode, 200, 'still there for the owner')
      })

      t.test('cursor pagination', async (t) => {
        const key = (await call(h.app, h.adminKey, 'POST', '/v1/accounts', { name: `pager ${s.path}` })).json()
        const acct = key.account.id as string
        const token = key.apiKey.token as string
        const made: string[] = []
        const scoped: TestApp = { ...h, accountId: acct }
        for (let i = 0; i < 5; i++) {
          const r = await call(h.app, token, 'POST', base, await s.body(scoped, n++))
          t.equal(r.statusCode, 201, r.body)
          made.push(r.json().id)
        }
        const seen: string[] = []
        let cursor: string | null = null
        let pages = 0
        do {
          const r = await call(h.app, token, 'GET', `${base}?limit=2${cursor ? `&cursor=${cursor}` : ''}`)
          t.equal(r.statusCode, 200)
          const page = r.json() as { data: Array<{ id: string }>; nextCursor: string | null }
          t.ok(page.data.length <= 2)
          seen.push(...page.data.map((x) => x.id))
          cursor = page.nextCursor
          pages++
        } while (cursor && pages < 10)
        t.equal(pages, 3)
        t.same([...seen].sort(), [...made].sort(), 'every item exactly once')
        t.equal((await call(h.app, token, 'GET', `${base}?cursor=garbage!`)).statusCode, 400)
        t.equal((await call(h.app, token, 'GET', `${base}?limit=0`)).statusCode, 400)
        t.equal((await call(h.app, token, 'GET', `${base}?limit=101`)).statusCode, 400)
      })
    })
  }
})
