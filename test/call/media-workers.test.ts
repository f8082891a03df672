import t from 'tap'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { threadId } from 'node:worker_threads'
import WebSocket from 'ws'
import { startStack } from '../harness/stack.ts'
import { WorkerMediaPlanes } from '../../call/plane/worker-planes.ts'
import { type RtpCaller, heard, placeTrackedCall, rms, tone } from '../sip/app/rtp-caller.ts'

/**
 * MEDIA_WORKERS=2: call media, agents and media actions run in two worker
 * threads (call/plane/worker-planes.ts). First the engine-level checks
 * (calls spread over both workers, each worker's agent talks and hears,
 * bridge and conference across the two workers, a dead worker's calls are
 * hung up and its bridge partner freed), then whole suites rerun with MEDIA_WORKERS=2
 * (media-workers-media-suites.test.ts, media-workers-call-suites.test.ts).
 */
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** Loud 20 ms frames heard since `since`. */
function loudFrames(c: RtpCaller, since: number): Int16Array[] {
  const pcm = c.audioSince(since)
  const out: Int16Array[] = []
  for (let i = 0; i + 160 <= pcm.length; i += 160) { const f = pcm.subarray(i, i + 160); if (rms(f) > 300) out.push(f) }
  return out
}

t.test('calls run in two media workers', async (t) => {
  const stack = await startStack({ MEDIA_WORKERS: '2' })
  t.teardown(() => stack.stop())
  const planes = stack.engine.media
  if (!(planes instanceof WorkerMediaPlanes)) { t.fail('MEDIA_WORKERS=2 did not start worker media planes'); return }
  t.equal(planes.size, 2, 'two workers')
  t.ok(planes.threads.every((w) => w.threadId !== threadId), 'media threads are not the main thread')

  const dir = mkdtempSync(join(tmpdir(), 'media-workers-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const store = stack.engine.store
  const account = (await store.accounts.first())!
  // The scripted LLM echoes a rule's reply when the caller says nothing it knows: a blank fallback keeps it quiet after the greeting.
  const agent = await store.agents.create(account.id, { name: 'greeter', greeting: 'Hello, you are talking to a media worker.', llm: { provider: 'scripted', options: { rules: [], fallback: ' ' } } })
  await store.numbers.create(account.id, { number: '+14155550190', target: { type: 'agent', id: agent.id } })
  const api = (path: string, init: RequestInit = {}) => fetch(`${stack.baseUrl}${path}`, {
    ...init, headers: { authorization: `Bearer ${stack.apiKey}`, ...(init.body ? { 'content-type': 'application/json' } : {}) },
  })
  const post = (path: string, body?: unknown) => api(path, { method: 'POST', ...(body !== undefined ? { body: JSON.stringify(body) } : {}) })

  const known = new Set<string>()
  const call = () => placeTrackedCall({ dir, sipPort: stack.sipPort, service: '+14155550190', known, api, teardown: (fn) => t.teardown(fn) })

  const t0 = Date.now()
  const a = await call()
  const b = await call()
  t.ok(a.id && b.id && a.id !== b.id, 'two live calls')
  t.same([planes.workerOf(a.id), planes.workerOf(b.id)].sort(), [0, 1], 'one call on each worker')

  const health = await (await fetch(`${stack.baseUrl}/health`)).json() as { components?: Record<string, { detail?: { workers?: Array<{ activeSessions: number }> } }> }
  const workers = health.components?.media?.detail?.workers ?? []
  t.same(workers.map((w) => w.activeSessions), [1, 1], 'health lists one session per worker')
  const metrics = await (await fetch(`${stack.baseUrl}/metrics`)).text()
  t.match(metrics, /\ncallplane_media_sessions_active 2\n/, '/metrics adds up both workers\' sessions')
  t.match(metrics, /\ncallplane_rtp_packets\{direction="out"\} [1-9]/, '/metrics counts the workers\' RTP')

  // Each worker's agent greets its caller (TTS → Playout → RTP, all in the worker).
  for (let i = 0; i < 100 && (loudFrames(a.c, t0).length < 25 || loudFrames(b.c, t0).length < 25); i++) await sleep(100)
  t.ok(loudFrames(a.c, t0).length >= 25, `caller A hears its agent (${loudFrames(a.c, t0).length} speech frames)`)
  t.ok(loudFrames(b.c, t0).length >= 25, `caller B hears its agent (${loudFrames(b.c, t0).length} speech frames)`)
  for (let i = 0; i < 100; i++) {
    const [ra, rb] = await Promise.all([a.id, b.id].map(async (id) => (await (await api(`/v1/calls/${id}`)).json() as { transcript?: unknown[] }).transcript?.length ?? 0))
    if (ra! > 0 && rb! > 0) break
    await sleep(100)
  }
  for (const x of [a, b]) {
    const rec = await (await api(`/v1/calls/${x.id}`)).json() as { transcript?: Array<{ role: string; text: string }> }
    t.ok(rec.transcript?.some((e) => e.role !== 'user' && /media worker/.test(e.text)), 'the greeting reached the call record through the main thread\'s store')
  }

  // API media actions are routed to the call's worker.
  const ta = Date.now()
  t.equal((await post(`/v1/calls/${a.id}/play`, { tone: 'beep' })).status, 202, 'play on a worker call')
  await sleep(700)
  const beep = loudFrames(a.c, ta)
  t.ok(beep.length >= 5, `the beep reached caller A (${beep.length} frames)`)

  // A conference across workers: mixed on A's worker (its first participant), B linked to it.
  a.c.signal = tone(500)
  b.c.signal = tone(1300)
  const conf = await (await post('/v1/conferences', { name: 'split' })).json() as { id: string }
  t.equal((await post(`/v1/conferences/${conf.id}/participants`, { callId: a.id })).status, 202, 'first participant joins')
  const cj = await post(`/v1/conferences/${conf.id}/participants`, { callId: b.id })
  t.equal(cj.status, 202, 'a participant on the other worker joins')
  t.match(await cj.json(), { participants: 2 })
  const tc = Date.now() + 300
  await sleep(1800)
  const confB = heard(b.c, tc, 500)
  const confA = heard(a.c, tc, 1300)
  t.ok(confB.frames >= 50 && confB.ratio > 0.8, `B (linked) hears A through the mix (${confB.frames} frames, ratio ${confB.ratio.toFixed(2)})`)
  t.ok(confA.frames >= 50 && confA.ratio > 0.8, `A hears B (linked) through the mix (${confA.frames} frames, ratio ${confA.ratio.toFixed(2)})`)
  t.match(await (await api(`/v1/conferences/${conf.id}`)).json(), { status: 'in-progress', participantCount: 2 })
  const again = await post(`/v1/calls/${a.id}/bridge`, { callId: b.id })
  t.equal(again.status, 409, 'calls in a conference cannot also be bridged')
  t.equal((await post(`/v1/conferences/${conf.id}/participants`, { callId: b.id })).status, 409, 'joining the same conference again: 409')
  // B (linked to A's room) joins a room on its own worker: it moves, as a local join would.
  const other = await (await post('/v1/conferences', { name: 'elsewhere' })).json() as { id: string }
  t.equal((await post(`/v1/conferences/${other.id}/participants`, { callId: b.id })).status, 202, 'a linked member moves to a room on its own worker')
  await sleep(300)
  t.match(await (await api(`/v1/conferences/${conf.id}`)).json(), { status: 'in-progress', participantCount: 1 }, 'the first room lost it')
  t.match(await (await api(`/v1/calls/${b.id}`)).json(), { conferenceId: other.id })
  t.equal((await api(`/v1/conferences/${other.id}/participants/${b.id}`, { method: 'DELETE' })).status, 202, 'kick on its own worker')
  t.equal((await api(`/v1/conferences/${conf.id}/participants/${a.id}`, { method: 'DELETE' })).status, 202, 'kick (routed to the mixing worker)')
  await sleep(200)
  t.match(await (await api(`/v1/conferences/${conf.id}`)).json(), { status: 'completed' }, 'the last one out completes the conference')
  t.match(await (await api(`/v1/conferences/${other.id}`)).json(), { status: 'completed' })

  // A bridge across workers: both PCMU, so RTP crosses undecoded (relay) as on one worker.
  const br = await post(`/v1/calls/${a.id}/bridge`, { callId: b.id })
  t.equal(br.status, 202, 'bridge across workers')
  t.match(await br.json(), { bridgedWith: b.id, mode: 'relay' })
  const tb = Date.now() + 300
  await sleep(1800)
  const brB = heard(b.c, tb, 500)
  const brA = heard(a.c, tb, 1300)
  t.ok(brB.frames >= 50 && brB.ratio > 0.8, `B hears A across workers (${brB.frames} frames, ratio ${brB.ratio.toFixed(2)})`)
  t.ok(brA.frames >= 50 && brA.ratio > 0.8, `A hears B across workers (${brA.frames} frames, ratio ${brA.ratio.toFixed(2)})`)
  t.equal((await post(`/v1/calls/${b.id}/bridge`, { callId: a.id })).status, 409, 'already bridged')
  a.c.signal = () => 0
  b.c.signal = () => 0
  const victim = planes.workerOf(b.id)!

  // B hangs up: A's half of the link closes with it and A is free again.
  t.equal((await api(`/v1/calls/${b.id}`, { method: 'DELETE' })).status, 204)
  t.equal((await b.sipp.done).code, 0)
  await sleep(200)
  const tf = Date.now()
  t.equal((await post(`/v1/calls/${a.id}/play`, { tone: 'beep' })).status, 202)
  await sleep(700)
  t.ok(loudFrames(a.c, tf).length >= 5, `A hears its own prompts again once its linked partner hung up (${loudFrames(a.c, tf).length} frames)`)

  // A conference mixed on the other worker, A linked to it; then that worker dies.
  const b2 = await call()
  t.equal(planes.workerOf(b2.id), victim, 'the next call goes to the emptier worker')
  const conf2 = await (await post('/v1/conferences', { name: 'doomed' })).json() as { id: string }
  t.equal((await post(`/v1/conferences/${conf2.id}/participants`, { callId: b2.id })).status, 202)
  t.equal((await post(`/v1/conferences/${conf2.id}/participants`, { callId: a.id })).status, 202, 'A joins, linked to the room on the other worker')
  // A media stream socket on the doomed worker's call: it must be closed, not left hanging.
  const ws = new WebSocket(`${stack.baseUrl.replace('http', 'ws')}/v1/calls/${b2.id}/stream?encapsulation=twilio&token=${stack.apiKey}`)
  const wsEvents: string[] = []
  ws.on('message', (m) => wsEvents.push((JSON.parse(m.toString()) as { event: string }).event))
  const wsClosed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)))
  await new Promise<void>((res, rej) => { ws.once('open', () => res()); ws.once('error', rej) })
  await sleep(500)
  t.ok(wsEvents.includes('media'), 'the stream carries media from the worker')
  await planes.threads[victim]!.terminate()
  const code = await Promise.race([wsClosed, sleep(5000).then(() => -1)])
  t.not(code, -1, `the stream socket closed with its worker (code ${code})`)
  let ended: { status?: string; endedReason?: string } = {}
  for (let i = 0; i < 100; i++) {
    ended = await (await api(`/v1/calls/${b2.id}`)).json() as typeof ended
    if (ended.status === 'completed') break
    await sleep(100)
  }
  t.match(ended, { status: 'completed', endedReason: 'error-media-worker' }, 'the dead worker\'s call was hung up with a reason')
  t.equal((await b2.sipp.done).code, 0, 'its caller got a BYE')
  let room: { status?: string } = {}
  for (let i = 0; i < 50 && room.status !== 'completed'; i++) { await sleep(100); room = await (await api(`/v1/conferences/${conf2.id}`)).json() as typeof room }
  t.match(room, { status: 'completed' }, 'the room it mixed is completed')
  t.match(await (await api(`/v1/calls/${a.id}`)).json(), { status: 'in-progress', conferenceId: null }, 'A is live and out of the dead room')
  const tk = Date.now()
  t.equal((await post(`/v1/calls/${a.id}/play`, { tone: 'beep' })).status, 202, 'the surviving worker still takes actions')
  await sleep(700)
  t.ok(loudFrames(a.c, tk).length >= 5, `and A hears them: its link closed with the dead worker (${loudFrames(a.c, tk).length} frames)`)
  const c = await call()
  t.equal(planes.workerOf(c.id), planes.workerOf(a.id), 'new calls go to the surviving worker')
  const br2 = await post(`/v1/calls/${a.id}/bridge`, { callId: c.id })
  t.equal(br2.status, 202, 'A bridges again')
  t.match(await br2.json(), { mode: 'relay' }, 'same worker, same codec: RTP relayed untouched')
  for (const x of [a, c]) {
    t.equal((await api(`/v1/calls/${x.id}`, { method: 'DELETE' })).status, 204)
    t.equal((await x.sipp.done).code, 0)
  }
})
