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
import { createCodec, Resampler, ULAW_TO_ALAW } from '../codecs/index.ts'
import { MediaScheduler } from '../media/scheduler.ts'
import { MediaSession, type SessionHost } from '../media/session.ts'
import type { PortPair } from '../media/port-pool.ts'
import { PcmSource } from '../media/playback.ts'
import { writeRtpHeader } from '../media/rtp/packet.ts'
import { encodeUlaw } from '../codecs/g711.ts'

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

const tone = (rate: number, n: number) => Int16Array.from({ length: n }, (_, i) => Math.round(8000 * Math.sin((2 * Math.PI * 440 * i) / rate)))

// ── codecs ──
for (const [name, rate, iters] of [['PCMU', 8000, 200_000], ['PCMA', 8000, 200_000], ['G722', 16000, 20_000], ['opus', 48000, 2_000]] as const) {
  const c = createCodec({ name, sampleRate: name === 'opus' ? 48000 : undefined })
  const pcm = tone(rate, c.frameSamples)
  const out = new Uint8Array(1500)
  const dec = new Int16Array(5760)
  const n = iters * scale
  let len = 0
  c.encode(pcm, out) // warm up
  const encUs = cpuUs(() => { for (let i = 0; i < n; i++) len = c.encode(pcm, out) })
  const payload = out.slice(0, len)
  const decUs = cpuUs(() => { for (let i = 0; i < n; i++) c.decode(payload, dec) })
  details[`${name}.encode_us`] = encUs / n
  details[`${name}.decode_us`] = decUs / n
  figures.push({ id: `media.codec.${name.toLowerCase()}.encode_us_per_frame`, label: `${name} encode, 20 ms frame`, value: encUs / n, unit: 'µs', better: 'lower' })
  figures.push({ id: `media.codec.${name.toLowerCase()}.decode_us_per_frame`, label: `${name} decode, 20 ms frame`, value: decUs / n, unit: 'µs', better: 'lower' })
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
{
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
  if (got < n * 0.99) notes.push(`socket test received ${got} of ${n} packets`)
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
