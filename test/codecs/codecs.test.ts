import t from 'tap'
import {
  ALAW_DECODE, ULAW_DECODE, ULAW_TO_ALAW, ALAW_TO_ULAW, ULAW_ENCODE, ALAW_ENCODE,
  encodeUlaw, decodeUlaw, createCodec, encodeL16, decodeL16, resample, Resampler, G722Encoder, G722Decoder, defaultOpusComplexity,
} from '../../codecs/index.ts'
import { chirpy, sine, snrDb, bestLag, toneAmplitude } from './signal.ts'

function roundTrip(name: string, sampleRate?: 8000 | 16000 | 48000) {
  const c = createCodec({ name, sampleRate })
  const src = chirpy(c.sampleRate, 1)
  const out = new Int16Array(src.length)
  const payload = new Uint8Array(1500)
  const pcm = new Int16Array(c.sampleRate * 0.12)
  let w = 0
  let bytes = 0
  for (let i = 0; i + c.frameSamples <= src.length; i += c.frameSamples) {
    const n = c.encode(src.subarray(i, i + c.frameSamples), payload)
    bytes += n
    const m = c.decode(payload.subarray(0, n), pcm)
    out.set(pcm.subarray(0, m), w)
    w += m
  }
  const { lag, corr } = bestLag(src, out, c.sampleRate / 100, c.sampleRate / 4, c.sampleRate / 4)
  const snr = snrDb(src, out, c.sampleRate / 4, c.sampleRate / 2, lag)
  return { snr, lag, corr, bytes, samples: w, codec: c }
}

t.test('G.711 tables match the ITU reference points', async (t) => {
  t.equal(ULAW_DECODE[0xff], 0, 'µ-law 0xFF is zero')
  t.equal(ULAW_DECODE[0x00], -32124, 'µ-law 0x00 is negative full scale')
  t.equal(ULAW_DECODE[0x80], 32124, 'µ-law 0x80 is positive full scale')
  t.equal(ALAW_DECODE[0xd5], 8, 'A-law 0xD5 is +8')
  t.equal(ALAW_DECODE[0x55], -8, 'A-law 0x55 is -8')
  t.equal(ALAW_DECODE[0xaa], 32256, 'A-law 0xAA is positive full scale')
  // Every code decodes and re-encodes to itself (µ-law has two zeros: 0x7F and 0xFF).
  let ulawStable = 0
  let alawStable = 0
  for (let i = 0; i < 256; i++) {
    if (ULAW_ENCODE[ULAW_DECODE[i]! & 0xffff] === i) ulawStable++
    if (ALAW_ENCODE[ALAW_DECODE[i]! & 0xffff] === i) alawStable++
  }
  t.equal(ulawStable, 255, 'µ-law codes are fixed points except the negative zero')
  t.equal(alawStable, 256, 'A-law codes are fixed points')
  t.equal(ALAW_DECODE[ULAW_TO_ALAW[0x80]!], 32256, 'µ→A keeps full scale')
  t.equal(ULAW_DECODE[ALAW_TO_ULAW[0xd5]!], 8, 'A→µ keeps small values')
})

t.test('μ-law round trip stays within G.711 quantisation error', async (t) => {
  for (const v of [0, 1, -1, 100, -100, 1000, -1000, 12345, -12345, 32767, -32768]) {
    const back = ULAW_DECODE[ULAW_ENCODE[v & 0xffff]!]!
    t.ok(Math.abs(back - Math.max(-32635, Math.min(32635, v))) <= Math.max(8, Math.abs(v) / 16), `${v} → ${back}`)
  }
  t.equal(ULAW_ENCODE[0], 0xff, 'silence encodes to 0xFF')
  const codes = new Uint8Array(2)
  encodeUlaw(new Int16Array([0, 0]), codes)
  const back = new Int16Array(2)
  decodeUlaw(codes, back)
  t.same(back, new Int16Array([0, 0]))
})

for (const [name, min] of [['PCMU', 35], ['PCMA', 35]] as const) {
  t.test(`${name} round trip SNR ≥ ${min} dB`, async (t) => {
    const r = roundTrip(name)
    t.equal(r.lag, 0, 'no codec delay')
    t.equal(r.bytes, 8000 - 160 * 0, 'one byte per sample')
    t.ok(r.snr >= min, `SNR ${r.snr.toFixed(1)} dB`)
  })
}

t.test('G.722 round trip: 64 kbit/s, wideband tone survives, SNR ≥ 30 dB', async (t) => {
  const r = roundTrip('G722')
  t.equal(r.bytes, 8000, '64 kbit/s: 8000 bytes per second of 16 kHz audio')
  t.equal(r.samples, 16000)
  t.ok(r.snr >= 30, `SNR ${r.snr.toFixed(1)} dB at lag ${r.lag}`)
  // A 6 kHz tone is above the G.711 band: G.722 must carry it (wideband).
  const enc = new G722Encoder()
  const dec = new G722Decoder()
  const tone = sine(6000, 16000, 0.5, 8000)
  const bytes = new Uint8Array(tone.length / 2)
  enc.encode(tone, bytes)
  const out = new Int16Array(tone.length)
  dec.decode(bytes, out)
  const amp = toneAmplitude(out, 16000, 6000, 2000, 4000)
  t.ok(amp > 6000, `6 kHz tone amplitude ${amp.toFixed(0)} of 8000`)
})

t.test('Opus round trip at 48 kHz and 16 kHz, SNR ≥ 12 dB, PLC fills a frame', async (t) => {
  for (const rate of [48000, 16000] as const) {
    const r = roundTrip('opus', rate)
    t.equal(r.codec.timestampStep, 960, 'RTP clock is 48 kHz regardless of PCM rate')
    t.ok(r.corr > 0.97, `${rate}: correlation ${r.corr.toFixed(4)}`)
    t.ok(r.snr >= 12, `${rate}: SNR ${r.snr.toFixed(1)} dB`)
    t.ok(r.bytes < 48000 / 8 * 1.2, `${rate}: bitrate ≈ ${(r.bytes * 8 / 1000).toFixed(1)} kbit/s`)
    const pcm = new Int16Array(rate / 50)
    t.equal(r.codec.conceal(pcm), rate / 50, 'conceal produces one 20 ms frame')
  }
  const c = createCodec({ name: 'opus', fmtp: 'useinbandfec=1;usedtx=1;maxplaybackrate=16000;maxaveragebitrate=20000' })
  t.ok(c.encode(new Int16Array(960), new Uint8Array(1500)) > 0, 'encoder accepts the fmtp CTLs')
})

t.test('Opus at 8 kHz and 16 kHz PCM (RTP clock still 48 kHz): SNR at default and full complexity', async (t) => {
  for (const rate of [8000, 16000] as const) {
    const fast = roundTrip('opus', rate)
    t.equal(fast.codec.timestampStep, 960, `${rate}: RTP timestamp step is 960 (48 kHz clock, RFC 7587 §4.1)`)
    t.equal(fast.codec.frameSamples, rate / 50, `${rate}: 20 ms frames of ${rate / 50} samples`)
    t.ok(fast.corr > 0.99, `${rate}: correlation ${fast.corr.toFixed(4)}`)
    t.ok(fast.snr >= 16, `${rate}: SNR ${fast.snr.toFixed(1)} dB at default complexity ${defaultOpusComplexity(rate)}`)
    // Full complexity as the quality reference: the cheap default may lose a few dB, not the signal.
    const c10 = createCodec({ name: 'opus', sampleRate: rate, opusComplexity: 10 })
    const src = chirpy(rate, 1)
    const out = new Int16Array(src.length)
    const payload = new Uint8Array(1500)
    const pcm = new Int16Array(rate * 0.12)
    for (let i = 0, w = 0; i + c10.frameSamples <= src.length; i += c10.frameSamples) {
      const n = c10.encode(src.subarray(i, i + c10.frameSamples), payload)
      const m = c10.decode(payload.subarray(0, n), pcm)
      out.set(pcm.subarray(0, m), w)
      w += m
    }
    const snr10 = snrDb(src, out, rate / 4, rate / 2, fast.lag)
    t.ok(fast.snr >= snr10 - 6, `${rate}: default complexity SNR ${fast.snr.toFixed(1)} dB within 6 dB of complexity 10 (${snr10.toFixed(1)} dB)`)
  }
})

t.test('Opus PLC conceals exactly one 20 ms frame, continues the signal, and resumes cleanly', async (t) => {
  for (const rate of [8000, 48000] as const) {
    const enc = createCodec({ name: 'opus', sampleRate: rate })
    const dec = createCodec({ name: 'opus', sampleRate: rate })
    const fs = rate / 50
    const src = sine(300, rate, 1, 8000)
    const payload = new Uint8Array(1500)
    const out = new Int16Array(rate * 0.12)
    const packets: Uint8Array[] = []
    for (let i = 0; i + fs <= src.length; i += fs) packets.push(payload.slice(0, enc.encode(src.subarray(i, i + fs), payload)))
    for (let k = 0; k < 20; k++) dec.decode(packets[k]!, out)
    out.fill(12345)
    t.equal(dec.conceal(out), fs, `${rate}: conceal reports one frame`)
    t.equal(out[fs], 12345, `${rate}: nothing written past one frame`)
    // libopus PLC extrapolates the tone: energy near the source level, not silence.
    const plcAmp = toneAmplitude(out.subarray(0, fs), rate, 300)
    t.ok(plcAmp > 2000, `${rate}: concealed frame carries the 300 Hz tone (amplitude ${plcAmp.toFixed(0)})`)
    // Packet 20 was "lost"; 21 onwards decode in step (the decoder clock advanced 20 ms, not 720).
    const tail = new Int16Array(fs * 10)
    for (let k = 21; k < 31; k++) { const n = dec.decode(packets[k]!, out); tail.set(out.subarray(0, n), (k - 21) * fs) }
    const amp = toneAmplitude(tail, rate, 300, fs * 5, fs * 5)
    t.ok(amp > 6000, `${rate}: tone back at full level after the loss (${amp.toFixed(0)} of 8000)`)
  }
  const fresh = createCodec({ name: 'opus', sampleRate: 8000 })
  const out = new Int16Array(160).fill(7)
  t.equal(fresh.conceal(out), 160, 'conceal before any packet still yields a frame')
  t.ok(out.every((v) => Math.abs(v) < 100), 'and that frame is (near) silence')
})

t.test('L16 is big-endian on the wire', async (t) => {
  const pcm = Int16Array.from([1, -2, 0x1234, -32768])
  const out = new Uint8Array(8)
  encodeL16(pcm, out)
  t.same([...out], [0, 1, 0xff, 0xfe, 0x12, 0x34, 0x80, 0x00])
  const back = new Int16Array(4)
  decodeL16(out, back)
  t.same([...back], [...pcm])
})

t.test('resampler: flat passband, stopband ≥ 60 dB, exact length', async (t) => {
  const pairs: [number, number][] = [[8000, 16000], [16000, 8000], [8000, 48000], [48000, 8000], [16000, 48000], [48000, 16000], [24000, 16000], [16000, 24000]]
  for (const [a, b] of pairs) {
    const low = Math.min(a, b)
    for (const f of [300, 1000, 3000]) {
      const y = resample(sine(f, a, 0.5, 10000), a, b)
      t.equal(y.length, b / 2, `${a}→${b} length`)
      const gainDb = 20 * Math.log10(toneAmplitude(y, b, f, b / 20, b / 4) / 10000)
      t.ok(Math.abs(gainDb) < 0.2, `${a}→${b} ${f} Hz gain ${gainDb.toFixed(2)} dB`)
    }
    if (a > b) {
      // A tone above the output Nyquist must not alias into the band.
      const f = low * 0.6
      const y = resample(sine(f, a, 0.5, 10000), a, b)
      let e = 0
      for (let i = b / 20; i < b / 20 + b / 4; i++) e += y[i]! * y[i]!
      const attDb = 20 * Math.log10(Math.sqrt(e / (b / 4)) / (10000 / Math.SQRT2) + 1e-9)
      t.ok(attDb < -60, `${a}→${b}: ${f} Hz alias at ${attDb.toFixed(1)} dB`)
    }
  }
  // Streaming in 20 ms chunks gives the same sample count as the one-shot path.
  const r = new Resampler(8000, 48000)
  const out = new Int16Array(r.maxOutput(160))
  let total = 0
  const src = sine(440, 8000, 1)
  for (let i = 0; i < src.length; i += 160) total += r.process(src.subarray(i, i + 160), out)
  t.ok(Math.abs(total - 48000) <= 8, `streamed ${total} samples`)
})
