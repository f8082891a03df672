/**
 * Memory-per-session changes in the codecs (issue 4): the Opus encoder state
 * is created by the first encode (a leg that never sends never pays for it),
 * and the resampler's history covers one 20 ms frame per pass instead of a
 * flat 4096 samples. Both must leave the audio exactly as before.
 */
import t from 'tap'
import { createCodec, OpusCodecCore, Resampler } from '../../codecs/index.ts'
import { chirpy, sine, snrDb, bestLag } from './signal.ts'

function encodeSecond(core: OpusCodecCore, rate: 8000 | 16000): Uint8Array[] {
  const src = chirpy(rate, 1)
  const n = rate / 50
  const out = new Uint8Array(1500)
  const packets: Uint8Array[] = []
  for (let i = 0; i + n <= src.length; i += n) packets.push(out.slice(0, core.encode(src.subarray(i, i + n), out)))
  return packets
}

t.test('Opus: a decode-only core never creates the encoder and decodes another encoder\'s stream', async (t) => {
  const sender = new OpusCodecCore(8000)
  const packets = encodeSecond(sender, 8000)
  t.equal(sender.hasEncoder, true, 'the sending side created its encoder on the first encode')
  const receiver = new OpusCodecCore(8000)
  const src = chirpy(8000, 1)
  const out = new Int16Array(src.length)
  const pcm = new Int16Array(960)
  let w = 0
  for (const p of packets) { const m = receiver.decode(p, pcm); out.set(pcm.subarray(0, m), w); w += m }
  t.equal(receiver.conceal(pcm), 160, 'conceal still yields one 20 ms frame')
  t.equal(receiver.hasEncoder, false, 'decode and conceal alone leave the encoder uncreated')
  t.equal(w, src.length, 'one frame out per packet')
  const { lag, corr } = bestLag(src, out, 80, 2000, 2000)
  t.ok(corr > 0.99, `decoded signal matches the source (correlation ${corr.toFixed(4)})`)
  t.ok(snrDb(src, out, 2000, 4000, lag) >= 16, 'SNR ≥ 16 dB')
})

t.test('Opus: the deferred CTLs still apply (bitrate, maxaveragebitrate, complexity)', async (t) => {
  const bytes = (core: OpusCodecCore) => encodeSecond(core, 8000).reduce((a, p) => a + p.length, 0)
  const dflt = bytes(new OpusCodecCore(8000))
  const capped = bytes(new OpusCodecCore(8000, { maxAverageBitrate: 8000 }))
  // Default 16 kbit/s at 8 kHz: ~2000 bytes per second; 8 kbit/s: ~1000.
  t.ok(dflt > 1400 && dflt < 2600, `default ≈ 16 kbit/s (${(dflt * 8 / 1000).toFixed(1)} kbit/s)`)
  t.ok(capped > 700 && capped < 1300, `maxaveragebitrate=8000 ≈ 8 kbit/s (${(capped * 8 / 1000).toFixed(1)} kbit/s)`)
  const c = new OpusCodecCore(8000, { complexity: 7 })
  t.equal(c.complexity, 7)
  t.equal(c.hasEncoder, false, 'no encoder before the first frame')
  // The fmtp path through createCodec sends at once, as a session's egress does.
  const codec = createCodec({ name: 'opus', sampleRate: 16000, fmtp: 'useinbandfec=1;usedtx=1;maxplaybackrate=8000' })
  t.ok(codec.encode(new Int16Array(320), new Uint8Array(1500)) > 0, 'first encode applies the fmtp CTLs and encodes')
})

t.test('resampler: output does not depend on how the input is chunked (history holds one frame per pass)', async (t) => {
  for (const [a, b] of [[8000, 48000], [48000, 16000], [16000, 8000], [8000, 16000], [22050, 16000], [44100, 48000]] as const) {
    const src = sine(440, a, 1)
    const whole = new Resampler(a, b)
    const outWhole = new Int16Array(whole.maxOutput(src.length))
    const nWhole = whole.process(src, outWhole)
    const framed = new Resampler(a, b)
    const outFramed = new Int16Array(nWhole + 64)
    const frame = Math.round(a / 50)
    const tmp = new Int16Array(framed.maxOutput(frame))
    let nFramed = 0
    for (let i = 0; i < src.length; i += frame) {
      const m = framed.process(src.subarray(i, i + frame), tmp)
      outFramed.set(tmp.subarray(0, m), nFramed)
      nFramed += m
    }
    t.equal(nWhole, nFramed, `${a}→${b}: same length one-shot (${nWhole}) and in 20 ms frames`)
    t.same(outWhole.subarray(0, nWhole), outFramed.subarray(0, nFramed), `${a}→${b}: identical samples`)
    t.ok(Math.abs(nWhole - Math.round((src.length * b) / a)) <= whole.delay + 4, `${a}→${b}: length matches the ratio`)
  }
})
