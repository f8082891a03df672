import t from 'tap'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startStack } from '../harness/stack.ts'
import { startUas, uasScenario, type RunningUas } from '../harness/sipp-scenarios.ts'
import { sleep, waitFor as poll } from '../harness/wait.ts'
import { apiClient } from '../harness/api-client.ts'

/** Polls every 300 ms (the API's per-key rate limit holds for a whole campaign's polling); throws after `ms`. */
const waitFor = <T>(fn: () => Promise<T | null | undefined | false> | T | null | undefined | false, ms = 10_000, what = 'condition') => poll(fn, ms, what, 300)

/**
 * Outbound campaigns over real SIP: an outplan, an outdial of contacts, a
 * campaign dialling them through carrier routes to sipp UASs that answer,
 * answer busy (486) or ring until canceled. Time is moved with the stack's
 * clock (operating hours, retry delays), never waited for.
 */

interface Campaigncall { id: string; outdial_target_id: string; call_id: string | null; destination: string; try_count: number; status: string; result: string; outcome: string | null; createdAt: string }
interface Campaign { id: string; status: string; status_reason: string | null; stats: { targets: number; targets_done: number; campaigncalls: number; in_progress: number; outcomes: Record<string, number> } }

/** A UAS for many calls: `answer` (answers, waits for our BYE), `machine` (answers and plays a recorded voice, G.711 A-law from a pcap, as a machine's greeting), `busy` (486), `ring` (rings until CANCEL). Each INVITE is logged with sipp's clock and the number dialled. */
const campaignUas = (kind: 'answer' | 'busy' | 'ring' | 'machine') => uasScenario({
  name: `campaign-${kind}`, kind: kind === 'machine' ? 'answer' : kind, capture: ['touser'], log: 'INVITE [clock_tick] [$touser]',
  cancelTimeoutMs: 120_000, end: { by: 'engine', timeoutMs: 120_000 },
  ...(kind === 'machine' ? { codec: 'PCMA' as const, playPcap: '/usr/share/sip-tester/g711a.pcap' } : {}),
})

/** A Sunday, Monday or Tuesday at HH:MM in New York (EST in January: UTC-5). */
const newYork = (day: 'sunday' | 'monday' | 'tuesday', hh: number, mm = 0) => new Date(Date.UTC(2026, 0, { sunday: 11, monday: 12, tuesday: 13 }[day], hh + 5, mm))

t.test('outbound campaigns over SIP', async (t) => {
  const stack = await startStack(process.env.DATABASE_URL ? { DATABASE_URL: process.env.DATABASE_URL } : {})
  t.teardown(() => stack.stop())
  const dir = mkdtempSync(join(tmpdir(), 'campaigns-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const { store } = stack.engine
  const account = (await store.accounts.first())!
  const { api } = apiClient(stack)
  const call = async (method: string, path: string, body?: unknown, contentType = 'application/json') => {
    const r = await fetch(`${stack.baseUrl}${path}`, {
      method, headers: { authorization: `Bearer ${stack.apiKey}`, ...(body !== undefined ? { 'content-type': contentType } : {}) },
      ...(body !== undefined ? { body: typeof body === 'string' ? body : JSON.stringify(body) } : {}),
    })
    const text = await r.text()
    return { status: r.status, body: (text ? JSON.parse(text) : null) as Record<string, unknown> & { error?: { message: string; details?: unknown } } }
  }
  const post = (path: string, body: unknown) => call('POST', path, body)
  const get = async <T>(path: string) => (await (await api(path)).json()) as T
  const created = async (path: string, body: unknown): Promise<{ id: string } & Record<string, unknown>> => {
    const r = await post(path, body)
    if (r.status !== 201) throw new Error(`POST ${path}: ${r.status} ${JSON.stringify(r.body)}`)
    return r.body as { id: string }
  }

  // The caller ID, a flow for answered calls (a short pause, then hang up), one UAS per behaviour behind a carrier route.
  const flow = await created('/v1/flows', { name: 'campaign call', actions: [{ type: 'sleep', option: { duration: 300 } }, { type: 'hangup' }] })
  t.equal((await post('/v1/numbers', { number: '+14155550100', target: { type: 'flow', id: flow.id } })).status, 201)
  const uas: Record<'answer' | 'busy' | 'ring' | 'machine', RunningUas> = {} as never
  for (const [kind, prefix] of [['answer', '+121255501'], ['busy', '+121255502'], ['ring', '+121255503'], ['machine', '+121255504']] as const) {
    uas[kind] = await startUas(dir, kind, campaignUas(kind), { calls: 10_000, timeoutMs: 600_000 })
    const port = uas[kind].port
    t.teardown(() => uas[kind].kill())
    const trunk = await store.trunks.create(account.id, { name: `${kind}-carrier`, outbound: { host: '127.0.0.1', port } })
    await store.carrierRoutes.create(account.id, { name: `to-${kind}`, prefix, trunkId: trunk.id, priority: 1 })
  }
  const number = (kind: 'answer' | 'busy' | 'ring' | 'machine', i: number) => `+1212555${{ answer: '01', busy: '02', ring: '03', machine: '04' }[kind]}${String(i).padStart(2, '0')}`
  const hours = { start: '09:00', end: '17:00', days: [1, 2, 3, 4, 5], timezone: 'America/New_York' }
  const outplanBody = { name: 'two tries', source: { type: 'tel', target: '+14155550100' }, dial_timeout: 2000, max_attempts: 2, try_interval: 3_600_000, retry_delays: { busy: 1_800_000 } }
  const attempts = async (campaignId: string) => {
    const out: Campaigncall[] = []
    let cursor: string | null = null
    do {
      const page: { data: Campaigncall[]; nextCursor: string | null } = await get(`/v1/campaigncalls?campaign_id=${campaignId}&limit=100${cursor ? `&cursor=${cursor}` : ''}`)
      out.push(...page.data)
      cursor = page.nextCursor
    } while (cursor)
    return out
  }
  const campaign = (id: string) => get<Campaign>(`/v1/campaigns/${id}`)
  const setStatus = (id: string, status: string) => post(`/v1/campaigns/${id}/status`, { status })

  await t.test('resources: bad input is a 400 naming the field; CSV import reports every bad row and imports the good ones', async (t) => {
    const outplan = await created('/v1/outplans', outplanBody)
    t.match(outplan, { dial_timeout: 2000, max_attempts: 2, try_interval: 3_600_000, retry_delays: { busy: 1_800_000, no_answer: 3_600_000, failed: 3_600_000, machine: 3_600_000 } })
    const outdial = await created('/v1/outdials', { name: 'list' })
    const bad = await post(`/v1/outdials/${outdial.id}/targets`, { name: 'x', destinations: ['+1212555010'], timezone: 'Mars/Olympus' })
    t.equal(bad.status, 400)
    t.match(bad.body.error!.message, /destinations\/0: .*E\.164.*timezone: "Mars\/Olympus" is not a known IANA time zone/)
    const csv = [
      'name,destination_0,destination_1,timezone,data',
      'Ann,+12125550101,,America/Chicago,vip',
      'Bob,12125550102,,,',
      '"Carol, the second",+12125550103,+12125550104,,"multi',
      'line data"',
      'Dan,+12125550105,,Nowhere/Land,',
      '',
      'Eve,+12125550106,,,',
    ].join('\r\n')
    const imp = await call('POST', `/v1/outdials/${outdial.id}/targets/csv`, csv, 'text/csv')
    t.equal(imp.status, 200, JSON.stringify(imp.body))
    t.match(imp.body, { imported: 3, rejected: 2 })
    t.same((imp.body.errors as Array<{ line: number; field: string }>).map((e) => [e.line, e.field]), [[3, 'destinations/0'], [6, 'timezone']], 'the bad rows by line and field')
    const targets = await get<{ data: Array<{ name: string; destinations: string[]; timezone: string | null; data: string }> }>(`/v1/outdials/${outdial.id}/targets`)
    t.same(targets.data.map((x) => [x.name, x.destinations, x.timezone, x.data]), [
      ['Ann', ['+12125550101'], 'America/Chicago', 'vip'], ['Carol, the second', ['+12125550103', '+12125550104'], null, 'multi\r\nline data'], ['Eve', ['+12125550106'], null, ''],
    ], 'the good rows, in order')
    const json = await post(`/v1/outdials/${outdial.id}/targets/csv`, { rows: [{ destinations: ['+12125550107'] }, { destinations: ['+1'] }, { destinations: ['+12125550108'], shoe: 1 }] })
    t.match(json.body, { imported: 1, rejected: 2 })
    t.equal((await call('POST', `/v1/outdials/${outdial.id}/targets/csv`, 'name,phone\nA,+12125550101', 'text/csv')).status, 400, 'an unknown column is refused')

    const base = { name: 'c', type: 'flow', flow_id: flow.id, outplan_id: outplan.id, outdial_id: outdial.id }
    const refused = async (body: Record<string, unknown>, field: RegExp) => {
      const r = await post('/v1/campaigns', body)
      t.equal(r.status, 400, `${JSON.stringify(body).slice(0, 80)} → 400`)
      t.match(r.body.error!.message, field)
    }
    await refused({ ...base, operating_hours: { ...hours, timezone: 'America/Nowhere' } }, /operating_hours\.timezone/)
    await refused({ ...base, operating_hours: { ...hours, start: '17:00', end: '09:00' } }, /operating_hours/)
    await refused({ ...base, operating_hours: { ...hours, days: [] } }, /operating_hours|days/)
    await refused({ ...base, type: 'call', flow_id: undefined }, /agent_id/)
    await refused({ ...base, flow_id: '00000000-0000-4000-8000-000000000000' }, /flow_id/)
    await refused({ ...base, type: 'call', flow_id: undefined, agent_id: '00000000-0000-4000-8000-000000000000' }, /agent_id/)
    await refused({ ...base, outplan_id: '00000000-0000-4000-8000-000000000000' }, /outplan_id/)
    await refused({ ...base, amd: { behavior: 'static_message' } }, /amd\.message/)
    const ok = await created('/v1/campaigns', { ...base, operating_hours: hours, amd: { behavior: 'hangup' } })
    t.match(ok, { status: 'stop', calls_per_second: 1, max_concurrent_calls: 10, end_handle: 'stop', amd: { enabled: true, behavior: 'hangup' }, stats: { targets: 4 } })
    t.equal((await call('DELETE', `/v1/outplans/${outplan.id}`)).status, 409, 'an outplan in use is kept')
    t.equal((await call('DELETE', `/v1/campaigns/${ok.id}`)).status, 204)
  })

  /** An outdial of `spec` contacts; returns its id and the targets by number. */
  const contacts = async (name: string, numbers: string[], extra: Record<string, unknown> = {}) => {
    const outdial = await created('/v1/outdials', { name })
    const r = await post(`/v1/outdials/${outdial.id}/targets/csv`, { rows: numbers.map((n, i) => ({ name: `${name} ${i}`, destinations: [n], ...extra })) })
    t.equal(r.body.imported, numbers.length, `${name}: ${numbers.length} contacts imported`)
    return outdial.id
  }

  await t.test('30 contacts: paced, busy and unanswered tried again after their delay and at most max_attempts times, a do-not-call contact never dialled', async (t) => {
    stack.clock.set(newYork('monday', 10))
    const outplan = await created('/v1/outplans', outplanBody)
    const numbers = [...Array.from({ length: 10 }, (_, i) => number('answer', i)), ...Array.from({ length: 10 }, (_, i) => number('busy', i)), ...Array.from({ length: 10 }, (_, i) => number('ring', i))]
    const outdialId = await contacts('thirty', numbers)
    const listed = number('answer', 9)
    t.equal((await post('/v1/do-not-call', { number: listed, reason: 'asked' })).status, 201, 'one contact is on the do-not-call list')
    const c = await created('/v1/campaigns', { name: 'thirty', type: 'flow', flow_id: flow.id, outplan_id: outplan.id, outdial_id: outdialId, operating_hours: hours, calls_per_second: 5, max_concurrent_calls: 10 })
    const events: string[] = []
    const unsubscribe = store.bus.subscribe((e) => { if (e.type.startsWith('campaign')) events.push(e.type) })
    t.teardown(unsubscribe)
    const run = await setStatus(c.id, 'run')
    t.equal(run.status, 200, JSON.stringify(run.body))
    t.equal(run.body.status, 'run')

    // First round: 9 answered, 10 busy, 10 rang out, 1 skipped.
    const first = await waitFor(async () => {
      const a = await attempts(c.id)
      return a.length === 30 && a.every((x) => x.status === 'done') ? a : null
    }, 90_000, 'every contact tried once')
    const outcomes = (list: Campaigncall[]) => list.reduce<Record<string, number>>((m, x) => ({ ...m, [x.outcome!]: (m[x.outcome!] ?? 0) + 1 }), {})
    t.same(outcomes(first), { answered: 9, busy: 10, 'no-answer': 10, 'dnc-skipped': 1 }, 'first round outcomes')
    const skipped = first.find((x) => x.outcome === 'dnc-skipped')!
    t.match(skipped, { destination: listed, call_id: null, result: 'fail' }, 'the listed contact: skipped, no call')
    t.ok(first.filter((x) => x.outcome === 'answered').every((x) => x.result === 'success' && x.call_id), 'answered attempts: success, with their call')
    // Pacing: about 5 a second. The pacer catches up on slots a stall made it miss (at most 5 gaps),
    // so a busy box may put 10 in one window; the span below is the steady rate.
    const placed = (await Promise.all(first.filter((x) => x.call_id).map((x) => get<{ createdAt: string }>(`/v1/calls/${x.call_id}`)))).map((x) => Date.parse(x.createdAt)).sort((a, b) => a - b)
    const densest = Math.max(...placed.map((t0) => placed.filter((x) => x >= t0 && x < t0 + 1000).length))
    t.ok(densest <= 10, `about 5 calls a second at most, catch-up included (densest second: ${densest})`)
    t.ok(placed.at(-1)! - placed[0]! >= 4000, `29 calls at 5/s took at least 4 s (${placed.at(-1)! - placed[0]!} ms)`)

    // Nothing more until the retry delays pass (busy: 30 min, no-answer: try_interval 60 min).
    await sleep(1500)
    t.equal((await attempts(c.id)).length, 30, 'no second attempt before its delay')
    stack.clock.advance(31 * 60_000)
    const busyAgain = await waitFor(async () => {
      const a = (await attempts(c.id)).filter((x) => x.try_count === 2)
      return a.length === 10 && a.every((x) => x.status === 'done') ? a : null
    }, 60_000, 'busy contacts tried again after 30 minutes')
    t.same(outcomes(busyAgain), { busy: 10 }, 'only the busy ones, after their own delay')
    t.ok(busyAgain.every((x) => x.destination.startsWith('+121255502')))
    stack.clock.advance(30 * 60_000)
    await waitFor(async () => {
      const a = (await attempts(c.id)).filter((x) => x.try_count === 2)
      return a.length === 20 && a.every((x) => x.status === 'done') ? a : null
    }, 60_000, 'unanswered contacts tried again after an hour')
    const done = await waitFor(async () => { const x = await campaign(c.id); return x.status === 'stop' ? x : null }, 20_000, 'the campaign stops when every target is done')
    t.match(done, { status: 'stop', status_reason: 'finished', stats: { targets: 30, targets_done: 30, campaigncalls: 50, in_progress: 0, outcomes: { answered: 9, busy: 20, 'no-answer': 20, 'dnc-skipped': 1 } } })
    stack.clock.advance(2 * 3_600_000)
    await sleep(1000)
    const all = await attempts(c.id)
    t.equal(all.length, 50, 'max_attempts 2: no third attempt')
    t.notOk(all.some((x) => x.destination === listed && x.call_id), 'the listed number was never dialled')
    t.same([...new Set(events)].sort(), ['campaign.started', 'campaign.stopped', 'campaigncall.created', 'campaigncall.ended'].sort(), 'its events')
    t.equal(events.filter((e) => e === 'campaigncall.created').length, 49, 'one campaigncall.created per call placed')
  })

  await t.test('nothing is dialled outside operating hours: on a Sunday the jobs wait for Monday 09:00 in the campaign\'s zone (the contact\'s own zone when known)', async (t) => {
    stack.clock.set(newYork('sunday', 3))
    const outplan = await created('/v1/outplans', { ...outplanBody, max_attempts: 1 })
    const outdial = await created('/v1/outdials', { name: 'weekend' })
    // One contact in New York, one in Los Angeles (3 hours behind: its 09:00 is New York's 12:00).
    const ny = (await created(`/v1/outdials/${outdial.id}/targets`, { name: 'ny', destinations: [number('answer', 20)] })).id
    const la = (await created(`/v1/outdials/${outdial.id}/targets`, { name: 'la', destinations: [number('answer', 21)], timezone: 'America/Los_Angeles' })).id
    const c = await created('/v1/campaigns', { name: 'weekend', type: 'flow', flow_id: flow.id, outplan_id: outplan.id, outdial_id: outdial.id, operating_hours: hours, calls_per_second: 5 })
    t.equal((await setStatus(c.id, 'run')).status, 200)
    await sleep(1500)
    t.equal((await attempts(c.id)).length, 0, 'Sunday 03:00: nothing dialled')
    const due = async (targetId: string) => (await store.jobs.get('campaign.dial', `${c.id}:${targetId}`))?.dueAt.toISOString()
    t.equal(await waitFor(async () => (await due(ny)) === newYork('monday', 9).toISOString() && await due(ny)), newYork('monday', 9).toISOString(), 'the New York contact waits for Monday 09:00 New York')
    t.equal(await due(la), newYork('monday', 12).toISOString(), 'the Los Angeles contact for Monday 09:00 Los Angeles')
    stack.clock.set(newYork('monday', 9, 30))
    const first = await waitFor(async () => { const a = await attempts(c.id); return a.length === 1 && a[0]!.status === 'done' ? a : null }, 20_000, 'the New York contact is called at 09:30')
    t.equal(first[0]!.outdial_target_id, ny)
    await sleep(1000)
    t.equal((await attempts(c.id)).length, 1, 'Los Angeles is still asleep (06:30 there)')
    stack.clock.set(newYork('monday', 12, 5))
    await waitFor(async () => { const a = await attempts(c.id); return a.length === 2 && a.every((x) => x.status === 'done') }, 20_000, 'the Los Angeles contact is called after 09:00 its time')
    t.equal((await waitFor(async () => { const x = await campaign(c.id); return x.status === 'stop' ? x : null }, 10_000, 'finished')).status_reason, 'finished')
  })

  await t.test('pause stops new dials (calls under way go on), resume goes on where it stopped', async (t) => {
    stack.clock.set(newYork('monday', 11))
    const outplan = await created('/v1/outplans', { ...outplanBody, max_attempts: 1 })
    const outdialId = await contacts('paused', Array.from({ length: 8 }, (_, i) => number('answer', 30 + i)))
    const c = await created('/v1/campaigns', { name: 'paused', type: 'flow', flow_id: flow.id, outplan_id: outplan.id, outdial_id: outdialId, operating_hours: hours, calls_per_second: 2 })
    t.equal((await setStatus(c.id, 'run')).status, 200)
    await waitFor(async () => (await attempts(c.id)).some((x) => x.call_id), 10_000, 'the first call is placed')
    const paused = await setStatus(c.id, 'pause')
    t.match(paused.body, { status: 'pause' })
    const atPause = (await attempts(c.id)).length
    await sleep(2500)
    const after = await attempts(c.id)
    t.ok(after.length <= atPause, `no dial after the pause (${atPause} at the pause, ${after.length} now)`)
    t.ok(after.length < 8, 'not every contact was dialled')
    await waitFor(async () => (await attempts(c.id)).every((x) => x.status === 'done'), 10_000, 'calls under way end by themselves')
    t.equal((await setStatus(c.id, 'run')).body.status, 'run', 'resumed')
    const all = await waitFor(async () => { const a = await attempts(c.id); return a.length === 8 && a.every((x) => x.status === 'done') ? a : null }, 30_000, 'every contact called after the resume')
    t.equal(new Set(all.map((x) => x.outdial_target_id)).size, 8, 'each contact once')
    t.ok(all.every((x) => x.outcome === 'answered'))
  })

  await t.test('answering machines (the UAS answers with a long recorded greeting): hang up, leave a message after the greeting, or let the agent decide', async (t) => {
    stack.clock.set(newYork('tuesday', 10))
    const outplan = await created('/v1/outplans', { ...outplanBody, max_attempts: 1 })
    // A flow campaign leaving a voicemail: detected, the message said once the greeting is over, hung up.
    const dropList = await contacts('voicemail', [number('machine', 0)])
    const drop = await created('/v1/campaigns', {
      name: 'drop', type: 'flow', flow_id: flow.id, outplan_id: outplan.id, outdial_id: dropList, operating_hours: hours,
      amd: { behavior: 'static_message', message: 'Hello, this is Callplane. Please call us back.' },
    })
    // An agent campaign hanging up on machines (its own AMD phase, with the campaign's policy).
    const agent = await created('/v1/agents', { name: 'campaigner', greeting: 'Hello there.', rules: [{ match: 'hello', reply: 'hi' }] })
    const hangList = await contacts('machines', [number('machine', 1)])
    const hang = await created('/v1/campaigns', { name: 'hang', type: 'call', agent_id: agent.id, outplan_id: outplan.id, outdial_id: hangList, operating_hours: hours, amd: { behavior: 'hangup' } })
    // agent_decides: the flow detects and goes on (its sleep and hangup): an answered call.
    const decideList = await contacts('decide', [number('machine', 2)])
    const decide = await created('/v1/campaigns', { name: 'decide', type: 'flow', flow_id: flow.id, outplan_id: outplan.id, outdial_id: decideList, operating_hours: hours, amd: { behavior: 'agent_decides' } })
    for (const c of [drop, hang, decide]) t.equal((await setStatus(c.id, 'run')).status, 200)
    const settled = async (id: string) => waitFor(async () => { const a = await attempts(id); return a.length === 1 && a[0]!.status === 'done' ? a[0]! : null }, 30_000, 'the attempt ends')
    const [d, h, g] = await Promise.all([settled(drop.id), settled(hang.id), settled(decide.id)])
    const callOf = (x: Campaigncall) => get<{ endedReason: string; status: string; activeflows?: Array<{ variables: Record<string, string>; executedActions: Array<{ type: string }> }> }>(`/v1/calls/${x.call_id}`)
    const dc = await callOf(d)
    t.match(d, { outcome: 'voicemail', result: 'success' }, 'static_message: a voicemail left is a success')
    t.equal(dc.endedReason, 'voicemail-left')
    t.same(dc.activeflows?.[0]?.executedActions.map((a) => a.type), ['amd', 'condition_variable', 'talk', 'hangup'], 'amd (until the greeting ended) → talk → hangup')
    t.match(dc.activeflows?.[0]?.variables, { 'callplane.amd.result': 'machine', 'callplane.amd.cue': /silence|beep|timeout/ })
    t.match(h, { outcome: 'machine', result: 'fail' }, 'hangup: the agent\'s AMD hung up on the machine')
    t.equal((await callOf(h)).endedReason, 'machine-detected')
    t.match(g, { outcome: 'answered', result: 'success' }, 'agent_decides: the flow went on')
    const gc = await callOf(g)
    t.same(gc.activeflows?.[0]?.executedActions.map((a) => a.type), ['amd', 'fetch_flow', 'sleep', 'hangup'])
    t.equal(gc.activeflows?.[0]?.variables['callplane.amd.result'], 'machine')
  })

  await t.test('a campaign whose flow is deleted while it runs pauses with a reason and dials nothing', async (t) => {
    stack.clock.set(newYork('sunday', 12))
    const doomed = await created('/v1/flows', { name: 'doomed', actions: [{ type: 'hangup' }] })
    const outplan = await created('/v1/outplans', { ...outplanBody, max_attempts: 1 })
    const outdialId = await contacts('doomed', [number('answer', 40), number('answer', 41)])
    const c = await created('/v1/campaigns', { name: 'doomed', type: 'flow', flow_id: doomed.id, outplan_id: outplan.id, outdial_id: outdialId, operating_hours: hours })
    t.equal((await setStatus(c.id, 'run')).status, 200)
    t.equal((await call('DELETE', `/v1/flows/${doomed.id}`)).status, 204)
    stack.clock.set(newYork('monday', 9, 1))
    const paused = await waitFor(async () => { const x = await campaign(c.id); return x.status === 'pause' ? x : null }, 20_000, 'the campaign pauses')
    t.match(paused.status_reason, /flow .* was deleted/)
    t.equal((await attempts(c.id)).length, 0, 'nothing dialled')
    const again = await setStatus(c.id, 'run')
    t.equal(again.status, 400, 'running it again is refused while its flow is missing')
    t.match(again.body.error!.message, /flow_id/)
  })

  await t.test('review: bad input never a 500, account scoping, outdial fixed once run, end_handle continue, pause and resume repeated', async (t) => {
    stack.clock.set(newYork('monday', 10))
    // A caller ID the account does not own: every call would be refused, so the outplan is.
    const notOwned = await post('/v1/outplans', { ...outplanBody, source: { type: 'tel', target: '+14155559999' } })
    t.equal(notOwned.status, 400, 'an outplan whose caller ID is not the account\'s')
    t.match(notOwned.body.error!.message, /source\/target/)
    const outplan = await created('/v1/outplans', { ...outplanBody, max_attempts: 1 })
    t.equal((await call('PATCH', `/v1/outplans/${outplan.id}`, { source: { type: 'tel', target: '+14155559999' } })).status, 400, 'nor PATCHed to one')

    // CSV text the database cannot hold is a rejected row, not a 500; a file over the row limit is a 400 naming it.
    const list = await created('/v1/outdials', { name: 'text' })
    const nul = await call('POST', `/v1/outdials/${list.id}/targets/csv`, `name,destination\nA\u0000nn,+12125550160\nBob,+12125550161\n`, 'text/csv')
    t.equal(nul.status, 200, JSON.stringify(nul.body).slice(0, 200))
    t.match(nul.body, { imported: 1, rejected: 1, errors: [{ line: 2, field: 'name', reason: /NUL/ }] })
    const huge = `destination\n${'+12125550162\n'.repeat(100_000)}`
    const big = await call('POST', `/v1/outdials/${list.id}/targets/csv`, huge, 'text/csv')
    t.equal(big.status, 400, '100,000 rows: refused')
    t.match(big.body.error!.message, /at most 50000 rows/)

    // Another account's outplan, outdial and flow are not references; its campaigns are not found.
    const other = await store.accounts.create('other', null)
    const { token } = await store.apiKeys.create(other.id, 'other', ['calls:read', 'calls:write'], null)
    const as = async (method: string, path: string, body?: unknown) => {
      const r = await fetch(`${stack.baseUrl}${path}`, { method, headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) }, ...(body ? { body: JSON.stringify(body) } : {}) })
      return { status: r.status, body: await r.json().catch(() => null) as { error?: { message: string } } | null }
    }
    const theirs = await as('POST', '/v1/outdials', { name: 'theirs' })
    const theirOutdial = (theirs.body as unknown as { id: string }).id
    const mine = { name: 'x', type: 'flow', flow_id: flow.id, outplan_id: outplan.id, outdial_id: list.id }
    const withTheirs = await post('/v1/campaigns', { ...mine, outdial_id: theirOutdial })
    t.equal(withTheirs.status, 400, 'another account\'s outdial: 400')
    t.match(withTheirs.body.error!.message, /outdial_id/)
    const withMine = await as('POST', '/v1/campaigns', { ...mine, outdial_id: theirOutdial })
    t.equal(withMine.status, 400, 'my outplan and flow used by another account: 400')
    t.match(withMine.body!.error!.message, /outplan_id|flow_id/)
    t.equal((await as('GET', `/v1/outplans/${outplan.id}`)).status, 404)
    t.equal((await as('POST', `/v1/outdials/${list.id}/targets`, { destinations: [number('answer', 59)] })).status, 404)

    // end_handle continue: done with its contacts it keeps running, and dials a contact added later.
    const c = await created('/v1/campaigns', { name: 'continue', type: 'flow', flow_id: flow.id, outplan_id: outplan.id, outdial_id: await contacts('continue', [number('answer', 50)]), calls_per_second: 5, end_handle: 'continue' })
    t.equal((await as('GET', `/v1/campaigns/${c.id}`)).status, 404, 'another account: not found')
    t.equal((await as('POST', `/v1/campaigns/${c.id}/status`, { status: 'run' })).status, 404)
    t.equal((await as('DELETE', `/v1/campaigns/${c.id}`)).status, 404)
    t.equal((await setStatus(c.id, 'run')).status, 200)
    await waitFor(async () => { const a = await attempts(c.id); return a.length === 1 && a[0]!.status === 'done' }, 20_000, 'the first contact is called')
    await sleep(1000)
    t.equal((await campaign(c.id)).status, 'run', 'continue: still running with every target done')
    t.equal((await call('DELETE', `/v1/campaigns/${c.id}`)).status, 409, 'a running campaign is not deleted')
    const outdialId = (await campaign(c.id) as unknown as { outdial_id: string }).outdial_id
    await created(`/v1/outdials/${outdialId}/targets`, { destinations: [number('answer', 51)] })
    await waitFor(async () => { const a = await attempts(c.id); return a.length === 2 && a.every((x) => x.status === 'done') }, 20_000, 'the contact added later is called')
    t.equal((await campaign(c.id)).status, 'run')
    const moved = await call('PATCH', `/v1/campaigns/${c.id}`, { outdial_id: list.id })
    t.equal(moved.status, 409, 'a campaign that has run keeps its outdial')
    t.match(moved.body.error!.message, /outdial_id/)
    t.equal((await call('PATCH', `/v1/campaigns/${c.id}`, { calls_per_second: 2 })).status, 200, 'other fields change')
    t.equal((await setStatus(c.id, 'stop')).status, 200)
    t.equal((await call('DELETE', `/v1/campaigns/${c.id}`)).status, 204)
    // A dial job still running when the DELETE cancelled it goes when its run ends.
    const jobsOf = async (id: string) => (await store.db.pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM jobs WHERE key LIKE $1`, [`${id}:%`])).rows[0]!.n
    await waitFor(async () => (await jobsOf(c.id)) === 0, 15_000, 'its last dial job to end')
    t.equal(await jobsOf(c.id), 0, 'no job left for it')

    // Pause and run in quick succession while calls are placed: every contact once, no job left behind.
    const flip = await created('/v1/campaigns', { name: 'flip', type: 'flow', flow_id: flow.id, outplan_id: outplan.id, outdial_id: await contacts('flip', Array.from({ length: 6 }, (_, i) => number('answer', 60 + i))), calls_per_second: 3 })
    t.equal((await setStatus(flip.id, 'run')).status, 200)
    for (let i = 0; i < 5; i++) {
      await sleep(250)
      const paused = await setStatus(flip.id, 'pause')
      const at = Date.now()
      t.equal(paused.body.status, 'pause')
      await sleep(600)
      const placed = await Promise.all((await attempts(flip.id)).filter((x) => x.call_id).map((x) => store.calls.getById(x.call_id!)))
      const late = placed.filter((x) => x && Date.parse(x.createdAt) > at + 50)
      t.same(late.map((x) => x!.to), [], 'no call placed after the pause answered')
      const resumed = (await setStatus(flip.id, 'run')).body as { status: string; status_reason: string | null }
      // A slow box may have dialled every contact during the run windows: then the resume finds it finished.
      if (resumed.status === 'stop') { t.equal(resumed.status_reason, 'finished', 'resumed with nothing left: finished'); break }
      t.equal(resumed.status, 'run')
    }
    const done = await waitFor(async () => { const x = await campaign(flip.id); return x.status === 'stop' ? x : null }, 30_000, 'the flipped campaign finishes')
    t.equal(done.status_reason, 'finished')
    const all = await attempts(flip.id)
    t.equal(all.length, 6, 'one attempt per contact')
    t.equal(new Set(all.map((x) => x.outdial_target_id)).size, 6)
    t.ok(all.every((x) => x.outcome === 'answered'))
    await waitFor(async () => (await jobsOf(flip.id)) === 0, 15_000, 'the last dial jobs to end')
    t.equal(await jobsOf(flip.id), 0, 'no dial job left')
  })

  await t.test('a slow pace reserves no attempts ahead; a faster calls_per_second applies from the next slot', async (t) => {
    stack.clock.set(newYork('monday', 10))
    const outplan = await created('/v1/outplans', { ...outplanBody, max_attempts: 1 })
    const c = await created('/v1/campaigns', { name: 'slow', type: 'flow', flow_id: flow.id, outplan_id: outplan.id, outdial_id: await contacts('slow', Array.from({ length: 4 }, (_, i) => number('answer', 70 + i))), calls_per_second: 0.02 })
    t.equal((await setStatus(c.id, 'run')).status, 200)
    await waitFor(async () => (await attempts(c.id)).some((x) => x.call_id), 10_000, 'the first call')
    await sleep(1500)
    t.equal((await attempts(c.id)).length, 1, 'one call every 50 s: the next attempts are not reserved (nor counted in progress) ahead')
    t.equal((await campaign(c.id)).stats.in_progress <= 1, true)
    t.equal((await call('PATCH', `/v1/campaigns/${c.id}`, { calls_per_second: 5 })).status, 200)
    const all = await waitFor(async () => { const a = await attempts(c.id); return a.length === 4 && a.every((x) => x.status === 'done') ? a : null }, 15_000, 'the rest at the new pace')
    t.ok(all.every((x) => x.outcome === 'answered'))
  })

  await t.test('a max_concurrent_calls above the node\'s default dial job concurrency is honoured (the concurrency follows the campaign); stop and DELETE leave no dial job behind', async (t) => {
    stack.clock.set(newYork('sunday', 3))
    const outplan = await created('/v1/outplans', { ...outplanBody, max_attempts: 1 })
    const c = await created('/v1/campaigns', { name: 'wide', type: 'flow', flow_id: flow.id, outplan_id: outplan.id, operating_hours: hours, max_concurrent_calls: 1000,
      outdial_id: await contacts('wide', Array.from({ length: 3 }, (_, i) => number('answer', 80 + i))) })
    t.equal((await setStatus(c.id, 'run')).status, 200)
    const scheduler = stack.engine.scheduler
    const concurrency = await waitFor(async () => { const n = scheduler.concurrencyOf('campaign.dial') ?? 0; return n >= 1000 ? n : null }, 10_000, 'the dial job concurrency grows')
    t.ok(concurrency >= 1000, `this node runs ${concurrency} dial jobs at once`)
    // Sunday: every job waits for Monday's opening in the jobs table. A stop and DELETE leave none behind.
    const jobs = async () => (await store.db.pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM jobs WHERE kind = 'campaign.dial' AND key LIKE $1`, [`${c.id}:%`])).rows[0]!.n
    t.equal(await waitFor(async () => (await jobs()) === 3 && 3, 10_000, 'its jobs wait for Monday'), 3)
    t.equal((await setStatus(c.id, 'stop')).status, 200)
    t.equal((await call('DELETE', `/v1/campaigns/${c.id}`)).status, 204)
    t.equal(await jobs(), 0, 'no dial job left after the DELETE')
  })
})
