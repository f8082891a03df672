import t from 'tap'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import { Webhook } from 'standardwebhooks'
import { Registry } from 'prom-client'
import { migrate } from '../../store/migrator.ts'
import { bootstrap } from '../../store/bootstrap.ts'
import { createStore, type Store } from '../../store/index.ts'
import { SecretBox } from '../../store/secrets.ts'
import type { Database } from '../../store/database.ts'
import { buildApiServer } from '../../control-api/app.ts'
import { HealthRegistry } from '../../control-api/health.ts'
import { CallControlSlot } from '../../control-api/call-control.ts'
import { v1Routes } from '../../control-api/routes/v1.ts'
import { WebhookWorker, type WebhookWorkerOptions } from '../../control-api/webhook-worker.ts'
import { openTestDatabase, silent, call } from './helpers.ts'

type Mode = 'up' | 'down' | 'hang'

/** A local webhook receiver that verifies Standard Webhooks signatures. */
function receiver() {
  const secrets = new Map<string, string>() // path → secret
  const modes = new Map<string, Mode>()
  const accepted: Array<{ path: string; id: string; type: string; body: any }> = []
  const rejectedSignatures: string[] = []
  const hung: ServerResponse[] = []
  let attempts = 0
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = []
    req.on('data', (c) => chunks.push(c))
    req.on('end', () => {
      attempts++
      const path = req.url ?? '/'
      const mode = modes.get(path) ?? 'up'
      if (mode === 'hang') {
        hung.push(res)
        return
      }
      if (mode === 'down') {
        res.writeHead(503).end('down')
        return
      }
      const body = Buffer.concat(chunks).toString('utf8')
      try {
        const payload = new Webhook(secrets.get(path)!).verify(body, req.headers as Record<string, string>) as any
        accepted.push({ path, id: req.headers['webhook-id'] as string, type: payload.type, body: payload })
        res.writeHead(204).end()
      } catch {
        rejectedSignatures.push(req.headers['webhook-id'] as string)
        res.writeHead(400).end('bad signature')
      }
    })
  })
  return {
    server, secrets, modes, accepted, rejectedSignatures, hung,
    get attempts() { return attempts },
    url: (path: string) => `http://127.0.0.1:${(server.address() as { port: number }).port}${path}`,
    releaseHung() {
      for (const r of hung.splice(0)) r.destroy()
    },
  }
}

async function until(what: string, fn: () => boolean | Promise<boolean>, ms = 20_000): Promise<void> {
  const end = Date.now() + ms
  while (Date.now() < end) {
    if (await fn()) return
    await new Promise((r) => setTimeout(r, 50))
  }
  throw new Error(`timed out waiting for: ${what}`)
}

const WORKER: Omit<WebhookWorkerOptions, 'store' | 'logger'> = { pollIntervalMs: 100, backoffMs: [200, 400], leaseMs: 3000, timeoutMs: 1500, maxAttempts: 50, disableAfter: 1000 }

t.test('webhook delivery', async (t) => {
  const rx = receiver()
  await new Promise<void>((r) => rx.server.listen(0, '127.0.0.1', r))
  t.teardown(() => {
    rx.releaseHung()
    rx.server.close()
  })

  const tdb = await openTestDatabase()
  let db: Database = tdb.db
  await migrate(db, silent)
  const adminKey = 'cp_test_webhooks_admin'
  const { account } = await bootstrap(db, adminKey, silent, { demo: false })
  const secretBox = new SecretBox('webhook-test')
  let store: Store = createStore(db, secretBox, silent)
  await store.outbox.start()
  const app = await buildApiServer({
    logger: silent, registry: new Registry(), health: new HealthRegistry(), isDraining: () => false,
    registerRoutes: v1Routes({ store, callControl: new CallControlSlot(), allowInsecureWebhooks: true, rateLimit: false }),
  })
  let worker = new WebhookWorker({ store, logger: silent, ...WORKER })
  worker.start()
  t.teardown(async () => {
    await worker.stop()
    await app.close().catch(() => {})
    await store.outbox.stop()
    await db.close()
    await tdb.cleanup()
  })

  const subscribe = async (path: string, events: string[]) => {
    const r = await call(app, adminKey, 'POST', '/v1/webhooks', { url: rx.url(path), events })
    if (r.statusCode !== 201) throw new Error(r.body)
    rx.secrets.set(path, r.json().secret)
    return r.json() as { id: string; secret: string }
  }
  const newCall = () => store.calls.create({ accountId: account.id, direction: 'inbound', from: '+4915112345678', to: '1000', status: 'ringing' })

  t.test('signed with Standard Webhooks, only subscribed events, webhook-id = event id', async (t) => {
    const wh = await subscribe('/a', ['call.started', 'call.ended'])
    t.match(wh.secret, /^whsec_/)
    const c = await newCall()
    await store.calls.markAnswered(c.id)
    await store.calls.end(c.id, { status: 'completed', endedReason: 'customer-ended', hangupBy: 'caller' })
    await until('2 deliveries on /a', () => rx.accepted.filter((a) => a.path === '/a').length >= 2)
    const got = rx.accepted.filter((a) => a.path === '/a')
    t.same(got.map((a) => a.type), ['call.started', 'call.ended'], 'ringing/answered not subscribed, not sent')
    const { rows } = await db.pool.query<{ id: string; type: string }>(`SELECT id, type FROM events WHERE call_id = $1 AND type IN ('call.started', 'call.ended') ORDER BY seq`, [c.id])
    t.same(got.map((a) => a.id), rows.map((r) => r.id), 'webhook-id is the event id')
    t.match(got[1]!.body, { type: 'call.ended', timestamp: String, data: { call: { id: c.id, status: 'completed', endedReason: 'customer-ended' }, eventId: rows[1]!.id, callId: c.id } })
    t.same(rx.rejectedSignatures, [])
    await until('lastDeliveredAt', async () => (await call(app, adminKey, 'GET', `/v1/webhooks/${wh.id}`)).json().lastDeliveredAt !== null)
    t.match((await call(app, adminKey, 'GET', `/v1/webhooks/${wh.id}`)).json(), { failureCount: 0, enabled: true })
    await call(app, adminKey, 'DELETE', `/v1/webhooks/${wh.id}`)
  })

  t.test('a state change that rolls back announces nothing', async (t) => {
    const before = (await db.pool.query<{ n: string }>('SELECT count(*) AS n FROM events')).rows[0]!.n
    await t.rejects(store.outbox.transaction(async (c, emit) => {
      await c.query(`INSERT INTO calls (id, account_id, direction, status, from_number, to_number) VALUES (gen_random_uuid(), $1, 'inbound', 'ringing', 'a', 'b')`, [account.id])
      await emit(account.id, 'call.started', { x: 1 })
      throw new Error('boom')
    }), /boom/)
    t.equal((await db.pool.query<{ n: string }>('SELECT count(*) AS n FROM events')).rows[0]!.n, before)
    t.equal((await db.pool.query<{ n: string }>(`SELECT count(*) AS n FROM calls WHERE from_number = 'a'`)).rows[0]!.n, '0')
  })

  t.test('receiver down for a while: everything delivered later, each once', async (t) => {
    const wh = await subscribe('/b', ['call.started'])
    rx.modes.set('/b', 'down')
    const calls = [await newCall(), await newCall(), await newCall()]
    await until('failures counted', async () => (await call(app, adminKey, 'GET', `/v1/webhooks/${wh.id}`)).json().failureCount >= 3)
    const down = (await call(app, adminKey, 'GET', `/v1/webhooks/${wh.id}`)).json()
    t.ok(down.lastFailedAt, 'lastFailedAt set')
    t.equal(down.enabled, true)
    t.equal(rx.accepted.filter((a) => a.path === '/b').length, 0)
    rx.modes.set('/b', 'up')
    await until('3 deliveries on /b', () => rx.accepted.filter((a) => a.path === '/b').length >= 3)
    await new Promise((r) => setTimeout(r, 800)) // room for any duplicate to show up
    const got = rx.accepted.filter((a) => a.path === '/b')
    t.equal(got.length, 3, 'no duplicates')
    t.same(got.map((a) => a.body.data.call.id).sort(), calls.map((c) => c.id).sort(), 'each call once')
    const stats = (await call(app, adminKey, 'GET', `/v1/webhooks/${wh.id}/deliveries`)).json()
    t.same(stats, { delivered: 3 })
    t.equal((await call(app, adminKey, 'GET', `/v1/webhooks/${wh.id}`)).json().failureCount, 0, 'a success resets the consecutive count')
    await call(app, adminKey, 'DELETE', `/v1/webhooks/${wh.id}`)
  })

  t.test('repeated failures disable the webhook; re-enabling resets failureCount and resumes delivery', async (t) => {
    await worker.stop()
    worker = new WebhookWorker({ store, logger: silent, ...WORKER, disableAfter: 3 })
    worker.start()
    const wh = await subscribe('/c', ['call.started'])
    rx.modes.set('/c', 'down')
    const c = await newCall()
    await until('disabled', async () => (await call(app, adminKey, 'GET', `/v1/webhooks/${wh.id}`)).json().enabled === false)
    const disabled = (await call(app, adminKey, 'GET', `/v1/webhooks/${wh.id}`)).json()
    t.match(disabled, { enabled: false, failureCount: 3, disabledReason: /failures/ })
    const attempts = rx.attempts
    await new Promise((r) => setTimeout(r, 700))
    t.equal(rx.attempts, attempts, 'no attempts while disabled')
    t.same((await call(app, adminKey, 'GET', `/v1/webhooks/${wh.id}/deliveries`)).json(), { pending: 1 }, 'the delivery waits')
    rx.modes.set('/c', 'up')
    const re = await call(app, adminKey, 'PATCH', `/v1/webhooks/${wh.id}`, { enabled: true })
    t.match(re.json(), { enabled: true, failureCount: 0, disabledReason: null })
    await until('delivered after re-enable', () => rx.accepted.some((a) => a.path === '/c'))
    t.equal(rx.accepted.find((a) => a.path === '/c')!.body.data.call.id, c.id)
    await call(app, adminKey, 'DELETE', `/v1/webhooks/${wh.id}`)
    await worker.stop()
    worker = new WebhookWorker({ store, logger: silent, ...WORKER })
    worker.start()
  })

  t.test('a restart mid-delivery still delivers', async (t) => {
    const wh = await subscribe('/d', ['call.started'])
    rx.modes.set('/d', 'hang')
    const c = await newCall()
    await until('request in flight', () => rx.hung.length >= 1)
    // "Crash": drop the worker and the database without settling the delivery.
    const dying = worker
    void dying.stop()
    await app.close()
    await store.outbox.stop()
    await db.close()
    rx.releaseHung()
    const pending = { n: 0 }
    // Restart on the same data.
    db = await tdb.reopen()
    await migrate(db, silent)
    store = createStore(db, secretBox, silent)
    await store.outbox.start()
    pending.n = Number((await db.pool.query<{ n: string }>(`SELECT count(*) AS n FROM webhook_deliveries WHERE webhook_id = $1 AND status = 'pending'`, [wh.id])).rows[0]!.n)
    t.equal(pending.n, 1, 'the delivery survived the restart as pending')
    rx.modes.set('/d', 'up')
    worker = new WebhookWorker({ store, logger: silent, ...WORKER })
    worker.start()
    await until('delivered after restart', () => rx.accepted.some((a) => a.path === '/d'), 30_000)
    const got = rx.accepted.filter((a) => a.path === '/d')
    t.equal(got.length, 1)
    t.equal(got[0]!.body.data.call.id, c.id)
  })
})
