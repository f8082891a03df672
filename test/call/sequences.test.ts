import t from 'tap'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startStack } from '../harness/stack.ts'
import { apiClient } from '../harness/api-client.ts'
import { sleep, waitFor } from '../harness/wait.ts'
import { callee, freshAccount, toolCallingLlm } from './outreach-kit.ts'

/**
 * Leadlock sequences through the API over real SIP, on the business clock
 * (`stack.clock`, moved, never waited for): three contacts enrolled in a
 * call → wait 60 → call sequence with New York operating hours; the one in
 * Berlin (open there) is called at once, the others at 09:00 New York; the
 * steps run in order with their delays; a busy contact's outcome is logged;
 * stats count them. A contact on the do-not-call list is opted out without
 * a call; a booking (the agent's mark_booked tool) stops its enrollment;
 * CSV rows are enrolled or reported one by one; bad input names the field.
 */
interface Enr { id: string; contact_phone: string; status: string; current_step: number; next_action_at: string | null; total_calls: number; total_attempts: number; last_call_outcome: string | null }
interface Disp { step: number; type: string; outcome: string; call_id: string | null }

t.test('sequences', async (t) => {
  const stack = await startStack(process.env.DATABASE_URL ? { DATABASE_URL: process.env.DATABASE_URL } : {})
  t.teardown(() => stack.stop())
  const dir = mkdtempSync(join(tmpdir(), 'sequences-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const mine = await freshAccount(stack, 'sequences')
  const { api } = apiClient(mine.stack)
  const admin = apiClient(stack)
  const req = async <T = any>(method: string, path: string, body?: unknown) => {
    const r = await api(path, { method, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) })
    return { status: r.status, body: (await r.json().catch(() => null)) as T }
  }
  const store = stack.engine.store
  const account = { id: mine.id }
  const answering = await callee(dir, 'answering', { byeAfterMs: 1500, calls: 50 })
  const busy = await callee(dir, 'busy', { busy: true, calls: 50 })
  const booking = await callee(dir, 'booking', { byeAfterMs: 4000, dtmf: '1', calls: 10 })
  t.teardown(() => { answering.kill(); busy.kill(); booking.kill() })
  for (const [name, prefix, port] of [['answering', '+1', answering.port], ['busy', '+1213555', busy.port], ['booking', '+1312555', booking.port]] as const) {
    const trunk = await store.trunks.create(account.id, { name, outbound: { host: '127.0.0.1', port } })
    await store.carrierRoutes.create(account.id, { name, prefix, trunkId: trunk.id, priority: 1 })
  }
  const agent = (await req('POST', '/v1/agents', { name: 'setter', greetingOutbound: 'Hi {{contact_name}}.' })).body as { id: string }
  t.equal((await req('POST', '/v1/numbers', { number: '+14155550299', target: { type: 'agent', id: agent.id } })).status, 201)
  const hours = { start: '09:00', end: '17:00', days: [1, 2, 3, 4, 5], timezone: 'America/New_York' }
  const steps = [{ type: 'call', delay_minutes: 0 }, { type: 'wait', delay_minutes: 60 }, { type: 'call', delay_minutes: 30 }]

  await t.test('bad input names the field; another account sees nothing', async (t) => {
    const ok = { name: 's', agent_id: agent.id, steps }
    const cases: Array<[Record<string, unknown>, RegExp]> = [
      [{ ...ok, steps: [{ type: 'text', delay_minutes: 0, message: 'hi' }] }, /steps\/0\/type.*SMS/],
      [{ ...ok, steps: [{ type: 'fax', delay_minutes: 0 }] }, /steps\/0\/type/],
      [{ ...ok, steps: [{ type: 'voicemail_drop', delay_minutes: 0 }] }, /steps\/0\/message/],
      [{ ...ok, steps: [{ type: 'call', delay_minutes: 0, message: 'x' }] }, /steps\/0\/message/],
      [{ ...ok, steps: [{ type: 'call', delay_minutes: -1 }] }, /delay_minutes/],
      [{ ...ok, steps: [] }, /steps/],
      [{ ...ok, operating_hours: { ...hours, timezone: 'Mars/Base' } }, /operating_hours.timezone/],
      [{ ...ok, operating_hours: { ...hours, start: '18:00' } }, /operating_hours/],
      [{ ...ok, operating_hours: { ...hours, days: [] } }, /days/],
      [{ ...ok, agent_id: '00000000-0000-4000-8000-000000000000' }, /agent_id/],
      [{ ...ok, max_attempts: 0 }, /max_attempts/],
    ]
    for (const [body, field] of cases) {
      const r = await req('POST', '/v1/sequences', body)
      t.equal(r.status, 400, `refused: ${JSON.stringify(body).slice(0, 90)}`)
      t.match(r.body.error.message, field)
    }
    const s = await req('POST', '/v1/sequences', ok)
    t.equal(s.status, 201)
    t.equal(s.body.phone_number, '+14155550299', 'caller ID: the agent\'s number')
    t.equal(s.body.is_active, false, 'created inactive')
    t.equal((await req('POST', `/v1/sequences/${s.body.id}/enrollments`, { contact_phone: '2125550100' })).status, 400)
    t.match((await req('POST', `/v1/sequences/${s.body.id}/enrollments`, { contact_phone: '+12125550100', timezone: 'Nowhere' })).body.error.message, /timezone/)
    const acct = (await (await admin.post('/v1/accounts', { name: 'other' })).json()) as { apiKey: { token: string } }
    const as = (method: string, path: string) => fetch(`${stack.baseUrl}${path}`, { method, headers: { authorization: `Bearer ${acct.apiKey.token}` } })
    t.equal((await as('GET', `/v1/sequences/${s.body.id}`)).status, 404)
    t.equal((await as('POST', `/v1/sequences/${s.body.id}/activate`)).status, 404)
    t.equal((await as('GET', `/v1/sequences/${s.body.id}/stats`)).status, 404)
    t.equal((await as('DELETE', `/v1/sequences/${s.body.id}`)).status, 404)
    t.equal((await req('POST', `/v1/sequences/${s.body.id}/activate`)).body.is_active, true)
    t.equal((await req('DELETE', `/v1/sequences/${s.body.id}`)).status, 409, 'an active sequence is not deleted')
    t.equal((await req('POST', `/v1/sequences/${s.body.id}/deactivate`)).body.is_active, false)
    t.equal((await req('DELETE', `/v1/sequences/${s.body.id}`)).status, 204)
  })

  await t.test('steps run in order with their delays, inside operating hours; stats; dispositions', async (t) => {
    // Monday 7 January 2030, 13:00 UTC: 08:00 in New York (closed), 14:00 in Berlin.
    stack.clock.set(new Date('2030-01-07T13:00:00Z'))
    const s = (await req('POST', '/v1/sequences', { name: 'follow-up', agent_id: agent.id, steps, operating_hours: hours })).body as { id: string }
    const enroll = async (contact_phone: string, extra: Record<string, string> = {}) => {
      const r = await req<Enr>('POST', `/v1/sequences/${s.id}/enrollments`, { contact_phone, ...extra })
      t.equal(r.status, 201)
      return r.body
    }
    const a = await enroll('+12125550201', { contact_name: 'Ann' })
    const b = await enroll('+12125550202', { contact_name: 'Bernd', timezone: 'Europe/Berlin' })
    const c = await enroll('+12135550203')
    t.equal((await req('POST', `/v1/sequences/${s.id}/enrollments`, { contact_phone: '+12125550201' })).status, 409, 'an active contact is not enrolled twice')
    const enr = async (id: string) => (await req<Enr>('GET', `/v1/sequences/${s.id}/enrollments/${id}`)).body
    await sleep(1000)
    t.equal((await enr(a.id)).total_attempts, 0, 'inactive: nothing runs')
    t.equal((await req('POST', `/v1/sequences/${s.id}/activate`)).status, 200)
    const afterStep = (id: string, step: number) => waitFor(async () => { const e = await enr(id); return e.current_step >= step || e.status !== 'active' ? e : null }, 30_000, `enrollment at step ${step}`)

    const b1 = await afterStep(b.id, 1)
    t.same([b1.total_attempts, b1.total_calls, b1.last_call_outcome], [1, 1, 'answered'], 'Berlin is open: called at once, answered')
    const aWait = await waitFor(async () => { const e = await enr(a.id); return e.next_action_at?.startsWith('2030-01-07T14:00') ? e : null }, 10_000, 'A moved to the opening')
    t.equal(aWait.total_attempts, 0, 'New York is closed at 08:00: not called')
    t.equal(aWait.current_step, 0)
    t.equal((await enr(c.id)).next_action_at, '2030-01-07T14:00:00.000Z', 'C waits for 09:00 New York too')

    stack.clock.set(new Date('2030-01-07T14:00:30Z'))
    const a1 = await afterStep(a.id, 1)
    const c1 = await afterStep(c.id, 1)
    t.same([a1.total_attempts, a1.total_calls, a1.last_call_outcome], [1, 1, 'answered'])
    t.same([c1.total_attempts, c1.total_calls, c1.last_call_outcome], [1, 0, 'busy'], 'the busy contact: attempted, not reached')
    const wantWaitEnd = new Date('2030-01-07T14:00:30Z').getTime() + 60 * 60_000
    t.ok(Math.abs(new Date(a1.next_action_at!).getTime() - wantWaitEnd) < 60_000, `the wait step is due 60 minutes later (${a1.next_action_at})`)
    // B's wait (due about 14:00) ran at the move too: its last call is due 30 minutes after.
    const b2 = await afterStep(b.id, 2)
    t.equal(b2.total_attempts, 1, 'a wait step places no call')

    stack.clock.set(new Date('2030-01-07T14:35:00Z'))
    const bDone = await waitFor(async () => { const e = await enr(b.id); return e.status === 'completed' ? e : null }, 30_000, 'B completed')
    t.same([bDone.total_attempts, bDone.total_calls, bDone.current_step], [2, 2, 2])
    t.equal((await enr(a.id)).current_step, 1, 'A still waits (its wait ends at 15:00)')

    stack.clock.set(new Date('2030-01-07T15:02:00Z'))
    await afterStep(a.id, 2)
    await afterStep(c.id, 2)
    stack.clock.set(new Date('2030-01-07T15:40:00Z'))
    for (const id of [a.id, c.id]) await waitFor(async () => (await enr(id)).status === 'completed', 30_000, 'completed')
    const disp = (await req<{ data: Disp[] }>('GET', `/v1/sequences/${s.id}/enrollments/${a.id}/dispositions`)).body.data
    t.same(disp.map((d) => [d.step, d.type, d.outcome]), [[0, 'call', 'answered'], [1, 'wait', 'waited'], [2, 'call', 'answered']], 'A: call, wait, call in order')
    const calls = await Promise.all(disp.filter((d) => d.call_id).map(async (d) => (await req('GET', `/v1/calls/${d.call_id}`)).body as { from: string; to: string; agentId: string; metadata: Record<string, string> }))
    t.same(calls.map((c) => [c.from, c.to, c.agentId, c.metadata.contact_name]), [['+14155550299', '+12125550201', agent.id, 'Ann'], ['+14155550299', '+12125550201', agent.id, 'Ann']])
    const cDisp = (await req<{ data: Disp[] }>('GET', `/v1/sequences/${s.id}/enrollments/${c.id}/dispositions`)).body.data
    t.same(cDisp.map((d) => d.outcome), ['busy', 'waited', 'busy'])
    const stats = (await req('GET', `/v1/sequences/${s.id}/stats`)).body
    t.match(stats, { enrolled_count: 3, active_count: 0, completed_count: 3, booked_count: 0, booking_rate: 0 })
    t.equal((await req<{ data: Enr[] }>('GET', `/v1/sequences/${s.id}/enrollments?status=completed`)).body.data.length, 3)
  })

  await t.test('do-not-call opts out; a booking stops the enrollment; cancel', async (t) => {
    const llm = await toolCallingLlm('mark_booked', { details: 'demo on Friday' })
    t.teardown(() => llm.close())
    const closer = (await req('POST', '/v1/agents', {
      name: 'closer', greetingOutbound: 'Hello.', llm: { provider: 'openai', model: 'gpt-test', options: { baseURL: llm.baseURL, apiKey: 'sk-test' } }, builtinTools: ['mark_booked'],
    })).body as { id: string }
    const s = (await req('POST', '/v1/sequences', { name: 'closing', agent_id: closer.id, from: '+14155550299', steps, stop_on_booking: true })).body as { id: string }
    t.equal((await req('POST', '/v1/do-not-call', { number: '+12125550299' })).status, 201)
    const listed = (await req<Enr>('POST', `/v1/sequences/${s.id}/enrollments`, { contact_phone: '+12125550299' })).body
    const buyer = (await req<Enr>('POST', `/v1/sequences/${s.id}/enrollments`, { contact_phone: '+13125550300' })).body
    const later = (await req<Enr>('POST', `/v1/sequences/${s.id}/enrollments`, { contact_phone: '+12125550301' })).body
    t.equal((await req('DELETE', `/v1/sequences/${s.id}/enrollments/${later.id}`)).status, 204, 'cancelled')
    t.equal((await req('DELETE', `/v1/sequences/${s.id}/enrollments/${later.id}`)).status, 409, 'only active enrollments are cancelled')
    await req('POST', `/v1/sequences/${s.id}/activate`)
    const enr = async (id: string) => (await req<Enr>('GET', `/v1/sequences/${s.id}/enrollments/${id}`)).body
    const out = await waitFor(async () => { const e = await enr(listed.id); return e.status !== 'active' ? e : null }, 20_000, 'the listed contact ended')
    t.equal(out.status, 'opted_out')
    t.equal(out.total_attempts, 0, 'never dialled')
    const booked = await waitFor(async () => { const e = await enr(buyer.id); return e.status !== 'active' ? e : null }, 40_000, 'the buyer ended')
    t.equal(booked.status, 'booked', 'the mark_booked tool stopped the sequence')
    t.equal(booked.total_attempts, 1, 'after one call')
    const disp = (await req<{ data: Disp[] }>('GET', `/v1/sequences/${s.id}/enrollments/${buyer.id}/dispositions`)).body.data
    t.same(disp.map((d) => d.outcome), ['booked'])
    t.equal((await enr(later.id)).status, 'cancelled')
    t.match((await req('GET', `/v1/sequences/${s.id}/stats`)).body, { enrolled_count: 3, booked_count: 1, opted_out_count: 1, cancelled_count: 1, booking_rate: 1 / 3 })
  })

  await t.test('CSV rows: good ones enrolled, bad ones reported with their row and field', async (t) => {
    const s = (await req('POST', '/v1/sequences', { name: 'csv', agent_id: agent.id, steps })).body as { id: string }
    const r = await req('POST', `/v1/sequences/${s.id}/enrollments/csv`, {
      rows: [
        { Phone: '+12125550401', Name: 'Ann', TZ: 'America/Chicago' },
        { Phone: '2125550402', Name: 'No plus' },
        { Phone: '+12125550403', TZ: 'Mars/Base' },
        { Name: 'No phone' },
        { Phone: '+12125550401', Name: 'Ann again' },
        { Phone: '+12125550405', Email: 'not-an-email' },
        { Phone: '+12125550406', Email: 'eve@example.com' },
      ],
      field_mapping: { Phone: 'contact_phone', Name: 'contact_name', TZ: 'timezone', Email: 'contact_email' },
    })
    t.equal(r.status, 200)
    t.equal(r.body.enrolled, 2)
    t.equal(r.body.skipped, 1, 'the duplicate is skipped')
    t.same(r.body.errors.map((e: { row: number; field: string }) => [e.row, e.field]), [[2, 'contact_phone'], [3, 'timezone'], [4, 'contact_phone'], [6, 'contact_email']])
    const list = (await req<{ data: Enr[] }>('GET', `/v1/sequences/${s.id}/enrollments`)).body.data
    t.same(list.map((e) => e.contact_phone), ['+12125550401', '+12125550406'])
    t.equal((await req('POST', `/v1/sequences/${s.id}/enrollments/csv`, { rows: [{ a: '1' }], field_mapping: { a: 'shoe_size' } })).status, 400, 'an unknown field in the mapping is refused')
    // Cells that are not text, or longer than one contact allows, are reported, never stored as "[object Object]".
    const odd = await req('POST', `/v1/sequences/${s.id}/enrollments/csv`, {
      rows: [{ contact_phone: '+12125550407', contact_name: { first: 'Obj' } }, { contact_phone: '+12125550408', contact_id: 'x'.repeat(500) }, { contact_phone: '+12125550409', contact_name: 'Fine' }],
    })
    t.equal(odd.status, 200)
    t.equal(odd.body.enrolled, 1)
    t.same(odd.body.errors.map((e: { row: number; field: string }) => [e.row, e.field]), [[1, 'contact_name'], [2, 'contact_id']])
  })

  await t.test('the same contact enrolled by several requests at once: one enrollment, the others 409', async (t) => {
    const s = (await req('POST', '/v1/sequences', { name: 'race', agent_id: agent.id, steps })).body as { id: string }
    const rs = await Promise.all(Array.from({ length: 6 }, () => req('POST', `/v1/sequences/${s.id}/enrollments`, { contact_phone: '+12125550501' })))
    t.same(rs.map((r) => r.status).sort(), [201, 409, 409, 409, 409, 409])
    t.equal((await req<{ data: Enr[] }>('GET', `/v1/sequences/${s.id}/enrollments`)).body.data.length, 1)
  })

  await t.test('a re-run after its node stopped between placing the step\'s call and noting it settles that call, never dials again', async (t) => {
    const s = (await req('POST', '/v1/sequences', { name: 'rerun', agent_id: agent.id, steps: [{ type: 'call', delay_minutes: 0 }] })).body as { id: string }
    const e = (await req<Enr>('POST', `/v1/sequences/${s.id}/enrollments`, { contact_phone: '+12125550601' })).body
    // What the lost run did: the step's call placed (its metadata names the step), the enrollment not yet told.
    const placed = await req<{ id: string }>('POST', '/v1/calls', { to: '+12125550601', from: '+14155550299', agentId: agent.id, metadata: { sequence_step_run: `${e.id}:0` } })
    t.equal(placed.status, 201)
    t.equal((await req('POST', `/v1/sequences/${s.id}/activate`)).status, 200)
    const done = await waitFor(async () => { const x = (await req<Enr>('GET', `/v1/sequences/${s.id}/enrollments/${e.id}`)).body; return x.status !== 'active' ? x : null }, 30_000, 'the enrollment ended')
    t.equal(done.status, 'completed')
    t.same([done.total_attempts, done.last_call_outcome], [1, 'answered'], 'the placed call is the step\'s attempt')
    const d = (await req<{ data: Array<{ call_id: string }> }>('GET', `/v1/sequences/${s.id}/enrollments/${e.id}/dispositions`)).body.data
    t.equal(d[0]?.call_id, placed.body.id)
    const calls = (await req<{ data: Array<{ to: string }> }>('GET', '/v1/calls?limit=100')).body.data.filter((c) => c.to === '+12125550601')
    t.equal(calls.length, 1, 'dialled once')
  })
})
