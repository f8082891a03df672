import t from 'tap'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import WebSocket from 'ws'
import { startStack } from '../harness/stack.ts'
import { apiClient, pollUntil } from '../harness/api-client.ts'
import { freePort } from '../harness/ports.ts'
import { runSipp } from '../harness/sipp.ts'
import { heard, placeTrackedCall, rms } from '../sip/app/rtp-caller.ts'
import { SCN } from '../sip/app/sipp-util.ts'

/**
 * API fields that have to reach a real call, all set up through the REST API
 * and observed on real SIP/RTP: `record` on POST /v1/calls (a recording with
 * audio), a number whose target is a conference (two callers hear each
 * other), `record` on the conference (the mix is recorded), and the mute
 * directions as VoipBin documents them, measured on the RTP each caller gets.
 */
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const tone = (f: number) => (n: number) => Math.round(5000 * Math.sin((2 * Math.PI * f * n) / 8000))

/** The audio samples of a WAV download (16-bit PCM, any channel count: all samples). */
function wavSamples(buf: Buffer): Int16Array {
  const n = Math.floor((buf.length - 44) / 2)
  return Int16Array.from({ length: n }, (_, i) => buf.readInt16LE(44 + i * 2))
}

t.test('record, dial-in conference and mute directions through the API', async (t) => {
  const stack = await startStack(process.env.DATABASE_URL ? { DATABASE_URL: process.env.DATABASE_URL } : {})
  t.teardown(() => stack.stop())
  const dir = mkdtempSync(join(tmpdir(), 'record-conf-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const { api, post } = apiClient(stack)
  const waitFor = pollUntil
  const events: Array<{ type: string; callId: string | null; data: Record<string, any> }> = []
  const ws = new WebSocket(`${stack.baseUrl.replace('http', 'ws')}/v1/events?token=${stack.apiKey}`)
  await new Promise<void>((resolve, reject) => { ws.once('message', () => resolve()); ws.once('error', reject) })
  ws.on('message', (m) => events.push(JSON.parse(m.toString())))
  t.teardown(() => ws.close())

  t.test('record on POST /v1/calls: the call is recorded from answer', async (t) => {
    const agent = await (await post('/v1/agents', { name: 'speaker', greeting: 'Hello, this call is being recorded from the moment it was answered.' })).json() as { id: string }
    t.equal((await post('/v1/numbers', { number: '+14155550192', target: { type: 'agent', id: agent.id } })).status, 201)
    const port = await freePort()
    const uas = runSipp({ scenario: join(SCN, 'uas-answer.xml'), localPort: port, timeoutMs: 40_000 })
    t.teardown(() => uas.kill())
    await sleep(300)
    const res = await post('/v1/calls', { to: `sip:bob@127.0.0.1:${port}`, from: '+14155550192', agentId: agent.id, record: true })
    t.equal(res.status, 201, 'call placed')
    const call = await res.json() as { id: string }
    t.ok(await waitFor(async () => ((await (await api(`/v1/calls/${call.id}`)).json()) as { status: string }).status === 'in-progress'), 'answered')
    await sleep(5000)
    t.equal((await api(`/v1/calls/${call.id}`, { method: 'DELETE' })).status, 204)
    t.equal((await uas.done).code, 0, 'the callee got our BYE')
    const ready = await waitFor(() => events.find((e) => e.type === 'call.recording.ready' && e.callId === call.id))
    t.ok(ready, 'call.recording.ready for the call')
    const rec = ready!.data.recording as { id: string; durationMs: number; status: string }
    t.match(rec, { status: 'ready', callId: call.id })
    t.ok(rec.durationMs >= 3500, `recorded from answer to hangup (${rec.durationMs} ms)`)
    const wav = Buffer.from(await (await api(`/v1/recordings/${rec.id}/download`)).arrayBuffer())
    t.equal(wav.toString('ascii', 0, 4), 'RIFF')
    const pcm = wavSamples(wav)
    t.ok(rms(pcm) > 200, `the recording has audio: the greeting (rms ${rms(pcm).toFixed(0)})`)
    const report = await waitFor(() => events.find((e) => e.type === 'call.report' && e.callId === call.id))
    t.match(report?.data, { callId: call.id, type: 'outboundPhoneCall', hangupBy: 'api', recording: { id: rec.id, status: 'ready', url: `/v1/recordings/${rec.id}/download` } },
      'the end-of-call report points at the recording')
  })

  t.test('a number whose target is a conference: callers join it and hear each other; record and mute', async (t) => {
    const conf = await (await post('/v1/conferences', { name: 'dial-in', record: true })).json() as { id: string }
    t.equal((await post('/v1/numbers', { number: '+14155550193', target: { type: 'conference', id: conf.id } })).status, 201)
    const known = new Set<string>()
    const call = async (freq: number) => {
      const x = await placeTrackedCall({ dir, sipPort: stack.sipPort, service: '+14155550193', known, api, teardown: (fn) => t.teardown(fn) })
      x.c.signal = tone(freq)
      return x
    }
    const a = await call(700)
    const b = await call(1500)
    t.ok(a.id && b.id && a.id !== b.id, 'both calls answered')
    const joined = await waitFor(async () => {
      const c = await (await api(`/v1/conferences/${conf.id}`)).json() as { participantCount: number; status: string }
      return c.participantCount === 2 ? c : null
    })
    t.match(joined, { status: 'in-progress', participantCount: 2 }, 'both are in the conference')
    t.ok(await waitFor(() => events.find((e) => e.type === 'call.speech_update' && e.callId === a.id && e.data.role === 'user' && e.data.status === 'started')),
      'call.speech_update: the caller (no agent on the call) started speaking')
    const t0 = Date.now() + 300
    await sleep(1800)
    const atA = heard(a.c, t0, 1500)
    const atB = heard(b.c, t0, 700)
    t.ok(atA.frames >= 50 && atA.ratio > 0.8, `A hears B (${atA.frames} frames of 1500 Hz, ratio ${atA.ratio.toFixed(2)})`)
    t.ok(atB.frames >= 50 && atB.ratio > 0.8, `B hears A (${atB.frames} frames of 700 Hz, ratio ${atB.ratio.toFixed(2)})`)

    // VoipBin `in`: A cannot hear incoming audio; what A says still reaches B.
    t.equal((await post(`/v1/calls/${a.id}/mute`, { direction: 'in' })).status, 202)
    let m0 = Date.now() + 300
    await sleep(1500)
    t.ok(heard(a.c, m0, 1500).frames <= 2, `mute in: A hears nothing (${heard(a.c, m0, 1500).frames} loud frames)`)
    t.ok(heard(b.c, m0, 700).frames >= 40, `mute in: B still hears A (${heard(b.c, m0, 700).frames} frames)`)
    t.equal((await post(`/v1/calls/${a.id}/unmute`, { direction: 'in' })).status, 202)

    // VoipBin `out`: A's audio is not sent to others; A still hears B.
    t.equal((await post(`/v1/calls/${a.id}/mute`, { direction: 'out' })).status, 202)
    m0 = Date.now() + 300
    await sleep(1500)
    t.ok(heard(b.c, m0, 700).frames <= 2, `mute out: B does not hear A (${heard(b.c, m0, 700).frames} loud frames)`)
    const aHearsB = heard(a.c, m0, 1500)
    t.ok(aHearsB.frames >= 40 && aHearsB.ratio > 0.8, `mute out: A still hears B (${aHearsB.frames} frames)`)
    t.equal((await post(`/v1/calls/${a.id}/unmute`, { direction: 'out' })).status, 202)

    // both: silence both ways.
    t.equal((await post(`/v1/calls/${a.id}/mute`, { direction: 'both' })).status, 202)
    m0 = Date.now() + 300
    await sleep(1500)
    t.ok(heard(a.c, m0, 1500).frames <= 2 && heard(b.c, m0, 700).frames <= 2, 'mute both: neither hears the other')
    t.equal((await post(`/v1/calls/${a.id}/unmute`, {})).status, 202)
    m0 = Date.now() + 300
    await sleep(1200)
    t.ok(heard(a.c, m0, 1500).frames >= 30 && heard(b.c, m0, 700).frames >= 30, 'unmuted: both hear each other again')

    for (const x of [a, b]) {
      t.equal((await api(`/v1/calls/${x.id}`, { method: 'DELETE' })).status, 204)
      t.equal((await x.sipp.done).code, 0)
    }
    // record: true on the conference: the mix is a recording of its own.
    const ready = await waitFor(() => events.find((e) => e.type === 'call.recording.ready' && e.data.recording?.conferenceId === conf.id))
    t.ok(ready, 'call.recording.ready for the conference')
    const rec = ready!.data.recording as { id: string; durationMs: number }
    t.ok(rec.durationMs >= 6000, `the whole conference is recorded (${rec.durationMs} ms)`)
    const pcm = wavSamples(Buffer.from(await (await api(`/v1/recordings/${rec.id}/download`)).arrayBuffer()))
    t.ok(rms(pcm) > 500, `the conference recording has the callers' audio (rms ${rms(pcm).toFixed(0)})`)
    t.match(await (await api(`/v1/conferences/${conf.id}`)).json(), { status: 'completed' })
  })
})
