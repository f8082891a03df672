import t from 'tap'
import { SpeechDetector, type SpeechStartEvent, type SpeechEndEvent } from '../../../agent/vad/speech-detector.ts'
import { chirpy } from '../../codecs/signal.ts'

function run(vad: SpeechDetector, pcm: Int16Array) {
  const starts: SpeechStartEvent[] = []
  const ends: SpeechEndEvent[] = []
  vad.on('speechStart', (e) => starts.push(e))
  vad.on('speechEnd', (e) => ends.push(e))
  for (let i = 0; i + 160 <= pcm.length; i += 160) {
    vad.onFrame({ samples: pcm.subarray(i, i + 160), sampleRate: 8000, rtpTimestamp: i, receivedAt: (i / 160) * 20 })
  }
  return { starts, ends }
}

t.test('VAD: one start at the real onset and one end after the hangover, over background noise', async (t) => {
  let seed = 1
  const noise = () => { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return (seed / 0x7fffffff - 0.5) * 60 }
  const pcm = new Int16Array(8000 * 3)
  for (let i = 0; i < pcm.length; i++) pcm[i] = Math.round(noise())
  const speech = chirpy(8000, 1)
  // Speech from 1.0 s to 2.0 s (chirpy has a 3 Hz envelope: keep it above the floor).
  for (let i = 0; i < speech.length; i++) pcm[8000 + i] = Math.max(-32768, Math.min(32767, pcm[8000 + i]! + speech[i]! + (i % 2 ? 3000 : -3000)))
  const { starts, ends } = run(new SpeechDetector(), pcm)
  t.equal(starts.length, 1, 'one speech start')
  t.equal(ends.length, 1, 'one speech end')
  t.ok(Math.abs(starts[0]!.at - 1000) <= 20, `start reported at the first voiced frame (${starts[0]!.at} ms)`)
  t.ok(ends[0]!.at >= 2000 + 14 * 20 && ends[0]!.at <= 2000 + 16 * 20, `end after the 300 ms hangover (${ends[0]!.at} ms)`)
})

t.test('VAD ignores a short click and steady noise', async (t) => {
  const pcm = new Int16Array(8000 * 2)
  for (let i = 0; i < pcm.length; i++) pcm[i] = (i * 7919) % 41 - 20
  for (let i = 4000; i < 4160; i++) pcm[i] = 20000 // one 20 ms click
  const { starts } = run(new SpeechDetector(), pcm)
  t.equal(starts.length, 0)
})
