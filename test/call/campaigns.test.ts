import t from 'tap'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startStack } from '../harness/stack.ts'
import { freePort } from '../harness/ports.ts'
import { waitListening } from '../harness/sipp.ts'
import { sleep, waitFor } from '../harness/wait.ts'
import { sippUas } from '../sip/app/sipp-util.ts'
import { apiClient } from '../harness/api-client.ts'

/**
 * Outbound campaigns over real SIP: an outplan, an outdial of contacts, a
 * campaign dialling them through carrier routes to sipp UASs that answer,
 * answer busy (486) or ring until canceled. Time is moved with the stack's
 * clock (operating hours, retry delays), never waited for.
 */

interface Campaigncall { id: string; outdial_target_id: string; call_id: string | null; destination: string; try_count: number; status: string; result: string; outcome: string | null; createdAt: string }
interface Campaign { id: string; status: string; status_reason: string | null; stats: { targets: number; targets_done: number; campaigncalls: number; in_progress: number; outcomes: Record<string, number> } }

/** A UAS for many calls: `answer` (answers, waits for our BYE), `busy` (486), `ring` (rings until CANCEL). Each INVITE is logged with sipp's clock and the number dialled. */
function uasScenario(kind: 'answer' | 'busy' | 'ring'): string {
  const head = `<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="campaign-${kind}">
  <recv request="INVITE">
    <action>
      <ereg regexp="To: *.?sip:([^@>;]+)" search_in="msg" assign_to="tall,touser"/>
      <log message="INVITE [clock_tick] [$touser]"/>
    </action>
  </recv>`
  const reply = (status: string, extra = '') => `
  <send>
    <![CDATA[
      SIP/2.0 ${status}
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:[local_ip]:[local_port];transport=[transport]>
${extra}
    ]]>
  </send>`
  const sdp = `      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=callee 1 1 IN IP4 127.0.0.1
      s=-
      c=IN IP4 127.0.0.1
      t=0 0
      m=audio [media_port] RTP/AVP 0
      a=rtpmap:0 PCMU/8000
      a=sendrecv
`
  const refs = '\n  <Reference variables="tall,touser"/>\n</scenario>\n'
  if (kind === 'busy') return `${head}${reply('486 Busy Here', '      Content-Length: 0\n')}\n  <recv request="ACK"/>${refs}`
  if (kind === 'ring') {
    return `${head}${reply('180 Ringing', '      Content-Length: 0\n')}
  <recv request="CANCEL" timeout="120000"/>${reply('200 OK', '      Content-Length: 0\n')}
  <send>
    <![CDATA[
      SIP/2.0 487 Request Terminated
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      CSeq: [cseq] INVITE
      Content-Length: 0

    ]]>
  </send>
  <recv request="ACK"/>${refs}`
  }
  return `${head}${reply('180 Ringing', '      Content-Length: 0\n')}${reply('200 OK', sdp).replace('<send>', '<send retrans="500">')}
  <recv request="ACK"/>
  <recv request="BYE" timeout="120000"/>
  <send>
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

    ]]>
  </send>${refs}`
}

/** A Monday/Sunday at HH:MM in New York (EST in January: UTC-5). */
const newYork = (day: 'monday' | 'sunday', hh: number, mm = 0) => new Date(Date.UTC(2026, 0, day === 'monday' ? 12 : 11, hh + 5, mm))

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
  const uas: Record<'answer' | 'busy' | 'ring', ReturnType<typeof sippUas>> = {} as never
  for (const [kind, prefix] of [['answer', '+121255501'], ['busy', '+121255502'], ['ring', '+121255503']] as const) {
    const port = await freePort()
    const file = join(dir, `${kind}.xml`)
    writeFileSync(file, uasScenario(kind))
    uas[kind] = sippUas(file, port, { calls: 10_000, timeoutMs: 600_000 })
    t.teardown(() => uas[kind].kill())
    await waitListening(port)
    const trunk = await store.trunks.create(account.id, { name: `${kind}-carrier`, outbound: { host: '127.0.0.1', port } })
    await store.carrierRoutes.create(account.id, { name: `to-${kind}`, prefix, trunkId: trunk.id, priority: 1 })
  }
  const number = (kind: 'answer' | 'busy' | 'ring', i: number) => `+1212555${{ answer: '01', busy: '02', ring: '03' }[kind]}${String(i).padStart(2, '0')}`
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
})
