import t from 'tap'
import { spawn, type ChildProcess } from 'node:child_process'
import { createRequire } from 'node:module'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { RtpengineAnchor } from '../../media/rtpengine/anchor.ts'
import { startStack } from '../harness/stack.ts'
import { freePort, freeUdpRange } from '../harness/ports.ts'
import { RtpCaller, awaitAnsweredCall, bestCorrelation, noise, placeCall, rms, sine, toneRatio, wavFile } from '../sip/app/rtp-caller.ts'

/**
 * RTPENGINE_NG set: the engine anchors its agent calls through the real
 * rtpengine daemon (userspace forwarding). The caller's RTP must come from
 * and go to rtpengine's ports, and the API's media actions still work
 * through it (a tone played reaches the caller; a recording holds what the
 * caller sent). Hangup deletes the call in rtpengine.
 */
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

async function startRtpengine(t: { teardown(fn: () => unknown): void }): Promise<{ ng: string; min: number; max: number }> {
  const ng = await freePort()
  const range = await freeUdpRange(40)
  const child: ChildProcess = spawn('rtpengine', [
    '--foreground', '--log-stderr', '--table=-1', '--interface=127.0.0.1',
    `--listen-ng=127.0.0.1:${ng}`, `--port-min=${range.min}`, `--port-max=${range.max}`, '--log-level=6',
    // Deleted calls otherwise linger 30 s, and the test checks the engine deleted its call.
    '--delete-delay=0',
  ], { stdio: ['ignore', 'ignore', 'pipe'] })
  let log = ''
  child.stderr!.on('data', (d: Buffer) => { log += d.toString() })
  t.teardown(() => new Promise<void>((r) => { child.once('exit', () => r()); child.kill('SIGTERM'); setTimeout(() => { child.kill('SIGKILL'); r() }, 3000).unref() }))
  for (let i = 0; i < 50 && !log.includes('Startup complete'); i++) await sleep(100)
  if (!log.includes('Startup complete')) throw new Error(`rtpengine did not start: ${log}`)
  return { ng: `127.0.0.1:${ng}`, ...range }
}

t.test('agent calls anchored through the rtpengine daemon', async (t) => {
  const rtpe = await startRtpengine(t)
  const stack = await startStack({ RTPENGINE_NG: rtpe.ng })
  t.teardown(() => stack.stop())
  const dir = mkdtempSync(join(tmpdir(), 'media-rtpe-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const store = stack.engine.store
  const account = (await store.accounts.first())!
  // An LLM with nothing to say: the agent never answers the test signals, so what the caller hears comes from the API.
  const agent = await store.agents.create(account.id, { name: 'quiet', llm: { provider: 'scripted', options: { rules: [], fallback: ' ' } } })
  await store.numbers.create(account.id, { number: '+14155550178', target: { type: 'agent', id: agent.id } })
  const api = (path: string, init: RequestInit = {}) => fetch(`${stack.baseUrl}${path}`, {
    ...init, headers: { authorization: `Bearer ${stack.apiKey}`, ...(init.body ? { 'content-type': 'application/json' } : {}) },
  })
  t.match(stack.engine.listeners.rtp, /via rtpengine/)
  const health = await (await fetch(`${stack.baseUrl}/health`)).json() as { components: Record<string, { status: string }> }
  t.match(health.components.rtpengine, { status: 'up' }, 'health reports the rtpengine daemon (ng ping)')

  const caller = new RtpCaller()
  await caller.start()
  t.teardown(() => caller.close())
  const sipp = await placeCall({ dir, sipPort: stack.sipPort, service: '+14155550178', caller })
  t.teardown(() => sipp.kill())
  const { callId, rtp } = await awaitAnsweredCall(api, caller)
  t.ok(callId, 'the call was answered')
  t.ok(rtp, 'RTP reaches the caller')
  const port = caller.remote!.port
  t.ok(port >= rtpe.min && port <= rtpe.max, `the caller's RTP comes from rtpengine (port ${port} in ${rtpe.min}-${rtpe.max})`)
  t.ok(port < stack.config.rtpPortMin || port > stack.config.rtpPortMax, 'not from the engine\'s own RTP ports')

  const media = join(stack.config.dataDir, 'media')
  mkdirSync(media, { recursive: true })
  writeFileSync(join(media, 'tone.wav'), wavFile(sine(1000, 1)))
  const t0 = Date.now()
  t.equal((await api(`/v1/calls/${callId}/play`, { method: 'POST', body: JSON.stringify({ url: pathToFileURL(join(media, 'tone.wav')).href }) })).status, 202)
  await sleep(1800)
  const heard = caller.audioSince(t0)
  const frames = Array.from({ length: Math.floor(heard.length / 160) }, (_, i) => heard.subarray(i * 160, i * 160 + 160)).filter((f) => rms(f) > 1000)
  t.ok(frames.length >= 40, `the played tone reached the caller through rtpengine (${frames.length} frames)`)
  const flat = Int16Array.from(frames.flatMap((f) => Array.from(f)))
  t.ok(toneRatio(flat, 1000) > 0.8, 'at 1 kHz')

  // Caller → rtpengine → engine: the recording holds what the caller sent.
  const ref = noise(8000 * 600, 6000, 777)
  caller.signal = (n) => ref[n % ref.length]!
  await sleep(300)
  const start = await api(`/v1/calls/${callId}/record/start`, { method: 'POST', body: JSON.stringify({ channels: 'mono' }) })
  t.equal(start.status, 202)
  const nStart = caller.sent
  const { recordingId } = await start.json() as { recordingId: string }
  await sleep(1500)
  t.equal((await api(`/v1/calls/${callId}/record/stop`, { method: 'POST' })).status, 202)
  caller.signal = () => 0
  let status = ''
  for (let i = 0; i < 50 && status !== 'ready'; i++) {
    status = ((await (await api(`/v1/recordings/${recordingId}`)).json()) as { status: string }).status
    if (status !== 'ready') await sleep(100)
  }
  const wav = Buffer.from(await (await api(`/v1/recordings/${recordingId}/download`)).arrayBuffer())
  t.equal(wav.readUInt16LE(22), 1, 'mono')
  const pcm = Int16Array.from({ length: (wav.length - 44) / 2 }, (_, i) => wav.readInt16LE(44 + i * 2))
  const c = bestCorrelation(pcm.subarray(2400, 4000), ref, nStart - 8000, nStart + 16000)
  t.ok(c.r > 0.8, `the recording matches what the caller sent through rtpengine (r=${c.r.toFixed(3)})`)

  // The anchor is keyed by the INVITE's own Call-ID (what sipp sent), so
  // rtpengine's list/query find it by what a SIP trace shows.
  const sipCallId = (await store.calls.getById(callId))?.sipCallId ?? ''
  t.match(sipCallId, /^\d+-\d+@127\.0\.0\.1$/, `the call record holds sipp's Call-ID (${sipCallId})`)
  const probe = new RtpengineAnchor({ ng: rtpe.ng })
  t.teardown(() => probe.close())
  // ...and by the INVITE's From tag: sipp's tags look like <n>SIPpTag<nn><n>.
  const live = await probe.query({ callId: sipCallId, fromTag: '' })
  t.equal(live.result, 'ok', `rtpengine's query knows the SIP Call-ID (${String(live['error-reason'] ?? live.result)})`)
  const tags = Object.keys((live as { tags?: Record<string, unknown> }).tags ?? {})
  const sippTag = tags.find((tag) => /SIPpTag/.test(tag))
  t.ok(sippTag, `rtpengine keys the caller's side by the INVITE's From tag (tags: ${tags.join(', ')})`)
  type NgList = { result: string; calls?: string[] }
  const { Client } = createRequire(import.meta.url)('rtpengine-client') as { Client: new (o: { localAddress?: string }) => { list(port: number, host: string, o: Record<string, unknown>): Promise<NgList>; close(): void } }
  const ngClient = new Client({ localAddress: '127.0.0.1' })
  t.teardown(() => ngClient.close())
  const [ngHost, ngPort] = rtpe.ng.split(':') as [string, string]
  const listed = await ngClient.list(Number(ngPort), ngHost, { limit: 100 })
  t.same(listed.calls, [sipCallId], 'rtpengine lists exactly this call, under its SIP Call-ID')

  t.equal((await api(`/v1/calls/${callId}`, { method: 'DELETE' })).status, 204)
  const res = await sipp.done
  t.equal(res.code, 0, `sipp saw the BYE (${res.errors.slice(0, 200)})`)
  // The binder deleted the call in rtpengine: a query for it now fails.
  const query = () => probe.query({ callId: sipCallId, fromTag: sippTag ?? '' }).catch((err: Error) => ({ result: 'error', 'error-reason': err.message }))
  let q = await query()
  for (let i = 0; i < 20 && q.result === 'ok'; i++) { await sleep(100); q = await query() }
  t.not(q.result, 'ok', `rtpengine no longer knows the call (${String(q['error-reason'] ?? q.result)})`)
})
