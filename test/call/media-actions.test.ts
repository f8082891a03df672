import t from 'tap'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import WebSocket from 'ws'
import { ULAW_DECODE, ULAW_ENCODE } from '../../codecs/g711.ts'
import { startStack } from '../harness/stack.ts'
import { RtpCaller, awaitAnsweredCall, bestCorrelation, noise, placeCall, rms, sine, toneRatio, wavFile } from '../sip/app/rtp-caller.ts'

/**
 * The API's media actions on a real call: sipp places the call to an agent
 * number on the whole engine (startStack), the test owns the caller's RTP
 * socket and checks what the caller actually hears and what was recorded.
 */
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const loud = (frames: Int16Array[], min = 1000) => frames.filter((f) => rms(f) > min)
const concat = (parts: Int16Array[]) => {
  const out = new Int16Array(parts.reduce((a, p) => a + p.length, 0))
  let o = 0
  for (const p of parts) { out.set(p, o); o += p.length }
  return out
}
const framesOf = (pcm: Int16Array) => Array.from({ length: Math.floor(pcm.length / 160) }, (_, i) => pcm.subarray(i * 160, i * 160 + 160))

t.test('media actions on a live agent call', async (t) => {
  const stack = await startStack(process.env.DATABASE_URL ? { DATABASE_URL: process.env.DATABASE_URL } : {})
  t.teardown(() => stack.stop())
  const dir = mkdtempSync(join(tmpdir(), 'media-actions-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const store = stack.engine.store
  const account = (await store.accounts.first())!
  // An LLM with nothing to say (a blank fallback; an empty one means the default line): the agent never answers
  // the test signals, so what the caller hears comes from the API.
  const agent = await store.agents.create(account.id, { name: 'quiet', llm: { provider: 'scripted', options: { rules: [], fallback: ' ' } } })
  await store.numbers.create(account.id, { number: '+14155550177', target: { type: 'agent', id: agent.id } })
  const api = (path: string, init: RequestInit & { key?: string } = {}) => fetch(`${stack.baseUrl}${path}`, {
    ...init, headers: { authorization: `Bearer ${init.key ?? stack.apiKey}`, ...(init.body ? { 'content-type': 'application/json' } : {}), ...(init.headers ?? {}) },
  })
  const post = (path: string, body?: unknown, key?: string) => api(path, { method: 'POST', ...(body !== undefined ? { body: JSON.stringify(body) } : {}), ...(key ? { key } : {}) })

  const caller = new RtpCaller()
  await caller.start()
  t.teardown(() => caller.close())
  const sipp = await placeCall({ dir, sipPort: stack.sipPort, service: '+14155550177', caller })
  t.teardown(() => sipp.kill())
  const { callId, rtp } = await awaitAnsweredCall(api, caller)
  t.ok(callId, 'the call was answered')
  t.ok(rtp, 'the engine sends RTP to the caller')
  const calls = `/v1/calls/${callId}`

  t.test('say: speech reaches the caller', async (t) => {
    await sleep(500)
    const t0 = Date.now()
    const before = caller.audioSince(t0 - 1000, t0)
    const r = await post(`${calls}/say`, { text: 'Hello. This is a test of the speech action on a live call.' })
    t.equal(r.status, 202)
    const body = await r.json() as { actionId?: string }
    t.match(body, { callId, action: 'say', status: 'accepted', actionId: /^[0-9a-f-]{36}$/ })
    await sleep(4500)
    const heard = caller.audioSince(t0)
    t.ok(rms(before) < 100, `quiet before (rms ${rms(before).toFixed(0)})`)
    const voiced = loud(framesOf(heard), 300)
    t.ok(voiced.length >= 25, `≥ 0.5 s of speech-level audio reached the caller (${voiced.length} frames)`)
    // Speech is not a tone: energy spread over the band, unlike play's test tone.
    t.ok(toneRatio(concat(voiced), 1000) < 0.3, 'broadband (speech), not a tone')
  })

  t.test('say with bargeIn: the prompt stops when the caller speaks', async (t) => {
    const long = 'This prompt is long on purpose. It keeps talking for many seconds so that the caller has time to interrupt it, and it should stop as soon as the caller starts to speak.'
    const r = await post(`${calls}/say`, { text: long, bargeIn: true })
    t.equal(r.status, 202)
    await sleep(2000)
    const speaking = loud(framesOf(caller.audioSince(Date.now() - 1000)), 300).length
    t.ok(speaking >= 15, `the prompt is playing (${speaking} speech frames in the last second)`)
    const ref = noise(8000 * 60, 6000, 99)
    caller.signal = (n) => ref[n % ref.length]!
    const tb = Date.now()
    await sleep(2500)
    caller.signal = () => 0
    const after = loud(framesOf(caller.audioSince(tb + 700)), 300).length
    t.ok(after <= 3, `silent within 0.7 s of the caller speaking (${after} speech frames in the next 1.8 s)`)
    await sleep(500)
  })

  t.test('play: a WAV tone from a file URL, looped', async (t) => {
    const media = join(stack.config.dataDir, 'media')
    mkdirSync(media, { recursive: true })
    writeFileSync(join(media, 'tone.wav'), wavFile(sine(1000, 0.6)))
    await sleep(300)
    const t0 = Date.now()
    const r = await post(`${calls}/play`, { url: pathToFileURL(join(media, 'tone.wav')).href, loop: 2 })
    t.equal(r.status, 202)
    t.match(await r.json(), { actionId: /^[0-9a-f-]{36}$/ })
    await sleep(2500)
    const frames = loud(framesOf(caller.audioSince(t0)))
    t.ok(frames.length >= 50 && frames.length <= 70, `1.2 s (two loops of 0.6 s) of tone heard: ${frames.length} frames`)
    const ratio = toneRatio(concat(frames), 1000)
    t.ok(ratio > 0.8, `energy is at 1 kHz (ratio ${ratio.toFixed(2)})`)
  })

  t.test('play: a generated tone (busy: 480+620 Hz) for a given duration', async (t) => {
    await sleep(300)
    const t0 = Date.now()
    const r = await post(`${calls}/play`, { tone: 'busy', durationMs: 1000 })
    t.equal(r.status, 202)
    await sleep(2000)
    const frames = loud(framesOf(caller.audioSince(t0)))
    // Busy cadence is 500 ms on, 500 ms off: about 25 voiced frames in 1 s.
    t.ok(frames.length >= 18 && frames.length <= 32, `half of 1 s of busy tone is voiced: ${frames.length} frames`)
    const pcm = concat(frames)
    const ratio = toneRatio(pcm, 480) + toneRatio(pcm, 620)
    t.ok(ratio > 0.7, `energy is at 480 and 620 Hz (ratio ${ratio.toFixed(2)})`)
  })

  t.test('dtmf: RFC 4733 events with the right digits', async (t) => {
    caller.events.length = 0
    const r = await post(`${calls}/dtmf`, { digits: '1#9', durationMs: 120 })
    t.equal(r.status, 202)
    t.match(await r.json(), { method: 'rfc4733' })
    for (let i = 0; i < 60 && caller.digits().length < 3; i++) await sleep(50)
    t.equal(caller.digits(), '1#9', 'the caller received telephone-event packets for 1, #, 9')
  })

  t.test('stream: twilio encapsulation, both directions', async (t) => {
    caller.signal = (n) => Math.round(6000 * Math.sin((2 * Math.PI * 400 * n) / 8000))
    const ws = new WebSocket(`${stack.baseUrl.replace('http', 'ws')}${calls}/stream?encapsulation=twilio&token=${stack.apiKey}`)
    const msgs: Array<{ event: string; media?: { payload: string; track: string }; mark?: { name: string }; dtmf?: { digit: string } }> = []
    ws.on('message', (m) => msgs.push(JSON.parse(m.toString())))
    await new Promise<void>((res, rej) => { ws.once('open', () => res()); ws.once('error', rej) })
    await sleep(1500)
    t.match(msgs.slice(0, 2).map((m) => m.event), ['connected', 'start'])
    const media = msgs.filter((m) => m.event === 'media')
    t.ok(media.length >= 40, `caller audio arrives as media messages (${media.length} in 1.5 s)`)
    const got = concat(media.slice(-25).map((m) => Int16Array.from(Buffer.from(m.media!.payload, 'base64'), (b) => ULAW_DECODE[b]!)))
    t.ok(toneRatio(got, 400) > 0.8, `the stream carries what the caller sends (400 Hz ratio ${toneRatio(got, 400).toFixed(2)})`)
    caller.signal = () => 0
    await sleep(300)
    // One second of 1.8 kHz from the "bot", then a mark that must come back once played.
    const tone = sine(1800, 1)
    const t1 = Date.now()
    for (let i = 0; i < 50; i++) {
      const b = Buffer.alloc(160)
      for (let j = 0; j < 160; j++) b[j] = ULAW_ENCODE[tone[i * 160 + j]! & 0xffff]!
      ws.send(JSON.stringify({ event: 'media', media: { payload: b.toString('base64') } }))
    }
    ws.send(JSON.stringify({ event: 'mark', mark: { name: 'end-of-tone' } }))
    ws.send('not json')
    for (let i = 0; i < 60 && !msgs.some((m) => m.event === 'mark'); i++) await sleep(50)
    t.match(msgs.find((m) => m.event === 'mark'), { mark: { name: 'end-of-tone' } }, 'mark echoed after the audio played')
    await sleep(300)
    const heard = loud(framesOf(caller.audioSince(t1)))
    // Zero-crossing pitch of each loud frame: says what else was heard when the count is off.
    const pitches = heard.map((f) => { let z = 0; for (let i = 1; i < f.length; i++) if ((f[i - 1]! < 0) !== (f[i]! < 0)) z++; return Math.round(z * 25) })
    caller.sendDigits('5')
    for (let i = 0; i < 40 && !msgs.some((m) => m.event === 'dtmf'); i++) await sleep(50)
    t.match(msgs.find((m) => m.event === 'dtmf'), { dtmf: { digit: '5', track: 'inbound_track' } }, 'a digit the caller pressed arrives as a twilio dtmf message')
    t.ok(heard.length >= 40 && heard.length <= 60, `the caller heard the bot's second of audio (${heard.length} frames; pitches ${pitches.filter((p) => Math.abs(p - 1800) > 200).join(',') || 'all 1.8 kHz'})`)
    t.ok(toneRatio(concat(heard), 1800) > 0.8, 'at 1.8 kHz')
    ws.close()
    await sleep(200)

    caller.signal = (n) => Math.round(6000 * Math.sin((2 * Math.PI * 400 * n) / 8000))
    const raw = new WebSocket(`${stack.baseUrl.replace('http', 'ws')}${calls}/stream?encapsulation=raw&token=${stack.apiKey}`)
    const bins: Buffer[] = []
    raw.on('message', (m: Buffer, isBinary: boolean) => { if (isBinary) bins.push(m) })
    await new Promise<void>((res, rej) => { raw.once('open', () => res()); raw.once('error', rej) })
    await sleep(1000)
    raw.close()
    caller.signal = () => 0
    t.ok(bins.length >= 25 && bins.every((b) => b.length === 320), `raw: binary L16 frames of 20 ms (${bins.length})`)
    const pcm = concat(bins.slice(-20).map((b) => Int16Array.from({ length: 160 }, (_, i) => b.readInt16LE(i * 2))))
    t.ok(toneRatio(pcm, 400) > 0.8, 'raw frames carry the caller audio')
  })

  t.test('record (dual) with mute in: the WAV holds what the caller sent, then silence', async (t) => {
    const ref = noise(8000 * 600)
    caller.signal = (n) => ref[n % ref.length]!
    await sleep(300)
    const r = await post(`${calls}/record/start`, { channels: 'dual' })
    t.equal(r.status, 202)
    const nStart = caller.sent
    const { recordingId } = await r.json() as { recordingId: string }
    t.match(recordingId, /^[0-9a-f-]{36}$/)
    t.equal((await post(`${calls}/record/start`, {})).status, 409, 'a second recording on the same call is refused')
    await sleep(1500)
    // VoipBin's `out`: the call's audio is not passed on (the recording gets silence from it).
    t.equal((await post(`${calls}/mute`, { direction: 'out' })).status, 202)
    await sleep(1500)
    t.equal((await post(`${calls}/record/stop`)).status, 202)
    t.equal((await post(`${calls}/unmute`, { direction: 'out' })).status, 202)
    caller.signal = () => 0
    type Rec = { status: string; durationMs: number; callId: string }
    let rec: Rec | null = null
    for (let i = 0; i < 50; i++) {
      rec = await (await api(`/v1/recordings/${recordingId}`)).json() as Rec
      if (rec?.status === 'ready') break
      await sleep(100)
    }
    t.match(rec, { status: 'ready', callId, format: 'wav' })
    t.ok(rec!.durationMs > 2500 && rec!.durationMs < 4500, `duration ${rec!.durationMs} ms`)
    const dl = await api(`/v1/recordings/${recordingId}/download`)
    t.equal(dl.status, 200)
    t.equal(dl.headers.get('content-type'), 'audio/wav')
    const wav = Buffer.from(await dl.arrayBuffer())
    t.equal(wav.toString('ascii', 0, 4), 'RIFF')
    t.equal(wav.readUInt16LE(22), 2, 'two channels')
    t.equal(wav.readUInt32LE(24), 8000)
    const frames = (wav.length - 44) / 4
    const left = Int16Array.from({ length: frames }, (_, i) => wav.readInt16LE(44 + i * 4))
    const w = left.subarray(2400, 4000)
    t.ok(rms(w) > 2000, `caller channel is not silent (rms ${rms(w).toFixed(0)})`)
    // 100 ms windows across the first second: a loaded box may leave a jitter-buffer gap in one of them.
    const fits = [1600, 3200, 4800, 6400, 8000].map((at) => bestCorrelation(left.subarray(at, at + 800), ref, nStart - 8000, nStart + 16000))
    t.ok(fits.filter((c) => c.r > 0.8).length >= 3, `caller channel matches the noise the caller sent (r=${fits.map((c) => `${c.r.toFixed(2)}@${c.offset - nStart}`).join(' ')})`)
    const muted = left.subarray(frames - 6400, frames - 1600)
    t.ok(rms(muted) < 50, `after mute out the caller channel is silent (rms ${rms(muted).toFixed(1)})`)
    const detail = await (await api(calls)).json() as { recordings: Array<{ id: string }> }
    t.ok(detail.recordings.some((x) => x.id === recordingId), 'the call lists the recording')
  })

  t.test('4xx: bad input, unknown call, other account, unsupported', async (t) => {
    const unknown = '00000000-0000-4000-8000-000000000000'
    t.equal((await post(`/v1/calls/${unknown}/play`, { url: 'https://example.com/a.wav' })).status, 404, 'no such call')
    t.equal((await post(`${calls}/play`, { url: 'ftp://example.com/a.wav' })).status, 400, 'bad URL scheme')
    t.equal((await post(`${calls}/play`, { tone: 'siren' })).status, 400, 'unknown tone')
    const both = await post(`${calls}/play`, { tone: 'beep', url: 'https://example.com/a.wav' })
    t.equal(both.status, 400, 'url and tone together')
    t.match(await both.json(), { error: { code: 'validation_failed', message: /exactly one of url and tone/ } })
    t.equal((await post(`${calls}/play`, {})).status, 400, 'neither url nor tone')
    t.equal((await post(`${calls}/dtmf`, { digits: 'xyz' })).status, 400, 'bad digits')
    t.equal((await post(`${calls}/say`, {})).status, 400, 'say without text')
    const outside = await post(`${calls}/play`, { url: 'file:///etc/passwd' })
    t.equal(outside.status, 422, 'file URLs outside the media directory are refused')
    t.match(await outside.json(), { error: { code: 'rejected' } })
    const missing = await post(`${calls}/play`, { url: pathToFileURL(join(stack.config.dataDir, 'media', 'none.wav')).href })
    t.equal(missing.status, 422, 'a file that does not load is a 422, not a crash')
    t.equal((await post(`${calls}/record/stop`)).status, 409, 'stop without a recording')
    const other = await store.accounts.create('other', null)
    const { token } = await store.apiKeys.create(other.id, 'other', ['calls:read', 'calls:write'], null)
    t.equal((await post(`${calls}/say`, { text: 'hi' }, token)).status, 404, "another account's call is not found")
    t.equal((await post(`${calls}/mute`, {}, token)).status, 404)
    t.equal((await post(`${calls}/bridge`, { callId })).status, 400, 'a call cannot be bridged with itself')
    t.equal((await post(`${calls}/bridge`, { callId: unknown })).status, 404, 'bridge to an unknown call')
  })

  t.test('dtmf without telephone-event goes as SIP INFO; hold plays music; a recording ends with the call', async (t) => {
    const c2 = new RtpCaller()
    await c2.start()
    t.teardown(() => c2.close())
    const before = new Set(((await (await api('/v1/calls?status=in-progress')).json()) as { data: Array<{ id: string }> }).data.map((c) => c.id))
    const sipp2 = await placeCall({ dir, sipPort: stack.sipPort, service: '+14155550177', caller: c2, dtmf: false, infoDigits: '4*', reinvites: 2 })
    t.teardown(() => sipp2.kill())
    let id2 = ''
    for (let i = 0; i < 200 && !id2; i++) {
      const page = await (await api('/v1/calls?status=in-progress')).json() as { data: Array<{ id: string }> }
      id2 = page.data.find((c) => !before.has(c.id))?.id ?? ''
      if (!id2) await sleep(100)
    }
    t.ok(id2, 'second call answered')
    await sleep(300)
    const r = await post(`/v1/calls/${id2}/dtmf`, { digits: '4*' })
    t.equal(r.status, 202)
    t.match(await r.json(), { method: 'info' })
    const rec = await post(`/v1/calls/${id2}/record/start`, {})
    t.equal(rec.status, 202)
    const { recordingId } = await rec.json() as { recordingId: string }
    await sleep(1200)
    // Hold: re-INVITE sendonly, then music-on-hold through the call's output; unhold stops it.
    t.equal((await post(`/v1/calls/${id2}/hold`)).status, 202)
    await sleep(300)
    const th = Date.now()
    await sleep(1200)
    const moh = loud(framesOf(c2.audioSince(th)), 300).length
    t.ok(moh >= 30, `music-on-hold reaches the held caller (${moh} frames in 1.2 s)`)
    t.equal((await post(`/v1/calls/${id2}/unhold`)).status, 202)
    await sleep(300)
    const tu = Date.now()
    await sleep(800)
    t.ok(loud(framesOf(c2.audioSince(tu)), 300).length <= 2, 'unhold stops it')
    t.equal((await api(`/v1/calls/${id2}`, { method: 'DELETE' })).status, 204)
    const res = await sipp2.done
    t.equal(res.code, 0, `sipp received INFO Signal=4 then Signal=*, hold and unhold re-INVITEs, then the BYE (${res.errors.slice(0, 300)})`)
    let status = ''
    for (let i = 0; i < 50 && status !== 'ready'; i++) {
      status = ((await (await api(`/v1/recordings/${recordingId}`)).json()) as { status: string }).status
      if (status !== 'ready') await sleep(100)
    }
    t.equal(status, 'ready', 'the recording was finalised by the hangup')
    const wav = Buffer.from(await (await api(`/v1/recordings/${recordingId}/download`)).arrayBuffer())
    t.equal(wav.readUInt16LE(22), 1, 'mono by default')
    t.ok(wav.length > 44 + 8000 * 2, `holds about the recorded second (${wav.length} bytes)`)
  })

  t.test("after the agent's own barge-in flush, API audio still reaches the caller", async (t) => {
    const talker = await store.agents.create(account.id, {
      name: 'talker', greeting: 'Welcome. This greeting is long on purpose, so that the caller can interrupt it while it is still being spoken to them.',
      llm: { provider: 'scripted', options: { rules: [], fallback: ' ' } },
    })
    await store.numbers.create(account.id, { number: '+14155550176', target: { type: 'agent', id: talker.id } })
    const c3 = new RtpCaller()
    await c3.start()
    t.teardown(() => c3.close())
    const before = new Set(((await (await api('/v1/calls?status=in-progress')).json()) as { data: Array<{ id: string }> }).data.map((c) => c.id))
    const sipp3 = await placeCall({ dir, sipPort: stack.sipPort, service: '+14155550176', caller: c3 })
    t.teardown(() => sipp3.kill())
    let id3 = ''
    for (let i = 0; i < 200 && !id3; i++) {
      const page = await (await api('/v1/calls?status=in-progress')).json() as { data: Array<{ id: string }> }
      id3 = page.data.find((c) => !before.has(c.id))?.id ?? ''
      if (!id3) await sleep(100)
    }
    let greeting = 0
    for (let i = 0; i < 100 && greeting < 10; i++) { await sleep(100); greeting = loud(framesOf(c3.audioSince(Date.now() - 1000)), 300).length }
    t.ok(greeting >= 10, `the agent is greeting (${greeting} speech frames)`)
    const ref = noise(8000 * 60, 6000, 5)
    c3.signal = (n) => ref[n % ref.length]!
    const tb = Date.now()
    await sleep(1200)
    c3.signal = () => 0
    const cut = loud(framesOf(c3.audioSince(tb + 600, tb + 1200)), 300).length
    t.ok(cut <= 3, `the agent stopped talking when interrupted (${cut} speech frames)`)
    // The engine registers the agent histograms on its /metrics registry.
    const metrics = await (await fetch(`${stack.baseUrl}/metrics`)).text()
    t.match(metrics, /callplane_agent_barge_in_seconds_count\{stood="(true|false)"\} [1-9]/, 'the barge-in reached the /metrics histogram')
    t.match(metrics, /callplane_agent_turn_stage_seconds_count\{stage="[a-z]+",trigger="greeting"\} [1-9]/, 'the greeting turn reached the waterfall histogram')
    const media = join(stack.config.dataDir, 'media')
    writeFileSync(join(media, 'tone2.wav'), wavFile(sine(1000, 0.6)))
    const t0 = Date.now()
    t.equal((await post(`/v1/calls/${id3}/play`, { url: pathToFileURL(join(media, 'tone2.wav')).href })).status, 202)
    await sleep(1500)
    const frames = loud(framesOf(c3.audioSince(t0)))
    t.ok(frames.length >= 25 && toneRatio(concat(frames), 1000) > 0.8, `the tone played after the flush (${frames.length} frames)`)
    t.equal((await api(`/v1/calls/${id3}`, { method: 'DELETE' })).status, 204)
    t.equal((await sipp3.done).code, 0)
  })

  t.test('hangup ends the call; actions on it are 409', async (t) => {
    t.equal((await api(calls, { method: 'DELETE' })).status, 204)
    const res = await sipp.done
    t.equal(res.code, 0, `sipp saw the BYE (${res.errors.slice(0, 200)})`)
    t.equal((await post(`${calls}/play`, { url: 'https://example.com/a.wav' })).status, 409)
  })
})
