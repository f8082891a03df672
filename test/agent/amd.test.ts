import t from 'tap'
import { AnsweringMachineDetector, type AmdResult } from '../../agent/amd.ts'
import { concatPcm, silencePcm, speechPcm, toFrames } from './helpers/audio.ts'

function detect(pcm: Int16Array): AmdResult | undefined {
  const d = new AnsweringMachineDetector()
  for (const f of toFrames(pcm)) {
    const r = d.process(f)
    if (r) return r
  }
  return d.done
}

t.test('a short "Hello?" followed by waiting is a human', async (t) => {
  const r = detect(concatPcm(silencePcm(400), speechPcm('Hello?'), silencePcm(2000)))
  t.match(r, { verdict: 'human', cause: 'HUMAN' })
  t.ok(r!.decidedAfterMs < 2500, `decided after ${r?.decidedAfterMs} ms`)
})

t.test('a voicemail greeting is a machine', async (t) => {
  const r = detect(concatPcm(silencePcm(300), speechPcm('Hi, you have reached the voicemail of John Smith. I am not available right now. Please leave a message after the tone.'), silencePcm(1000)))
  t.equal(r?.verdict, 'machine')
  t.match(r?.cause, /LONGGREETING|MAXWORDS/)
})

t.test('dead air is reported as initial silence', async (t) => {
  t.match(detect(silencePcm(4000)), { verdict: 'machine', cause: 'INITIALSILENCE' })
})
