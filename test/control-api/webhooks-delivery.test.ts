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
import { CallControlSlot } from '../../call/call-control.ts'
import { v1Routes } from '../../control-api/routes/v1.ts'
import { WebhookWorker, type WebhookWorkerOptions } from '../../control-api/webhook-worker.ts'
import { openTestDatabase, silent, call } from './helpers.ts'

type Mode = 'up' | 'down' | 'hang' | 'slow' | 'delay'

/** A local webhook receiver that verifies Standard Webhooks signatures. */
function receiver() {
  const secrets = new Map<string, string>() // path → secret
  const modes = new Map<string, Mode>()
  const accepted: Array<{ path: string; id: string; type: string; body: any }> = []
  const rejectedSignatures: string[] = []
  const hung: ServerResponse[] = []
  /** 'slow' requests, answered when the test says so. */
  const held: Array<() => void> = []
  /** Call ids whose events a path refuses with 400 (a receiver that rejects one event). */
  const refuse = new Set<string>()
  let attempts = 0
  /** Requests being answered right now per path, and the most seen at once. */
  const inFlight = new Map<string, number>()
  const maxInFlight = new Map<string, number>()
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
      const answer = () => {
        try {
          const payload = new Webhook(secrets.get(path)!).verify(body, req.headers as Record<string, string>) as any
          if (refuse.has(payload.data?.call?.id)) {
            res.writeHead(400).end('refused')
            return
          }
          accepted.push({ path, id: req.headers['webhook-id'] as string, type: payload.type, body: payload })
          res.writeHead(204).end()
        } catch {
          rejectedSignatures.push(req.headers['webhook-id'] as string)
          res.writeHead(400).end('bad signature')
        }
      }
      if (mode === 'slow') held.push(answer)
      else if (mode === 'delay') {
        // Answer after 150 ms, counting how many requests to this path overlap.
        const n = (inFlight.get(path) ?? 0) + 1
        inFlight.set(path, n)
        maxInFlight.set(path, Math.max(maxInFlight.get(path) ?? 0, n))
        setTimeout(() => {
          inFlight.set(path, inFlight.get(path)! - 1)
          answer()
        }, 150)
      } else answer()
    })
  })
  return {
    server, secrets, modes, accepted, rejectedSignatures, hung, held, refuse, maxInFlight,
    get attempts() { return attempts },
    url: (path: string) => `http://127.0.0.1:${(server.address() as { port: number }).port}${path}`,
    releaseHung() {
      for (const r of hung.splice(0)) r.destroy()
    },
    answerHeld() {
      for (const a of held.splice(0)) a()
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

const WORKER: Omit<WebhookWorkerOptions, 'store' | 'logger'> = { pollIntervalMs: 100, retryScheduleMs: [200, 400], leaseMs: 3000, timeoutMs: 1500 }

t.test('webhook delivery', async (t) => {
  const rx = receiver()
  await new Promise<void>((r) => rx.server.listen(0, '127.0.0.1', r))
  t.teardown(() => {
    rx.releaseHung()
    rx.answerHeld()
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
    t.match(down, { enabled: true, status: 'failing', failingSince: String, lastError: 'HTTP 503' })
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

  t.test('receiver down far past the old 20-failure limit while events keep coming: stays enabled, all delivered once when it is back', async (t) => {
    await worker.stop()
    // Retries used up quickly, then a long wait: only the recovery (not the schedule) can bring the backlog in time.
    worker = new WebhookWorker({ store, logger: silent, ...WORKER, retryScheduleMs: [50, 100, 120_000] })
    worker.start()
    const wh = await subscribe('/f', ['call.started', 'call.ended'])
    rx.modes.set('/f', 'down')
    const calls = []
    for (let i = 0; i < 15; i++) {
      const c = await newCall()
      await store.calls.end(c.id, { status: 'completed', endedReason: 'customer-ended', hangupBy: 'caller' })
      calls.push(c)
      await new Promise((r) => setTimeout(r, 60))
    }
    await until('more than 20 consecutive failures and every delivery past its schedule', async () => {
      const { rows: [r] } = await db.pool.query<{ n: string }>(`SELECT count(*) AS n FROM webhook_deliveries WHERE webhook_id = $1 AND (attempts < 3 OR locked_until IS NOT NULL)`, [wh.id])
      return (await call(app, adminKey, 'GET', `/v1/webhooks/${wh.id}`)).json().failureCount > 20 && r!.n === '0'
    })
    const down = (await call(app, adminKey, 'GET', `/v1/webhooks/${wh.id}`)).json()
    t.match(down, { enabled: true, status: 'failing', lastError: 'HTTP 503', disabledAt: null })
    t.ok(down.failureCount >= 90, `every attempt counted (${down.failureCount})`)
    t.same((await call(app, adminKey, 'GET', `/v1/webhooks/${wh.id}/deliveries`)).json(), { pending: 30 }, 'nothing given up, nothing lost')
    rx.modes.set('/f', 'up')
    const last = await newCall() // its first attempt succeeds: the endpoint has recovered
    await until('31 deliveries on /f', () => rx.accepted.filter((a) => a.path === '/f').length >= 31)
    await new Promise((r) => setTimeout(r, 800)) // room for any duplicate to show up
    const got = rx.accepted.filter((a) => a.path === '/f')
    const { rows } = await db.pool.query<{ id: string }>(`SELECT id FROM events WHERE call_id = ANY($1) AND type IN ('call.started', 'call.ended')`, [[...calls, last].map((c) => c.id)])
    t.equal(got.length, 31, 'no duplicates')
    t.same(got.map((a) => a.id).sort(), rows.map((r) => r.id).sort(), 'every event once, by webhook-id')
    t.same(rx.rejectedSignatures, [], 'all signatures valid')
    t.match((await call(app, adminKey, 'GET', `/v1/webhooks/${wh.id}`)).json(), { status: 'active', failureCount: 0, failingSince: null })
    await call(app, adminKey, 'DELETE', `/v1/webhooks/${wh.id}`)
    await worker.stop()
    worker = new WebhookWorker({ store, logger: silent, ...WORKER })
    worker.start()
  })

  t.test('an event the receiver keeps refusing while it accepts others is given up after the schedule', async (t) => {
    const wh = await subscribe('/g', ['call.started'])
    const bad = await newCall()
    rx.refuse.add(bad.id)
    // Others keep being accepted between the refused event's attempts.
    for (let i = 0; i < 4; i++) {
      await newCall()
      await new Promise((r) => setTimeout(r, 250))
    }
    await until('refused delivery given up', async () => (await call(app, adminKey, 'GET', `/v1/webhooks/${wh.id}/deliveries`)).json().failed === 1)
    t.same((await call(app, adminKey, 'GET', `/v1/webhooks/${wh.id}/deliveries`)).json(), { delivered: 4, failed: 1 })
    t.match((await call(app, adminKey, 'GET', `/v1/webhooks/${wh.id}`)).json(), { enabled: true, lastError: 'HTTP 400' })
    rx.refuse.delete(bad.id)
    await call(app, adminKey, 'DELETE', `/v1/webhooks/${wh.id}`)
  })

  t.test('two slow endpoints do not hold up a fast one', async (t) => {
    await worker.stop()
    worker = new WebhookWorker({ store, logger: silent, ...WORKER, timeoutMs: 30_000 })
    worker.start()
    const slow1 = await subscribe('/slow1', ['call.started', 'call.ended'])
    const slow2 = await subscribe('/slow2', ['call.started', 'call.ended'])
    const fast = await subscribe('/fast', ['call.started', 'call.ended'])
    rx.modes.set('/slow1', 'slow')
    rx.modes.set('/slow2', 'slow')
    for (let i = 0; i < 10; i++) {
      const c = await newCall()
      await store.calls.end(c.id, { status: 'completed', endedReason: 'customer-ended', hangupBy: 'caller' })
    }
    // The slow receivers answer nothing until the fast one has all 20 (or 10 s have passed).
    const fastCount = () => rx.accepted.filter((a) => a.path === '/fast').length
    await until('fast endpoint has its 20 deliveries', () => fastCount() >= 20, 10_000).catch(() => {})
    const fastBeforeSlow = fastCount()
    const slowHeld = rx.held.length
    t.equal(fastBeforeSlow, 20, 'all 20 fast deliveries arrived while both slow endpoints had answered nothing')
    t.ok(slowHeld > 0 && slowHeld <= 8, `the slow endpoints hold only their own lanes' slots (${slowHeld} requests waiting)`)
    // Let the slow ones answer, one round at a time, until all 20 each are in.
    await until('slow endpoints served', () => {
      rx.answerHeld()
      return rx.accepted.filter((a) => a.path === '/slow1').length >= 20 && rx.accepted.filter((a) => a.path === '/slow2').length >= 20
    }, 30_000)
    await new Promise((r) => setTimeout(r, 500))
    for (const p of ['/slow1', '/slow2', '/fast']) {
      const ids = rx.accepted.filter((a) => a.path === p).map((a) => a.id)
      t.equal(ids.length, 20, `${p}: 20 deliveries`)
      t.equal(new Set(ids).size, 20, `${p}: each event once`)
    }
    for (const w of [slow1, slow2, fast]) await call(app, adminKey, 'DELETE', `/v1/webhooks/${w.id}`)
    rx.modes.delete('/slow1')
    rx.modes.delete('/slow2')
    await worker.stop()
    worker = new WebhookWorker({ store, logger: silent, ...WORKER })
    worker.start()
  })

  t.test('two workers (two nodes) on one outbox share the work: each event delivered once, the lane bound holds across them', async (t) => {
    const second = new WebhookWorker({ store, logger: silent, ...WORKER })
    second.start()
    t.teardown(() => second.stop())
    const wh = await subscribe('/h', ['call.started', 'call.ended'])
    rx.modes.set('/h', 'delay')
    const calls = []
    for (let i = 0; i < 15; i++) {
      const c = await newCall()
      await store.calls.end(c.id, { status: 'completed', endedReason: 'customer-ended', hangupBy: 'caller' })
      calls.push(c.id)
    }
    await until('30 deliveries on /h', () => rx.accepted.filter((a) => a.path === '/h').length >= 30, 30_000)
    await new Promise((r) => setTimeout(r, 800))
    const got = rx.accepted.filter((a) => a.path === '/h')
    t.equal(got.length, 30, 'no duplicates')
    t.equal(new Set(got.map((a) => a.id)).size, 30, 'each event once')
    // perEndpoint (4) leases per lane, counted across both workers.
    const max = rx.maxInFlight.get('/h')!
    t.ok(max >= 1 && max <= 4, `at most 4 requests to one endpoint at once, both workers together (saw ${max})`)
    t.same((await call(app, adminKey, 'GET', `/v1/webhooks/${wh.id}/deliveries`)).json(), { delivered: 30 })
    rx.modes.delete('/h')
    await call(app, adminKey, 'DELETE', `/v1/webhooks/${wh.id}`)
  })

  t.test('failing continuously for the disable window disables the webhook; its events keep queuing; re-enabling delivers the backlog once', async (t) => {
    await worker.stop()
    worker = new WebhookWorker({ store, logger: silent, ...WORKER, disableAfterMs: 1500 })
    worker.start()
    const wh = await subscribe('/c', ['call.started'])
    rx.modes.set('/c', 'down')
    const before = [await newCall(), await newCall()]
    await until('disabled', async () => (await call(app, adminKey, 'GET', `/v1/webhooks/${wh.id}`)).json().enabled === false)
    const disabled = (await call(app, adminKey, 'GET', `/v1/webhooks/${wh.id}`)).json()
    t.match(disabled, { enabled: false, status: 'disabled', failureCount: Number, disabledReason: /failed for 1500 ms/, lastError: 'HTTP 503', failingSince: String, disabledAt: String })
    t.ok(Date.parse(disabled.disabledAt) - Date.parse(disabled.failingSince) >= 1500, 'disabled only after failing for the whole window')
    // Events after the disable are still queued, not lost.
    const after = [await newCall(), await newCall(), await newCall()]
    const attempts = rx.attempts
    await new Promise((r) => setTimeout(r, 700))
    t.equal(rx.attempts, attempts, 'no attempts while disabled')
    t.same((await call(app, adminKey, 'GET', `/v1/webhooks/${wh.id}/deliveries`)).json(), { pending: 5 }, 'every event waits, including those after the disable')
    rx.modes.set('/c', 'up')
    const re = await call(app, adminKey, 'PATCH', `/v1/webhooks/${wh.id}`, { enabled: true })
    t.match(re.json(), { enabled: true, status: 'active', failureCount: 0, disabledReason: null, disabledAt: null, failingSince: null })
    await until('backlog delivered after re-enable', () => rx.accepted.filter((a) => a.path === '/c').length >= 5)
    await new Promise((r) => setTimeout(r, 800)) // room for any duplicate to show up
    const got = rx.accepted.filter((a) => a.path === '/c')
    t.same(got.map((a) => a.body.data.call.id).sort(), [...before, ...after].map((c) => c.id).sort(), 'each event once')
    t.equal(new Set(got.map((a) => a.id)).size, 5, 'distinct webhook-ids')
    t.same(rx.rejectedSignatures, [])
    t.same((await call(app, adminKey, 'GET', `/v1/webhooks/${wh.id}/deliveries`)).json(), { delivered: 5 })
    await call(app, adminKey, 'DELETE', `/v1/webhooks/${wh.id}`)
    await worker.stop()
    worker = new WebhookWorker({ store, logger: silent, ...WORKER })
    worker.start()
  })

  t.test('PATCH enabled:true on a failing webhook retries its pending deliveries now', async (t) => {
    await worker.stop()
    worker = new WebhookWorker({ store, logger: silent, ...WORKER, retryScheduleMs: [120_000] })
    worker.start()
    const wh = await subscribe('/i', ['call.started'])
    rx.modes.set('/i', 'down')
    const calls = [await newCall(), await newCall()]
    await until('both failed once', async () => (await call(app, adminKey, 'GET', `/v1/webhooks/${wh.id}`)).json().failureCount >= 2)
    rx.modes.set('/i', 'up')
    // The next retry is 2 minutes away; the user says the receiver is fixed.
    const r = await call(app, adminKey, 'PATCH', `/v1/webhooks/${wh.id}`, { enabled: true })
    t.match(r.json(), { enabled: true, status: 'failing' }, 'still failing until an attempt succeeds')
    await until('both delivered', () => rx.accepted.filter((a) => a.path === '/i').length >= 2)
    t.same(rx.accepted.filter((a) => a.path === '/i').map((a) => a.body.data.call.id).sort(), calls.map((c) => c.id).sort())
    t.match((await call(app, adminKey, 'GET', `/v1/webhooks/${wh.id}`)).json(), { status: 'active', failureCount: 0 })
    await call(app, adminKey, 'DELETE', `/v1/webhooks/${wh.id}`)
    await worker.stop()
    worker = new WebhookWorker({ store, logger: silent, ...WORKER })
    worker.start()
  })

  t.test('a webhook the user disables queues nothing until enabled again', async (t) => {
    const wh = await subscribe('/e', ['call.started'])
    const off = await call(app, adminKey, 'PATCH', `/v1/webhooks/${wh.id}`, { enabled: false })
    t.match(off.json(), { enabled: false, status: 'disabled', disabledReason: null, disabledAt: String })
    await newCall()
    t.same((await call(app, adminKey, 'GET', `/v1/webhooks/${wh.id}/deliveries`)).json(), {}, 'nothing queued')
    await call(app, adminKey, 'PATCH', `/v1/webhooks/${wh.id}`, { enabled: true })
    const c = await newCall()
    await until('delivered once enabled', () => rx.accepted.some((a) => a.path === '/e'))
    t.same(rx.accepted.filter((a) => a.path === '/e').map((a) => a.body.data.call.id), [c.id])
    await call(app, adminKey, 'DELETE', `/v1/webhooks/${wh.id}`)
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
