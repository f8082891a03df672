/**
 * A trunk that registers to its carrier, seen as a user sees it: created
 * through the REST API, registered against a real registrar (sipp answering
 * 401 then 200, later 403, later 200 again), its status at
 * GET /v1/trunks/:id/registration, the "sip-bridge" component of /health
 * turning 503 while it is down, and registration.changed on the event stream.
 */
import t from 'tap'
import { join } from 'node:path'
import WebSocket from 'ws'
import { startStack } from '../harness/stack.ts'
import { freePort } from '../harness/ports.ts'
import { runSipp } from '../harness/sipp.ts'

const SCENARIOS = join(import.meta.dirname, 'scenarios')
const pause = (ms: number) => new Promise((r) => setTimeout(r, ms))

interface Registration {
  trunkId: string; enabled: boolean; state: string; healthy: boolean; message: string; registrar: string | null; aor: string | null
  expiresAt: string | null; lastSuccessAt: string | null; lastError: { status: number | null; reason: string; at: string | null } | null
  failures: number; nextAttemptAt: string | null; node: string | null; since: string
}
interface Health { status: string; components: Record<string, { status: string; detail?: { registrations?: number; registered?: number; down?: Array<{ trunkId: string; state: string; lastError: { status: number | null } | null }> } }> }

t.test('outbound registration status through the API and /health, against a real registrar', async (t) => {
  const stack = await startStack()
  t.teardown(() => stack.stop())
  const api = (path: string, init: RequestInit = {}) => fetch(`${stack.baseUrl}${path}`, {
    ...init, headers: { authorization: `Bearer ${stack.apiKey}`, ...(init.body ? { 'content-type': 'application/json' } : {}), ...init.headers },
  })
  const registration = async (id: string) => {
    const res = await api(`/v1/trunks/${id}/registration`)
    if (res.status !== 200) throw new Error(`GET registration: ${res.status} ${await res.text()}`)
    return await res.json() as Registration
  }
  const until = async (id: string, what: string, ok: (r: Registration) => boolean, ms = 45_000) => {
    const deadline = Date.now() + ms
    let r = await registration(id)
    while (!ok(r)) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; last: ${JSON.stringify(r)}`)
      await pause(200)
      r = await registration(id)
    }
    return r
  }
  const health = async () => {
    const res = await fetch(`${stack.baseUrl}/health`)
    return { code: res.status, body: await res.json() as Health }
  }

  // registration.changed as a client sees it: the account's event stream.
  const events: Array<{ type: string; data: Record<string, unknown> }> = []
  const ws = new WebSocket(`${stack.baseUrl.replace('http', 'ws')}/v1/events?types=registration.changed&token=${stack.apiKey}`)
  t.teardown(() => ws.close())
  ws.on('message', (m) => { const e = JSON.parse(m.toString()); if (e.type === 'registration.changed') events.push(e) })
  await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject) })

  const initial = await health()
  t.equal(initial.code, 200)
  t.match(initial.body.components['sip-bridge'], { status: 'up', detail: { registrations: 0 } }, 'sip-bridge is up with nothing to register')

  await t.test('401 then 200: registered; a 403 on refresh: failed, /health 503; the retry: registered again, /health 200', async (t) => {
    const port = await freePort('127.0.0.6')
    const registrar = runSipp({ scenario: join(SCENARIOS, 'registrar-refuse-recover.xml'), localIp: '127.0.0.6', localPort: port, timeoutMs: 90_000, args: ['-trace_logs'] })
    t.teardown(() => registrar.kill())
    await pause(300)
    const res = await api('/v1/trunks', {
      method: 'POST',
      body: JSON.stringify({ name: 'carrier-device', outbound: { host: '127.0.0.6', port, username: 'dev1', password: 'dev-pw', register: true, registerExpiresSec: 60 } }),
    })
    t.equal(res.status, 201)
    const trunk = await res.json() as { id: string }

    const pending = await registration(trunk.id)
    t.match(pending, { enabled: true, registrar: `sip:127.0.0.6:${port}`, aor: 'dev1@127.0.0.6' }, 'where it registers, before the first attempt')
    t.ok(['registering', 'registered'].includes(pending.state), `starts out registering (${pending.state})`)

    const up = await until(trunk.id, 'registered', (r) => r.state === 'registered')
    t.equal(up.healthy, true)
    t.ok(up.lastSuccessAt, 'last success time')
    t.ok(up.expiresAt && Date.parse(up.expiresAt) > Date.now(), 'expiry in the future')
    t.ok(up.nextAttemptAt, 'next refresh known')
    t.equal(up.lastError, null, 'no error yet')
    t.ok(up.node, 'the node that owns it')
    const h1 = await health()
    t.equal(h1.code, 200, '/health 200 while registered')
    t.match(h1.body.components['sip-bridge'], { status: 'up', detail: { registrations: 1, registered: 1 } })

    const down = await until(trunk.id, 'failed after the refused refresh', (r) => r.state === 'failed')
    t.match(down, { healthy: false, lastError: { status: 403, reason: 'Forbidden' }, failures: 1 }, 'the registrar\'s 403 is the last error')
    t.ok(down.nextAttemptAt && Date.parse(down.nextAttemptAt) > Date.parse(down.lastError!.at!), 'a retry is scheduled')
    t.match(down.message, /403 Forbidden/)
    const h2 = await health()
    t.equal(h2.code, 503, '/health 503 while a registration that should be up is down')
    t.equal(h2.body.status, 'degraded')
    t.match(h2.body.components['sip-bridge'], { status: 'down', detail: { down: [{ trunkId: trunk.id, state: 'failed', lastError: { status: 403 } }] } })
    t.equal(h2.body.components['sip-app']?.status, 'up', 'the rest of the engine is fine')

    const again = await until(trunk.id, 'registered again after the back-off', (r) => r.state === 'registered' && r.failures === 0)
    t.ok(Date.parse(again.lastSuccessAt!) > Date.parse(up.lastSuccessAt!), 'a newer success')
    t.match(again.lastError, { status: 403, reason: 'Forbidden' }, 'the last error is kept after recovery')
    t.ok(Date.parse(again.lastSuccessAt!) > Date.parse(again.lastError!.at!), 'and is older than the last success')
    const h3 = await health()
    t.equal(h3.code, 200, '/health back to 200')

    const r = await registrar.done
    t.equal(r.code, 0, `the registrar saw the whole exchange, digest verified (${r.errors.slice(0, 300)})`)

    const seen = () => events.filter((e) => e.data.trunkId === trunk.id).map((e) => e.data.status)
    const deadline = Date.now() + 5_000
    while (seen().join() !== 'registered,failed,registered' && Date.now() < deadline) await pause(100)
    t.same(seen(), ['registered', 'failed', 'registered'], 'registration.changed on every change of state')
    const failedEvent = events.find((e) => e.data.trunkId === trunk.id && e.data.status === 'failed')
    t.match(failedEvent?.data, { trunk: 'carrier-device', previous: 'registered', lastError: { status: 403, reason: 'Forbidden' } })

    // Turning registration off takes it out of /health and unregisters it.
    t.equal((await api(`/v1/trunks/${trunk.id}`, { method: 'PATCH', body: JSON.stringify({ outbound: { register: false } }) })).status, 200)
    t.match(await registration(trunk.id), { enabled: false, state: 'disabled', healthy: true })
    t.match((await health()).body.components['sip-bridge'], { status: 'up', detail: { registrations: 0 } })
  })

  await t.test('a registrar that never answers: 408 after Timer F, /health 503; deleting the trunk clears it', async (t) => {
    const port = await freePort('127.0.0.7') // nobody listens there
    const res = await api('/v1/trunks', {
      method: 'POST',
      body: JSON.stringify({ name: 'silent-carrier', outbound: { host: '127.0.0.7', port, username: 'dev1', password: 'dev-pw', register: true } }),
    })
    const trunk = await res.json() as { id: string }
    const down = await until(trunk.id, 'failed without an answer', (r) => r.state === 'failed', 75_000)
    t.match(down, { healthy: false, failures: 1, lastError: { status: 408 } }, `no answer within 64×T1: 408 (${JSON.stringify(down.lastError)})`)
    const h = await health()
    t.equal(h.code, 503)
    t.match(h.body.components['sip-bridge'], { status: 'down', detail: { down: [{ trunkId: trunk.id, lastError: { status: 408 } }] } })
    t.equal((await api(`/v1/trunks/${trunk.id}`, { method: 'DELETE' })).status, 204)
    t.equal((await api(`/v1/trunks/${trunk.id}/registration`)).status, 404, 'a deleted trunk has no registration')
    t.equal((await health()).code, 200, '/health 200 once the trunk is gone')
  })

  await t.test('a trunk without registration is disabled; unknown and other accounts\' trunks are 404', async (t) => {
    const res = await api('/v1/trunks', { method: 'POST', body: JSON.stringify({ name: 'plain' }) })
    const trunk = await res.json() as { id: string }
    t.match(await registration(trunk.id), { enabled: false, state: 'disabled', healthy: true, registrar: null, message: /no outbound settings/ })
    t.equal((await api('/v1/trunks/00000000-0000-4000-8000-000000000000/registration')).status, 404)
    const other = await api('/v1/accounts', { method: 'POST', body: JSON.stringify({ name: 'other' }) })
    t.equal(other.status, 201)
    const otherKey = (await other.json() as { apiKey: { token: string } }).apiKey.token
    const peek = await fetch(`${stack.baseUrl}/v1/trunks/${trunk.id}/registration`, { headers: { authorization: `Bearer ${otherKey}` } })
    t.equal(peek.status, 404, 'another account sees no such trunk')
  })
})
