/**
 * Media hot-path costs measured in CPU time (process.cpuUsage), so they hold
 * up on a busy box where wall-clock pacing figures do not:
 *  - codec encode/decode per 20 ms frame (G.711 tables, G.722, Opus), the
 *    polyphase resampler, and the µ-law ↔ A-law transcoding table;
 *  - one MediaSession's JS work per packet pair (RTP parse, latch, jitter
 *    buffer, decode, frame delivery, encode) with the socket I/O taken out
 *    (packets are fed to the session's receive handler and its sends are
 *    swallowed), and the raw cost of one dgram send + receive on this box.
 * From these: sessions per core if only the JS work counted, and with I/O.
 *
 *   tsx bench/media-hotpath.ts [--quick|--full] [--out file.json]
 */
import { createSocket } from 'node:dgram'
import { EventEmitter } from 'node:events'
import { finishBench, parseBenchArgs, type BenchFigure } from './bench-result.ts'
import { createCodec, defaultOpusComplexity, Resampler, ULAW_TO_ALAW } from '../codecs/index.ts'
import { MediaScheduler } from '../media/scheduler.ts'
import { MediaSession, type SessionHost } from '../media/session/media-session.ts'
import type { PortPair } from '../media/port-pool.ts'
import { PcmSource } from '../media/playback.ts'
import { writeRtpHeader } from '../media/rtp/packet.ts'
import { encodeUlaw } from '../codecs/g711.ts'

const tone = (rate: number, n: number) => Int16Array.from({ length: n }, (_, i) => Math.round(8000 * Math.sin((2 * Math.PI * 440 * i) / rate)))

// ── memory per session, measured in a fresh child process per codec ──
// A fresh process, so memory freed by earlier work cannot be reused and hide
// growth; a full GC before each reading, so it is what sessions retain.
if (process.argv[2] === '--memory-child') {
  const kind = process.argv[3] as 'PCMU' | 'opus'
  const n = Number(process.argv[4])
  const { v8Collector } = await import('../media/idle-gc.ts')
  const { MediaEngine } = await import('../media/media-engine.ts')
  const { memoryKiB } = await import('./proc-stats.ts')
  const gc = v8Collector()!
  const peer = createSocket('udp4')
  await new Promise<void>((r) => peer.bind(0, '127.0.0.1', () => r()))
  const engine = new MediaEngine({ rtpPortMin: 41000, rtpPortMax: 49999, bindHost: '127.0.0.1', sessionDefaults: { inactivityTimeoutMs: 0 } })
  const pt = kind === 'opus' ? 111 : 0
  const sdp = `v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio ${peer.address().port} RTP/AVP ${pt}\r\na=rtpmap:${pt} ${kind === 'opus' ? 'opus/48000/2' : 'PCMU/8000'}\r\n`
  const peerCodec = createCodec({ name: kind, sampleRate: kind === 'opus' ? 48000 : undefined })
  const pcm = tone(peerCodec.sampleRate, peerCodec.frameSamples)
  const pkt = Buffer.alloc(1500)
  const len = 12 + peerCodec.encode(pcm, pkt.subarray(12))
  const source = tone(8000, 8000) // one shared buffer: its 16 KB must not count per session
  const make = async () => {
    const s = await engine.createSession({ codecs: [kind], opusSampleRate: 8000 })
    await s.createAnswer(sdp)
    s.addSink({ onFrame() { /* a consumer, so inbound audio is decoded */ } })
    void s.play(new PcmSource(source, 8000, 1e9)) // egress encodes: encoder state exists
    return s
  }
  const warm = await make() // code loaded and compiled before the baseline
  await new Promise((r) => setTimeout(r, 300))
  gc(); gc()
  const base = memoryKiB(process.pid)
  const list = []
  for (let i = 0; i < n; i++) list.push(await make())
  // A few packets into every session: latching, jitter buffer and decoder state as in a call.
  for (let k = 0; k < 10; k++) {
    for (let i = 0; i < list.length; i++) {
      writeRtpHeader(pkt, pt, k === 0, k, k * peerCodec.timestampStep, 0x7000 + i)
      peer.send(pkt, 0, len, list[i]!.localPort, '127.0.0.1')
    }
    await new Promise((r) => setTimeout(r, 20))
  }
  await new Promise((r) => setTimeout(r, 500))
  gc(); gc()
  const perSession = (memoryKiB(process.pid) - base) / n
  const decoded = list.reduce((a, s) => a + s.stats().framesIn, 0)
  await Promise.all([warm, ...list].map((s) => s.close()))
  await engine.stop()
  peer.close()
  process.send!({ perSessionKiB: perSession, framesIn: decoded })
  process.exit(0)
}

const args = parseBenchArgs()
const quick = args.mode === 'quick'
const startedAt = new Date()
const scale = quick ? 1 : 5
const figures: BenchFigure[] = []
const notes: string[] = []
const details: Record<string, number> = {}

function cpuUs<T>(fn: () => T): number {
  const c0 = process.cpuUsage()
  fn()
  const c = process.cpuUsage(c0)
  return c.user + c.system
}


// ── codecs ──
for (const [name, rate, iters] of [['PCMU', 8000, 200_000], ['PCMA', 8000, 200_000], ['G722', 16000, 20_000], ['opus', 48000, 2_000], ['opus', 16000, 2_000], ['opus', 8000, 2_000]] as const) {
  const c = createCodec({ name, sampleRate: name === 'opus' ? rate : undefined })
  const id = name === 'opus' ? `opus${rate / 1000}k` : name.toLowerCase()
  const label = name === 'opus' ? `Opus at ${rate / 1000} kHz PCM (complexity ${defaultOpusComplexity(rate)})` : name
  const pcm = tone(rate, c.frameSamples)
  const out = new Uint8Array(1500)
  const dec = new Int16Array(5760)
  const n = iters * scale
  let len = 0
  c.encode(pcm, out) // warm up
  const encUs = cpuUs(() => { for (let i = 0; i < n; i++) len = c.encode(pcm, out) })
  const payload = out.slice(0, len)
  const decUs = cpuUs(() => { for (let i = 0; i < n; i++) c.decode(payload, dec) })
  details[`${id}.encode_us`] = encUs / n
  details[`${id}.decode_us`] = decUs / n
  // Keep the historical ids for 48 kHz Opus so runs stay comparable.
  const fid = id === 'opus48k' ? 'opus' : id
  figures.push({ id: `media.codec.${fid}.encode_us_per_frame`, label: `${label} encode, 20 ms frame`, value: encUs / n, unit: 'µs', better: 'lower' })
  figures.push({ id: `media.codec.${fid}.decode_us_per_frame`, label: `${label} decode, 20 ms frame`, value: decUs / n, unit: 'µs', better: 'lower' })
  if (name === 'opus') {
    const plcUs = cpuUs(() => { for (let i = 0; i < n; i++) c.conceal(dec) })
    details[`${id}.conceal_us`] = plcUs / n
    figures.push({ id: `media.codec.${fid}.conceal_us_per_frame`, label: `${label} PLC, one 20 ms frame`, value: plcUs / n, unit: 'µs', better: 'lower' })
  }
}
{
  const r = new Resampler(8000, 48000)
  const inp = tone(8000, 160)
  const out = new Int16Array(1200)
  const n = 20_000 * scale
  const us = cpuUs(() => { for (let i = 0; i < n; i++) r.process(inp, out) })
  figures.push({ id: 'media.resample.8k_48k_us_per_frame', label: 'resample 8 → 48 kHz, 20 ms frame', value: us / n, unit: 'µs', better: 'lower' })
  const r2 = new Resampler(48000, 16000)
  const inp2 = tone(48000, 960)
  const n2 = 10_000 * scale
  const us2 = cpuUs(() => { for (let i = 0; i < n2; i++) r2.process(inp2, out) })
  figures.push({ id: 'media.resample.48k_16k_us_per_frame', label: 'resample 48 → 16 kHz, 20 ms frame', value: us2 / n2, unit: 'µs', better: 'lower' })
  const bytes = new Uint8Array(160).map((_, i) => i)
  const dst = new Uint8Array(160)
  const n3 = 500_000 * scale
  const us3 = cpuUs(() => { for (let k = 0; k < n3; k++) for (let i = 0; i < 160; i++) dst[i] = ULAW_TO_ALAW[bytes[i]!]! })
  figures.push({ id: 'media.transcode.ulaw_alaw_us_per_frame', label: 'PCMU → PCMA table transcode, 20 ms frame', value: us3 / n3, unit: 'µs', better: 'lower' })
}

// ── session JS work without sockets ──
class FakeSocket extends EventEmitter {
  sent = 0
  send(...a: unknown[]): void {
    this.sent++
    const cb = a[a.length - 1]
    if (typeof cb === 'function') queueMicrotask(cb as () => void)
  }
  close(): void { /* nothing */ }
  address() { return { port: 1 } }
}
{
  const rtp = new FakeSocket()
  const rtcp = new FakeSocket()
  const scheduler = new MediaScheduler()
  const host: SessionHost = { scheduler, externalAddress: '127.0.0.1', release: () => {}, onClosed: () => {} }
  const session = new MediaSession(host, { port: 40000, rtp: rtp as unknown as PortPair['rtp'], rtcp: rtcp as unknown as PortPair['rtcp'] }, { codecs: ['PCMU'], inactivityTimeoutMs: 0 })
  scheduler.remove(session) // we drive the phases by hand
  await session.createAnswer('v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 5000 RTP/AVP 0\r\n')
  session.addSink({ onFrame() { /* consumer */ } })
  void session.play(new PcmSource(tone(8000, 8000), 8000, 1e9))
  const pkt = Buffer.alloc(172)
  const pcm = tone(8000, 160)
  encodeUlaw(pcm, pkt.subarray(12))
  const rinfo = { address: '127.0.0.1', port: 5000, family: 'IPv4' as const, size: 172 }
  const ticks = 100_000 * scale
  let now = 0
  const us = cpuUs(() => {
    for (let i = 0; i < ticks; i++) {
      writeRtpHeader(pkt, 0, false, i & 0xffff, (i * 160) >>> 0, 0x1234)
      rtp.emit('message', pkt, rinfo)
      now += 20
      session.ingress(i + 1, now)
      session.egress(i + 1, now)
    }
  })
  const st = session.stats()
  const perTick = us / ticks
  details['session.js_us_per_tick'] = perTick
  figures.push({ id: 'media.session.js_us_per_packet_pair', label: 'one PCMU session, JS work per 20 ms (1 packet in + 1 out, decode + encode, no socket I/O)', value: perTick, unit: 'µs', better: 'lower' })
  figures.push({ id: 'media.session.js_sessions_per_core', label: 'G.711 sessions per core counting the JS work only', value: 1e6 / (perTick * 50), unit: 'sessions/core', better: 'higher' })
  if (st.packetsReceived !== ticks || st.framesIn < ticks - 5 || rtp.sent < ticks - 5) notes.push(`session check: received ${st.packetsReceived}, frames ${st.framesIn}, sent ${rtp.sent} of ${ticks}`)
  await session.close()
}

// ── Opus ↔ PCMU transcoding pair, JS + codec work without sockets ──
// What one pair of media-sessions' Opus step costs: the PCMU leg decodes
// G.711 and feeds the Opus leg's encoder; the Opus leg decodes what the peer
// sends and feeds the PCMU leg's encoder. Both legs run with Opus at 8 kHz
// PCM (no resampling), as the bench does. Two peers: one that honours our
// answer's maxplaybackrate=8000 (RFC 7587 §6.1; browsers do) and so sends
// narrowband, and one that ignores it and sends 48 kHz fullband.
async function opusPairUsPerTick(honourFmtp: boolean): Promise<number> {
  const scheduler = new MediaScheduler()
  const host: SessionHost = { scheduler, externalAddress: '127.0.0.1', release: () => {}, onClosed: () => {} }
  const mk = async (codec: 'PCMU' | 'opus', port: number, sdp: string) => {
    const rtp = new FakeSocket()
    const s = new MediaSession(host, { port, rtp: rtp as unknown as PortPair['rtp'], rtcp: new FakeSocket() as unknown as PortPair['rtcp'] }, { codecs: [codec], inactivityTimeoutMs: 0, opusSampleRate: 8000 })
    scheduler.remove(s)
    const answer = await s.createAnswer(sdp)
    return { s, rtp, answer }
  }
  const sdp = (pt: number, name: string) => `v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 5000 RTP/AVP ${pt}\r\na=rtpmap:${pt} ${name}\r\n`
  const a = await mk('PCMU', 40002, sdp(0, 'PCMU/8000'))
  const b = await mk('opus', 40004, sdp(111, 'opus/48000/2'))
  const { Bridge } = await import('../media/bridge.ts')
  new Bridge(a.s, b.s)
  // 1 s of tone encoded once by a browser-like peer: 48 kHz input, complexity 10.
  const fmtp = honourFmtp ? /a=fmtp:111 (.*)/.exec(b.answer)?.[1]?.trim() : undefined
  const peer = createCodec({ name: 'opus', sampleRate: 48000, opusComplexity: 10, fmtp })
  const opusPayloads: Uint8Array[] = []
  const t48 = tone(48000, 48000)
  const tmp = new Uint8Array(1500)
  for (let f = 0; f < 50; f++) opusPayloads.push(tmp.slice(0, peer.encode(t48.subarray(f * 960, (f + 1) * 960), tmp)))
  const pcmu = Buffer.alloc(172)
  encodeUlaw(tone(8000, 160), pcmu.subarray(12))
  const opusPkt = Buffer.alloc(1500)
  const rinfo = { address: '127.0.0.1', port: 5000, family: 'IPv4' as const, size: 172 }
  const ticks = 5_000 * scale
  let now = 0
  const run = (n: number, from: number) => {
    for (let i = from; i < from + n; i++) {
      writeRtpHeader(pcmu, 0, false, i & 0xffff, (i * 160) >>> 0, 0x1234)
      a.rtp.emit('message', pcmu, rinfo)
      const p = opusPayloads[i % 50]!
      writeRtpHeader(opusPkt, 111, false, i & 0xffff, (i * 960) >>> 0, 0x5678)
      opusPkt.set(p, 12)
      b.rtp.emit('message', opusPkt.subarray(0, 12 + p.length), { ...rinfo, size: 12 + p.length })
      now += 20
      a.s.ingress(i + 1, now); b.s.ingress(i + 1, now)
      a.s.egress(i + 1, now); b.s.egress(i + 1, now)
    }
  }
  run(100, 0) // warm up (jitter buffers fill, JIT)
  const us = cpuUs(() => run(ticks, 100))
  const sa = a.s.stats()
  const sb = b.s.stats()
  if (sa.concealed + sb.concealed > 10 || a.rtp.sent < ticks || b.rtp.sent < ticks) notes.push(`opus pair check: concealed ${sa.concealed}/${sb.concealed}, sent ${a.rtp.sent}/${b.rtp.sent} of ${ticks + 100}`)
  notes.push(`Opus pair peer ${honourFmtp ? `honours our fmtp (${fmtp})` : 'ignores maxplaybackrate'}: ${Math.round(opusPayloads.reduce((x, p) => x + p.length, 0) / 50)} bytes per packet`)
  await a.s.close()
  await b.s.close()
  return us / ticks
}
{
  // Interleaved and repeated, best of two: the box is shared and the first run also warms the JIT.
  const nb1 = await opusPairUsPerTick(true)
  const fb1 = await opusPairUsPerTick(false)
  const nb = Math.min(nb1, await opusPairUsPerTick(true))
  const fb = Math.min(fb1, await opusPairUsPerTick(false))
  details['opus_pair.js_us_per_tick'] = nb
  details['opus_pair_fullband_peer.js_us_per_tick'] = fb
  figures.push({ id: 'media.opus_pair.js_us_per_tick', label: 'one Opus↔PCMU bridged pair, JS + codec work per 20 ms (2 packets in, 2 out, Opus at 8 kHz, peer honours maxplaybackrate, no socket I/O)', value: nb, unit: 'µs', better: 'lower' })
  figures.push({ id: 'media.opus_pair_fullband.js_us_per_tick', label: 'the same pair when the peer ignores maxplaybackrate and sends 48 kHz fullband', value: fb, unit: 'µs', better: 'lower' })
}

// ── raw socket I/O on this box ──
{
  const a = createSocket('udp4')
  const b = createSocket('udp4')
  await new Promise<void>((r) => a.bind(0, '127.0.0.1', () => r()))
  await new Promise<void>((r) => b.bind(0, '127.0.0.1', () => r()))
  const port = b.address().port
  const n = 20_000 * scale
  let got = 0
  const done = new Promise<void>((r) => b.on('message', () => { if (++got >= n * 0.99) r() }))
  const buf = Buffer.alloc(172)
  const c0 = process.cpuUsage()
  // Small batches so the receive queue never overflows (each packet sent is received).
  for (let i = 0; i < n; i += 10) {
    for (let k = 0; k < 10; k++) a.send(buf, 0, 172, port, '127.0.0.1')
    await new Promise((r) => setImmediate(r))
  }
  await Promise.race([done, new Promise((r) => setTimeout(r, 5000))])
  const c = process.cpuUsage(c0)
  const per = (c.user + c.system) / Math.max(got, 1)
  a.close(); b.close()
  details['io.us_per_packet_send_recv'] = per
  figures.push({ id: 'media.io.us_per_packet', label: 'dgram send + receive of one RTP packet (Node, this box)', value: per, unit: 'µs', better: 'lower' })
  // A session sends one packet and receives one per 20 ms: exactly one send + one receive.
  const total = details['session.js_us_per_tick']! + per
  figures.push({ id: 'media.session.sessions_per_core_estimate', label: 'G.711 sessions per core from JS work + socket I/O (1 send + 1 receive per 20 ms)', value: 1e6 / (total * 50), unit: 'sessions/core', better: 'higher', target: 1000 })
  const pair = details['opus_pair.js_us_per_tick']! + 2 * per
  figures.push({ id: 'media.opus.pairs_per_core_estimate', label: 'Opus↔PCMU transcoding pairs per core from JS + codec work + socket I/O (2 sends + 2 receives per 20 ms; narrowband peer)', value: 1e6 / (pair * 50), unit: 'pairs/core', better: 'higher', target: 300 })
  const pairFb = details['opus_pair_fullband_peer.js_us_per_tick']! + 2 * per
  figures.push({ id: 'media.opus.pairs_per_core_estimate_fullband_peer', label: 'the same with a fullband peer (ignores maxplaybackrate)', value: 1e6 / (pairFb * 50), unit: 'pairs/core', better: 'higher' })
  if (got < n * 0.99) notes.push(`socket test received ${got} of ${n} packets`)
}
{
  const { fork } = await import('node:child_process')
  const { fileURLToPath } = await import('node:url')
  for (const [kind, n] of [['PCMU', 300], ['opus', 200]] as const) {
    const child = fork(fileURLToPath(import.meta.url), ['--memory-child', kind, String(n)], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
    const r = await new Promise<{ perSessionKiB: number; framesIn: number } | null>((resolve) => {
      child.once('message', (m) => resolve(m as { perSessionKiB: number; framesIn: number }))
      child.once('exit', () => resolve(null))
    })
    if (!r) { notes.push(`memory child for ${kind} failed`); continue }
    if (r.framesIn === 0) notes.push(`memory child for ${kind}: no inbound frame decoded (decoder state may be missing)`)
    const label = kind === 'opus' ? 'Opus session (8 kHz PCM, libopus encoder + decoder)' : 'PCMU session'
    figures.push({ id: `media.memory.${kind.toLowerCase()}_kb_per_session`, label: `memory per ${label}, ${n} sessions in a fresh process, PSS growth after a full GC`, value: r.perSessionKiB * 1.024, unit: 'KB', better: 'lower', target: 100 })
  }
}
notes.push('CPU time, not wall time: figures stay meaningful on a loaded box; pacing under load is measured by bench/media-sessions.ts')

finishBench({
  bench: 'media-hotpath',
  mode: args.mode,
  startedAt: startedAt.toISOString(),
  durationSec: (Date.now() - startedAt.getTime()) / 1000,
  figures, plots: [], notes, details,
}, args)
process.exit(0)
