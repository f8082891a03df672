/**
 * codecs/stream-resampler.ts: the one wrapper of the polyphase filter. Its
 * aligned stream and its one-shot form give the samples of an independent
 * reference built on the bare filter; its frame-paced form gives one 20 ms
 * frame per frame in.
 */
import t from 'tap'
import { Resampler } from '../../codecs/resampler.ts'
import { resample, StreamResampler } from '../../codecs/stream-resampler.ts'
import { concatPcm, speechPcm } from '../agent/helpers/audio.ts'
import { sine } from './signal.ts'

/** The bare filter, lead-in skipped and tail padded out: aligned, len·out/in long. */
function filterReference(input: Int16Array, inRate: number, outRate: number): Int16Array {
  const r = new Resampler(inRate, outRate)
  const want = Math.round((input.length * outRate) / inRate)
  const skip = Math.round(r.delay)
  const padIn = Math.ceil(((skip + 4) * inRate) / outRate) + 8
  const out = new Int16Array(r.maxOutput(input.length + padIn) + 8)
  let n = r.process(input, out)
  n += r.process(new Int16Array(padIn), out.subarray(n))
  return out.slice(skip, Math.min(n, skip + want))
}

t.test('stream resampler delegates to codecs/resampler: same samples as the bare filter, aligned', async (t) => {
  const src = speechPcm('tell me about the store', 16000)
  const ref = filterReference(src, 16000, 8000)
  const r = new StreamResampler(16000, 8000)
  const parts = [] as Int16Array[]
  for (let o = 0; o < src.length; o += 1000) parts.push(r.process(src.subarray(o, o + 1000)))
  parts.push(r.flush())
  const got = concatPcm(...parts)
  t.equal(got.length, ref.length, 'same length')
  let maxDiff = 0
  for (let i = 0; i < got.length; i++) maxDiff = Math.max(maxDiff, Math.abs(got[i]! - ref[i]!))
  t.ok(maxDiff <= 1, `max difference ${maxDiff} LSB`)
  t.same(resample(src, 16000, 8000).length, ref.length)
})

t.test('frame-paced: one 20 ms frame out per frame in, the filter output behind one frame of silence', async (t) => {
  for (const [a, b] of [[8000, 16000], [16000, 8000], [48000, 8000], [8000, 8000]] as const) {
    const src = sine(440, a, 0.5)
    const r = new StreamResampler(a, b)
    const frames: Int16Array[] = []
    for (let i = 0; i + a / 50 <= src.length; i += a / 50) {
      const f = r.processFrame(src.subarray(i, i + a / 50))
      t.equal(f.length, b / 50)
      frames.push(f.slice())
    }
    t.ok(frames[0]!.every((v) => v === 0), `${a}→${b}: the first frame is the primed silence`)
    // Behind the silence comes the bare filter's output, lead-in included.
    const bare = new Resampler(a, b)
    const raw = new Int16Array(bare.maxOutput(src.length))
    const n = bare.process(src, raw)
    const got = concatPcm(...frames.slice(1))
    t.same(got.subarray(0, Math.min(got.length, n - b / 50)), raw.subarray(0, Math.min(got.length, n - b / 50)), `${a}→${b}: the filter's samples`)
  }
})
