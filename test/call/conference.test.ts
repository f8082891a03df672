import t from 'tap'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startStack } from '../harness/stack.ts'
import { heard, placeTrackedCall, toneRatio } from '../sip/app/rtp-caller.ts'

/**
 * Bridge and conference actions on real calls: each caller is sipp + a test
 * RTP socket sending its own tone; what each caller hears tells who is
 * connected to whom.
 */
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const tone = (f: number) => (n: number) => Math.round(5000 * Math.sin((2 * Math.PI * f * n) / 8000))
t.test('bridge and conference on live agent calls', async (t) => {
  const stack = await startStack(process.env.DATABASE_URL ? { DATABASE_URL: process.env.DATABASE_URL } : {})
  t.teardown(() => stack.stop())
  const dir = mkdtempSync(join(tmpdir(), 'media-conf-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const store = stack.engine.store
  const account = (await store.accounts.first())!
  const agent = await store.agents.create(account.id, { name: 'quiet', llm: { provider: 'scripted', options: { rules: [], fallback: ' ' } } })
  await store.numbers.create(account.id, { number: '+14155550179', target: { type: 'agent', id: agent.id } })
  const api = (path: string, init: RequestInit = {}) => fetch(`${stack.baseUrl}${path}`, {
    ...init, headers: { authorization: `Bearer ${stack.apiKey}`, ...(init.body ? { 'content-type': 'application/json' } : {}) },
  })
  const post = (path: string, body?: unknown) => api(path, { method: 'POST', ...(body !== undefined ? { body: JSON.stringify(body) } : {}) })
  const known = new Set<string>()
  const call = async (freq: number) => {
    const x = await placeTrackedCall({ dir, sipPort: stack.sipPort, service: '+14155550179', known, api, teardown: (fn) => t.teardown(fn) })
    x.c.signal = tone(freq)
    return x
  }

  t.test('bridge: two calls hear each other', async (t) => {
    const a = await call(500)
    const b = await call(1300)
    t.ok(a.id && b.id && a.id !== b.id, 'two live calls')
    const r = await post(`/v1/calls/${a.id}/bridge`, { callId: b.id })
    t.equal(r.status, 202)
    // Same codec: RTP relayed untouched (across media workers too, in the MEDIA_WORKERS rerun).
    t.match(await r.json(), { bridgedWith: b.id, mode: 'relay' })
    const t0 = Date.now() + 300
    await sleep(1800)
    const atB = heard(b.c, t0, 500)
    const atA = heard(a.c, t0, 1300)
    t.ok(atB.frames >= 50 && atB.ratio > 0.8, `B hears A's 500 Hz (${atB.frames} frames, ratio ${atB.ratio.toFixed(2)})`)
    t.ok(atA.frames >= 50 && atA.ratio > 0.8, `A hears B's 1300 Hz (${atA.frames} frames, ratio ${atA.ratio.toFixed(2)})`)
    t.equal((await post(`/v1/calls/${a.id}/bridge`, { callId: b.id })).status, 409, 'already bridged')
    for (const x of [a, b]) {
      t.equal((await api(`/v1/calls/${x.id}`, { method: 'DELETE' })).status, 204)
      t.equal((await x.sipp.done).code, 0)
    }
  })

  t.test('conference: mix without self, muted join, record, kick, completion', async (t) => {
    const conf = await (await post('/v1/conferences', { name: 'room', maxParticipants: 5 })).json() as { id: string }
    const c = await call(700)
    const d = await call(1500)
    for (const x of [c, d]) {
      const r = await post(`/v1/conferences/${conf.id}/participants`, { callId: x.id })
      t.equal(r.status, 202)
    }
    t.match(await (await api(`/v1/conferences/${conf.id}`)).json(), { status: 'in-progress', participantCount: 2 })
    const rec = await post(`/v1/conferences/${conf.id}/record`, { enabled: true })
    t.equal(rec.status, 202)
    const { recordingId } = await rec.json() as { recordingId: string }
    const t0 = Date.now() + 300
    await sleep(1800)
    t.equal((await post(`/v1/conferences/${conf.id}/record`, { enabled: false })).status, 202)
    const atC = heard(c.c, t0, 1500)
    const atD = heard(d.c, t0, 700)
    t.ok(atC.frames >= 50 && atC.ratio > 0.8, `C hears D (1500 Hz: ${atC.frames} frames, ratio ${atC.ratio.toFixed(2)})`)
    t.ok(atD.frames >= 50 && atD.ratio > 0.8, `D hears C (700 Hz: ${atD.frames} frames, ratio ${atD.ratio.toFixed(2)})`)
    t.ok(heard(c.c, t0, 700).ratio < 0.2, 'C does not hear itself')

    let status = ''
    for (let i = 0; i < 50 && status !== 'ready'; i++) {
      status = ((await (await api(`/v1/recordings/${recordingId}`)).json()) as { status: string }).status
      if (status !== 'ready') await sleep(100)
    }
    t.equal(status, 'ready')
    const wav = Buffer.from(await (await api(`/v1/recordings/${recordingId}/download`)).arrayBuffer())
    t.equal(wav.readUInt32LE(24), 16000, 'the mix is recorded at 16 kHz')
    const pcm = Int16Array.from({ length: (wav.length - 44) / 2 }, (_, i) => wav.readInt16LE(44 + i * 2)).subarray(8000, 24000)
    const has = (f: number) => toneRatio(pcm, f, 16000)
    t.ok(has(700) > 0.25 && has(1500) > 0.25, `the recording holds both voices (700 Hz ${has(700).toFixed(2)}, 1500 Hz ${has(1500).toFixed(2)})`)

    // D re-joins muted: C stops hearing it. (Moving to the same room is refused; leave first.)
    t.equal((await post(`/v1/conferences/${conf.id}/participants`, { callId: d.id })).status, 409, 'already in the room')
    t.equal((await api(`/v1/conferences/${conf.id}/participants/${d.id}`, { method: 'DELETE' })).status, 202, 'kick')
    const t1 = Date.now() + 300
    await sleep(800)
    t.ok(heard(c.c, t1, 1500).frames < 5, 'after the kick C no longer hears D')
    t.equal((await api(`/v1/conferences/${conf.id}/participants/${d.id}`, { method: 'DELETE' })).status, 404, 'kicked call is no longer a participant')
    t.equal((await post(`/v1/conferences/${conf.id}/participants`, { callId: d.id, muted: true })).status, 202)
    const t2 = Date.now() + 300
    await sleep(1000)
    t.ok(heard(c.c, t2, 1500).frames < 5, 'a muted participant is not heard')
    const atD2 = heard(d.c, t2, 700)
    t.ok(atD2.frames >= 15 && atD2.ratio > 0.8, `but hears the room (${atD2.frames} of ~35 frames, ratio ${atD2.ratio.toFixed(2)})`)

    for (const x of [c, d]) {
      t.equal((await api(`/v1/calls/${x.id}`, { method: 'DELETE' })).status, 204)
      t.equal((await x.sipp.done).code, 0)
    }
    let confStatus = ''
    for (let i = 0; i < 30 && confStatus !== 'completed'; i++) {
      confStatus = ((await (await api(`/v1/conferences/${conf.id}`)).json()) as { status: string }).status
      if (confStatus !== 'completed') await sleep(100)
    }
    t.equal(confStatus, 'completed', 'the last participant leaving completes the conference')
    t.equal((await post(`/v1/conferences/${conf.id}/record`, { enabled: true })).status, 409, 'no live room to record')
  })
})
