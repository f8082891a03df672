/**
 * Jitter ring slots sized for the negotiated codec (issue 4, memory per
 * session): a 20 ms PCMU call reserves 160-byte slots, and a larger packet
 * grows the ring once without losing or corrupting what is buffered.
 */
import t from 'tap'
import { JitterBuffer, slotSizingFor } from '../../media/jitter-buffer.ts'

const packet = (seq: number, len: number) => Uint8Array.from({ length: len }, (_, i) => (seq * 7 + i) & 0xff)

t.test('slot sizing follows codec and ptime', async (t) => {
  t.equal(slotSizingFor({ name: 'PCMU', sampleRate: 8000 }).slotBytes, 160, 'PCMU 20 ms: 160 bytes')
  t.equal(slotSizingFor({ name: 'PCMA', sampleRate: 8000 }, 30).slotBytes, 240, 'PCMA 30 ms: 240 bytes')
  t.equal(slotSizingFor({ name: 'G722', sampleRate: 16000 }).slotBytes, 160, 'G.722 20 ms: 160 bytes (64 kbit/s)')
  t.equal(slotSizingFor({ name: 'L16', sampleRate: 16000 }).slotBytes, 640, 'L16 16 kHz 20 ms: 640 bytes')
  t.equal(slotSizingFor({ name: 'opus', sampleRate: 16000 }).slotBytes, 128, 'Opus starts at 128 bytes')
  t.equal(slotSizingFor({ name: 'PCMU', sampleRate: 8000 }, 0).slotBytes, 160, 'no ptime: 20 ms')
  for (const name of ['PCMU', 'opus']) t.equal(slotSizingFor({ name, sampleRate: 8000 }).maxSlotBytes, 1488, `${name} grows up to an MTU's payload`)
})

t.test('a larger packet grows the slots once; buffered packets survive intact', async (t) => {
  const jb = new JitterBuffer({ slots: 16, minDepth: 3, maxDepth: 10, slotBytes: 160, maxSlotBytes: 1488 })
  t.equal(jb.slotSize, 160)
  jb.push(100, 0, false, packet(100, 160))
  jb.push(101, 160, false, packet(101, 160))
  jb.push(103, 480, false, packet(103, 160)) // 102 missing so far
  jb.push(104, 640, false, packet(104, 300)) // 30 ms-sized packet: grow
  t.equal(jb.stats.grows, 1, 'grew once')
  t.equal(jb.slotSize, 320, 'doubled to cover 300 bytes')
  jb.push(102, 320, false, packet(102, 160)) // late arrival fills the gap after the growth
  jb.push(105, 800, false, packet(105, 200))
  t.equal(jb.stats.grows, 1, 'no growth for packets that fit')
  const got: { seq: number; ok: boolean; len: number }[] = []
  for (let i = 0; i < 6; i++) {
    const r = jb.pop()
    if (r.kind !== 'packet') { got.push({ seq: -1, ok: false, len: 0 }); continue }
    const want = packet(r.sequence, r.payload.length)
    got.push({ seq: r.sequence, ok: r.payload.every((v, k) => v === want[k]), len: r.payload.length })
  }
  t.same(got, [
    { seq: 100, ok: true, len: 160 }, { seq: 101, ok: true, len: 160 }, { seq: 102, ok: true, len: 160 },
    { seq: 103, ok: true, len: 160 }, { seq: 104, ok: true, len: 300 }, { seq: 105, ok: true, len: 200 },
  ], 'every packet plays in order with its own bytes')
  t.equal(jb.stats.overflows, 0, 'nothing truncated')
})

t.test('growth stops at maxSlotBytes; bigger payloads are truncated and counted', async (t) => {
  const jb = new JitterBuffer({ slots: 8, minDepth: 1, slotBytes: 128, maxSlotBytes: 1000 })
  jb.push(1, 0, false, packet(1, 900))
  t.equal(jb.slotSize, 960, 'rounded up to 64 bytes, within the cap')
  jb.push(2, 960, false, packet(2, 1400))
  t.equal(jb.slotSize, 1000, 'capped')
  t.equal(jb.stats.overflows, 1, 'the oversize packet is counted')
  t.equal(jb.pop().payload.length, 900)
  t.equal(jb.pop().payload.length, 1000, 'kept up to the cap')
  const fixed = new JitterBuffer({ slots: 8, minDepth: 1, slotBytes: 160 })
  fixed.push(1, 0, false, packet(1, 200))
  t.equal(fixed.slotSize, 160, 'without maxSlotBytes the slots never grow (old behaviour)')
  t.equal(fixed.stats.overflows, 1)
})

// ── End to end through a MediaSession: packets larger than the first slot size arrive whole ──

import { createSocket } from 'node:dgram'
import { createCodec } from '../../codecs/index.ts'
import { engineFor, frameCollector, sleep } from './helpers.ts'

const sdpFor = (port: number, pt: number, codec: string, ptime: number) =>
  `v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio ${port} RTP/AVP ${pt}\r\na=rtpmap:${pt} ${codec}\r\na=ptime:${ptime}\r\n`

t.test('Opus packets far above the 128-byte first slot (and the old 512-byte cap) decode cleanly', async (t) => {
  const engine = await engineFor(t, 4, { sessionDefaults: { inactivityTimeoutMs: 0 } })
  const s = await engine.createSession({ codecs: ['opus'], opusSampleRate: 48000 })
  // The peer must send from the SDP address to be latched at once: answer to an offer naming a port we then send from.
  const peer = createSocket('udp4')
  await new Promise<void>((r) => peer.bind(0, '127.0.0.1', () => r()))
  t.teardown(() => peer.close())
  await s.createAnswer(sdpFor(peer.address().port, 111, 'opus/48000/2', 20))
  const frames = frameCollector(s)
  const enc = createCodec({ name: 'opus', sampleRate: 48000, fmtp: 'maxaveragebitrate=256000', opusComplexity: 5 })
  const pcm = new Int16Array(960)
  const out = new Uint8Array(1500)
  const sizes: number[] = []
  for (let f = 0; f < 40; f++) {
    for (let i = 0; i < 960; i++) pcm[i] = Math.round(8000 * Math.sin((2 * Math.PI * 1000 * (f * 960 + i)) / 48000) + 3000 * Math.sin((2 * Math.PI * 7300 * (f * 960 + i)) / 48000))
    const n = enc.encode(pcm, out)
    sizes.push(n)
    const hdr = Buffer.alloc(12)
    hdr[0] = 0x80; hdr[1] = 111
    hdr.writeUInt16BE(500 + f, 2); hdr.writeUInt32BE(f * 960, 4); hdr.writeUInt32BE(0x4321, 8)
    peer.send([hdr, Buffer.from(out.subarray(0, n))], s.localPort, '127.0.0.1')
    await sleep(20)
  }
  await sleep(200)
  const st = s.stats()
  t.ok(Math.max(...sizes) > 512, `the peer sent packets up to ${Math.max(...sizes)} bytes`)
  t.equal(st.packetsReceived, 40, 'every packet received')
  t.equal(st.garbage.undecodable, 0, 'no packet was truncated into an undecodable one')
  t.ok(frames.length >= 35, `${frames.length} frames decoded`)
  const loud = frames.slice(5).filter((f) => f.samples.some((v) => Math.abs(v) > 2000)).length
  t.ok(loud >= frames.length - 10, 'decoded frames carry the signal')
})

t.test('30 ms PCMU packets (240 bytes, above the 160-byte slots of a 20 ms call) play in full', async (t) => {
  const engine = await engineFor(t, 4, { sessionDefaults: { inactivityTimeoutMs: 0 } })
  const s = await engine.createSession({ codecs: ['PCMU'] })
  const peer = createSocket('udp4')
  await new Promise<void>((r) => peer.bind(0, '127.0.0.1', () => r()))
  t.teardown(() => peer.close())
  await s.createAnswer(sdpFor(peer.address().port, 0, 'PCMU/8000', 20)) // the peer says 20 ms, then sends 30 ms
  const frames = frameCollector(s)
  const ulaw = createCodec({ name: 'PCMU' })
  const tone = new Int16Array(240)
  for (let p = 0; p < 40; p++) {
    for (let i = 0; i < 240; i++) tone[i] = Math.round(8000 * Math.sin((2 * Math.PI * 400 * (p * 240 + i)) / 8000))
    const payload = new Uint8Array(240)
    ulaw.encode(tone.subarray(0, 160), payload)
    ulaw.encode(tone.subarray(160), payload.subarray(160)) // encode() writes one 20 ms frame; the tail is the next 80 samples
    const hdr = Buffer.alloc(12)
    hdr[0] = 0x80; hdr[1] = 0
    hdr.writeUInt16BE(7000 + p, 2); hdr.writeUInt32BE(p * 240, 4); hdr.writeUInt32BE(0x777, 8)
    peer.send([hdr, payload], s.localPort, '127.0.0.1')
    await sleep(30)
  }
  await sleep(300)
  const st = s.stats()
  t.equal(st.packetsReceived, 40)
  // 40 × 240 samples = 60 frames of 160 (truncated to the first slot size it would be 40);
  // the 20 ms clock may also run dry between 30 ms packets and conceal a frame or two.
  const real = frames.length - st.concealed
  t.ok(real >= 58 && real <= 60, `${real} frames of received audio (${frames.length} delivered, ${st.concealed} concealed) from 40 × 30 ms`)
  t.equal(st.garbage.undecodable, 0)
})
