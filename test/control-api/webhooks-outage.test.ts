import t from 'tap'
import { join } from 'node:path'
import { createServer, type IncomingMessage, type ServerResponse, type Server } from 'node:http'
import { Webhook } from 'standardwebhooks'
import { startStack } from '../harness/stack.ts'
import { freePort } from '../harness/ports.ts'
import { runSipp } from '../harness/sipp.ts'
import { SCN } from '../sip/app/sipp-util.ts'

/**
 * Webhooks through a real engine configured as a user would (WEBHOOK_RETRY_SCHEDULE,
 * WEBHOOK_DISABLE_AFTER), created over its REST API, with events from real outbound
 * calls (POST /v1/calls to a sipp callee answering 486) and a real HTTP receiver on
 * loopback that verifies every Standard Webhooks signature.
 */

interface Received { id: string; type: string; callId: string }

/** A receiver that can be down (connection refused), failing (503) or up. */
function receiver(port: number) {
  let secret = ''
  let mode: 'up' | 'failing' = 'up'
  const accepted: Received[] = []
  const badSignatures: string[] = []
  let server: Server | null = null
  const handle = (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      if (mode === 'failing') return void res.writeHead(503).end('maintenance')
      try {
        const body = new Webhook(secret).verify(Buffer.concat(chunks).toString('utf8'), req.headers as Record<string, string>) as { type: string; data: { callId: string } }
        accepted.push({ id: req.headers['webhook-id'] as string, type: body.type, callId: body.data.callId })
        res.writeHead(204).end()
      } catch {
        badSignatures.push(req.headers['webhook-id'] as string)
        res.writeHead(400).end('bad signature')
      }
    })
  }
  return {
    accepted, badSignatures,
    url: `http://127.0.0.1:${port}/hook`,
    set secret(s: string) { secret = s },
    set mode(m: 'up' | 'failing') { mode = m },
    async up() {
      if (server) return
      const s = createServer(handle)
      await new Promise<void>((resolve, reject) => s.once('error', reject).listen(port, '127.0.0.1', resolve))
      server = s
    },
    async down() {
      const s = server
      server = null
      if (!s) return
      s.closeAllConnections()
      await new Promise<void>((resolve) => s.close(() => resolve()))
    },
  }
}

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms))

t.test('webhook outages through the engine', async (t) => {
  // Retries used up in a fraction of a second, then a 2-minute wait: within the
  // test only a recovery (or re-enabling) brings the backlog in. Disabled after 15 s.
  // Embedded mode (plain-http receivers are allowed there only); the same store code
  // runs against real PostgreSQL in webhooks-delivery.test.ts (postgres.test.ts).
  const stack = await startStack({ WEBHOOK_RETRY_SCHEDULE: '100ms,200ms,2m', WEBHOOK_DISABLE_AFTER: '15s' })
  t.teardown(() => stack.stop())
  const api = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`${stack.baseUrl}${path}`, {
      method, headers: { authorization: `Bearer ${stack.apiKey}`, ...(body ? { 'content-type': 'application/json' } : {}) },
      ...(body ? { body: JSON.stringify(body) } : {}),
    })
    const text = await res.text()
    return { status: res.status, body: text ? JSON.parse(text) : null }
  }
  const until = async (what: string, fn: () => boolean | Promise<boolean>, ms = 30_000) => {
    const end = Date.now() + ms
    while (Date.now() < end) {
      if (await fn()) return
      await pause(100)
    }
    throw new Error(`timed out waiting for: ${what}`)
  }

  // The callee: sipp answering every INVITE with 486 Busy Here.
  const calleePort = await freePort()
  const callee = runSipp({ scenario: join(SCN, 'uas-486.xml'), localPort: calleePort, calls: 1000, timeoutMs: 280_000 })
  t.teardown(() => callee.kill())
  await pause(300)
  const number = await api('POST', '/v1/numbers', { number: '2001' }) // the caller id must be ours
  t.equal(number.status, 201, 'caller id number created')
  /** One outbound call, to its end: call.started and call.ended. */
  const placeCall = async (): Promise<string> => {
    const r = await api('POST', '/v1/calls', { to: `sip:busy@127.0.0.1:${calleePort}`, from: '2001' })
    if (r.status !== 201) throw new Error(`POST /v1/calls: ${r.status} ${JSON.stringify(r.body)}`)
    const id = r.body.id as string
    await until(`call ${id} ended`, async () => !['queued', 'ringing', 'in-progress'].includes((await api('GET', `/v1/calls/${id}`)).body.status))
    return id
  }
  const hook = async (id: string) => (await api('GET', `/v1/webhooks/${id}`)).body
  /** Every call's two events arrived exactly once, with distinct webhook-ids, and nothing else. */
  const assertEachOnce = (tt: typeof t, rx: ReturnType<typeof receiver>, callIds: string[]) => {
    const got = rx.accepted.map((a) => `${a.callId} ${a.type}`).sort()
    const want = callIds.flatMap((c) => [`${c} call.started`, `${c} call.ended`]).sort()
    tt.same(got, want, `each of the ${want.length} events delivered once`)
    tt.equal(new Set(rx.accepted.map((a) => a.id)).size, rx.accepted.length, 'distinct webhook-ids (event ids)')
    tt.same(rx.badSignatures, [], 'every signature verified')
  }

  t.test('receiver down for longer than the old 20-failure limit while calls go on: everything arrives once after it is back', async (t) => {
    const rx = receiver(await freePort())
    t.teardown(() => rx.down())
    const created = await api('POST', '/v1/webhooks', { url: rx.url, events: ['call.started', 'call.ended'] })
    t.equal(created.status, 201)
    rx.secret = created.body.secret
    const wh = created.body.id as string
    // The receiver is not listening: connection refused.
    const calls: string[] = []
    for (let i = 0; i < 12; i++) calls.push(await placeCall())
    await until('more than 20 consecutive failures', async () => (await hook(wh)).failureCount > 20)
    const down = await hook(wh)
    t.match(down, { enabled: true, status: 'failing', failingSince: String, lastError: /ECONNREFUSED|refused/i, disabledAt: null, disabledReason: null },
      `still enabled after ${down.failureCount} consecutive failures`)
    const queued = (await api('GET', `/v1/webhooks/${wh}/deliveries`)).body
    t.same(queued, { pending: 24 }, 'every event queued, none given up')
    await rx.up()
    // A new call's first attempt succeeds: the endpoint has recovered and its backlog
    // is due at once (the 2-minute retry would be far past this test's wait).
    calls.push(await placeCall())
    await until('26 deliveries', () => rx.accepted.length >= 26)
    await pause(1000) // room for a duplicate to show up
    assertEachOnce(t, rx, calls)
    t.match(await hook(wh), { status: 'active', failureCount: 0, failingSince: null, lastDeliveredAt: String })
    t.same((await api('GET', `/v1/webhooks/${wh}/deliveries`)).body, { delivered: 26 })
    await api('DELETE', `/v1/webhooks/${wh}`)
    await rx.down()
  })

  t.test('failing past WEBHOOK_DISABLE_AFTER disables the webhook; events keep queuing; PATCH enabled:true delivers the backlog once', async (t) => {
    const rx = receiver(await freePort())
    t.teardown(() => rx.down())
    await rx.up()
    rx.mode = 'failing'
    const created = await api('POST', '/v1/webhooks', { url: rx.url, events: ['call.started', 'call.ended'], description: 'crm' })
    rx.secret = created.body.secret
    const wh = created.body.id as string
    const calls = [await placeCall(), await placeCall()]
    // Keep it failing (calls keep coming) until the 15 s window has passed.
    await until('disabled', async () => {
      if ((await hook(wh)).enabled === false) return true
      calls.push(await placeCall())
      await pause(1000)
      return false
    }, 60_000)
    const disabled = await hook(wh)
    t.match(disabled, { enabled: false, status: 'disabled', lastError: 'HTTP 503', disabledAt: String, failingSince: String, disabledReason: /failed for 15 seconds/ })
    t.ok(Date.parse(disabled.disabledAt) - Date.parse(disabled.failingSince) >= 15_000, 'only after failing for the whole window')
    // Events while it is disabled are queued, not attempted.
    for (let i = 0; i < 3; i++) calls.push(await placeCall())
    await pause(500)
    t.same((await api('GET', `/v1/webhooks/${wh}/deliveries`)).body, { pending: calls.length * 2 }, 'every event waits, including those after the disable')
    t.equal(rx.accepted.length, 0)
    rx.mode = 'up'
    const re = await api('PATCH', `/v1/webhooks/${wh}`, { enabled: true })
    t.match(re.body, { enabled: true, status: 'active', failureCount: 0, failingSince: null, disabledAt: null, disabledReason: null })
    await until(`${calls.length * 2} deliveries`, () => rx.accepted.length >= calls.length * 2)
    await pause(1000)
    assertEachOnce(t, rx, calls)
    t.same((await api('GET', `/v1/webhooks/${wh}/deliveries`)).body, { delivered: calls.length * 2 })
    await rx.down()
  })
})
