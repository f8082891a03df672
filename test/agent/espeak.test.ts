import t from 'tap'
import { EspeakTts } from '../../agent/adapters/tts/espeak.ts'
import type { PcmChunk } from '../../agent/adapters/tts/contract.ts'

async function collect(s: AsyncIterable<PcmChunk>): Promise<{ samples: number; rate: number; chunks: number }> {
  let samples = 0
  let rate = 0
  let chunks = 0
  for await (const c of s) {
    samples += c.samples.length
    rate = c.sampleRate
    chunks++
  }
  return { samples, rate, chunks }
}

t.test('espeak-ng streams PCM at its native rate and reports TTFB', async (t) => {
  const tts = new EspeakTts()
  const s = tts.synthesize({ text: 'Thanks for calling. How can I help you today?', signal: new AbortController().signal })
  const r = await collect(s)
  t.equal(r.rate, 22050, 'native espeak-ng rate passed through')
  t.ok(r.samples / r.rate > 1.5 && r.samples / r.rate < 6, `plausible duration ${(r.samples / r.rate).toFixed(2)} s`)
  t.type(s.ttfbMs, 'number')
  t.ok(s.ttfbMs! > 0 && s.ttfbMs! < 2000, `ttfb ${s.ttfbMs?.toFixed(1)} ms`)
})

t.test('abort stops synthesis early', async (t) => {
  const tts = new EspeakTts()
  const long = 'This is a long sentence that keeps going. '.repeat(20)
  const full = await collect(tts.synthesize({ text: long, signal: new AbortController().signal }))
  const ac = new AbortController()
  const s = tts.synthesize({ text: long, signal: ac.signal })
  let samples = 0
  for await (const c of s) {
    samples += c.samples.length
    ac.abort()
  }
  t.ok(samples < full.samples, `aborted stream produced less audio (${samples} < ${full.samples})`)
})

t.test('text that looks like a flag is spoken, not parsed', async (t) => {
  const tts = new EspeakTts()
  const r = await collect(tts.synthesize({ text: '--help -w /tmp/x.wav', signal: new AbortController().signal }))
  t.ok(r.samples > 0)
})

t.test('voice option is honoured; a missing binary is an error', async (t) => {
  const de = await collect(new EspeakTts({ voice: 'de' }).synthesize({ text: 'Guten Tag', signal: new AbortController().signal }))
  t.ok(de.samples > 0)
  // A missing binary is an adapter error, not a hang.
  await t.rejects(collect(new EspeakTts({ binary: '/nonexistent/espeak-ng' }).synthesize({ text: 'hello', signal: new AbortController().signal })))
})
