/**
 * baresip calls in with speech from a WAV (aufile); the session records the
 * call and at the same time plays another WAV that baresip dumps (sndfile).
 * Both recordings must match their sources (20 ms energy envelopes,
 * cross-correlated to remove the network/jitter-buffer delay).
 */
import t from 'tap'
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { MediaEngine } from '../../media/media-engine.ts'
import type { MediaSession } from '../../media/session/media-session.ts'
import { loadAudio } from '../../media/playback.ts'
import { parseWav } from '../../media/wav.ts'
import type { WavRecorder } from '../../media/recorder.ts'
import { startRecording, stopRecording } from '../../media/taps.ts'
import { freePort, freeUdpRange } from '../harness/ports.ts'
import { runBaresip } from '../harness/baresip.ts'
import { MiniUas } from './mini-uas.ts'

function envelope(pcm: Int16Array, rate: number): Float64Array {
  const n = rate / 50
  const env = new Float64Array(Math.floor(pcm.length / n))
  for (let i = 0; i < env.length; i++) {
    let e = 0
    for (let k = 0; k < n; k++) e += Math.abs(pcm[i * n + k]!)
    env[i] = e / n
  }
  return env
}

function corrAt(a: Float64Array, b: Float64Array, start: number, len: number, lag: number): number {
  let ma = 0, mb = 0
  for (let i = start; i < start + len; i++) { ma += a[i]!; mb += b[i + lag] ?? 0 }
  ma /= len; mb /= len
  let xy = 0, xx = 0, yy = 0
  for (let i = start; i < start + len; i++) {
    const x = a[i]! - ma
    const y = (b[i + lag] ?? 0) - mb
    xy += x * y; xx += x * x; yy += y * y
  }
  return xx === 0 || yy === 0 ? 0 : xy / Math.sqrt(xx * yy)
}

/**
 * How well envelope `b` (recording) follows `a` (source), allowing the delay
 * to drift: the jitter buffer may conceal or re-buffer a frame here and there
 * under load, which shifts the rest of the recording by 20 ms. Each 1 s window
 * of the source with speech in it finds its best lag (0..maxLag frames) in the
 * recording; the result is the mean correlation over those windows.
 */
function envelopeMatch(a: Float64Array, b: Float64Array, maxLag: number): { corr: number; lag: number } {
  const win = 50
  let sum = 0
  let count = 0
  let lastLag = 0
  for (let start = 0; start + win <= a.length; start += win) {
    let varA = 0
    let mean = 0
    for (let i = start; i < start + win; i++) mean += a[i]!
    mean /= win
    for (let i = start; i < start + win; i++) varA += (a[i]! - mean) ** 2
    if (varA / win < 100) continue // silence: nothing to compare
    let best = -1
    for (let lag = 0; lag <= maxLag; lag++) {
      const c = corrAt(a, b, start, win, lag)
      if (c > best) { best = c; lastLag = lag }
    }
    sum += best
    count++
  }
  return { corr: count ? sum / count : 0, lag: lastLag }
}

function speechWav(dir: string, name: string, text: string): string {
  const raw = join(dir, `${name}-raw.wav`)
  const out = join(dir, `${name}.wav`)
  execFileSync('espeak-ng', ['-w', raw, '-s', '150', text])
  execFileSync('sox', [raw, '-r', '8000', '-c', '1', '-b', '16', '-e', 'signed-integer', out])
  return out
}

t.test('baresip ↔ session: recording matches what baresip sent, baresip hears what we played', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'media-baresip-'))
  const theirs = speechWav(dir, 'caller', 'Hello, this is baresip calling the media engine. One two three four five.')
  const ours = speechWav(dir, 'agent', 'Thank you for calling. Your recording will now begin. Six seven eight.')
  const range = await freeUdpRange(4)
  const engine = new MediaEngine({ rtpPortMin: range.min, rtpPortMax: range.max, bindHost: '127.0.0.1' })
  t.teardown(() => engine.stop())
  let session: MediaSession | null = null
  let rec: WavRecorder | null = null
  const recPath = join(dir, 'recorded.wav')
  const agentSource = await loadAudio(ours, 8000)
  const uas = new MiniUas(async (offer) => {
    session = await engine.createSession({ codecs: ['PCMU'] })
    const answer = await session.createAnswer(offer)
    rec = startRecording(session, recPath, 'inbound')
    void session.play(agentSource)
    return answer
  })
  t.teardown(() => uas.close())
  const sipPort = await uas.listen()
  const baresipPort = await freePort()
  const bye = new Promise<void>((r) => uas.once('bye', () => r()))
  const seconds = 8
  const run = runBaresip({ source: theirs, dial: `sip:media@127.0.0.1:${sipPort}`, seconds, sipPort: baresipPort })
  t.teardown(() => run.kill())
  const res = await run.done
  await Promise.race([bye, new Promise((r) => setTimeout(r, 2000))])
  t.ok(session, 'baresip called in')
  const s = session as unknown as MediaSession
  const st = s.stats()
  t.equal(st.codec, 'PCMU')
  t.ok(st.packetsReceived > 200, `received ${st.packetsReceived} RTP packets from baresip`)
  const result = stopRecording(s, rec as unknown as WavRecorder)
  t.ok(result.durationMs > 4000, `recorded ${result.durationMs} ms`)

  // Direction 1: baresip → us.
  const srcA = parseWav(readFileSync(theirs))
  const gotA = parseWav(readFileSync(recPath))
  const m1 = envelopeMatch(envelope(srcA.pcm, 8000), envelope(gotA.pcm, 8000), 150)
  t.ok(m1.corr > 0.85, `recording matches baresip's source file: envelope r=${m1.corr.toFixed(3)} at ${m1.lag * 20} ms`)
  t.ok(res.sentWav, 'baresip dumped what it sent')
  if (res.sentWav) {
    // baresip's own dump of what it encoded is the exact reference for the wire.
    const sent = parseWav(readFileSync(res.sentWav))
    const m1b = envelopeMatch(envelope(sent.pcm, sent.sampleRate), envelope(gotA.pcm, 8000), 150)
    t.ok(m1b.corr > 0.85, `recording matches what baresip sent: envelope r=${m1b.corr.toFixed(3)} at ${m1b.lag * 20} ms`)
  }

  // Direction 2: us → baresip.
  t.ok(res.heardWav, `baresip dumped received audio (${res.heardWav})`)
  if (res.heardWav) {
    const heard = parseWav(readFileSync(res.heardWav))
    const m2 = envelopeMatch(envelope(agentSource.pcm, 8000), envelope(heard.pcm, heard.sampleRate), 150)
    t.equal(heard.sampleRate, 8000)
    t.ok(m2.corr > 0.9, `baresip heard our WAV: envelope r=${m2.corr.toFixed(3)} at ${m2.lag * 20} ms`)
  }
})
