import t from 'tap'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { AddressInfo } from 'node:net'
import { Webhook } from 'standardwebhooks'
import { startStack } from '../harness/stack.ts'
import { waitFor } from '../harness/wait.ts'
import { rms } from '../sip/app/rtp-caller.ts'
import { flowCalls, type FlowCallDetail } from './flow-calls.ts'

/**
 * Webhook apps (Telefon's `url`, jambonz's model) as an app developer sees
 * them: a local HTTP server is the app, a number targets it, sipp calls the
 * number. The app gets the call signed, answers with verbs, gets the
 * gather's result at its action URL and answers again; apps that fail end
 * their calls with app-error while the engine goes on serving calls.
 */
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const framesOf = (pcm: Int16Array) => Array.from({ length: Math.floor(pcm.length / 160) }, (_, i) => pcm.subarray(i * 160, i * 160 + 160))
const voicedFrames = (pcm: Int16Array) => framesOf(pcm).filter((f) => rms(f) > 300).length

interface AppRequest { path: string; method: string; headers: IncomingMessage['headers']; body: string; at: number }

t.test('webhook apps over SIP', async (t) => {
  // Short app timeout, so the slow app's call ends within the test's patience.
  const stack = await startStack({ APP_TIMEOUT: '1500ms', ...(process.env.DATABASE_URL ? { DATABASE_URL: process.env.DATABASE_URL } : {}) })
  t.teardown(() => stack.stop())
  const dir = mkdtempSync(join(tmpdir(), 'flow-app-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const { api, post, call: callNumber, ended } = flowCalls(stack, dir)

  // The app: answers by path.
  const requests: AppRequest[] = []
  const routes: Record<string, (req: AppRequest, res: ServerResponse) => void> = {}
  const app = createServer((req, res) => {
    let body = ''
    req.on('data', (c: Buffer) => { body += c.toString() })
    req.on('end', () => {
      const r: AppRequest = { path: (req.url ?? '').split('?')[0]!, method: req.method ?? '', headers: req.headers, body, at: Date.now() }
      requests.push(r)
      const route = routes[r.path]
      if (route) route(r, res)
      else { res.writeHead(404); res.end() }
    })
  })
  await new Promise<void>((r) => app.listen(0, '127.0.0.1', () => r()))
  t.teardown(() => { app.closeAllConnections(); app.close() })
  const base = `http://127.0.0.1:${(app.address() as AddressInfo).port}`
  const json = (res: ServerResponse, body: unknown) => { res.writeHead(200, { 'content-type': 'application/json' }); res.end(JSON.stringify(body)) }
  let responseAt = 0
  routes['/answer'] = (_r, res) => {
    responseAt = Date.now()
    json(res, [
      { type: 'gather', option: { text: 'Press two for the weather.', max_digits: 1, timeout: 6000, action_url: `${base}/gathered` } },
      { type: 'hangup', option: { reason: 'not-reached' } },
    ])
  }
  routes['/gathered'] = (r, res) => {
    const digits = (JSON.parse(r.body) as { data: { digits: string } }).data.digits
    json(res, { actions: [{ type: 'talk', option: { text: `You pressed ${digits}. It is sunny.` } }, { type: 'hangup', option: { reason: `app-pressed-${digits}` } }] })
  }
  routes['/garbage'] = (_r, res) => { res.writeHead(200, { 'content-type': 'application/json' }); res.end('{"verbs": "not a list"') }
  routes['/bad-verbs'] = (_r, res) => json(res, [{ type: 'teleport', option: {} }])
  routes['/nul'] = (_r, res) => { res.writeHead(200, { 'content-type': 'application/json' }); res.end('[{"type":"talk","option":{"text":"a\\u0000b"}}]') }
  routes['/slow'] = (_r, res) => { setTimeout(() => json(res, [{ type: 'hangup' }]), 4000) }

  const secret = ((await (await api('/v1/signing-secret')).json()) as { secret: string }).secret
  t.match(secret, /^whsec_/, 'the account has a signing secret')

  let seq = 0
  const appNumber = async (path: string) => {
    const number = `+1415555${String(600 + seq++).padStart(4, '0')}`
    const r = await post('/v1/numbers', { number, target: { type: 'app', url: `${base}${path}` } })
    t.equal(r.status, 201, `number → app ${path}`)
    return number
  }
  /** A call to an app number: the app answers it, so the record may be short-lived; found as soon as it exists. */
  const call = (number: string) => callNumber(number)

  t.test('the app answers with verbs, gets the gather result, answers again', async (t) => {
    const number = await appNumber('/answer')
    const c = await call(number)
    t.teardown(c.close)
    await waitFor(() => requests.some((r) => r.path === '/answer'), 10_000, 'the app was asked')
    const first = requests.find((r) => r.path === '/answer')!
    const payload = JSON.parse(first.body) as { event: string; call: { id: string; from: string; to: string; direction: string }; variables: Record<string, string> }
    t.match(payload, { event: 'fetch', call: { id: c.callId, to: number, direction: 'inbound' } }, 'the app gets the call')
    t.doesNotThrow(() => new Webhook(secret).verify(first.body, first.headers as Record<string, string>), 'the request is signed with the account signing secret')
    await sleep(300)
    const startedAt = c.caller.audioAt.find((at) => at >= responseAt) ?? 0
    t.ok(startedAt > 0, 'audio followed the app\'s answer')
    await sleep(1500)
    t.ok(voicedFrames(c.caller.audioSince(responseAt)) >= 15, 'the caller hears the app\'s prompt')
    c.caller.sendDigits('2')
    const d = await ended(c.callId)
    const gathered = requests.find((r) => r.path === '/gathered')
    t.ok(gathered, 'the gather result went to the action URL')
    t.match(JSON.parse(gathered!.body), { event: 'gather', data: { digits: '2', reason: 'max-digits' } })
    t.equal(d.endedReason, 'app-pressed-2', 'the verbs from the action URL ran (not the rest of the first answer)')
    t.same(d.activeflows[0]!.executedActions.map((e) => e.type), ['fetch', 'gather', 'talk', 'hangup'])
  })

  t.test('apps that fail end their calls with app-error; other calls go on', async (t) => {
    const good = await call(await appNumber('/answer'))
    t.teardown(good.close)
    const failing = await Promise.all(['/garbage', '/bad-verbs', '/slow', '/missing', '/nul'].map(async (p) => ({ path: p, c: await call(await appNumber(p)) })))
    for (const f of failing) t.teardown(f.c.close)
    for (const { path, c } of failing) {
      const d = await ended(c.callId)
      t.equal(d.endedReason, 'app-error', `${path}: the call ends with app-error`)
      t.ok(d.activeflows[0]!.error, `${path}: the error is on the call record: ${d.activeflows[0]!.error}`)
    }
    const errors = await Promise.all(failing.map(async ({ c }) => (await ended(c.callId)).activeflows[0]!.error ?? ''))
    t.match(errors[0], /not JSON/, 'garbage: not JSON')
    t.match(errors[1], /invalid verbs.*teleport/, 'bad verbs: named')
    t.match(errors[2], /did not answer within 1500 ms/, 'slow: the timeout')
    t.match(errors[3], /answered 404/, 'missing: the status')
    t.match(errors[4], /NUL character/, 'a NUL in the answer: refused')
    // The good call was never disturbed: it still runs its gather.
    const live = (await (await api(`/v1/calls/${good.callId}`)).json()) as FlowCallDetail
    t.equal(live.status, 'in-progress', 'the other call is still up')
    good.caller.sendDigits('7')
    t.equal((await ended(good.callId)).endedReason, 'app-pressed-7', 'and finishes normally')
  })

  t.test('an app\'s run stopped through the API leaves the call up', async (t) => {
    routes['/wait'] = (_r, res) => json(res, [{ type: 'sleep', option: { duration: 60_000 } }, { type: 'hangup', option: { reason: 'not-reached' } }])
    const c = await call(await appNumber('/wait'))
    t.teardown(c.close)
    const runId = await waitFor(async () => {
      const d = (await (await api(`/v1/calls/${c.callId}`)).json()) as FlowCallDetail
      return d.activeflows[0]?.executedActions.some((e) => e.type === 'sleep') ? d.activeflows[0].id : null
    }, 10_000, 'the app\'s sleep runs')
    const stop = await post(`/v1/activeflows/${runId}/stop`, {})
    t.equal(stop.status, 200)
    t.match(stop.body, { status: 'ended', currentAction: null })
    await sleep(500)
    t.equal(((await (await api(`/v1/calls/${c.callId}`)).json()) as FlowCallDetail).status, 'in-progress', 'the call is still up')
    t.equal((await api(`/v1/calls/${c.callId}`, { method: 'DELETE' })).status, 204)
    t.equal((await ended(c.callId)).endedReason, 'api-hangup')
  })

  t.test('POST /v1/calls/:id/actions runs verbs on a live call; url on POST /v1/calls is checked', async (t) => {
    routes['/hold'] = (_r, res) => json(res, [{ type: 'sleep', option: { duration: 60_000 } }])
    const c = await call(await appNumber('/hold'))
    t.teardown(c.close)
    await waitFor(async () => ((await (await api(`/v1/calls/${c.callId}`)).json()) as FlowCallDetail).activeflows[0]?.executedActions.some((e) => e.type === 'sleep'), 10_000, 'the app\'s sleep runs')
    const r = await post(`/v1/calls/${c.callId}/actions`, { mode: 'interrupt', actions: [{ type: 'talk', option: { text: 'Interrupting.' } }, { type: 'hangup', option: { reason: 'api-verbs' } }] })
    t.equal(r.status, 202)
    t.equal(r.body.mode, 'interrupt')
    const d = await ended(c.callId)
    t.equal(d.endedReason, 'api-verbs', 'the interrupting verbs ran instead of the sleep')
    const bad = await post(`/v1/calls/${c.callId}/actions`, { actions: [{ type: 'talk' }] })
    t.ok(bad.status === 400 || bad.status === 409, `an ended call or bad verbs are refused (${bad.status})`)
    const both = await post('/v1/calls', { from: '+14155550100', to: '+14155550199', url: `${base}/answer`, flowId: '00000000-0000-4000-8000-000000000000' })
    t.equal(both.status, 400, 'url and flowId together are refused')
    t.match((both.body.error as { message: string }).message, /one of agentId, flowId, actions and url/)
  })
})
