import t from 'tap'
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { startPostgres } from '../harness/postgres.ts'
import { startStack, type Stack } from '../harness/stack.ts'
import { startUas, uasScenario } from '../harness/sipp-scenarios.ts'
import { sleep, waitFor } from '../harness/wait.ts'

/**
 * Issue 17: two engine nodes on one real PostgreSQL work the same campaign.
 * node-b runs in this process; node-a is a separate OS process (a fixture),
 * so it can be killed with SIGKILL. Contacts are sipp UASs that answer; each
 * UAS logs every INVITE with the number dialled, which is compared with the
 * campaigncalls: every contact dialled exactly once per attempt.
 *
 * Then node-a is killed mid-campaign while it holds dial jobs with answered
 * calls: after JOB_LEASE (2 s) node-b runs those jobs again, finds each
 * attempt's call, sees its node does not answer a ping (CALL_RELAY_TIMEOUT)
 * and settles the attempt as `node-lost` instead of dialling again (an
 * attempt node-a had only reserved, never placed, is withdrawn and placed by
 * node-b, once). The campaign completes.
 */

const FIXTURE = join(dirname(fileURLToPath(import.meta.url)), 'fixtures', 'engine-node.ts')

interface Attempt { id: string; outdial_target_id: string; call_id: string | null; destination: string; try_count: number; status: string; outcome: string | null; node_id: string | null; ended_at: Date | null }

/** Answers every call after a ring, logs `INVITE <number>`, waits for the BYE. */
const ANSWER = uasScenario({ name: 'cluster-callee', kind: 'answer', capture: ['touser'], log: 'INVITE [$touser]', end: { by: 'engine', timeoutMs: 300_000 } })

/** An engine node in a child process (kill -9 able). */
function startNode(env: Record<string, string>): { child: ChildProcess; ready: Promise<{ baseUrl: string }>; output: () => string } {
  const child = spawn(process.execPath, ['--import', 'tsx', FIXTURE, JSON.stringify(env)], { stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  child.stdout!.on('data', (d: Buffer) => { out += d.toString() })
  child.stderr!.on('data', (d: Buffer) => { out += d.toString() })
  const ready = new Promise<{ baseUrl: string }>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`node-a never got ready: ${out.slice(-500)}`)), 60_000)
    const look = () => {
      const m = /^READY (\S+)/m.exec(out)
      if (m) { clearTimeout(timer); resolve({ baseUrl: m[1]! }) }
    }
    child.stdout!.on('data', look)
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`node-a exited (${code}): ${out.slice(-500)}`)) })
  })
  return { child, ready, output: () => out }
}

/** INVITEs per number in a UAS's log. */
const invitesByNumber = (log: string): Map<string, number> => {
  const m = new Map<string, number>()
  for (const line of log.split('\n')) {
    const x = /^INVITE (\S+)/.exec(line)
    if (x) m.set(x[1]!, (m.get(x[1]!) ?? 0) + 1)
  }
  return m
}

t.test('two engine nodes on one PostgreSQL work one campaign; kill -9 of one mid-campaign', async (t) => {
  const pg = await startPostgres()
  t.teardown(() => pg.stop())
  const env = {
    DATABASE_URL: pg.url, BOOTSTRAP_API_KEY: `campaign-cluster-${Math.random().toString(36).slice(2)}`,
    JOB_LEASE: '2s', JOB_POLL: '300ms', CALL_RELAY_TIMEOUT: '1s',
  }
  const b: Stack = await startStack({ ...env, NODE_ID: 'node-b' })
  t.teardown(() => b.stop())
  const dir = mkdtempSync(join(tmpdir(), 'campaign-cluster-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const { store } = b.engine
  const account = (await store.accounts.first())!

  const request = async (baseUrl: string, method: string, path: string, body?: unknown) => {
    const r = await fetch(`${baseUrl}${path}`, {
      method, headers: { authorization: `Bearer ${env.BOOTSTRAP_API_KEY}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    })
    const text = await r.text()
    return { status: r.status, body: (text ? JSON.parse(text) : null) as Record<string, unknown> }
  }
  const created = async (path: string, body: unknown) => {
    const r = await request(b.baseUrl, 'POST', path, body)
    if (r.status !== 201) throw new Error(`POST ${path}: ${r.status} ${JSON.stringify(r.body)}`)
    return r.body as { id: string }
  }
  const attempts = async (campaignId: string): Promise<Attempt[]> => (await store.db.pool.query<Attempt>(
    'SELECT id, outdial_target_id, call_id, destination, try_count, status, outcome, node_id, ended_at FROM campaigncalls WHERE campaign_id = $1 ORDER BY seq', [campaignId])).rows
  const openAttempts = async (campaignId: string) => (await attempts(campaignId)).filter((x) => x.status !== 'done').length
  const campaignOf = async (id: string) => (await store.campaigns.getById(id))!

  /** A UAS behind its own carrier route (numbers starting with `prefix`). */
  const callee = async (name: string, prefix: string) => {
    const uas = await startUas(dir, name, ANSWER, { calls: 10_000, timeoutMs: 300_000 })
    const port = uas.port
    t.teardown(() => uas.kill())
    const trunk = await store.trunks.create(account.id, { name: `${name}-carrier`, outbound: { host: '127.0.0.1', port } })
    await store.carrierRoutes.create(account.id, { name: `to-${name}`, prefix, trunkId: trunk.id, priority: 1 })
    return { done: async () => { uas.kill(); return invitesByNumber((await uas.done).log) } }
  }
  const shared = await callee('shared', '+121255501')
  const killed = await callee('killed', '+121255502')

  // Answered calls run a flow: a short one for the shared campaign, a long one (still talking at the kill) for the other.
  const short = await created('/v1/flows', { name: 'short', actions: [{ type: 'sleep', option: { duration: 1000 } }, { type: 'hangup' }] })
  const long = await created('/v1/flows', { name: 'long', actions: [{ type: 'sleep', option: { duration: 8000 } }, { type: 'hangup' }] })
  t.equal((await request(b.baseUrl, 'POST', '/v1/numbers', { number: '+14155550100', target: { type: 'flow', id: short.id } })).status, 201)
  const outplan = await created('/v1/outplans', { name: 'cluster', source: { type: 'tel', target: '+14155550100' }, dial_timeout: 5000, max_attempts: 2, try_interval: 1000 })
  const contacts = async (name: string, numbers: string[]) => {
    const outdial = await created('/v1/outdials', { name })
    const r = await request(b.baseUrl, 'POST', `/v1/outdials/${outdial.id}/targets/csv`, { rows: numbers.map((n, i) => ({ name: `${name} ${i}`, destinations: [n] })) })
    t.equal(r.body.imported, numbers.length)
    return outdial.id
  }

  // node-a: the same engine in its own process, on the same database.
  const a = startNode({ ...env, NODE_ID: 'node-a' })
  t.teardown(() => { a.child.kill('SIGKILL') })
  const { baseUrl: aUrl } = await a.ready

  await t.test('both nodes dial one campaign: every contact once, max_concurrent_calls held across the nodes', async (t) => {
    const numbers = Array.from({ length: 24 }, (_, i) => `+12125550${String(100 + i)}`)
    const outdialId = await contacts('shared', numbers)
    const c = await created('/v1/campaigns', { name: 'shared', type: 'flow', flow_id: short.id, outplan_id: outplan.id, outdial_id: outdialId, calls_per_second: 8, max_concurrent_calls: 4 })
    t.equal((await request(b.baseUrl, 'POST', `/v1/campaigns/${c.id}/status`, { status: 'run' })).status, 200)
    let most = 0
    const done = await waitFor(async () => {
      most = Math.max(most, await openAttempts(c.id))
      const x = await campaignOf(c.id)
      return x.status === 'stop' ? x : null
    }, 60_000, 'the shared campaign to finish')
    t.equal(done.statusReason, 'finished')
    t.ok(most <= 4, `at most 4 attempts open at once across both nodes (most seen: ${most})`)
    const all = await attempts(c.id)
    t.equal(all.length, 24, 'one attempt per contact')
    t.ok(all.every((x) => x.outcome === 'answered' && x.call_id), 'every attempt answered, with its call')
    const byNode = all.reduce<Record<string, number>>((m, x) => ({ ...m, [x.node_id!]: (m[x.node_id!] ?? 0) + 1 }), {})
    t.ok((byNode['node-a'] ?? 0) > 0 && (byNode['node-b'] ?? 0) > 0, `both nodes dialled (${JSON.stringify(byNode)})`)
    await sleep(500)
    const invites = await shared.done()
    t.same([...invites.keys()].sort(), [...numbers].sort(), 'every contact was dialled')
    t.same([...invites.values()].filter((n) => n !== 1), [], 'and nobody twice (INVITEs per number at the callee)')
  })

  await t.test('node-a is killed (SIGKILL) mid-campaign: node-b takes its jobs after the lease, settles its attempts without dialling again, and finishes the campaign', async (t) => {
    const numbers = Array.from({ length: 16 }, (_, i) => `+12125550${String(200 + i)}`)
    const outdialId = await contacts('killed', numbers)
    const c = await created('/v1/campaigns', { name: 'killed', type: 'flow', flow_id: long.id, outplan_id: outplan.id, outdial_id: outdialId, calls_per_second: 4, max_concurrent_calls: 6 })
    // Started through node-a: it arms the jobs and claims them first.
    t.equal((await request(aUrl, 'POST', `/v1/campaigns/${c.id}/status`, { status: 'run' })).status, 200)
    const answeredOnA = async () => {
      const { rows } = await store.db.pool.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM campaigncalls cc JOIN calls ON calls.id = cc.call_id
          WHERE cc.campaign_id = $1 AND cc.node_id = 'node-a' AND calls.status = 'in-progress'`, [c.id])
      return rows[0]!.n
    }
    await waitFor(async () => (await answeredOnA()) >= 2, 20_000, 'node-a to have two answered calls')
    a.child.kill('SIGKILL')
    await new Promise((r) => a.child.once('exit', r))
    const killedAt = Date.now()
    const heldByA = (await attempts(c.id)).filter((x) => x.node_id === 'node-a' && x.status !== 'done')
    t.ok(heldByA.length >= 2, `node-a died holding ${heldByA.length} open attempts`)

    const done = await waitFor(async () => { const x = await campaignOf(c.id); return x.status === 'stop' ? x : null }, 60_000, 'the campaign to finish on node-b alone')
    t.equal(done.statusReason, 'finished')
    const all = await attempts(c.id)
    t.ok(all.every((x) => x.status === 'done'), 'every attempt settled')
    const lost = all.filter((x) => x.outcome === 'node-lost')
    t.ok(lost.length >= 2, `node-a's answered calls: settled as node-lost (${lost.length})`)
    t.ok(lost.every((x) => x.node_id === 'node-a' && x.call_id), 'each a call node-a placed')
    t.ok(lost.every((x) => x.ended_at!.getTime() - killedAt >= 1500), 'settled only after node-a\'s lease ran out')
    const lostCalls = (await store.db.pool.query<{ status: string }>('SELECT status FROM calls WHERE id = ANY($1::uuid[])', [lost.map((x) => x.call_id)])).rows
    t.ok(lostCalls.some((x) => x.status === 'in-progress'), 'their call records stay in-progress (dead-node cleanup is not the dialer\'s)')
    // Answered before the node died: reached, so not called again.
    const lostTargets = new Set(lost.map((x) => x.outdial_target_id))
    t.ok(all.filter((x) => lostTargets.has(x.outdial_target_id)).every((x) => x.outcome === 'node-lost'), 'a contact reached on the dead node gets no further attempt')
    t.equal(new Set(all.map((x) => x.outdial_target_id)).size, 16, 'every contact was worked')
    t.equal(new Set(all.map((x) => `${x.outdial_target_id}:${x.try_count}`)).size, all.length, 'one campaigncall per contact and attempt')
    t.ok(all.some((x) => x.node_id === 'node-b' && x.outcome === 'answered'), 'node-b dialled the rest')
    // A run still ending (its finish is recorded a moment after the campaign stopped, or a dead node's lease runs out first) removes its own job.
    const dialJobs = async () => (await store.db.pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM jobs WHERE kind = 'campaign.dial' AND key LIKE $1`, [`${c.id}:%`])).rows[0]!.n
    await waitFor(async () => (await dialJobs()) === 0, 15_000, 'the last dial jobs to end')
    t.equal(await dialJobs(), 0, 'no dial job left')

    await sleep(500)
    const invites = await killed.done()
    const placed = new Map<string, number>()
    for (const x of all) if (x.call_id) placed.set(x.destination, (placed.get(x.destination) ?? 0) + 1)
    t.same(Object.fromEntries([...invites].sort()), Object.fromEntries([...placed].sort()), 'INVITEs per number at the callee = campaigncalls with a call: nobody dialled twice for one attempt')
  })
})
