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
