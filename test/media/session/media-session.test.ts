import t from 'tap'
import { createSocket, type Socket } from 'node:dgram'
import { MediaEngine } from '../../../media/media-engine.ts'
import { PcmSource } from '../../../media/playback.ts'
import type { AudioFrame } from '../../../audio/frame.ts'
import { writeRtpHeader } from '../../../media/rtp/packet.ts'
import { freeUdpRange } from '../../harness/ports.ts'
import { sine, toneAmplitude } from '../../codecs/signal.ts'

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

function collect(frames: AudioFrame[]) {
  return (f: AudioFrame) => frames.push({ ...f, samples: f.samples.slice() })
}

function concat(frames: AudioFrame[]): Int16Array {
  const out = new Int16Array(frames.reduce((a, f) => a + f.samples.length, 0))
  let o = 0
  for (const f of frames) { out.set(f.samples, o); o += f.samples.length }
  return out
}

async function pair(t: { teardown(fn: () => unknown): void }, codecsA: string[], codecsB: string[]) {
  const range = await freeUdpRange(8)
  const engine = new MediaEngine({ rtpPortMin: range.min, rtpPortMax: range.max, bindHost: '127.0.0.1' })
  t.teardown(() => engine.stop())
  const a = await engine.createSession({ codecs: codecsA })
  const b = await engine.createSession({ codecs: codecsB })
  const offer = await a.createOffer()
  const answer = await b.createAnswer(offer)
  await a.setRemoteDescription(answer)
  return { engine, a, b, offer, answer }
}

for (const [codec, rate] of [['PCMU', 8000], ['PCMA', 8000], ['G722', 16000], ['opus', 48000]] as const) {
  t.test(`${codec}: two sessions exchange a tone both ways over real UDP`, async (t) => {
    const { a, b, answer } = await pair(t, [codec], ['PCMU', 'PCMA', 'G722', 'opus'])
    t.match(answer, new RegExp(`a=rtpmap:\\d+ ${codec}`, 'i'), 'answer picks the offered codec')
    const atB: AudioFrame[] = []
    const atA: AudioFrame[] = []
    b.on('frame', collect(atB))
    a.on('frame', collect(atA))
    const done = a.play(new PcmSource(sine(1000, rate, 1), rate))
    void b.play(new PcmSource(sine(600, rate, 1), rate))
    t.equal(await done, 'done', 'playback completes')
    await sleep(300)
    const gotB = concat(atB)
    const gotA = concat(atA)
    t.ok(atB.length >= 45, `B received ${atB.length} frames`)
    t.equal(atB[0]!.sampleRate, rate)
    // Find the segment with the tone and check its level.
    const ampB = toneAmplitude(gotB, rate, 1000, rate * 0.3, rate * 0.4)
    const ampA = toneAmplitude(gotA, rate, 600, rate * 0.3, rate * 0.4)
    t.ok(ampB > 7000, `1 kHz at B: amplitude ${ampB.toFixed(0)} of 10000`)
    t.ok(ampA > 7000, `600 Hz at A: amplitude ${ampA.toFixed(0)} of 10000`)
    const sa = a.stats()
    const sb = b.stats()
    t.equal(sb.packetsLost, 0, 'no loss on loopback')
    t.ok(sa.packetsSent >= 50 && sb.packetsReceived >= 50, `sent ${sa.packetsSent} received ${sb.packetsReceived}`)
    t.equal(sb.codec, codec)
    t.ok(sb.latched, 'B latched to A')
  })
}

t.test('RFC 4733 DTMF sent by one session is received once per digit by the other', async (t) => {
  const { a, b } = await pair(t, ['PCMU'], ['PCMU'])
  const digits: string[] = []
  b.on('dtmf', (e) => digits.push(e.digit))
  t.ok(a.sendDtmf('12#*9', 80))
  await sleep(1500)
  t.same(digits, ['1', '2', '#', '*', '9'])
  t.equal(a.stats().dtmfSent, 5)
  t.equal(b.stats().dtmfReceived, 5)
})

t.test('garbage on the RTP port is counted and dropped, audio unaffected', async (t) => {
  const { a, b } = await pair(t, ['PCMU'], ['PCMU'])
  const frames: AudioFrame[] = []
  b.on('frame', collect(frames))
  void a.play(new PcmSource(sine(1000, 8000, 1.5), 8000))
  await sleep(200) // let B latch to A
  const attacker: Socket = createSocket('udp4')
  await new Promise<void>((r) => attacker.bind(0, '127.0.0.1', () => r()))
  t.teardown(() => attacker.close())
  const port = b.localPort
  const send = (buf: Uint8Array) => attacker.send(buf, port, '127.0.0.1')
  const valid = new Uint8Array(172)
  for (let i = 0; i < 50; i++) {
    send(new Uint8Array([0x80, 0, 1])) // short
    const v1 = new Uint8Array(172); v1[0] = 0x40; send(v1) // version 1
    writeRtpHeader(valid, 0, false, i, i * 160, 0xdeadbeef)
    valid.fill(0x00, 12) // loud garbage audio from a foreign source
    send(valid)
  }
  // A flood: 2000 well-formed packets from the foreign source (~10k packet/s,
  // 200 times the call's own rate).
  for (let i = 0; i < 2000; i++) {
    writeRtpHeader(valid, 0, false, (1000 + i) & 0xffff, i * 160, 0xfeedface)
    send(valid)
    if (i % 100 === 99) await sleep(10)
  }
  await sleep(1500)
  const s = b.stats()
  t.equal(s.garbage.wrongSource, 50 + 2000, `flood counted as wrong source (${s.garbage.wrongSource})`)
  t.equal(s.garbage.short, 50, 'short packets counted')
  t.equal(s.garbage.version, 50, 'bad version counted')
  const audio = concat(frames)
  const amp = toneAmplitude(audio, 8000, 1000, 8000 * 0.4, 8000 * 0.8)
  t.ok(amp > 7000, `tone intact: ${amp.toFixed(0)}`)
  // No sample anywhere near the µ-law 0x00 full-scale value the attacker sent.
  let maxAbs = 0
  for (const v of audio) maxAbs = Math.max(maxAbs, Math.abs(v))
  t.ok(maxAbs < 11000, `no injected audio (max |x| ${maxAbs})`)
  t.equal(s.packetsLost, 0)
})

t.test('unknown SSRC from the latched source is dropped', async (t) => {
  const range = await freeUdpRange(4)
  const engine = new MediaEngine({ rtpPortMin: range.min, rtpPortMax: range.max, bindHost: '127.0.0.1' })
  t.teardown(() => engine.stop())
  const s = await engine.createSession({ codecs: ['PCMU'] })
  const peer = createSocket('udp4')
  await new Promise<void>((r) => peer.bind(0, '127.0.0.1', () => r()))
  t.teardown(() => peer.close())
  const peerPort = peer.address().port
  await s.createAnswer(`v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio ${peerPort} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n`)
  const frames: AudioFrame[] = []
  s.on('frame', collect(frames))
  const pkt = new Uint8Array(172)
  const tone = sine(500, 8000, 1)
  const { encodeUlaw } = await import('../../../codecs/g711.ts')
  for (let i = 0; i < 40; i++) {
    writeRtpHeader(pkt, 0, i === 0, 100 + i, 1000 + i * 160, 0x1111)
    encodeUlaw(tone.subarray(i * 160, i * 160 + 160), pkt.subarray(12))
    peer.send(pkt, s.localPort, '127.0.0.1')
    if (i % 4 === 0) {
      const bad = new Uint8Array(172)
      writeRtpHeader(bad, 0, false, 5000 + i, 99, 0x2222)
      bad.fill(0x80, 12)
      peer.send(bad, s.localPort, '127.0.0.1')
    }
    await sleep(20)
  }
  await sleep(200)
  const st = s.stats()
  t.equal(st.garbage.unknownSsrc, 10)
  t.equal(st.packetsReceived, 40)
  t.equal(st.packetsLost, 0)
  t.ok(frames.length >= 38, `${frames.length} frames`)
})

t.test('inactivity timeout fires once with rtp-timeout', async (t) => {
  const range = await freeUdpRange(4)
  const engine = new MediaEngine({ rtpPortMin: range.min, rtpPortMax: range.max, bindHost: '127.0.0.1' })
  t.teardown(() => engine.stop())
  const s = await engine.createSession({ codecs: ['PCMU'], inactivityTimeoutMs: 300 })
  await s.createAnswer('v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 9 RTP/AVP 0\r\n')
  const events: unknown[] = []
  s.on('timeout', (e) => events.push(e))
  await sleep(800)
  t.equal(events.length, 1)
  t.match(events[0], { reason: 'rtp-timeout' })
  t.equal(engine.stats().timeouts, 1)
})

t.test('engine exposes sessions and RTP counters to prom-client', async (t) => {
  const { Registry } = await import('prom-client')
  const registry = new Registry()
  const range = await freeUdpRange(8)
  const engine = new MediaEngine({ rtpPortMin: range.min, rtpPortMax: range.max, bindHost: '127.0.0.1', registry })
  t.teardown(() => engine.stop())
  const a = await engine.createSession({ codecs: ['PCMU'] })
  const b = await engine.createSession({ codecs: ['PCMU'] })
  await a.setRemoteDescription(await b.createAnswer(await a.createOffer()))
  await sleep(300)
  const text = await registry.metrics()
  t.match(text, /callplane_media_sessions_active 2/)
  const out = /callplane_rtp_packets\{direction="out"\} (\d+)/.exec(text)
  t.ok(out && Number(out[1]) > 10, `packets out counted (${out?.[1]})`)
  const st = engine.stats()
  t.equal(st.activeSessions, 2)
  t.equal(st.ports.used, 2)
  await a.close()
  t.equal(engine.stats().activeSessions, 1)
  t.equal(engine.stats().ports.used, 1, 'port pair released on close')
})
