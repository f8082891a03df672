/**
 * Recognise agent audio the way a caller's side would: the recorded outbound
 * PCM is run through pocketsphinx (real binary) with a grammar of the phrases
 * we expect to hear.
 */
import { performance } from 'node:perf_hooks'
import type { SampleRate } from '../../../audio/frame.ts'
import { PocketsphinxStt } from '../../../agent/adapters/stt/pocketsphinx.ts'
import { concatPcm, silencePcm, toFrames } from './audio.ts'

export async function recognize(pcm: Int16Array, phrases: string[], rate: SampleRate = 8000): Promise<string[]> {
  const stt = new PocketsphinxStt({ lmFallback: false })
  // Whole phrases only: clause alternatives made short words ("hello",
  // "goodbye") match inside unrelated speech.
  const s = await stt.open({ sampleRate: rate, phrases })
  const got: string[] = []
  let lastEvent = performance.now()
  let utterances = 0
  const reader = (async () => {
    for await (const e of s.events()) {
      lastEvent = performance.now()
      if (e.type === 'final') got.push(e.text)
      if (e.type === 'end_of_utterance') utterances++
    }
  })()
  for (const f of toFrames(concatPcm(silencePcm(300, rate), pcm, silencePcm(300, rate)), rate)) s.push(f)
  s.flush()
  // Done when the decoder has closed at least one utterance and stayed quiet
  // for a while (it may split long audio into several), or after a hard cap.
  const cap = performance.now() + 5000 + (pcm.length / rate) * 1000
  while (performance.now() < cap && !(utterances > 0 && performance.now() - lastEvent > 400)) await new Promise((r) => setTimeout(r, 50))
  await s.close()
  await reader
  return got
}

/** Cuts audio at pauses of at least `gapMs` (20 ms frames below a fixed level: the line is digitally silent between sentences). */
export function talkSpurts(pcm: Int16Array, rate: number, gapMs: number): Int16Array[] {
  const frame = rate / 50
  const out: Int16Array[] = []
  let start = -1
  let quiet = 0
  for (let i = 0; i + frame <= pcm.length; i += frame) {
    let e = 0
    for (let j = i; j < i + frame; j++) e += pcm[j]! * pcm[j]!
    const voiced = Math.sqrt(e / frame) > 300
    if (voiced) {
      if (start < 0) start = i
      quiet = 0
    } else if (start >= 0 && (quiet += 20) >= gapMs) {
      out.push(pcm.subarray(start, i))
      start = -1
    }
  }
  if (start >= 0) out.push(pcm.subarray(start))
  return out.filter((s) => s.length >= rate / 4)
}
