import t from 'tap'
import { WebSocketServer, type WebSocket } from 'ws'
import { PcmSource } from '../../media/playback.ts'
import { Bridge } from '../../media/bridge.ts'
import { Mixer } from '../../media/mixer.ts'
import { startFork, stopFork } from '../../media/taps.ts'
import type { FlushEvent } from '../../media/session/media-session.ts'
import { ULAW_DECODE, ULAW_ENCODE } from '../../codecs/g711.ts'
import { engineFor, connectedPair, frameCollector, concatFrames, sleep } from './helpers.ts'
import { sine, toneAmplitude, rms } from '../codecs/signal.ts'

async function wsServer(t: { teardown(fn: () => unknown): void }) {
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' })
  await new Promise<void>((r) => wss.once('listening', () => r()))
  t.teardown(() => new Promise<void>((r) => { for (const c of wss.clients) c.terminate(); wss.close(() => r()) }))
  const conn = new Promise<WebSocket>((r) => wss.once('connection', (ws) => r(ws)))
  return { url: `ws://127.0.0.1:${(wss.address() as { port: number }).port}/stream`, conn }
}

const ulawToPcm = (b: Buffer) => Int16Array.from(b, (x) => ULAW_DECODE[x]!)

t.test('Twilio Media Streams fork: start/media/mark/clear/stop, both directions', async (t) => {
  const engine = await engineFor(t)
  const [us, caller] = await connectedPair(engine, { codecs: ['PCMU'] }, { codecs: ['PCMU'] })
  const heard = frameCollector(caller)
  const srv = await wsServer(t)
  const msgs: Record<string, any>[] = []
  const fork = await startFork(us, { url: srv.url, format: 'twilio', tracks: 'both', bidirectional: true, callSid: 'CA123', customParameters: { agent: 'a1' } })
  const ws = await srv.conn
  ws.on('message', (d) => msgs.push(JSON.parse(d.toString())))
  await caller.play(new PcmSource(sine(500, 8000, 1), 8000))
  await sleep(400)
  t.equal(msgs[0]?.event, 'connected')
  t.match(msgs[1], { event: 'start', start: { callSid: 'CA123', tracks: ['inbound', 'outbound'], mediaFormat: { encoding: 'audio/x-mulaw', sampleRate: 8000, channels: 1 }, customParameters: { agent: 'a1' } } })
  const inbound = msgs.filter((m) => m.event === 'media' && m.media.track === 'inbound')
  const outbound = msgs.filter((m) => m.event === 'media' && m.media.track === 'outbound')
  t.ok(inbound.length >= 50, `${inbound.length} inbound media messages`)
  t.ok(outbound.length >= 50, `${outbound.length} outbound media messages`)
  const inPcm = ulawToPcm(Buffer.concat(inbound.map((m) => Buffer.from(m.media.payload, 'base64'))))
  t.ok(toneAmplitude(inPcm, 8000, 500, 2000, 4000) > 8000, 'caller tone reaches the WebSocket')
  t.same(inbound.slice(0, 3).map((m) => m.media.chunk), ['1', '2', '3'], 'chunks count up')

  // Server → call: 1 s of 1 kHz, then a mark; the mark comes back after the audio played.
  const tone = sine(1000, 8000, 1)
  const sentAt = performance.now()
  for (let i = 0; i < 50; i++) {
    const b = Buffer.from(Array.from(tone.subarray(i * 160, i * 160 + 160), (v) => ULAW_ENCODE[v & 0xffff]!))
    ws.send(JSON.stringify({ event: 'media', streamSid: fork.streamSid, media: { payload: b.toString('base64') } }))
  }
  ws.send(JSON.stringify({ event: 'mark', streamSid: fork.streamSid, mark: { name: 'greeting-done' } }))
  const mark = await new Promise<number>((r) => {
    const h = (d: Buffer) => { const m = JSON.parse(d.toString()); if (m.event === 'mark') { ws.off('message', h); r(performance.now()) } }
    ws.on('message', h)
  })
  t.ok(mark - sentAt >= 950, `mark echoed after playback (${(mark - sentAt).toFixed(0)} ms)`)
  await sleep(100)
  const heardPcm = concatFrames(heard)
  let best = 0
  for (let o = 0; o + 4000 < heardPcm.length; o += 400) best = Math.max(best, toneAmplitude(heardPcm, 8000, 1000, o, 4000))
  t.ok(best > 8000, `caller heard the server audio (${best.toFixed(0)})`)

  // Clear (barge-in): 3 s queued, cleared after ~0.5 s; the caller hears silence soon after.
  const long = sine(1000, 8000, 3)
  const payload = Buffer.from(Array.from(long, (v) => ULAW_ENCODE[v & 0xffff]!)).toString('base64')
  ws.send(JSON.stringify({ event: 'media', streamSid: fork.streamSid, media: { payload } }))
  await sleep(500)
  const flushed = new Promise<FlushEvent>((r) => us.once('flushed', r))
  ws.send(JSON.stringify({ event: 'clear', streamSid: fork.streamSid }))
  const f = await flushed
  t.equal(f.appliedTick, f.requestedTick + 1, `clear applied on the next tick (${(f.appliedAt - f.requestedAt).toFixed(1)} ms)`)
  const before = heard.length
  await sleep(400)
  const after = heard.slice(before + 5) // allow jitter-buffer depth to drain
  t.ok(after.length > 10 && after.every((fr) => rms(fr.samples) < 50), 'caller hears silence after clear')

  caller.sendDtmf('5', 60)
  await sleep(400)
  t.match(msgs.find((m) => m.event === 'dtmf'), { event: 'dtmf', dtmf: { track: 'inbound_track', digit: '5' } }, 'caller DTMF forwarded as a Twilio dtmf message')
  await stopFork(us, fork)
  await sleep(100)
  t.equal(msgs[msgs.length - 1]?.event, 'stop', 'stop sent last')
})

t.test('raw L16 16 kHz fork of a PCMU call and PCMU fork are byte streams of 20 ms', async (t) => {
  const engine = await engineFor(t)
  const [us, caller] = await connectedPair(engine, { codecs: ['PCMU'] }, { codecs: ['PCMU'] })
  const s1 = await wsServer(t)
  const s2 = await wsServer(t)
  const l16: Buffer[] = []
  const pcmu: Buffer[] = []
  const f1 = await startFork(us, { url: s1.url, format: 'l16', sampleRate: 16000 })
  const f2 = await startFork(us, { url: s2.url, format: 'pcmu' })
  ;(await s1.conn).on('message', (d: Buffer) => l16.push(d))
  ;(await s2.conn).on('message', (d: Buffer) => pcmu.push(d))
  const usFrames = frameCollector(us)
  await caller.play(new PcmSource(sine(700, 8000, 1), 8000))
  await sleep(400) // jitter buffer drain and socket delivery
  await stopFork(us, f1)
  await stopFork(us, f2)
  t.ok(l16.length >= 50 && l16.every((b) => b.length === 640), `${l16.length} L16 frames of 640 bytes`)
  const wide = new Int16Array(Buffer.concat(l16).length / 2)
  Buffer.concat(l16).forEach((_, i, b) => { if (i % 2 === 0) wide[i / 2] = b.readInt16LE(i) })
  t.ok(toneAmplitude(wide, 16000, 700, 4000, 8000) > 8000, '700 Hz preserved at 16 kHz')
  t.ok(pcmu.length >= 50 && pcmu.every((b) => b.length === 160), `${pcmu.length} µ-law frames of 160 bytes`)
  // No transcoding loss: the µ-law bytes decode to exactly the frames the session decoded.
  const forkPcm = ulawToPcm(Buffer.concat(pcmu))
  const sessPcm = concatFrames(usFrames)
  const n = Math.min(forkPcm.length, sessPcm.length)
  let diff = 0
  for (let i = 0; i < n; i++) diff += Math.abs(forkPcm[i]! - sessPcm[i]!)
  t.equal(diff, 0, 'PCMU fork is bit-exact with the call audio')
})

t.test('bridge relays same-codec legs without transcoding and passes DTMF', async (t) => {
  const engine = await engineFor(t, 24)
  const [x, legA] = await connectedPair(engine, { codecs: ['PCMA'] }, { codecs: ['PCMA'] })
  const [legB, y] = await connectedPair(engine, { codecs: ['PCMA'] }, { codecs: ['PCMA'] })
  const bridge = new Bridge(legA, legB)
  t.equal(bridge.mode, 'relay')
  const atY = frameCollector(y)
  const atX = frameCollector(x)
  const digits: string[] = []
  y.on('dtmf', (e) => digits.push(e.digit))
  void x.play(new PcmSource(sine(900, 8000, 1), 8000))
  void y.play(new PcmSource(sine(400, 8000, 1), 8000))
  await sleep(1200)
  x.sendDtmf('7#', 60)
  await sleep(600)
  const yPcm = concatFrames(atY)
  const xPcm = concatFrames(atX)
  let by = 0, bx = 0
  for (let o = 0; o + 4000 < yPcm.length; o += 400) by = Math.max(by, toneAmplitude(yPcm, 8000, 900, o, 4000))
  for (let o = 0; o + 4000 < xPcm.length; o += 400) bx = Math.max(bx, toneAmplitude(xPcm, 8000, 400, o, 4000))
  t.ok(by > 9000, `X→Y through the relay (${by.toFixed(0)})`)
  t.ok(bx > 9000, `Y→X through the relay (${bx.toFixed(0)})`)
  t.same(digits, ['7', '#'], 'telephone-events relayed')
  t.equal(legA.stats().framesIn, 0, 'relay leg decoded nothing')
  bridge.unbridge()
})

t.test('bridge transcodes PCMU ↔ G.722 and opus', async (t) => {
  for (const other of ['G722', 'opus']) {
    const engine = await engineFor(t, 24)
    const [x, legA] = await connectedPair(engine, { codecs: ['PCMU'] }, { codecs: ['PCMU'] })
    const [legB, y] = await connectedPair(engine, { codecs: [other] }, { codecs: [other] })
    const bridge = new Bridge(legA, legB)
    t.equal(bridge.mode, 'transcode')
    const atY = frameCollector(y)
    const atX = frameCollector(x)
    void x.play(new PcmSource(sine(900, 8000, 1.5), 8000))
    const yr = y.codecSampleRate()
    void y.play(new PcmSource(sine(400, yr, 1.5), yr))
    await sleep(1700)
    const yPcm = concatFrames(atY)
    const xPcm = concatFrames(atX)
    let by = 0, bx = 0
    for (let o = 0; o + yr / 2 < yPcm.length; o += yr / 20) by = Math.max(by, toneAmplitude(yPcm, yr, 900, o, yr / 2))
    for (let o = 0; o + 4000 < xPcm.length; o += 400) bx = Math.max(bx, toneAmplitude(xPcm, 8000, 400, o, 4000))
    t.ok(by > 7000, `PCMU→${other}: 900 Hz at ${by.toFixed(0)}`)
    t.ok(bx > 7000, `${other}→PCMU: 400 Hz at ${bx.toFixed(0)}`)
    bridge.unbridge()
    await engine.stop()
  }
})

t.test('mixer: each participant hears the others but not themselves', async (t) => {
  const engine = await engineFor(t, 24)
  const freqs = [300, 700, 1300]
  const mixer = new Mixer(engine.scheduler, 16000)
  const peers = []
  for (const f of freqs) {
    const [conf, peer] = await connectedPair(engine, { codecs: ['PCMU'] }, { codecs: ['PCMU'] })
    mixer.add(conf)
    peers.push({ peer, f, heard: frameCollector(peer) })
    void peer.play(new PcmSource(sine(f, 8000, 1.5, 6000), 8000))
  }
  await sleep(1700)
  t.equal(mixer.size, 3)
  for (const p of peers) {
    const pcm = concatFrames(p.heard)
    const amp = (f: number) => { let b = 0; for (let o = 0; o + 4000 < pcm.length; o += 400) b = Math.max(b, toneAmplitude(pcm, 8000, f, o, 4000)); return b }
    for (const f of freqs) {
      if (f === p.f) t.ok(amp(f) < 300, `${p.f} Hz participant does not hear itself (${amp(f).toFixed(0)})`)
      else t.ok(amp(f) > 4000, `${p.f} Hz participant hears ${f} Hz (${amp(f).toFixed(0)})`)
    }
  }
  mixer.close()
})
