import t from 'tap'
import { createCodec, PitchConcealer } from '../../codecs/index.ts'
import { chirpy, sine } from './signal.ts'

const FRAME = 160

function snr(ref: Int16Array, test: Int16Array): number {
  let s = 0
  let e = 0
  for (let i = 0; i < ref.length; i++) { s += ref[i]! ** 2; e += (ref[i]! - test[i]!) ** 2 }
  return 10 * Math.log10(s / Math.max(e, 1e-9))
}
function rms(x: Int16Array): number {
  let s = 0
  for (const v of x) s += v * v
  return Math.sqrt(s / x.length)
}

/** The old behaviour, as the baseline a pitch-based PLC must beat: repeat the last frame at 0.8. */
function repeatConceal(last: Int16Array): Int16Array {
  return last.map((v) => Math.round(v * 0.8))
}

t.test('G.711 PLC repeats the pitch period: a lost frame of a 230 Hz tone continues in phase', async (t) => {
  const src = sine(230, 8000, 1, 8000) // period 34.8 samples: 20 ms is not a whole number of periods
  const plc = new PitchConcealer(8000, FRAME)
  for (let f = 0; f < 10; f++) plc.remember(src.slice(f * FRAME, (f + 1) * FRAME), FRAME)
  const out = new Int16Array(FRAME)
  t.equal(plc.conceal(out), FRAME)
  const truth = src.subarray(10 * FRAME, 11 * FRAME)
  const first10ms = snr(truth.subarray(0, 80), out.subarray(0, 80))
  const baseline = snr(truth.subarray(0, 80), repeatConceal(src.subarray(9 * FRAME, 10 * FRAME)).subarray(0, 80))
  t.ok(first10ms >= 12, `first 10 ms of the concealed frame: SNR ${first10ms.toFixed(1)} dB against the lost audio`)
  t.ok(first10ms >= baseline + 10, `≥ 10 dB better than repeating the last frame (${baseline.toFixed(1)} dB)`)
  const jump = Math.abs(out[0]! - src[10 * FRAME - 1]!)
  t.ok(jump < 2500, `no click where the concealment starts: step ${jump} (a sample-to-sample step of this tone is up to 1445)`)
})

t.test('PLC fades after 10 ms, 20 % per 10 ms, and is silent after 60 ms (G.711 Appendix I)', async (t) => {
  const src = sine(180, 8000, 1, 8000)
  const plc = new PitchConcealer(8000, FRAME)
  for (let f = 0; f < 10; f++) plc.remember(src.slice(f * FRAME, (f + 1) * FRAME), FRAME)
  const frames = [0, 1, 2, 3].map(() => { const o = new Int16Array(FRAME); plc.conceal(o); return o })
  const level = rms(src.subarray(0, 1600))
  t.ok(rms(frames[0]!.subarray(0, 80)) > level * 0.9, 'first 10 ms at full level')
  t.ok(rms(frames[1]!) < rms(frames[0]!) * 0.8, 'second frame quieter than the first')
  t.ok(rms(frames[2]!) < rms(frames[1]!) * 0.6, 'third quieter still')
  // Gain 1 − 0.2·(t − 10 ms)/10 ms reaches 0 at 60 ms: the last 1.25 ms of the third frame are within 2.5 %.
  t.ok(Math.max(...frames[2]!.subarray(150).map(Math.abs)) <= 0.026 * 8000, 'next to silent at the end of 60 ms')
  t.equal(Math.max(...frames[3]!.map(Math.abs)), 0, 'fourth lost frame is silence')
})

t.test('the first good frame after a concealment is delivered unchanged, and a new loss is concealed from it', async (t) => {
  const src = sine(230, 8000, 1, 8000)
  const plc = new PitchConcealer(8000, FRAME)
  for (let f = 0; f < 10; f++) plc.remember(src.slice(f * FRAME, (f + 1) * FRAME), FRAME)
  plc.conceal(new Int16Array(FRAME))
  const resumed = src.slice(11 * FRAME, 12 * FRAME)
  plc.remember(resumed, FRAME)
  t.same(resumed, src.subarray(11 * FRAME, 12 * FRAME), 'delivered audio is not altered (bit-exact playout of what the network delivered)')
  const out = new Int16Array(FRAME)
  plc.conceal(out)
  const s = snr(src.subarray(12 * FRAME, 12 * FRAME + 80), out.subarray(0, 80))
  t.ok(s >= 12, `the next loss continues from the resumed audio: SNR ${s.toFixed(1)} dB`)
})

t.test('through the PCMU codec, on a speech-like signal, PLC beats frame repetition', async (t) => {
  const src = chirpy(8000, 2)
  const codec = createCodec({ name: 'PCMU' })
  const payload = new Uint8Array(FRAME)
  const out = new Int16Array(FRAME * 6)
  let pitchSum = 0
  let repeatSum = 0
  let losses = 0
  let last = new Int16Array(FRAME)
  for (let f = 0; f + 1 < src.length / FRAME; f++) {
    const frame = src.subarray(f * FRAME, (f + 1) * FRAME)
    if (f > 5 && f % 7 === 0) {
      t.equal(codec.conceal(out), FRAME)
      pitchSum += snr(frame.subarray(0, 80), out.subarray(0, 80))
      repeatSum += snr(frame.subarray(0, 80), repeatConceal(last).subarray(0, 80))
      losses++
      continue
    }
    codec.encode(frame, payload)
    t.equal(codec.decode(payload, out), FRAME)
    last = out.slice(0, FRAME)
  }
  const pitch = pitchSum / losses
  const repeat = repeatSum / losses
  t.ok(pitch > repeat + 3, `${losses} losses: mean SNR of the first 10 ms ${pitch.toFixed(1)} dB vs ${repeat.toFixed(1)} dB for repetition`)
})

t.test('PLC before any audio is silence; G.722 and L16 conceal at their rates', async (t) => {
  const plc = new PitchConcealer(8000, FRAME)
  const out = new Int16Array(FRAME).fill(99)
  plc.conceal(out)
  t.ok(out.every((v) => v === 0), 'silence when nothing was heard yet')
  for (const [name, clockRate, rate] of [['G722', undefined, 16000], ['L16', 16000, 16000]] as const) {
    const c = createCodec({ name, clockRate })
    const src = sine(200, rate, 0.5, 8000)
    const fs = c.frameSamples
    const payload = new Uint8Array(fs * 2)
    const pcm = new Int16Array(fs * 6)
    for (let f = 0; f < 10; f++) { c.encode(src.subarray(f * fs, (f + 1) * fs), payload); c.decode(payload.subarray(0, c.name === 'G722' ? fs / 2 : fs * 2), pcm) }
    t.equal(c.conceal(pcm), fs, `${name}: one frame`)
    t.ok(rms(pcm.subarray(0, fs / 2)) > 3000, `${name}: concealed audio carries the tone (rms ${rms(pcm.subarray(0, fs / 2)).toFixed(0)})`)
  }
})
