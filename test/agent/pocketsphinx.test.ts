import t from 'tap'
import { PocketsphinxStt } from '../../agent/adapters/stt/pocketsphinx.ts'
import { buildJsgf } from '../../agent/adapters/stt/jsgf.ts'
import type { SttEvent } from '../../agent/adapters/stt/contract.ts'
import { concatPcm, silencePcm, speechPcm, toFrames } from './helpers/audio.ts'

const PHRASES = [
  'I would like to check my order status',
  'talk to a human',
  'goodbye',
  'yes',
  'no',
  'what are your opening hours',
  'I want to book an appointment',
]

async function recognizeOne(stt: PocketsphinxStt, pcm: Int16Array, phrases: string[]): Promise<SttEvent & { type: 'final' } | undefined> {
  const s = await stt.open({ sampleRate: 8000, phrases })
  try {
    for (const f of toFrames(concatPcm(silencePcm(300), pcm, silencePcm(200)))) s.push(f)
    s.flush()
    for await (const e of s.events()) {
      if (e.type === 'final') return e
      if (e.type === 'end_of_utterance') return undefined
    }
    return undefined
  } finally {
    await s.close()
  }
}

t.test('JSGF grammar is generated from phrases, dropping OOV words', async (t) => {
  const g = buildJsgf(['Check my ORDER status!', 'zzqxv', 'talk to a human'])
  t.match(g.jsgf, /public <utt> = check my order status \| talk to a human;/)
  t.same(g.oov, ['zzqxv'])
  t.throws(() => buildJsgf(['zzqxv']))
})

t.test('in-grammar phrases spoken by espeak-ng through an 8 kHz phone band are recognized word for word', async (t) => {
  const stt = new PocketsphinxStt()
  const cases = ['talk to a human', 'goodbye', 'yes', 'what are your opening hours', 'I want to book an appointment']
  for (const p of cases) {
    const r = await recognizeOne(stt, speechPcm(p, 8000), PHRASES)
    t.equal(r?.text, p.toLowerCase(), `"${p}"`)
    t.equal(r?.source, 'grammar')
  }
})

t.test('out-of-grammar speech falls back to the general language model', async (t) => {
  const stt = new PocketsphinxStt()
  const r = await recognizeOne(stt, speechPcm('the weather is lovely in the mountains today', 8000), ['I want to book an appointment'])
  t.ok(r, 'a result arrives')
  t.equal(r?.source, 'lm-fallback', `got "${r?.text}" from ${r?.source}`)
  t.ok((r?.text.length ?? 0) > 0)
})

t.test('close() kills the decoder and ends the event stream', async (t) => {
  const stt = new PocketsphinxStt()
  const s = await stt.open({ sampleRate: 8000, phrases: PHRASES })
  const events = (async () => {
    const got: SttEvent[] = []
    for await (const e of s.events()) got.push(e)
    return got
  })()
  await s.close()
  t.same(await events, [])
})

t.test('the first phrase after seconds of line silence is recognized (decoder gated to talk spurts)', async (t) => {
  // Regression: fed the band-fill noise of a silent line, the decoder's live
  // CMN drifted to the noise's cepstrum and the next phrase missed the grammar
  // ("goodbye" after 1–6 s of silence: 0 of 9 before the gate).
  const stt = new PocketsphinxStt()
  for (const [lead, p] of [[1500, 'goodbye'], [3000, 'goodbye'], [2000, 'talk to a human'], [3000, 'what are your opening hours']] as const) {
    const s = await stt.open({ sampleRate: 8000, phrases: PHRASES })
    const finals: string[] = []
    try {
      for (const f of toFrames(concatPcm(silencePcm(lead), speechPcm(p, 8000), silencePcm(600)))) s.push(f)
      s.flush()
      for await (const e of s.events()) {
        if (e.type === 'final') finals.push(`${e.source}: ${e.text}`)
        if (e.type === 'final' || e.type === 'end_of_utterance') break
      }
    } finally {
      await s.close()
    }
    t.same(finals, [`grammar: ${p}`], `"${p}" after ${lead} ms of silence`)
  }
})
