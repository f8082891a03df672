import t from 'tap'
import { startStack } from '../harness/stack.ts'
import { apiClient } from '../harness/api-client.ts'
import { waitFor } from '../harness/wait.ts'
import { freePort } from '../harness/ports.ts'
import { waitListening } from '../harness/sipp.ts'
import { sippUas } from '../sip/app/sipp-util.ts'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { flowCalls } from './flow-calls.ts'
import { freshAccount, toolCallingLlm } from './outreach-kit.ts'

/**
 * The do-not-call list through the API (/v1/do-not-call), and its check
 * before a dial: POST /v1/calls to a listed number is refused 403
 * `do_not_call` before anything is dialled; off the list it dials again.
 * An agent with the `add_to_do_not_call` built-in (its model, a local
 * server speaking the OpenAI protocol, calls it on the caller's turn) lists
 * its caller. Scheduled calls and sequences are checked in their own suites.
 */
t.test('do-not-call list', async (t) => {
  const stack = await startStack(process.env.DATABASE_URL ? { DATABASE_URL: process.env.DATABASE_URL } : {})
  t.teardown(() => stack.stop())
  const admin = apiClient(stack)
  const mine = await freshAccount(stack, 'dnc')
  const { api, post } = apiClient(mine.stack)
  const json = async (r: Response) => ({ status: r.status, body: await r.json() as any })
  const events: string[] = []
  t.teardown(stack.engine.store.bus.subscribe((e) => { if (e.type.startsWith('do_not_call.')) events.push(`${e.type} ${String(e.data.number)}`) }))

  await t.test('add, check, list, remove', async (t) => {
    const a = await json(await post('/v1/do-not-call', { number: '+14155550123', reason: 'asked not to be called' }))
    t.equal(a.status, 201)
    t.equal(a.body.number, '+14155550123')
    t.equal(a.body.source, 'api')
    const again = await json(await post('/v1/do-not-call', { number: '+14155550123', reason: 'other' }))
    t.equal(again.status, 200, 'listing it again answers 200 with the existing entry')
    t.equal(again.body.reason, 'asked not to be called')
    t.equal(again.body.id, a.body.id)
    const check = await json(await api('/v1/do-not-call/%2B14155550123'))
    t.same([check.status, check.body.listed, check.body.entry?.id], [200, true, a.body.id])
    const no = await json(await api('/v1/do-not-call/%2B14155550124'))
    t.same([no.status, no.body.listed, no.body.entry], [200, false, null])
    await post('/v1/do-not-call', { number: '+14155550125' })
    const list = await json(await api('/v1/do-not-call?limit=1'))
    t.equal(list.body.data.length, 1)
    t.ok(list.body.nextCursor, 'paginated')
    const rest = await json(await api(`/v1/do-not-call?limit=10&cursor=${list.body.nextCursor}`))
    t.same([...list.body.data, ...rest.body.data].map((e: { number: string }) => e.number), ['+14155550123', '+14155550125'])
    t.equal((await api('/v1/do-not-call/%2B14155550125', { method: 'DELETE' })).status, 204)
    t.equal((await api('/v1/do-not-call/%2B14155550125', { method: 'DELETE' })).status, 404, 'not listed any more')
    await waitFor(() => events.includes('do_not_call.removed +14155550125'), 5000, 'the removal event')
    t.ok(events.includes('do_not_call.added +14155550123'))
    t.equal(events.filter((e) => e === 'do_not_call.added +14155550123').length, 1, 'listed twice, announced once')
  })

  await t.test('bad input names the field; another account sees nothing', async (t) => {
    for (const number of ['14155550123', '+1415', 'hello', '1000']) {
      const r = await json(await post('/v1/do-not-call', { number }))
      t.equal(r.status, 400, `${number} refused`)
      t.match(r.body.error.message, /number/)
    }
    t.equal((await json(await post('/v1/do-not-call', { number: '+14155550123', colour: 'red' }))).status, 400)
    t.equal((await api('/v1/do-not-call/12345', { method: 'DELETE' })).status, 400)
    const other = await json(await admin.post('/v1/accounts', { name: 'other' }))
    const key = other.body.apiKey.token as string
    const as = (path: string, init: RequestInit = {}) => fetch(`${stack.baseUrl}${path}`, { ...init, headers: { authorization: `Bearer ${key}`, ...(init.body ? { 'content-type': 'application/json' } : {}) } })
    t.equal((await (await as('/v1/do-not-call')).json() as { data: unknown[] }).data.length, 0)
    t.equal(((await (await as('/v1/do-not-call/%2B14155550123')).json()) as { listed: boolean }).listed, false)
    t.equal((await as('/v1/do-not-call/%2B14155550123', { method: 'DELETE' })).status, 404, 'another account cannot take it off')
  })

  await t.test('POST /v1/calls to a listed number is refused before dialling', async (t) => {
    t.equal((await post('/v1/numbers', { number: '+14155550110', target: { type: 'none' } })).status, 201)
    const before = (await json(await api('/v1/calls'))).body.data.length
    const r = await json(await post('/v1/calls', { to: '+14155550123', from: '+14155550110' }))
    t.equal(r.status, 403)
    t.equal(r.body.error.code, 'do_not_call')
    t.match(r.body.error.message, /do-not-call/)
    t.equal(r.body.error.details.field, 'to')
    const sip = await json(await post('/v1/calls', { to: 'sip:+14155550123@127.0.0.1:5999', from: '+14155550110' }))
    t.equal(sip.status, 403, 'the number inside a SIP URI is checked too')
    // Written as the dialer would still read it (visual separators, %-escapes): the same number, refused alike.
    for (const to of ['sip:+1-415-555-0123@127.0.0.1:5999', 'sip:%2B14155550123@127.0.0.1:5999;user=phone', 'sip:+1(415)555.0123@127.0.0.1:5999']) {
      const r2 = await json(await post('/v1/calls', { to, from: '+14155550110' }))
      t.equal(r2.status, 403, `${to} is the listed number`)
    }
    t.equal((await json(await api('/v1/calls'))).body.data.length, before, 'no call record: nothing was dialled')
    t.equal((await api('/v1/do-not-call/%2B14155550123', { method: 'DELETE' })).status, 204)
    // Off the list the number is dialled: a carrier route to a sipp UAS that answers.
    const port = await freePort()
    const uas = sippUas('uas-answer.xml', port, { timeoutMs: 60_000 })
    t.teardown(() => uas.kill())
    await waitListening(port)
    const store = stack.engine.store
    const account = { id: mine.id }
    const trunk = await store.trunks.create(account.id, { name: 'dnc-carrier', outbound: { host: '127.0.0.1', port } })
    await store.carrierRoutes.create(account.id, { name: 'to-dnc-test', prefix: '+1415555', trunkId: trunk.id, priority: 1 })
    const off = await json(await post('/v1/calls', { to: '+14155550123', from: '+14155550110' }))
    t.equal(off.status, 201, 'off the list it is dialled')
    await waitFor(async () => (await json(await api(`/v1/calls/${off.body.id}`))).body.status === 'in-progress', 20_000, 'the UAS answers')
    t.equal((await api(`/v1/calls/${off.body.id}`, { method: 'DELETE' })).status, 204)
  })

  await t.test('an agent puts its caller on the list when asked (add_to_do_not_call)', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'dnc-agent-'))
    t.teardown(() => rmSync(dir, { recursive: true, force: true }))
    const llm = await toolCallingLlm('add_to_do_not_call', { reason: 'said stop calling me' })
    t.teardown(() => llm.close())
    const agent = await json(await post('/v1/agents', {
      name: 'polite', greeting: 'Hello.', builtinTools: ['add_to_do_not_call'],
      llm: { provider: 'openai', model: 'gpt-test', options: { baseURL: llm.baseURL, apiKey: 'sk-test' } },
    }))
    t.equal(agent.status, 201)
    const plain = await json(await post('/v1/agents', { name: 'plain', llm: { provider: 'openai', model: 'gpt-test', options: { baseURL: llm.baseURL, apiKey: 'sk-test' } } }))
    t.equal((await post('/v1/numbers', { number: '+14155550177', target: { type: 'agent', id: agent.body.id } })).status, 201)
    const kit = flowCalls(mine.stack, dir)
    // The caller (sipp, From +14155550100) presses 1: its turn; the model calls the tool.
    const c = await kit.call('+14155550177', { sendInfo: { digits: '1', afterMs: 1500 } })
    t.teardown(c.close)
    const entry = await waitFor(async () => { const r = await json(await api('/v1/do-not-call/%2B14155550100')); return r.body.listed ? r.body.entry : null }, 20_000, 'the caller is listed')
    t.equal(entry.source, 'agent')
    t.equal(entry.callId, c.callId)
    t.equal(entry.reason, 'said stop calling me')
    const offered = llm.requests.find((r) => Array.isArray(r.tools))?.tools as Array<{ function: { name: string } }>
    t.ok(offered.some((x) => x.function.name === 'add_to_do_not_call'), 'the model was offered the tool')
    t.ok(events.includes('do_not_call.added +14155550100'))
    await api(`/v1/calls/${c.callId}`, { method: 'DELETE' })
    // An agent that did not opt in is not offered it.
    t.equal(plain.status, 201)
    const before = llm.requests.length
    t.equal((await post('/v1/numbers', { number: '+14155550178', target: { type: 'agent', id: plain.body.id } })).status, 201)
    const c2 = await kit.call('+14155550178', { sendInfo: { digits: '1', afterMs: 1500 } })
    t.teardown(c2.close)
    const req2 = await waitFor(() => llm.requests.slice(before).find((r) => Array.isArray(r.tools)), 20_000, 'the plain agent asked its model')
    t.notOk((req2.tools as Array<{ function: { name: string } }>).some((x) => x.function.name === 'add_to_do_not_call'), 'not offered without builtinTools')
    await api(`/v1/calls/${c2.callId}`, { method: 'DELETE' })
  })
})
