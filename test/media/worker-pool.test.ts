import t from 'tap'
import { MediaWorkerPool } from '../../media/worker-pool.ts'
import type { AudioFrame } from '../../media/frame.ts'
import { freeUdpRange } from '../harness/ports.ts'
import { toneAmplitude } from '../codecs/signal.ts'
import { sleep } from './helpers.ts'

t.test('sessions in 2 media workers talk to each other over RTP; API is message-based', async (t) => {
  const range = await freeUdpRange(16)
  const pool = new MediaWorkerPool({ workers: 2, rtpPortMin: range.min, rtpPortMax: range.max, bindHost: '127.0.0.1' })
  t.teardown(() => pool.stop())
  await pool.ready()
  const a = await pool.createSession({ codecs: ['PCMU'] })
  const b = await pool.createSession({ codecs: ['PCMU', 'G722'] })
  t.not(a.workerIndex, b.workerIndex, 'sessions spread over both workers')
  t.ok(a.localPort >= range.min && a.localPort < range.min + 8, `worker 0 port ${a.localPort} from its half of the range`)
  t.ok(b.localPort >= range.min + 8 && b.localPort <= range.max, `worker 1 port ${b.localPort} from its half`)
  await a.setRemoteDescription(await b.createAnswer(await a.createOffer()))
  const frames: AudioFrame[] = []
  b.on('frame', (f) => frames.push(f))
  await b.subscribeFrames(16000)
  const digits: string[] = []
  b.on('dtmf', (e) => digits.push(e.digit))
  t.equal(await a.play({ type: 'tone', tone: 'beep', durationMs: 600 }), 'done')
  t.ok(await a.sendDtmf('42', 80))
  await sleep(800)
  t.ok(frames.length > 30, `${frames.length} frames crossed the thread boundary`)
  t.equal(frames[0]!.sampleRate, 16000, 'resampled in the worker as subscribed')
  const pcm = new Int16Array(frames.length * 320)
  frames.forEach((f, i) => pcm.set(f.samples, i * 320))
  let best = 0
  for (let o = 0; o + 3200 < pcm.length; o += 320) best = Math.max(best, toneAmplitude(pcm, 16000, 1000, o, 3200))
  t.ok(best > 6000, `beep heard across workers (${best.toFixed(0)})`)
  t.same(digits, ['4', '2'])
  const stats = await b.stats()
  t.equal(stats.codec, 'PCMU')
  t.ok(stats.packetsReceived > 40)
  const eng = await pool.stats()
  t.same(eng.map((e) => e.activeSessions), [1, 1])
  // Errors cross the boundary as rejections with the SDP status.
  const c = await pool.createSession({ codecs: ['PCMU'] })
  const status = await c.createAnswer('v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\nm=audio 4000 RTP/AVP 18\r\n').then(() => 0, (e: { status?: number }) => e.status)
  t.equal(status, 488, 'SDP error status crosses the boundary')
  const closed = new Promise<void>((r) => a.once('closed', () => r()))
  await a.close()
  await closed
  t.pass('closed event delivered')
})
