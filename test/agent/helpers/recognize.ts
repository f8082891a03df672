/**
 * Recognise agent audio the way a caller's side would: the recorded outbound
 * PCM is run through pocketsphinx (real binary) with a grammar of the phrases
 * we expect to hear.
 */
import type { SampleRate } from '../../../media/frame.ts'
import { PocketsphinxStt } from '../../../agent/adapters/stt/pocketsphinx.ts'
import { concatPcm, silencePcm, toFrames } from './audio.ts'

export async function recognize(pcm: Int16Array, phrases: string[], rate: SampleRate = 8000): Promise<string[]> {
  const stt = new PocketsphinxStt({ lmFallback: false })
  // The decoder's own VAD may cut a sentence at a comma pause, so every clause
  // is also a grammar alternative; callers check the joined result.
  const clauses = phrases.flatMap((p) => [p, ...p.split(/[,.;!?]/)]).map((p) => p.trim()).filter(Boolean)
  const s = await stt.open({ sampleRate: rate, phrases: clauses })
  const got: string[] = []
  const reader = (async () => {
    for await (const e of s.events()) if (e.type === 'final') got.push(e.text)
  })()
  for (const f of toFrames(concatPcm(silencePcm(300, rate), pcm, silencePcm(300, rate)), rate)) s.push(f)
  s.flush()
  // The decoder runs ~15x real time; give it the audio's duration / 5 plus start-up.
  await new Promise((r) => setTimeout(r, 600 + (pcm.length / rate) * 200))
  await s.close()
  await reader
  return got
}
