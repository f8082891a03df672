import t from 'tap'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startStack } from '../harness/stack.ts'
import { apiClient } from '../harness/api-client.ts'
import { sleep, waitFor } from '../harness/wait.ts'
import { flowCalls } from './flow-calls.ts'
import { callee, freshAccount, toolCallingLlm } from './outreach-kit.ts'

/**
 * Scheduled calls and AI callbacks through the API over real SIP: a call
 * scheduled an hour ahead stays pending until the business clock
 * (`stack.clock`) reaches it, then the agent dials a sipp UAS (caller ID the
 * agent's number) and the row goes dialing → completed with its call; the
 * greeting said `{{callback_context}}`. An agent whose (local, OpenAI
 * protocol) model calls `schedule_callback` books a callback to its caller,
 * which fires in turn. The do-not-call list stops a scheduled call; bad
 * input is refused naming the field; another account sees nothing.
 */
interface Sc { id: string; status: string; call_id: string | null; attempts: number; last_error: string | null; scheduled_for: string; from_phone_number: string; to_phone_number: string; is_callback: boolean; previous_call_id: string | null; callback_context: string | null; source: string; agent_name: string | null; dialed_at: string | null }
interface CallRec { id: string; status: string; from: string; to: string; agentId: string | null; metadata: Record<string, unknown>; transcript: Array<{ role: string; text: string }> }

t.test('scheduled calls and AI callbacks', async (t) => {
  const stack = await startStack(process.env.DATABASE_URL ? { DATABASE_URL: process.env.DATABASE_URL } : {})
  t.teardown(() => stack.stop())
  const dir = mkdtempSync(join(tmpdir(), 'scheduled-calls-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const mine = await freshAccount(stack, 'scheduled')
  const { api } = apiClient(mine.stack)
  const admin = apiClient(stack)
  const req = async <T = any>(method: string, path: string, body?: unknown) => {
    const r = await api(path, { method, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) })
    return { status: r.status, body: (await r.json().catch(() => null)) as T }
  }
  const sc = async (id: string) => (await req<Sc>('GET', `/v1/scheduled-calls/${id}`)).body
  const store = stack.engine.store
  const account = { id: mine.id }
  const events: string[] = []
  t.teardown(store.bus.subscribe((e) => { if (e.type.startsWith('scheduled_call.')) events.push(`${e.type} ${String((e.data.scheduledCall as { id: string }).id)}`) }))

  // Callees: +1213555… is busy; every other +1 number answers (talks 7 s: the greeting is heard whole, then hangs up).
  const answering = await callee(dir, 'answering', { byeAfterMs: 7000 })
  const busy = await callee(dir, 'busy', { busy: true })
  t.teardown(() => busy.kill())
  t.teardown(() => answering.kill())
  const trunk = await store.trunks.create(account.id, { name: 'carrier', outbound: { host: '127.0.0.1', port: answering.port } })
  await store.carrierRoutes.create(account.id, { name: 'us', prefix: '+1', trunkId: trunk.id, priority: 1 })
  const busyTrunk = await store.trunks.create(account.id, { name: 'busy carrier', outbound: { host: '127.0.0.1', port: busy.port } })
  await store.carrierRoutes.create(account.id, { name: 'busy', prefix: '+1213555', trunkId: busyTrunk.id, priority: 1 })

  const agent = (await req('POST', '/v1/agents', {
    name: 'follow-up', greetingOutbound: 'Hello, calling back about {{callback_context}}.', aiSpeaksFirstOutbound: true,
  })).body as { id: string }
  t.equal((await req('POST', '/v1/numbers', { number: '+14155550199', target: { type: 'agent', id: agent.id } })).status, 201)

  await t.test('bad input names the field; another account sees nothing', async (t) => {
    const at = new Date(stack.clock.now().getTime() + 3600_000).toISOString()
    const ok = { agent_id: agent.id, to_phone_number: '+12125550101', scheduled_for: at }
    const cases: Array<[Record<string, unknown>, RegExp]> = [
      [{ ...ok, to_phone_number: '2125550101' }, /to_phone_number/],
      [{ ...ok, to_phone_number: '1000' }, /to_phone_number/],
      [{ ...ok, scheduled_for: 'tomorrow' }, /scheduled_for/],
      [{ ...ok, scheduled_for: '2030-02-30T10:00', timezone: 'America/New_York' }, /scheduled_for/],
      [{ ...ok, scheduled_for: '2030-01-07T10:00', timezone: 'Mars/Olympus' }, /timezone/],
      [{ ...ok, timezone: 'Mars/Olympus' }, /timezone/],
      [{ ...ok, agent_id: '00000000-0000-4000-8000-000000000000' }, /agent_id/],
      [{ ...ok, phone_number_id: '00000000-0000-4000-8000-000000000000' }, /phone_number_id/],
      [{ ...ok, from: '+14155550000' }, /from/],
      [{ ...ok, colour: 'red' }, /colour|additional/],
    ]
    for (const [body, field] of cases) {
      const r = await req('POST', '/v1/scheduled-calls', body)
      t.equal(r.status, 400, `refused: ${JSON.stringify(body).slice(0, 80)}`)
      t.match(r.body.error.message, field)
    }
    const other = (await req('POST', '/v1/agents', { name: 'no number' })).body as { id: string }
    const noCaller = await req('POST', '/v1/scheduled-calls', { ...ok, agent_id: other.id })
    t.equal(noCaller.status, 400, 'an agent without a number needs a caller ID')
    t.match(noCaller.body.error.message, /phone_number_id/)
    // A wall-clock time is read in the call's time zone: 10:00 in New York in January is 15:00 UTC.
    const local = await req<Sc>('POST', '/v1/scheduled-calls', { ...ok, scheduled_for: '2030-01-07T10:00', timezone: 'America/New_York' })
    t.equal(local.status, 201)
    t.equal(new Date(local.body.scheduled_for).toISOString(), '2030-01-07T15:00:00.000Z', 'scheduled_for without an offset is read in timezone')
    const moved = await req<Sc>('PATCH', `/v1/scheduled-calls/${local.body.id}`, { scheduled_for: '2030-07-07T10:00' })
    t.equal(new Date(moved.body.scheduled_for).toISOString(), '2030-07-07T14:00:00.000Z', 'a PATCH reads it in the call\'s own zone (summer time)')
    t.equal((await req('DELETE', `/v1/scheduled-calls/${local.body.id}`)).status, 204)
    const created = await req<Sc>('POST', '/v1/scheduled-calls', { ...ok, contact_name: 'Ann' })
    t.equal(created.status, 201)
    t.equal(created.body.from_phone_number, '+14155550199', 'caller ID: the agent\'s number')
    t.equal(created.body.agent_name, 'follow-up')
    const acct = (await (await admin.post('/v1/accounts', { name: 'other' })).json()) as { apiKey: { token: string } }
    const as = (method: string, path: string) => fetch(`${stack.baseUrl}${path}`, { method, headers: { authorization: `Bearer ${acct.apiKey.token}` } })
    t.equal((await as('GET', `/v1/scheduled-calls/${created.body.id}`)).status, 404)
    t.equal((await as('POST', `/v1/scheduled-calls/${created.body.id}/cancel`)).status, 404)
    t.equal((await as('DELETE', `/v1/scheduled-calls/${created.body.id}`)).status, 404)
    t.equal(((await (await as('GET', '/v1/scheduled-calls')).json()) as { data: unknown[] }).data.length, 0)
    // Only pending ones change; cancel, then PATCH is 409; retry makes it pending again; delete.
    t.equal((await req('PATCH', `/v1/scheduled-calls/${created.body.id}`, { contact_name: 'Anne', timezone: 'Europe/Berlin' })).body.contact_name, 'Anne')
    t.equal((await req('PATCH', `/v1/scheduled-calls/${created.body.id}`, { timezone: 'Nowhere/Land' })).status, 400)
    t.equal((await req('POST', `/v1/scheduled-calls/${created.body.id}/cancel`)).body.status, 'cancelled')
    t.equal((await req('PATCH', `/v1/scheduled-calls/${created.body.id}`, { contact_name: 'X' })).status, 409, 'not pending: 409')
    t.equal((await req('POST', `/v1/scheduled-calls/${created.body.id}/cancel`)).status, 409)
    const retried = await req<Sc>('POST', `/v1/scheduled-calls/${created.body.id}/retry`)
    t.equal(retried.body.status, 'pending')
    const inFive = new Date(retried.body.scheduled_for).getTime() - stack.clock.now().getTime()
    t.ok(inFive > 4 * 60_000 && inFive <= 5 * 60_000, `retry without a time: in 5 minutes (${inFive} ms)`)
    t.equal((await req('DELETE', `/v1/scheduled-calls/${created.body.id}`)).status, 204)
    t.equal((await req('GET', `/v1/scheduled-calls/${created.body.id}`)).status, 404)
  })

  await t.test('a call scheduled an hour ahead fires when the clock gets there, and completes', async (t) => {
    const now = stack.clock.now().getTime()
    const later = await req<Sc>('POST', '/v1/scheduled-calls', { agent_id: agent.id, to_phone_number: '+12125550102', scheduled_for: new Date(now + 3 * 3600_000).toISOString(), timezone: 'America/New_York' })
    const soon = await req<Sc>('POST', '/v1/scheduled-calls', {
      agent_id: agent.id, to_phone_number: '+12125550101', scheduled_for: new Date(now + 3600_000).toISOString(),
      timezone: 'America/New_York', callback_context: 'your quote', contact_name: 'Ann',
    })
    t.equal(soon.status, 201)
    const list = await req<{ data: Sc[] }>('GET', `/v1/scheduled-calls?status=pending&agent_id=${agent.id}`)
    t.same(list.body.data.map((s) => s.id), [soon.body.id, later.body.id], 'soonest first')
    const window = await req<{ data: Sc[] }>('GET', `/v1/scheduled-calls?start_date=${encodeURIComponent(new Date(now + 2 * 3600_000).toISOString())}`)
    t.same(window.body.data.map((s) => s.id), [later.body.id], 'start_date filters scheduled_for')
    await sleep(1500)
    t.equal((await sc(soon.body.id)).status, 'pending', 'not due yet: nothing dialled')
    stack.clock.advance(3600_000 + 1000)
    const done = await waitFor(async () => { const s = await sc(soon.body.id); return s.status === 'completed' || s.status === 'failed' ? s : null }, 30_000, 'the scheduled call ended')
    t.equal(done.status, 'completed', `completed (${done.last_error ?? ''})`)
    t.equal(done.attempts, 1)
    t.ok(done.call_id && done.dialed_at)
    const call = (await req<CallRec>('GET', `/v1/calls/${done.call_id}`)).body
    t.equal(call.to, '+12125550101')
    t.equal(call.from, '+14155550199')
    t.equal(call.agentId, agent.id)
    t.equal(call.metadata.callback_context, 'your quote')
    t.ok(call.transcript.some((e) => e.role === 'assistant' && /calling back about your quote/i.test(e.text)), `the greeting used {{callback_context}}: ${JSON.stringify(call.transcript.map((e) => e.text))}`)
    t.equal((await sc(later.body.id)).status, 'pending', 'the later one still waits')
    for (const e of ['created', 'dialing', 'completed']) t.ok(events.includes(`scheduled_call.${e} ${soon.body.id}`), `scheduled_call.${e}`)
    // Trigger dials the later one now.
    const trig = await req<Sc>('POST', `/v1/scheduled-calls/${later.body.id}/trigger`)
    t.equal(trig.status, 200)
    const fired = await waitFor(async () => { const s = await sc(later.body.id); return s.status === 'completed' || s.status === 'failed' ? s : null }, 30_000, 'the triggered call ended')
    t.equal(fired.status, 'completed')
    t.equal((await req('POST', `/v1/scheduled-calls/${later.body.id}/trigger`)).status, 409, 'only pending calls trigger')
  })

  await t.test('a re-run after its node stopped between placing the call and noting it settles that call, never dials again', async (t) => {
    const created = await req<Sc>('POST', '/v1/scheduled-calls', {
      agent_id: agent.id, to_phone_number: '+12125550131', scheduled_for: new Date(stack.clock.now().getTime() + 3600_000).toISOString(), contact_id: 'crm-42',
    })
    t.equal(created.status, 201)
    // What the lost run did: the row dialing, its call placed (the call's metadata names the scheduled call), the row not yet told.
    await store.db.pool.query(`UPDATE scheduled_calls SET status = 'dialing', attempts = 1, dialed_at = now() WHERE id = $1`, [created.body.id])
    const placed = await req<{ id: string }>('POST', '/v1/calls', { to: '+12125550131', from: '+14155550199', agentId: agent.id, metadata: { scheduled_call_id: created.body.id } })
    t.equal(placed.status, 201)
    await store.jobs.schedule({ kind: 'scheduled-call', key: created.body.id, accountId: mine.id, dueAt: stack.clock.now() })
    stack.engine.scheduler.poke()
    const done = await waitFor(async () => { const x = await sc(created.body.id); return x.status === 'completed' || x.status === 'failed' ? x : null }, 30_000, 'the scheduled call settled')
    t.equal(done.status, 'completed', `settled from the placed call (${done.last_error ?? ''})`)
    t.equal(done.call_id, placed.body.id)
    t.equal(done.attempts, 1)
    const calls = (await req<{ data: CallRec[] }>('GET', '/v1/calls?limit=100')).body.data.filter((c) => c.to === '+12125550131')
    t.equal(calls.length, 1, 'dialled once')
  })

  await t.test('contact_id reaches the agent as {{contact_id}}', async (t) => {
    const created = await req<Sc>('POST', '/v1/scheduled-calls', { agent_id: agent.id, to_phone_number: '+12125550132', scheduled_for: stack.clock.now().toISOString(), contact_id: 'crm-43' })
    t.equal(created.status, 201)
    const done = await waitFor(async () => { const x = await sc(created.body.id); return x.status === 'completed' || x.status === 'failed' ? x : null }, 30_000, 'the scheduled call ended')
    t.ok(done.call_id)
    t.equal((await req<CallRec>('GET', `/v1/calls/${done.call_id}`)).body.metadata.contact_id, 'crm-43')
  })

  await t.test('the do-not-call list stops a scheduled call; a busy callee fails it; retry dials again', async (t) => {
    t.equal((await req('POST', '/v1/do-not-call', { number: '+12125550103' })).status, 201)
    const listed = await req<Sc>('POST', '/v1/scheduled-calls', { agent_id: agent.id, to_phone_number: '+12125550103', scheduled_for: stack.clock.now().toISOString() })
    const failed = await waitFor(async () => { const s = await sc(listed.body.id); return s.status === 'failed' ? s : null }, 20_000, 'the listed call failed')
    t.match(failed.last_error, /do_not_call/)
    t.equal(failed.call_id, null, 'nothing dialled')
    t.equal(failed.attempts, 0)
    t.ok(events.includes(`scheduled_call.failed ${listed.body.id}`))
    t.equal((await req('DELETE', '/v1/do-not-call/%2B12125550103')).status, 204)
    const retried = await req<Sc>('POST', `/v1/scheduled-calls/${listed.body.id}/retry`, { scheduled_for: stack.clock.now().toISOString() })
    t.equal(retried.body.status, 'pending')
    const done = await waitFor(async () => { const s = await sc(listed.body.id); return s.status === 'completed' || s.status === 'failed' ? s : null }, 30_000, 'the retried call ended')
    t.equal(done.status, 'completed', 'off the list, the retry is dialled')
    t.equal(done.attempts, 1)
    const toBusy = await req<Sc>('POST', '/v1/scheduled-calls', { agent_id: agent.id, to_phone_number: '+12135550104', scheduled_for: stack.clock.now().toISOString() })
    const wasBusy = await waitFor(async () => { const s = await sc(toBusy.body.id); return s.status === 'failed' ? s : null }, 20_000, 'the busy call failed')
    t.match(wasBusy.last_error, /busy/)
    t.ok(wasBusy.call_id, 'it was dialled')
    t.equal((await req<CallRec>('GET', `/v1/calls/${wasBusy.call_id}`)).body.status, 'busy')
  })

  await t.test('an agent\'s schedule_callback books a callback to its caller, which fires with the reason as context', async (t) => {
    const llm = await toolCallingLlm('schedule_callback', { when: 'in 2 hours', reason: 'the pricing details' })
    t.teardown(() => llm.close())
    const ai = (await req('POST', '/v1/agents', {
      name: 'receptionist', greeting: 'Hello.', greetingOutbound: 'Hi, this is your callback about {{callback_context}}.',
      llm: { provider: 'openai', model: 'gpt-test', options: { baseURL: llm.baseURL, apiKey: 'sk-test' } }, builtinTools: ['schedule_callback'],
    })).body as { id: string; builtinTools: string[] }
    t.same(ai.builtinTools, ['schedule_callback'])
    t.equal((await req('POST', '/v1/agents', { name: 'x', builtinTools: ['launch_rocket'] })).status, 400, 'an unknown built-in is refused')
    t.equal((await req('POST', '/v1/numbers', { number: '+14155550188', target: { type: 'agent', id: ai.id } })).status, 201)
    const kit = flowCalls(mine.stack, dir)
    // The caller (sipp, From +14155550100) presses 1: the DTMF is the caller's turn, the model calls the tool.
    const c = await kit.call('+14155550188', { sendInfo: { digits: '1', afterMs: 1500 } })
    t.teardown(c.close)
    const booked = await waitFor(async () => (await req<{ data: Sc[] }>('GET', `/v1/scheduled-calls?agent_id=${ai.id}`)).body.data[0], 20_000, 'the callback is booked')
    const sent = llm.requests.find((r) => Array.isArray(r.tools))
    t.ok((sent?.tools as Array<{ function: { name: string } }>).some((x) => x.function.name === 'schedule_callback'), 'the model was offered schedule_callback')
    t.equal(booked.status, 'pending')
    t.equal(booked.is_callback, true)
    t.equal(booked.previous_call_id, c.callId)
    t.equal(booked.to_phone_number, '+14155550100', 'to the caller')
    t.equal(booked.from_phone_number, '+14155550188', 'from the number the caller reached')
    t.equal(booked.callback_context, 'the pricing details')
    t.equal(booked.source, 'ai_function')
    const ahead = new Date(booked.scheduled_for).getTime() - stack.clock.now().getTime()
    t.ok(ahead > 110 * 60_000 && ahead <= 120 * 60_000, `in 2 hours of business time (${Math.round(ahead / 60_000)} min)`)
    await waitFor(async () => (await req<CallRec>('GET', `/v1/calls/${c.callId}`)).body.transcript.some((e) => e.role === 'assistant' && /Done: Callback booked/.test(e.text)), 15_000, 'the model heard the booking')
    await req('DELETE', `/v1/calls/${c.callId}`)
    stack.clock.advance(2 * 3600_000 + 1000)
    const done = await waitFor(async () => { const s = await sc(booked.id); return s.status === 'completed' || s.status === 'failed' ? s : null }, 30_000, 'the callback ended')
    t.equal(done.status, 'completed', `the callback was placed and answered (${done.last_error ?? ''})`)
    const call = (await req<CallRec>('GET', `/v1/calls/${done.call_id}`)).body
    t.equal(call.to, '+14155550100')
    t.equal(call.agentId, ai.id)
    t.ok(call.transcript.some((e) => e.role === 'assistant' && /callback about the pricing details/i.test(e.text)), `the callback's greeting carries the context: ${JSON.stringify(call.transcript.map((e) => e.text))}`)
  })

  await t.test('a model calling schedule_callback again and again books one callback (moved each time); years ahead is refused', async (t) => {
    const llm = await toolCallingLlm('schedule_callback', [
      { when: 'in 900 days', reason: 'far away' },
      { when: 'tomorrow at 10am', reason: 'the first time' },
      { when: 'in 3 hours', reason: 'the time they settled on' },
    ])
    t.teardown(() => llm.close())
    const ai = (await req('POST', '/v1/agents', {
      name: 'looping', greeting: 'Hello.', llm: { provider: 'openai', model: 'gpt-test', options: { baseURL: llm.baseURL, apiKey: 'sk-test' } }, builtinTools: ['schedule_callback'],
    })).body as { id: string }
    t.equal((await req('POST', '/v1/numbers', { number: '+14155550177', target: { type: 'agent', id: ai.id } })).status, 201)
    const kit = flowCalls(mine.stack, dir)
    const c = await kit.call('+14155550177', { sendInfo: { digits: '1', afterMs: 1500 } })
    t.teardown(c.close)
    const transcript = await waitFor(async () => {
      const tr = (await req<CallRec>('GET', `/v1/calls/${c.callId}`)).body.transcript
      return tr.filter((e) => e.role === 'tool').length >= 3 ? tr : null
    }, 20_000, 'the model called the tool three times')
    await req('DELETE', `/v1/calls/${c.callId}`)
    const tools = transcript.filter((e) => e.role === 'tool').map((e) => e.text)
    t.match(tools[0], /ERROR: .*more than 90 days ahead/, '900 days ahead refused')
    t.match(tools[1], /Callback booked/)
    t.match(tools[2], /moved to/)
    const booked = (await req<{ data: Sc[] }>('GET', `/v1/scheduled-calls?agent_id=${ai.id}`)).body.data
    t.equal(booked.length, 1, 'one callback for the call')
    t.equal(booked[0]!.callback_context, 'the time they settled on')
    const ahead = new Date(booked[0]!.scheduled_for).getTime() - stack.clock.now().getTime()
    t.ok(ahead > 170 * 60_000 && ahead <= 180 * 60_000, `at the last time asked (${Math.round(ahead / 60_000)} min ahead)`)
    t.equal((await req('POST', `/v1/scheduled-calls/${booked[0]!.id}/cancel`)).status, 200)
  })
})
