import t from 'tap'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startStack } from '../harness/stack.ts'
import { freePort } from '../harness/ports.ts'
import { RtpCaller, placeCall, rms, tone, toneRatio } from '../sip/app/rtp-caller.ts'
import { sippUas } from '../sip/app/sipp-util.ts'

/**
 * Two API paths media-actions.test.ts does not reach, on the whole engine
 * (startStack) with sipp doing the SIP and this process owning the callers' RTP
 * (rtp-caller.ts, each caller offering one codec alone):
 * - a bridge between two calls that negotiated different codecs (PCMU and
 *   G.722: different payload and clock rate), which must transcode;
 * - media actions on a call that has no media session here (a number routed
 *   to a SIP URI: a B2BUA leg whose RTP never touches the engine), a 409.
 */
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

t.test('bridge across codecs and media actions on a proxied leg', async (t) => {
  const stack = await startStack(process.env.DATABASE_URL ? { DATABASE_URL: process.env.DATABASE_URL } : {})
  t.teardown(() => stack.stop())
  const dir = mkdtempSync(join(tmpdir(), 'media-actions-extra-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const store = stack.engine.store
  const account = (await store.accounts.first())!
  // An agent with nothing to say: whatever a caller hears comes from the bridge.
  const agent = await store.agents.create(account.id, { name: 'quiet', llm: { provider: 'scripted', options: { rules: [], fallback: ' ' } } })
  await store.numbers.create(account.id, { number: '+14155550181', target: { type: 'agent', id: agent.id } })
  const api = (path: string, init: RequestInit = {}) => fetch(`${stack.baseUrl}${path}`, {
    ...init, headers: { authorization: `Bearer ${stack.apiKey}`, ...(init.body ? { 'content-type': 'application/json' } : {}) },
  })
  const post = (path: string, body?: unknown) => api(path, { method: 'POST', ...(body !== undefined ? { body: JSON.stringify(body) } : {}) })
  const liveIds = async () => new Set(((await (await api('/v1/calls?status=in-progress')).json()) as { data: Array<{ id: string }> }).data.map((c) => c.id))
  /** The id of the call that went in progress after `before` was taken (polled for up to 20 s). */
  const newCall = async (before: Set<string>) => {
    for (let i = 0; i < 200; i++) {
      const id = [...await liveIds()].find((x) => !before.has(x))
      if (id) return id
      await sleep(100)
    }
    return ''
  }

  t.test('bridge between a PCMU call and a G.722 call transcodes both ways', async (t) => {
    const a = new RtpCaller('PCMU')
    const b = new RtpCaller('G722')
    await a.start()
    await b.start()
    t.teardown(() => { a.close(); b.close() })
    let before = await liveIds()
    const sippA = await placeCall({ dir, sipPort: stack.sipPort, service: '+14155550181', caller: a, dtmf: false })
    t.teardown(() => sippA.kill())
    const idA = await newCall(before)
    before = await liveIds()
    const sippB = await placeCall({ dir, sipPort: stack.sipPort, service: '+14155550181', caller: b, dtmf: false })
    t.teardown(() => sippB.kill())
    const idB = await newCall(before)
    t.ok(idA && idB, 'both calls answered')
    // audio only collects packets in the caller's own payload type (PCMU 0, G.722 9).
    for (let i = 0; i < 100 && (a.audio.length === 0 || b.audio.length === 0); i++) await sleep(50)
    t.ok(a.remote && b.remote && a.audio.length > 0 && b.audio.length > 0, 'the engine sends RTP to both callers, each in its own codec')

    // Each caller sends its own tone, well inside the narrowband both legs share.
    a.signal = tone(500, a.rate)
    b.signal = tone(1300, b.rate)
    await sleep(800)
    const t0 = Date.now()
    await sleep(600)
    t.ok(rms(a.audioSince(t0)) < 100 && rms(b.audioSince(t0)) < 100, 'before the bridge neither caller hears the other')

    const r = await post(`/v1/calls/${idA}/bridge`, { callId: idB })
    t.equal(r.status, 202)
    t.match(await r.json(), { bridgedWith: idB, mode: 'transcode' }, 'different codecs: the bridge decodes and re-encodes')
    await sleep(400)
    const t1 = Date.now()
    await sleep(1500)
    const atA = a.audioSince(t1)
    const atB = b.audioSince(t1)
    t.ok(atA.length >= 8000 * 1.2, `caller A keeps receiving 8 kHz audio (${(atA.length / 8000).toFixed(2)} s)`)
    t.ok(atB.length >= 16000 * 1.2, `caller B keeps receiving 16 kHz audio (${(atB.length / 16000).toFixed(2)} s)`)
    const aHears = toneRatio(atA, 1300, 8000)
    const bHears = toneRatio(atB, 500, 16000)
    t.ok(rms(atA) > 1000 && aHears > 0.7, `the PCMU caller hears the G.722 caller's 1300 Hz (rms ${rms(atA).toFixed(0)}, ratio ${aHears.toFixed(2)})`)
    t.ok(rms(atB) > 1000 && bHears > 0.7, `the G.722 caller hears the PCMU caller's 500 Hz (rms ${rms(atB).toFixed(0)}, ratio ${bHears.toFixed(2)})`)
    t.ok(toneRatio(atA, 500, 8000) < 0.1 && toneRatio(atB, 1300, 16000) < 0.1, 'and not its own tone back')

    t.equal((await post(`/v1/calls/${idA}/bridge`, { callId: idB })).status, 409, 'bridging an already bridged call is refused')
    t.equal((await api(`/v1/calls/${idA}`, { method: 'DELETE' })).status, 204)
    t.equal((await sippA.done).code, 0, 'caller A got its BYE')
    // Unbridged when A ended: B is live again, back with its agent.
    t.equal((await api(`/v1/calls/${idB}`, { method: 'DELETE' })).status, 204)
    t.equal((await sippB.done).code, 0, 'caller B got its BYE')
  })

  t.test('media actions on a call the engine only proxies (no local media session) are 409', async (t) => {
    // A carrier trunk (by source address) delivers a number routed to a SIP URI:
    // the engine is a B2BUA in signalling only, the SDP goes end to end.
    const trunk = await store.trunks.create(account.id, { name: 'carrier', inbound: { allowedIps: ['127.0.0.2/32'] } })
    const uasPort = await freePort()
    const uas = sippUas('uas-answer.xml', uasPort, { timeoutMs: 60_000 })
    t.teardown(() => uas.kill())
    await store.numbers.create(account.id, { number: '+14155550182', trunkId: trunk.id, target: { type: 'sip', uri: `sip:desk@127.0.0.1:${uasPort}` } })
    const c = new RtpCaller('PCMU')
    await c.start()
    t.teardown(() => c.close())
    const before = await liveIds()
    const sipp = await placeCall({ dir, sipPort: stack.sipPort, service: '+14155550182', caller: c, dtmf: false, localIp: '127.0.0.2' })
    t.teardown(() => sipp.kill())
    const id = await newCall(before)
    t.ok(id, 'the proxied call is in progress')
    const detail = await (await api(`/v1/calls/${id}`)).json() as { to: string; agentId: string | null }
    t.match(detail, { to: '+14155550182', agentId: null })

    for (const [action, body] of [['say', { text: 'hello' }], ['play', { tone: 'beep' }], ['dtmf', { digits: '1' }], ['record/start', {}], ['mute', {}]] as const) {
      const r = await post(`/v1/calls/${id}/${action}`, body)
      t.equal(r.status, 409, `${action} → 409`)
      t.match(await r.json(), { error: { code: 'invalid_state', message: /has no media on this node.*proxied/ } }, `${action}: the message says why`)
    }
    t.equal((await api(`/v1/calls/${id}`, { method: 'DELETE' })).status, 204, 'signalling actions still work on it')
    t.equal((await sipp.done).code, 0, 'the caller got the BYE')
    t.equal((await uas.done).code, 0, 'so did the callee')
  })
})
