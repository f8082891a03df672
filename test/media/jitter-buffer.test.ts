import t from 'tap'
import { JitterBuffer } from '../../media/jitter-buffer.ts'

/** Deterministic PRNG so generated network conditions repeat exactly. */
function rng(seed: number) {
  let s = seed >>> 0
  return () => { s = (s * 1664525 + 1013904223) >>> 0; return s / 2 ** 32 }
}

function payloadFor(seq: number): Uint8Array {
  const p = new Uint8Array(160)
  p[0] = seq & 0xff
  p[1] = (seq >> 8) & 0xff
  return p
}

/**
 * Simulates a network: packet i is sent at 20·i ms (scaled by skew) and
 * arrives after a random delay; duplicates and losses per the profile. The
 * buffer is popped every 20 ms of receiver time. Returns the playout log.
 */
function simulate(opts: { n: number; lossRate?: number; dupRate?: number; maxDelayMs?: number; skew?: number; seed?: number; startSeq?: number }) {
  const rand = rng(opts.seed ?? 1)
  const jb = new JitterBuffer({ minDepth: 2, maxDepth: 12 })
  const arrivals: { at: number; seq: number }[] = []
  const startSeq = opts.startSeq ?? 65500
  for (let i = 0; i < opts.n; i++) {
    if (rand() < (opts.lossRate ?? 0)) continue
    const sendAt = i * 20 * (opts.skew ?? 1)
    const at = sendAt + rand() * (opts.maxDelayMs ?? 0)
    arrivals.push({ at, seq: (startSeq + i) & 0xffff })
    if (rand() < (opts.dupRate ?? 0)) arrivals.push({ at: at + rand() * 30, seq: (startSeq + i) & 0xffff })
  }
  arrivals.sort((a, b) => a.at - b.at)
  const played: number[] = []
  let lost = 0
  let k = 0
  const end = opts.n * 20 * (opts.skew ?? 1) + 1000
  for (let now = 0; now < end; now += 20) {
    while (k < arrivals.length && arrivals[k]!.at <= now) {
      const a = arrivals[k++]!
      jb.push(a.seq, a.seq * 160, false, payloadFor(a.seq))
    }
    jb.setJitterEstimate((opts.maxDelayMs ?? 0) / 3)
    const r = jb.pop()
    // Every frame counts as quiet here, so the caller-side skew drop applies.
    if (r.kind === 'packet' && jb.shouldShrink) { jb.recordSkewDrop(); continue }
    if (r.kind === 'packet') played.push(r.payload[0]! | (r.payload[1]! << 8))
    else if (r.kind === 'lost') lost++
  }
  void lost
  return { played, lost: jb.stats.lost, stats: jb.stats }
}

t.test('in-order stream across the 16-bit sequence wrap plays every packet once, in order', async (t) => {
  const r = simulate({ n: 200 })
  t.equal(r.played.length, 200)
  t.equal(r.lost, 0)
  const expected = Array.from({ length: 200 }, (_, i) => (65500 + i) & 0xffff)
  t.same(r.played, expected)
})

t.test('reordering within the buffer depth is repaired', async (t) => {
  const r = simulate({ n: 500, maxDelayMs: 60, seed: 7 })
  const expected = Array.from({ length: 500 }, (_, i) => (65500 + i) & 0xffff)
  const isSorted = r.played.every((s, i) => i === 0 || ((s - r.played[i - 1]!) & 0xffff) >= 1)
  t.ok(isSorted, 'playout is in sequence order')
  t.ok(r.played.length >= 495, `played ${r.played.length}/500 (late ${r.stats.late})`)
  t.ok(r.stats.targetDepth >= 2, `target depth adapted to ${r.stats.targetDepth}`)
  t.same(new Set(r.played).size, r.played.length, 'no packet played twice')
  void expected
})

t.test('duplicates are dropped and counted', async (t) => {
  const r = simulate({ n: 300, dupRate: 0.2, seed: 3 })
  t.equal(r.played.length, 300)
  t.ok(r.stats.duplicates > 30, `${r.stats.duplicates} duplicates dropped`)
  t.same(new Set(r.played).size, 300)
})

t.test('loss yields one conceal slot per missing packet', async (t) => {
  const r = simulate({ n: 1000, lossRate: 0.05, seed: 11 })
  t.equal(r.played.length + r.lost, 1000 - countTrailingLoss(r.played, 1000, 65500), 'every sequence slot accounted for')
  t.ok(r.lost > 30 && r.lost < 80, `${r.lost} concealed`)
})

function countTrailingLoss(played: number[], n: number, start: number): number {
  const last = played[played.length - 1]!
  const lastIdx = (last - start + 0x10000) & 0xffff
  return n - 1 - lastIdx
}

t.test('sender clock 1% fast: depth stays bounded by skew drops', async (t) => {
  const r = simulate({ n: 3000, skew: 0.99, maxDelayMs: 10, seed: 5 })
  t.ok(r.stats.skewDrops > 5, `${r.stats.skewDrops} skew drops`)
  t.ok(r.stats.depth <= r.stats.targetDepth + 4, `final depth ${r.stats.depth}`)
  t.ok(r.played.length > 2900, `played ${r.played.length}`)
  t.equal(r.played.length + r.stats.skewDrops, 3000, 'only skew drops are missing')
})

t.test('sender clock 1% slow: the buffer waits (conceals) instead of dropping, nothing is lost', async (t) => {
  const r = simulate({ n: 2000, skew: 1.01, seed: 9 })
  t.equal(r.played.length, 2000)
  t.equal(r.lost, 0)
  t.ok(r.stats.expands >= 1, `${r.stats.expands} frames concealed while waiting`)
})

t.test('late packets after playout moved on are counted, not played', async (t) => {
  const jb = new JitterBuffer({ minDepth: 2 })
  jb.push(10, 0, false, payloadFor(10))
  jb.push(11, 160, false, payloadFor(11))
  jb.push(13, 480, false, payloadFor(13))
  t.equal(jb.pop().kind, 'packet')
  t.equal(jb.pop().kind, 'packet')
  t.equal(jb.pop().kind, 'lost') // 12 missing
  t.equal(jb.push(12, 320, false, payloadFor(12)), 'late')
  t.equal(jb.stats.late, 1)
  t.equal(jb.pop().kind, 'packet')
  // A telephone-event slot is a skip, not a loss.
  jb.push(14, 640, false, null)
  jb.push(15, 800, false, payloadFor(15))
  t.equal(jb.pop().kind, 'skip')
  t.equal(jb.pop().kind, 'packet')
})
