import t from 'tap'
import { createServer, type IncomingMessage, type ServerResponse, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Webhook } from 'standardwebhooks'
import { startStack } from '../harness/stack.ts'
import { freePort } from '../harness/ports.ts'
import { runSipp } from '../harness/sipp.ts'
import { apiClient } from '../harness/api-client.ts'
import { waitFor } from '../harness/wait.ts'
import { buildTestApp, call, openTestDatabase, silent } from './helpers.ts'
import { OutboundUrlPolicy } from '../../config/outbound-url-policy.ts'
import { migrate } from '../../store/migrator.ts'
import { bootstrap } from '../../store/bootstrap.ts'
import { createStore } from '../../store/index.ts'
import { SecretBox } from '../../store/secrets.ts'
import { WebhookWorker } from '../../control-api/webhook-worker.ts'

/**
 * Telefon's status_callback through the public surface: calls placed with
 * POST /v1/calls to a sipp UAS and calls from sipp to a number, a local HTTP
 * server receiving the statuses, every signature checked with the secret
 * from GET /v1/signing-secret.
 */

interface Hit {
  path: string
  method: string
  /** The status callback's fields (JSON body, or the query of a GET). */
  fields: Record<string, unknown>
  webhookId: string
  verified: boolean
  /** What the server answered. */
  answered: number
}

/** A status callback receiver; `fail(hit)` decides whether to answer 503. */
function receiver() {
  let secret = ''
  let fail: (hit: Omit<Hit, 'answered'>, attemptsOfThisId: number) => boolean = () => false
  const hits: Hit[] = []
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8')
      const url = new URL(req.url ?? '/', `http://127.0.0.1:${(server.address() as AddressInfo).port}`)
      let verified = false
      if (req.method === 'GET') {
        // A GET has no body: the engine signs the full URL it requested (the
        // libraries' verify() parses a JSON payload, so compare with sign()).
        const ts = Number(req.headers['webhook-timestamp'])
        const expected = new Webhook(secret).sign(String(req.headers['webhook-id']), new Date(ts * 1000), url.toString())
        verified = Math.abs(Date.now() / 1000 - ts) < 300 && String(req.headers['webhook-signature']).split(' ').includes(expected)
      } else {
        try {
          new Webhook(secret).verify(body, req.headers as Record<string, string>)
          verified = true
        } catch { /* recorded as unverified */ }
      }
      const fields = req.method === 'GET' ? Object.fromEntries(url.searchParams) : (JSON.parse(body) as Record<string, unknown>)
      const hit = { path: url.pathname, method: req.method ?? '', fields, webhookId: String(req.headers['webhook-id']), verified }
      const attempts = hits.filter((h) => h.webhookId === hit.webhookId).length + 1
      const answered = fail(hit, attempts) ? 503 : 204
      hits.push({ ...hit, answered })
      res.writeHead(answered).end()
    })
  })
  return {
    hits,
    server,
    set secret(s: string) { secret = s },
    set fail(f: typeof fail) { fail = f },
    url: (path: string) => `http://127.0.0.1:${(server.address() as AddressInfo).port}${path}`,
    /** The accepted statuses of one path, in arrival order. */
    accepted: (path: string) => hits.filter((h) => h.path === path && h.answered === 204),
    of: (path: string) => hits.filter((h) => h.path === path),
  }
}

/** Every request of a call (retries too) came in status order: a later status never before an earlier one was accepted. */
function inOrder(hits: Hit[]): boolean {
  let acceptedUpTo = -1
  for (const h of hits) {
    const seq = Number(h.fields.sequence_number)
    if (seq > acceptedUpTo + 1) return false
    if (h.answered === 204) acceptedUpTo = Math.max(acceptedUpTo, seq)
  }
  return true
}

t.test('status_callback over real SIP', async (t) => {
  const stack = await startStack({ WEBHOOK_RETRY_SCHEDULE: '100ms,200ms,300ms' })
  t.teardown(() => stack.stop())
  const { api, post } = apiClient(stack)
  const rx = receiver()
  await new Promise<void>((r) => rx.server.listen(0, '127.0.0.1', r))
  t.teardown(() => rx.server.close())
  rx.secret = ((await (await api('/v1/signing-secret')).json()) as { secret: string }).secret
  t.equal((await post('/v1/numbers', { number: '2001' })).status, 201, 'the caller ID is a number of the account')

  /** The sipp callee: answers every INVITE (180, 200) and waits for our BYE. */
  const calleePort = await freePort()
  const callee = runSipp({ scenario: 'uas', localPort: calleePort, calls: 10, timeoutMs: 200_000 })
  t.teardown(() => callee.kill())
  await new Promise((r) => setTimeout(r, 300))

  /** An outbound call that is answered, then hung up through the API once it is in progress. */
  const answeredThenHungUp = async (body: Record<string, unknown>): Promise<{ id: string; created: Record<string, unknown> }> => {
    const res = await post('/v1/calls', { to: `sip:callee@127.0.0.1:${calleePort}`, from: '2001', ...body })
    const created = (await res.json()) as Record<string, unknown>
    if (res.status !== 201) throw new Error(`POST /v1/calls: ${res.status} ${JSON.stringify(created)}`)
    const id = created.id as string
    await waitFor(async () => ((await (await api(`/v1/calls/${id}`)).json()) as { status: string }).status === 'in-progress', 15_000, 'the call answered')
    t.equal((await api(`/v1/calls/${id}`, { method: 'DELETE' })).status, 204, 'hung up through the API')
    return { id, created }
  }

  t.test('an outbound call: queued, ringing, in-progress, completed, in order, signed', async (t) => {
    const { id, created } = await answeredThenHungUp({ status_callback: rx.url('/out') })
    t.same(created.statusCallback, { url: rx.url('/out'), method: 'POST' }, 'the call record shows its status callback')
    await waitFor(() => rx.accepted('/out').length >= 4, 15_000, 'four statuses')
    const got = rx.of('/out')
    t.same(got.map((h) => h.fields.status), ['queued', 'ringing', 'in-progress', 'completed'], 'every status, once, in order')
    t.same(got.map((h) => h.fields.sequence_number), [0, 1, 2, 3])
    t.ok(got.every((h) => h.verified), 'every signature verifies with the secret from GET /v1/signing-secret')
    t.ok(got.every((h) => h.method === 'POST'), 'POSTed')
    t.equal(new Set(got.map((h) => h.webhookId)).size, 4, 'a webhook-id per status')
    t.ok(got.every((h) => h.fields.id === id && h.fields.direction === 'outbound' && h.fields.from === '2001'), 'the call, its direction and parties')
    t.match(got[0]!.fields, { answer_time: null, end_time: null, duration: null, ended_reason: null })
    t.match(got[2]!.fields, { answer_time: String, end_time: null })
    t.match(got[3]!.fields, { status: 'completed', end_time: String, duration: Number, ended_reason: String, hangup_by: 'api', timestamp: String, start_time: String })
    // The call's delivery target is the engine's: not a webhook of the account, and gone once everything is sent.
    t.same(((await (await api('/v1/webhooks')).json()) as { data: unknown[] }).data, [], '/v1/webhooks lists nothing')
    const left = await waitFor(async () => {
      const { rows } = await stack.engine.store.db.pool.query<{ n: string }>('SELECT count(*) AS n FROM webhooks WHERE call_id = $1', [id])
      return rows[0]!.n === '0'
    }, 5000, 'the target retired').catch(() => false)
    t.ok(left, 'the call\'s delivery target is removed once its last status is delivered')
  })

  t.test('a callback server that refuses the first attempts still gets every status, in order', async (t) => {
    // Each status is refused twice (503) before it is accepted: status N+1 is
    // queued while N is still being retried, and must wait for it.
    rx.fail = (hit, attempts) => hit.path === '/flaky' && attempts <= 2
    t.teardown(() => { rx.fail = () => false })
    const { id } = await answeredThenHungUp({ status_callback: rx.url('/flaky') })
    await waitFor(() => rx.accepted('/flaky').length >= 4, 30_000, 'four statuses through the failures')
    await new Promise((r) => setTimeout(r, 500)) // room for a stray duplicate
    const all = rx.of('/flaky')
    t.same(rx.accepted('/flaky').map((h) => h.fields.status), ['queued', 'ringing', 'in-progress', 'completed'], 'each status accepted once, in order')
    t.equal(all.length, 12, 'three attempts per status (two refused, one accepted)')
    t.ok(inOrder(all), `no status was sent before the one before it was accepted: ${all.map((h) => `${String(h.fields.sequence_number)}:${h.answered}`).join(' ')}`)
    t.ok(all.every((h) => h.fields.id === id && h.verified))
    const ids = new Map<unknown, Set<string>>()
    for (const h of all) ids.set(h.fields.status, (ids.get(h.fields.status) ?? new Set()).add(h.webhookId))
    t.ok([...ids.values()].every((s) => s.size === 1), 'a retry keeps its webhook-id (receivers can de-duplicate)')
  })

  t.test('a number with status_callback (GET): every inbound call to it reports its statuses', async (t) => {
    const room = (await (await post('/v1/conferences', { name: 'status room' })).json()) as { id: string }
    const res = await post('/v1/numbers', { number: '3001', target: { type: 'conference', id: room.id }, status_callback: rx.url('/in'), status_callback_method: 'GET' })
    const number = (await res.json()) as { id: string; statusCallback: unknown }
    t.equal(res.status, 201)
    t.same(number.statusCallback, { url: rx.url('/in'), method: 'GET' })
    // The caller is answered into the room and hangs up after 1.5 s.
    const caller = runSipp({ scenario: 'uac', remote: `127.0.0.1:${stack.sipPort}`, localPort: await freePort(), service: '3001', timeoutMs: 30_000, args: ['-d', '1500'] })
    const r = await caller.done
    t.equal(r.code, 0, `the call went through (${r.errors.slice(0, 300)})`)
    await waitFor(() => rx.accepted('/in').length >= 3, 15_000, 'three statuses')
    const got = rx.of('/in')
    t.same(got.map((h) => h.fields.status), ['ringing', 'in-progress', 'completed'], 'an inbound call starts ringing')
    t.ok(got.every((h) => h.method === 'GET' && h.verified), 'GET, with the URL signed')
    t.match(got[2]!.fields, { direction: 'inbound', to: '3001', hangup_by: 'caller', sequence_number: '2' })
    const callId = got[0]!.fields.id as string
    t.match(await (await api(`/v1/calls/${callId}`)).json(), { numberId: number.id, statusCallback: { url: rx.url('/in'), method: 'GET' } }, 'the call took the number\'s')

    // PATCH status_callback: null: the next call reports nothing.
    const cleared = await api(`/v1/numbers/${number.id}`, { method: 'PATCH', body: JSON.stringify({ status_callback: null }) })
    t.match(await cleared.json(), { statusCallback: null })
    const before = rx.hits.length
    const again = await runSipp({ scenario: 'uac', remote: `127.0.0.1:${stack.sipPort}`, localPort: await freePort(), service: '3001', timeoutMs: 30_000, args: ['-d', '500'] }).done
    t.equal(again.code, 0)
    await new Promise((r) => setTimeout(r, 700))
    t.equal(rx.hits.length, before, 'no status callback once it is removed')
  })

  t.test('bad values are refused with 400', async (t) => {
    const to = `sip:callee@127.0.0.1:${calleePort}`
    for (const [body, why] of [
      [{ status_callback: 'ftp://example.com/cb' }, 'not http(s)'],
      [{ status_callback: 'not a url' }, 'not a URL'],
      [{ status_callback: rx.url('/x'), status_callback_method: 'PUT' }, 'an unknown method'],
      [{ status_callback_method: 'GET' }, 'a method without a URL'],
      [{ status_callback: 42 }, 'not a string'],
    ] as const) {
      const res = await post('/v1/calls', { to, from: '2001', ...body })
      t.equal(res.status, 400, `POST /v1/calls: ${why}`)
      const n = await post('/v1/numbers', { number: '3999', ...body })
      t.equal(n.status, 400, `POST /v1/numbers: ${why}`)
    }
    const plain = (await (await post('/v1/numbers', { number: '3998' })).json()) as { id: string }
    const onlyMethod = await api(`/v1/numbers/${plain.id}`, { method: 'PATCH', body: JSON.stringify({ status_callback_method: 'GET' }) })
    t.equal(onlyMethod.status, 400, 'PATCH: a method for a number without status_callback')
    const withUrl = await api(`/v1/numbers/${plain.id}`, { method: 'PATCH', body: JSON.stringify({ status_callback: rx.url('/p') }) })
    t.match(await withUrl.json(), { statusCallback: { url: rx.url('/p'), method: 'POST' } })
    const methodNow = await api(`/v1/numbers/${plain.id}`, { method: 'PATCH', body: JSON.stringify({ status_callback_method: 'GET' }) })
    t.match(await methodNow.json(), { statusCallback: { url: rx.url('/p'), method: 'GET' } }, 'a method alone changes the method')
    const both = await api(`/v1/numbers/${plain.id}`, { method: 'PATCH', body: JSON.stringify({ status_callback: null, status_callback_method: 'POST' }) })
    t.equal(both.status, 400, 'PATCH: a method while removing the URL')
  })
})

t.test('status_callback URLs go through the outbound URL policy and the https rule', async (t) => {
  // Outside the embedded mode: private addresses refused, plain http refused.
  const strict = await buildTestApp({ allowInsecureWebhooks: false, urlPolicy: new OutboundUrlPolicy({ allowPrivate: false }) })
  t.teardown(() => strict.close())
  const numbers = async (status_callback: string) => call(strict.app, strict.adminKey, 'POST', '/v1/numbers', { number: `+49301${Math.floor(Math.random() * 1e6)}`, status_callback })
  const refused = await numbers('https://10.1.2.3/cb')
  t.equal(refused.statusCode, 400, 'a private address is refused')
  t.match(refused.json(), { error: { code: 'validation_failed', message: /status_callback is refused by the outbound URL policy/ } })
  t.equal((await numbers('https://169.254.169.254/latest')).statusCode, 400, 'the metadata address is refused')
  t.equal((await numbers('http://93.184.216.34/cb')).statusCode, 400, 'plain http is refused outside the embedded mode')
  const ok = await numbers('https://93.184.216.34/cb')
  t.equal(ok.statusCode, 201, 'a public https address is fine')
  const calls = await call(strict.app, strict.adminKey, 'POST', '/v1/calls', { to: '+4930111', from: '+4930222', status_callback: 'https://127.0.0.1/cb' })
  t.equal(calls.statusCode, 400, 'POST /v1/calls checks it before placing the call')
  t.match(calls.json(), { error: { details: [{ path: '/status_callback' }] } })
})

t.test('status callbacks queued before a restart are delivered after it, in order', async (t) => {
  const rx = receiver()
  await new Promise<void>((r) => rx.server.listen(0, '127.0.0.1', r))
  t.teardown(() => rx.server.close())
  const tdb = await openTestDatabase()
  t.teardown(() => tdb.cleanup())
  await migrate(tdb.db, silent)
  const { account } = await bootstrap(tdb.db, 'cp_test_status_restart', silent, { demo: false })
  const box = new SecretBox('status-restart')
  const schedule = { retryScheduleMs: [50, 100, 60_000], pollIntervalMs: 100 }

  // Before the restart the receiver refuses everything: the head status is
  // retried, the others wait behind it.
  rx.fail = () => true
  let store = createStore(tdb.db, box, silent)
  rx.secret = await store.signingSecrets.secret(account.id)
  let worker = new WebhookWorker({ store, logger: silent, ...schedule })
  worker.start()
  const c = await store.calls.create({ accountId: account.id, direction: 'outbound', from: '2001', to: '+4930123', statusCallback: { url: rx.url('/restart'), method: 'POST' } })
  await store.calls.markRinging(c.id)
  await store.calls.markAnswered(c.id)
  await store.calls.end(c.id, { status: 'completed', endedReason: 'callee-ended', hangupBy: 'callee' })
  await waitFor(() => rx.hits.length >= 2, 5000, 'failed attempts')
  await worker.stop()
  t.ok(rx.hits.every((h) => h.fields.status === 'queued'), 'only the first status was tried while it failed')
  await tdb.db.close()

  // After it: a new process (database reopened, new store and worker) delivers them all.
  rx.fail = () => false
  const db = await tdb.reopen()
  t.teardown(() => db.close())
  store = createStore(db, box, silent)
  worker = new WebhookWorker({ store, logger: silent, ...schedule })
  t.teardown(() => worker.stop())
  // The failed head waits for its next retry (up to 60 s): make it due now, as time would.
  await db.pool.query(`UPDATE webhook_deliveries SET next_attempt_at = now() WHERE status = 'pending'`)
  worker.start()
  await waitFor(() => rx.accepted('/restart').length >= 4, 10_000, 'every status after the restart')
  t.same(rx.accepted('/restart').map((h) => h.fields.status), ['queued', 'ringing', 'in-progress', 'completed'])
  t.ok(inOrder(rx.of('/restart')), 'in order across the restart')
  t.ok(rx.hits.every((h) => h.verified))
})
