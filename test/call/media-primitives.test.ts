import t from 'tap'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { WebSocketServer, type WebSocket } from 'ws'
import { startStack } from '../harness/stack.ts'
import { RtpCaller, placeTrackedCall, rms, sine, tone, toneRatio, wavFile } from '../sip/app/rtp-caller.ts'
import { speechPcm } from '../agent/helpers/audio.ts'
import type { CallControl } from '../../call/call-control.ts'
import type { Call } from '../../store/calls.ts'
import type { CallplaneEvent } from '../../store/outbox.ts'

/**
 * The media primitives the flow verbs are built from (CallControl prompt,
 * listen, echo, transcribe, externalMedia, interrupt) on real calls: sipp
 * places them to the whole engine (startStack), this process owns the
 * callers' RTP (rtp-caller.ts: what they send, what they hear, RFC 4733
 * digits), and the primitives are called on the engine's CallControl as the
 * flow interpreter calls them. Rerun with MEDIA_WORKERS=2 by
 * media-workers-media-suites.test.ts.
 */
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const framesOf = (pcm: Int16Array) => Array.from({ length: Math.floor(pcm.length / 160) }, (_, i) => pcm.subarray(i * 160, i * 160 + 160))
const loud = (pcm: Int16Array, min = 1000) => framesOf(pcm).filter((f) => rms(f) > min)
const concat = (parts: Int16Array[]) => {
  const out = new Int16Array(parts.reduce((a, p) => a + p.length, 0))
  let o = 0
  for (const p of parts) { out.set(p, o); o += p.length }
  return out
}
/** A caller signal that says `pcm` once, from now on, then silence. */
const sayOnce = (c: RtpCaller, pcm: Int16Array) => {
  const from = c.sent
  c.signal = (n) => (n >= from && n - from < pcm.length ? pcm[n - from]! : 0)
}

t.test('media primitives on live calls', async (t) => {
  const stack = await startStack(process.env.DATABASE_URL ? { DATABASE_URL: process.env.DATABASE_URL } : {})
  t.teardown(() => stack.stop())
  const dir = mkdtempSync(join(tmpdir(), 'media-primitives-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const store = stack.engine.store
  const account = (await store.accounts.first())!
  // An agent with nothing to say: what the caller hears comes from the primitives.
  const agent = await store.agents.create(account.id, { name: 'quiet', llm: { provider: 'scripted', options: { rules: [], fallback: ' ' } } })
  await store.numbers.create(account.id, { number: '+14155550171', target: { type: 'agent', id: agent.id } })
  const api = (path: string) => fetch(`${stack.baseUrl}${path}`, { headers: { authorization: `Bearer ${stack.apiKey}` } })
  const events: CallplaneEvent[] = []
  t.teardown(store.bus.subscribe((e) => events.push(e)))
  const control = stack.engine.callControl.current!
  const primitives = ['prompt', 'listen', 'echo', 'transcribe', 'externalMedia', 'interrupt'] as const
  t.same(primitives.filter((m) => typeof control[m] !== 'function'), [], 'the engine serves every primitive')
  const cc = control as Required<CallControl>

  const known = new Set<string>()
  const { c: caller, id: callId } = await placeTrackedCall({ dir, sipPort: stack.sipPort, service: '+14155550171', known, api, teardown: (fn) => t.teardown(fn) })
  t.ok(callId && caller.remote, 'an agent call is answered with media')
  const call = (await store.calls.getById(callId))!
  await sleep(500)

  t.test('prompt: a tone plays to its end over RTP, then resolves done', async (t) => {
    const t0 = Date.now()
    const r = await cc.prompt(call, { tone: { tone: 'beep', durationMs: 600 } })
    const took = Date.now() - t0
    t.same(r, { result: 'done' })
    t.ok(took >= 550 && took < 1500, `resolved when the tone was over (${took} ms)`)
    await sleep(150)
    const frames = loud(caller.audioSince(t0))
    t.ok(frames.length >= 25 && frames.length <= 35, `0.6 s of tone reached the caller (${frames.length} frames)`)
    t.ok(toneRatio(concat(frames), 1000) > 0.8, 'at 1 kHz')
  })

  t.test('prompt: say speaks the line and keeps it in the transcript; play runs a file list', async (t) => {
    const t0 = Date.now()
    t.same(await cc.prompt(call, { say: { text: 'Welcome to the test line.' } }), { result: 'done' })
    const voiced = loud(caller.audioSince(t0), 300)
    t.ok(voiced.length >= 25, `the line was heard (${voiced.length} speech frames)`)
    t.ok(toneRatio(concat(voiced), 1000) < 0.3, 'broadband speech, not a tone')
    for (let i = 0; i < 40 && !events.some((e) => e.type === 'call.transcript' && e.data.source === 'prompt'); i++) await sleep(50)
    t.match(events.find((e) => e.type === 'call.transcript' && e.data.source === 'prompt')?.data, { callId, text: 'Welcome to the test line.', interrupted: false })

    const media = join(stack.config.dataDir, 'media')
    mkdirSync(media, { recursive: true })
    writeFileSync(join(media, 'a.wav'), wavFile(sine(700, 0.4)))
    writeFileSync(join(media, 'b.wav'), wavFile(sine(1500, 0.4)))
    const t1 = Date.now()
    const urls = ['a.wav', 'b.wav'].map((f) => pathToFileURL(join(media, f)).href)
    t.same(await cc.prompt(call, { play: { urls, loop: 2 } }), { result: 'done' })
    await sleep(150)
    const frames = loud(caller.audioSince(t1))
    t.ok(frames.length >= 70 && frames.length <= 90, `two passes through both files (1.6 s: ${frames.length} frames)`)
    const ratio700 = frames.filter((f) => toneRatio(f, 700) > 0.8).length
    const ratio1500 = frames.filter((f) => toneRatio(f, 1500) > 0.8).length
    t.ok(ratio700 >= 30 && ratio1500 >= 30, `both files were heard (${ratio700} frames at 700 Hz, ${ratio1500} at 1.5 kHz)`)
    await t.rejects(cc.prompt(call, { play: { urls: ['file:///etc/passwd'] } }), { code: 'rejected' }, 'a file outside the media roots is refused')
    await t.rejects(cc.prompt(call, { say: { text: 'x' }, tone: { tone: 'beep' } }), { code: 'rejected' }, 'two kinds of prompt at once are refused')
  })

  t.test('prompt: an RFC 4733 digit stops it at once (stopOnDigit)', async (t) => {
    const t0 = Date.now()
    const pending = cc.prompt(call, { tone: { tone: 'busy', durationMs: 8000 }, stopOnDigit: true })
    await sleep(800)
    caller.sendDigits('5')
    const r = await pending
    const took = Date.now() - t0
    t.same(r, { result: 'digit', digit: '5' })
    t.ok(took < 2000, `it stopped when the digit arrived (${took} ms)`)
    const stoppedAt = Date.now()
    await sleep(1000)
    t.equal(loud(caller.audioSince(stoppedAt + 200)).length, 0, 'no more tone after the digit')
  })

  t.test('interrupt: a running prompt ends stopped', async (t) => {
    const pending = cc.prompt(call, { tone: { tone: 'ringback', durationMs: 8000 } })
    await sleep(500)
    await cc.interrupt(call)
    t.same(await pending, { result: 'stopped' })
    await sleep(300)
    t.equal(loud(caller.audioSince(Date.now() - 200)).length, 0, 'the caller hears nothing more of it')
  })

  t.test('listen: digits with a finish key, max digits, inter-digit timeout, timeout', async (t) => {
    let pending = cc.listen(call, { digits: { max: 5, finishKey: '#' }, timeoutMs: 5000 })
    await sleep(300)
    caller.sendDigits('12#')
    t.same(await pending, { reason: 'finish-key', digits: '12' }, '"12#" with # as the finish key')
    await sleep(300)

    pending = cc.listen(call, { digits: { max: 3 }, timeoutMs: 5000 })
    await sleep(300)
    caller.sendDigits('456')
    t.same(await pending, { reason: 'max-digits', digits: '456' }, 'three digits of three')
    await sleep(300)

    let t0 = Date.now()
    pending = cc.listen(call, { digits: { max: 5, interDigitTimeoutMs: 800 }, timeoutMs: 5000 })
    await sleep(300)
    caller.sendDigits('9')
    t.same(await pending, { reason: 'inter-digit-timeout', digits: '9' }, 'one digit, then nothing')
    let took = Date.now() - t0
    t.ok(took >= 1000 && took < 2500, `ended 0.8 s after the digit (${took} ms from the start)`)

    t0 = Date.now()
    t.same(await cc.listen(call, { digits: { max: 1 }, timeoutMs: 700 }), { reason: 'timeout', digits: '' }, 'no input at all')
    took = Date.now() - t0
    t.ok(took >= 650 && took < 1500, `after timeoutMs (${took} ms)`)

    await t.rejects(cc.listen(call, { digits: { max: 0 }, timeoutMs: 100 }), { code: 'rejected' }, 'max 0 is refused')
    await t.rejects(cc.listen(call, { digits: { max: 2, finishKey: 'x' }, timeoutMs: 100 }), { code: 'rejected' }, 'a finish key that is no DTMF key is refused')
  })

  t.test('listen: a digit typed during the prompt stops it and counts (type-ahead)', async (t) => {
    const t0 = Date.now()
    const pending = cc.listen(call, { prompt: { tone: { tone: 'busy', durationMs: 6000 } }, digits: { max: 1 }, timeoutMs: 5000 })
    await sleep(700)
    caller.sendDigits('3')
    t.same(await pending, { reason: 'max-digits', digits: '3' })
    t.ok(Date.now() - t0 < 2000, 'long before the prompt would have ended')
    await sleep(300)
    t.equal(loud(caller.audioSince(Date.now() - 200)).length, 0, 'the prompt stopped')
  })

  t.test('listen: speech with hints hears "sales"', async (t) => {
    const sales = speechPcm('sales', 8000)
    const pending = cc.listen(call, { prompt: { tone: { tone: 'beep' } }, speech: { hints: ['sales', 'support'] }, timeoutMs: 8000 })
    // The recogniser starts before the prompt; the caller answers after the beep.
    await sleep(1200)
    sayOnce(caller, sales)
    const r = await pending
    caller.signal = () => 0
    t.match(r, { reason: 'speech', digits: '', speech: { text: 'sales' } })
  })

  t.test('echo: the caller hears itself for the duration', async (t) => {
    caller.signal = tone(600)
    await sleep(300)
    const t0 = Date.now()
    t.equal(loud(caller.audioSince(t0 - 300)).length, 0, 'nothing comes back before echo')
    await cc.echo(call, { durationMs: 1500 })
    const took = Date.now() - t0
    t.ok(took >= 1450 && took < 2500, `resolved after durationMs (${took} ms)`)
    const frames = loud(caller.audioSince(t0, t0 + 1500))
    t.ok(frames.length >= 60, `its own tone came back (${frames.length} frames in 1.5 s)`)
    t.ok(toneRatio(concat(frames), 600) > 0.8, 'at 600 Hz')
    await sleep(300)
    t.equal(loud(caller.audioSince(Date.now() - 200)).length, 0, 'and stopped after it')
    caller.signal = () => 0
  })

  t.test('externalMedia: the call is forked to a WebSocket the engine dials', async (t) => {
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 })
    await new Promise((r) => wss.once('listening', r))
    t.teardown(() => wss.close())
    const url = `ws://127.0.0.1:${(wss.address() as { port: number }).port}/fork`
    const msgs: Array<{ event: string }> = []
    let closed = false
    const connected = new Promise<WebSocket>((r) => wss.once('connection', (ws) => {
      ws.on('message', (m) => msgs.push(JSON.parse(m.toString())))
      ws.on('close', () => { closed = true })
      r(ws)
    }))
    if (process.env.DATABASE_URL) {
      // Outside the embedded mode tenants' URLs may not reach this host's network.
      await t.rejects(cc.externalMedia(call, { on: true, url }), { code: 'rejected' }, 'a private address is refused')
      return
    }
    caller.signal = tone(400)
    const r = await cc.externalMedia(call, { on: true, url, encapsulation: 'twilio' })
    t.match(r, { forking: true, url, encapsulation: 'twilio' })
    await connected
    await t.rejects(cc.externalMedia(call, { on: true, url }), { code: 'invalid_state' }, 'one fork per call')
    await sleep(800)
    t.match(msgs.slice(0, 2).map((m) => m.event), ['connected', 'start'])
    t.ok(msgs.filter((m) => m.event === 'media').length >= 25, 'caller audio flows to the socket')
    t.match(await cc.externalMedia(call, { on: false }), { forking: false })
    for (let i = 0; i < 40 && !closed; i++) await sleep(50)
    t.equal(msgs.at(-1)?.event, 'stop', 'the socket is told stop')
    t.ok(closed, 'and closed')
    await t.rejects(cc.externalMedia(call, { on: false }), { code: 'invalid_state' }, 'nothing to stop any more')
    await t.rejects(cc.externalMedia(call, { on: true, url: 'http://127.0.0.1/' }), { code: 'rejected' }, 'only ws:// and wss://')
    caller.signal = () => 0
  })

  t.test('transcribe on a call without an agent: call.transcript events', async (t) => {
    const conf = await store.conferences.create(account.id, { name: 'transcribed' })
    await store.numbers.create(account.id, { number: '+14155550172', target: { type: 'conference', id: conf.id } })
    const { c, id } = await placeTrackedCall({ dir, sipPort: stack.sipPort, service: '+14155550172', known, api, teardown: (fn) => t.teardown(fn) })
    const other = (await store.calls.getById(id))!
    t.equal(other.agentId ?? null, null, 'no agent on the call')
    t.match(await cc.transcribe(other, { on: true, direction: 'in' }), { transcribing: true, direction: 'in' })
    await t.rejects(cc.transcribe(other, { on: true }), { code: 'invalid_state' }, 'already on')
    await sleep(500)
    sayOnce(c, speechPcm('I would like to check my order status', 8000))
    let line: CallplaneEvent | undefined
    for (let i = 0; i < 200 && !line; i++) {
      line = events.find((e) => e.type === 'call.transcript' && e.callId === id && e.data.source === 'transcribe')
      if (!line) await sleep(50)
    }
    t.match(line?.data, { callId: id, role: 'user', source: 'transcribe', final: true, text: /\w+/ }, `the caller's words as a transcript line ("${String(line?.data.text)}")`)
    const stored = (await store.calls.getById(id))!.transcript
    t.ok(stored.some((e) => e.source === 'transcribe' && e.role === 'user'), 'stored on the call')
    t.same(await cc.transcribe(other, { on: false }), { transcribing: false })
    await t.rejects(cc.transcribe(other, { on: false }), { code: 'invalid_state' }, 'off when off')

    // A listen pending when the call hangs up ends 'ended'.
    const pending = cc.listen(other, { digits: { max: 4 }, timeoutMs: 30_000 })
    await sleep(300)
    await cc.hangup(other, {})
    t.same(await pending, { reason: 'ended', digits: '' })
    await t.rejects(cc.prompt(other, { tone: { tone: 'beep' } }), { code: /not_found|invalid_state/ }, 'no prompt on a call that ended')
  })

  t.test('hangup ends a pending listen, prompt and echo with ended', async (t) => {
    const listening = cc.listen(call, { prompt: { tone: { tone: 'ringback', durationMs: 20_000 } }, digits: { max: 4 }, timeoutMs: 30_000 })
    // Queued behind the listen's prompt.
    const prompting = cc.prompt(call, { say: { text: 'You will never hear this.' } })
    const echoing = cc.echo(call, { durationMs: 30_000 })
    await sleep(500)
    const t0 = Date.now()
    await cc.hangup(call, {})
    t.same(await listening, { reason: 'ended', digits: '' })
    t.same(await prompting, { result: 'ended' })
    await echoing
    t.ok(Date.now() - t0 < 3000, 'all three ended with the call')
  })
})
