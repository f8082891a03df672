import t from 'tap'
import { mkdtempSync, readFileSync, copyFileSync, existsSync } from 'node:fs'
import { createServer } from 'node:http'
import { execFileSync } from 'node:child_process'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { PcmSource, ToneSource, loadAudio } from '../../media/playback.ts'
import { parseWav } from '../../media/wav.ts'
import { WavRecorder } from '../../media/recorder.ts'
import { startRecording, stopRecording } from '../../media/taps.ts'
import { engineFor, connectedPair, frameCollector, concatFrames, sleep } from './helpers.ts'
import { sine, toneAmplitude, rms } from '../codecs/signal.ts'

const dir = mkdtempSync(join(tmpdir(), 'media-rec-'))

t.test('stereo recording: caller on the left, our audio on the right, readable mid-call', async (t) => {
  const engine = await engineFor(t)
  const [us, caller] = await connectedPair(engine, { codecs: ['PCMU'] }, { codecs: ['PCMU'] })
  const path = join(dir, 'call.wav')
  const rec = startRecording(us, path, 'stereo')
  const plays = Promise.all([caller.play(new PcmSource(sine(500, 8000, 2), 8000)), us.play(new PcmSource(sine(1500, 8000, 2), 8000))])
  await sleep(1200)
  // Crash safety: the file on disk is already a valid WAV with most of the audio.
  const partial = parseWav(readFileSync(path))
  t.ok(partial.pcm.length >= 8000 * 0.5, `mid-call file holds ${(partial.pcm.length / 8000).toFixed(2)} s`)
  await plays
  await sleep(300)
  const res = stopRecording(us, rec)
  t.equal(res.channels, 2)
  t.ok(res.durationMs >= 2000 && res.durationMs < 2800, `duration ${res.durationMs} ms`)
  const buf = readFileSync(path)
  t.equal(buf.readUInt32LE(40), buf.length - 44, 'data size in header matches file')
  t.equal(buf.readUInt32LE(4), buf.length - 8, 'RIFF size matches')
  const n = (buf.length - 44) / 4
  const left = new Int16Array(n)
  const right = new Int16Array(n)
  for (let i = 0; i < n; i++) { left[i] = buf.readInt16LE(44 + i * 4); right[i] = buf.readInt16LE(46 + i * 4) }
  const mid = Math.floor(n / 2)
  t.ok(toneAmplitude(left, 8000, 500, mid - 2000, 4000) > 8000, 'caller tone on the left')
  t.ok(toneAmplitude(left, 8000, 1500, mid - 2000, 4000) < 300, 'no agent tone on the left')
  t.ok(toneAmplitude(right, 8000, 1500, mid - 2000, 4000) > 8000, 'our tone on the right')
  t.ok(toneAmplitude(right, 8000, 500, mid - 2000, 4000) < 300, 'no caller tone on the right')
})

t.test('recorder writes incrementally and a truncated (crashed) file still parses', async (t) => {
  const path = join(dir, 'inc.wav')
  const rec = new WavRecorder({ path, sampleRate: 8000, mode: 'inbound', flushEveryMs: 100 })
  const tone = sine(440, 8000, 1)
  for (let i = 0; i < 50; i++) rec.onFrame({ samples: tone.subarray(i * 160, i * 160 + 160), sampleRate: 8000, rtpTimestamp: 0, receivedAt: 0 })
  // Simulate a crash: copy the file as it is on disk before close().
  const crashed = join(dir, 'crashed.wav')
  copyFileSync(path, crashed)
  const got = parseWav(readFileSync(crashed))
  t.ok(got.pcm.length >= 7000, `crash copy holds ${got.pcm.length} samples`)
  t.same(Array.from(got.pcm.subarray(0, 100)), Array.from(tone.subarray(0, 100)), 'samples are exact')
  const res = rec.close()
  t.equal(res.durationMs, 1000)
})

t.test('playback: WAV file at another rate, tones, MP3 over HTTP', async (t) => {
  const engine = await engineFor(t)
  const [us, peer] = await connectedPair(engine, { codecs: ['PCMU'] }, { codecs: ['PCMU'] })
  const frames = frameCollector(peer)
  // 16 kHz WAV made by sox: resampled to the call's 8 kHz once at load.
  const wav = join(dir, 'tone16k.wav')
  execFileSync('sox', ['-n', '-r', '16000', '-b', '16', '-c', '1', wav, 'synth', '1', 'sine', '700', 'vol', '0.3'])
  const src = await loadAudio(wav, 8000)
  t.equal(src.sampleRate, 8000)
  t.ok(Math.abs(src.pcm.length - 8000) < 10, 'length preserved across resampling')
  t.equal(await us.play(src), 'done')
  t.equal(await us.play(ToneSource.named('beep', 8000)), 'done')
  await sleep(200)
  const pcm = concatFrames(frames)
  // Locate the 700 Hz segment and then the 1 kHz beep after it.
  let best = 0
  for (let o = 0; o + 4000 < pcm.length; o += 800) best = Math.max(best, toneAmplitude(pcm, 8000, 700, o, 4000))
  t.ok(best > 0.3 * 32767 * 0.8, `700 Hz WAV heard at ${best.toFixed(0)}`)
  let beep = 0
  for (let o = 0; o + 1600 < pcm.length; o += 160) beep = Math.max(beep, toneAmplitude(pcm, 8000, 1000, o, 1600))
  t.ok(beep > 6000, `1 kHz beep heard at ${beep.toFixed(0)}`)

  const mp3 = '/usr/lib/google-cloud-sdk/platform/gsutil/gslib/tests/test_data/test.mp3'
  if (!existsSync(mp3)) { t.comment('no MP3 fixture on this host: MP3 part not run'); return }
  const server = createServer((req, res) => { res.setHeader('content-type', 'audio/mpeg'); res.end(readFileSync(mp3)) })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()))
  t.teardown(() => server.close())
  const port = (server.address() as { port: number }).port
  const mp3src = await loadAudio(`http://127.0.0.1:${port}/test.mp3`, 8000)
  // The fixture is 25920 samples of 22.05 kHz stereo (digital silence): 1.1755 s.
  const expected = Math.round((25920 * 8000) / 22050)
  t.ok(Math.abs(mp3src.pcm.length - expected) <= 2, `MP3 decoded to ${mp3src.pcm.length} samples at 8 kHz (expected ${expected})`)
})

t.test('tones: ringback cadence and music on hold', async (t) => {
  const rb = ToneSource.named('ringback', 8000, 6000)
  const frames: Int16Array[] = []
  for (let f = rb.nextFrame(); f; f = rb.nextFrame()) frames.push(f.slice())
  t.equal(frames.length, 300, '6 s of frames')
  const on = frames.slice(0, 100).every((f) => rms(f) > 1000)
  const off = frames.slice(100, 300).every((f) => rms(f) === 0)
  t.ok(on && off, '2 s on, 4 s off')
  t.ok(rb.ended)
  const moh = ToneSource.named('moh', 16000, 1000)
  let e = 0
  for (let f = moh.nextFrame(); f; f = moh.nextFrame()) e += rms(f)
  t.ok(e > 0, 'music on hold produces audio')
})
