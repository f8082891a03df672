import t from 'tap'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import WebSocket from 'ws'
import { pino } from 'pino'
import { startPostgres } from '../harness/postgres.ts'
import { startStack, type Stack } from '../harness/stack.ts'
import { sleep, waitFor } from '../harness/wait.ts'
import { RtpCaller, awaitAnsweredCall, placeCall, rms } from '../sip/app/rtp-caller.ts'
import { openDatabase } from '../../store/database.ts'
import { NodeRelay, NodeUnreachable, RelayedFailure } from '../../store/node-relay.ts'

/**
 * Issue 16: live calls are controlled from any node. Two engines (node-a,
 * node-b) share one real PostgreSQL; sipp calls node A's SIP port, and the
 * actions sent to node B's API reach the call on A through the node relay
 * (PostgreSQL NOTIFY) and act on it: the caller hears B's `say`, B's `mute`
 * silences it, B's DELETE sends the caller its BYE. An action for a call whose
 * node is gone answers 503 within the relay timeout; a failing action answers
 * the same 4xx through the relay as on the node itself.
 */
const RELAY_TIMEOUT_MS = 2000
const frames = (pcm: Int16Array) => Array.from({ length: Math.floor(pcm.length / 160) }, (_, i) => pcm.subarray(i * 160, i * 160 + 160))
const loudFrames = (pcm: Int16Array) => frames(pcm).filter((f) => rms(f) > 300).length

t.test('actions on a call held by another node', async (t) => {
  const pg = await startPostgres()
  t.teardown(() => pg.stop())
  const env = { DATABASE_URL: pg.url, BOOTSTRAP_API_KEY: `cross-node-${Math.random().toString(36).slice(2)}`, CALL_RELAY_TIMEOUT: `${RELAY_TIMEOUT_MS}ms` }
  // A first (it migrates), then B; teardown stops B before A, each before the database.
  const a = await startStack({ ...env, NODE_ID: 'node-a' })
  t.teardown(() => a.stop())
  const b = await startStack({ ...env, NODE_ID: 'node-b' })
  t.teardown(() => b.stop())
  const dir = mkdtempSync(join(tmpdir(), 'cross-node-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))

  const api = (s: Stack, path: string, init: RequestInit = {}) => fetch(`${s.baseUrl}${path}`, {
    ...init, headers: { authorization: `Bearer ${s.apiKey}`, ...(init.body ? { 'content-type': 'application/json' } : {}) },
  })
  const post = (s: Stack, path: string, body: unknown = {}) => api(s, path, { method: 'POST', body: JSON.stringify(body) })

  const store = a.engine.store
  const account = (await store.accounts.first())!
  // An agent with nothing to say: what the caller hears comes from the API.
  const agent = await store.agents.create(account.id, { name: 'quiet', llm: { provider: 'scripted', options: { rules: [], fallback: ' ' } } })
  await store.numbers.create(account.id, { number: '+14155550188', target: { type: 'agent', id: agent.id } })

  const caller = new RtpCaller()
  await caller.start()
  t.teardown(() => caller.close())
  const sipp = await placeCall({ dir, sipPort: a.sipPort, service: '+14155550188', caller })
  t.teardown(() => sipp.kill())
  const { callId, rtp } = await awaitAnsweredCall((p) => api(b, p), caller)
  t.ok(callId && rtp, 'node A answered the call and sends RTP to the caller')
  const calls = `/v1/calls/${callId}`
  const record = await (await api(b, calls)).json() as { nodeId: string }
  t.equal(record.nodeId, 'node-a', 'the call record names the node that holds it')

  t.test('say sent to node B is spoken on node A', async (t) => {
    await sleep(300)
    const t0 = Date.now()
    const r = await post(b, `${calls}/say`, { text: 'This line was asked for on node B.' })
    t.equal(r.status, 202)
    t.match(await r.json(), { callId, action: 'say', status: 'accepted', actionId: /^[0-9a-f-]{36}$/ }, 'the action id comes back through the relay')
    const voiced = await waitFor(() => { const n = loudFrames(caller.audioSince(t0)); return n >= 25 ? n : 0 }, 8000, 'speech at the caller')
    t.ok(voiced >= 25, `the caller heard the speech (${voiced} voiced frames)`)
    const line = await waitFor(async () => {
      const c = await (await api(b, calls)).json() as { transcript: Array<{ text: string; source?: string }> }
      return c.transcript.find((e) => e.source === 'api-say')
    }, 10_000, 'the say line in the transcript')
    t.equal(line.text, 'This line was asked for on node B.', 'the transcript shows the say line')
  })

  t.test('verbs sent to node B run on node A; their run is stopped through B', async (t) => {
    const t0 = Date.now()
    const r = await post(b, `${calls}/actions`, { actions: [{ type: 'talk', option: { text: 'Verbs asked for on node B.' } }, { type: 'sleep', option: { duration: 60000 } }] })
    t.equal(r.status, 202)
    const body = await r.json() as { activeflowId: string; mode: string }
    t.equal(body.mode, 'started', 'a new run on the agent call')
    const voiced = await waitFor(() => { const n = loudFrames(caller.audioSince(t0)); return n >= 20 ? n : 0 }, 8000, 'the talk verb at the caller')
    t.ok(voiced >= 20, `the caller heard the talk verb (${voiced} voiced frames)`)
    const run = await waitFor(async () => {
      const a = await (await api(b, `/v1/activeflows/${body.activeflowId}`)).json() as { nodeId: string; currentAction: { type: string } | null }
      return a.currentAction?.type === 'sleep' ? a : null
    }, 10_000, 'the run reaches its sleep')
    t.equal(run.nodeId, 'node-a', 'the run lives on the node that holds the call')
    const stop = await post(b, `/v1/activeflows/${body.activeflowId}/stop`)
    t.equal(stop.status, 200, 'stopped through node B')
    t.match(await stop.json(), { status: 'ended' })
    t.equal((await (await api(b, calls)).json() as { status: string }).status, 'in-progress', 'an API run stopped leaves the call up')
  })

  t.test('mute and unmute sent to node B act on the call on node A', async (t) => {
    const m = await post(b, `${calls}/mute`, { direction: 'in' })
    t.equal(m.status, 202)
    t.match(await m.json(), { action: 'mute', direction: 'in', muted: { in: true, out: false } })
    await sleep(300)
    const t0 = Date.now()
    t.equal((await post(b, `${calls}/say`, { text: 'Nobody should hear this muted sentence.' })).status, 202)
    await sleep(2500)
    const heard = loudFrames(caller.audioSince(t0))
    t.ok(heard <= 2, `muted in: the caller hears nothing of the prompt (${heard} voiced frames)`)
    const u = await post(b, `${calls}/unmute`, { direction: 'in' })
    t.equal(u.status, 202)
    t.match(await u.json(), { action: 'unmute', muted: { in: false, out: false } })
  })

  t.test('a failing action answers the same through the relay as on the owning node', async (t) => {
    const viaA = await post(a, `${calls}/record/stop`)
    const viaB = await post(b, `${calls}/record/stop`)
    t.equal(viaA.status, 409, 'on node A: 409 (not recording)')
    t.equal(viaB.status, viaA.status, 'through node B: the same status')
    t.same(await viaB.json(), await viaA.json(), 'and the same error body')
    const badA = await post(a, `${calls}/unmute`, { direction: 'sideways' })
    const badB = await post(b, `${calls}/unmute`, { direction: 'sideways' })
    t.equal(badB.status, 400, 'an invalid direction is refused by node B')
    t.same(await badB.json(), await badA.json(), 'as node A refuses it')
  })

  t.test('the media stream stays on the node that holds the call', async (t) => {
    const ws = new WebSocket(`${b.baseUrl.replace('http', 'ws')}${calls}/stream?token=${b.apiKey}`)
    ws.on('error', () => {})
    const closed = await new Promise<{ code: number; reason: string }>((res) => ws.once('close', (code, reason) => res({ code, reason: reason.toString() })))
    t.equal(closed.code, 1011)
    t.match(closed.reason, /is on node node-a: its media stream is served only there/, 'the close reason names the node')
  })

  t.test('DELETE sent to node B hangs up the call on node A', async (t) => {
    const r = await api(b, calls, { method: 'DELETE' })
    t.equal(r.status, 204)
    const result = await sipp.done
    t.equal(result.code, 0, 'the caller got its BYE and answered it (sipp scenario complete)')
    const ended = await waitFor(async () => {
      const c = await (await api(b, calls)).json() as { status: string; hangupBy: string | null }
      return c.status === 'completed' ? c : null
    }, 10_000, 'the call record to complete')
    t.equal(ended.hangupBy, 'api')
  })

  t.test('a call whose node is gone: 503 within the relay timeout', async (t) => {
    const ghost = await store.calls.create({
      accountId: account.id, direction: 'inbound', status: 'in-progress', from: '+14155550100', to: '+14155550188', nodeId: 'node-gone',
    })
    const t0 = Date.now()
    const r = await post(b, `/v1/calls/${ghost.id}/say`, { text: 'hello' })
    const took = Date.now() - t0
    t.equal(r.status, 503)
    const body = await r.json() as { error: { code: string; message: string } }
    t.match(body.error, { code: 'unavailable', message: /lives on node node-gone, which did not answer within 2 s: the node may be down/ })
    t.ok(took >= RELAY_TIMEOUT_MS - 100 && took < RELAY_TIMEOUT_MS + 2000, `answered after the timeout, not later (${took} ms)`)
    const d = await api(b, `/v1/calls/${ghost.id}`, { method: 'DELETE' })
    t.equal(d.status, 503, 'a hang-up of it too')
  })
})

t.test('the node relay itself: long actions, large messages, errors', async (t) => {
  const pg = await startPostgres()
  t.teardown(() => pg.stop())
  const log = pino({ level: 'silent' })
  const dbA = await openDatabase({ databaseUrl: pg.url, dataDir: tmpdir(), logger: log })
  t.teardown(() => dbA.close())
  const dbB = await openDatabase({ databaseUrl: pg.url, dataDir: tmpdir(), logger: log })
  t.teardown(() => dbB.close())
  const { migrate } = await import('../../store/migrator.ts')
  await migrate(dbA, log)
  const one = new NodeRelay(dbA, 'one', log, 600)
  const two = new NodeRelay(dbB, 'two', log, 600)
  t.teardown(() => one.stop())
  t.teardown(() => two.stop())
  await one.start(async () => { throw new Error('one serves nothing') })
  await two.start(async (method, args) => {
    if (method === 'slow') { await sleep(2000); return { slept: 2000 } }
    if (method === 'echo') return args
    if (method === 'nothing') return undefined
    throw Object.assign(new Error('no such thing'), { name: 'CallControlError', code: 'not_found', details: { code: 'x' } })
  })

  t.same(await one.request('two', 'slow', {}), { slept: 2000 }, 'an action longer than the timeout completes: the owner keeps the wait alive')
  const big = { text: 'ü'.repeat(20_000) }
  t.same(await one.request('two', 'echo', big), big, 'a message over the NOTIFY limit travels both ways (node_relay_messages)')
  t.equal(await one.request('two', 'nothing', {}), undefined, 'an empty answer')
  const err = await one.request('two', 'fail', {}).catch((e: unknown) => e)
  t.ok(err instanceof RelayedFailure, 'the owner\'s error comes back')
  t.match((err as RelayedFailure).failure, { name: 'CallControlError', code: 'not_found', message: 'no such thing', details: { code: 'x' } })
  const gone = await one.request('three', 'echo', {}).catch((e: unknown) => e)
  t.ok(gone instanceof NodeUnreachable, 'a node nobody serves: NodeUnreachable')
  t.equal((gone as NodeUnreachable).waitedMs, 600)
  const { rows } = await dbA.pool.query('SELECT count(*)::int AS n FROM node_relay_messages')
  t.equal(rows[0].n, 0, 'large messages are deleted once read')
})
