import t from 'tap'
import { PcmSource, ToneSource } from '../../../media/playback.ts'
import type { FlushEvent } from '../../../media/session/media-session.ts'
import { engineFor, connectedPair, frameCollector, concatFrames, sleep } from '../helpers.ts'
import { sine, toneAmplitude, rms } from '../../codecs/signal.ts'

/** Strongest level of `f` over 0.25 s windows (robust to start-up delay on a busy box). */
function loudest(pcm: Int16Array, f: number, rate = 8000): number {
  let best = 0
  for (let o = 0; o + rate / 4 <= pcm.length; o += rate / 20) best = Math.max(best, toneAmplitude(pcm, rate, f, o, rate / 4))
  return best
}

t.test('hold via re-INVITE: held side stops sending, music on hold flows, unhold resumes', async (t) => {
  const engine = await engineFor(t)
  const [a, b] = await connectedPair(engine, { codecs: ['PCMU'], inactivityTimeoutMs: 400 }, { codecs: ['PCMU'], inactivityTimeoutMs: 400 })
  const timeouts: string[] = []
  a.on('timeout', () => timeouts.push('a'))
  b.on('timeout', () => timeouts.push('b'))
  await sleep(200)
  // A holds B (RFC 3264 §8.4): a=sendonly offer, B answers recvonly.
  const holdOffer = await a.hold()
  t.match(holdOffer, /a=sendonly/)
  const holdAnswer = await b.createAnswer(holdOffer)
  t.match(holdAnswer, /a=recvonly/)
  await a.setRemoteDescription(holdAnswer)
  t.equal(a.direction, 'sendonly')
  t.equal(b.direction, 'recvonly')
  const heardByB = frameCollector(b)
  void a.play(ToneSource.named('moh', 8000, 1000))
  const bSent0 = b.stats().packetsSent
  await sleep(1000)
  t.equal(b.stats().packetsSent, bSent0, 'held party sends nothing')
  t.ok(rms(concatFrames(heardByB)) > 300, 'held party hears music on hold')
  t.same(timeouts, [], 'no inactivity timeout while on hold')
  const un = await b.createAnswer(await a.unhold())
  await a.setRemoteDescription(un)
  t.equal(a.direction, 'sendrecv')
  t.equal(b.direction, 'sendrecv')
  await sleep(300)
  t.ok(b.stats().packetsSent > bSent0 + 10, 'sending resumes after unhold')
  t.same(timeouts, [])
})

t.test('re-INVITE to a new address re-latches; early offer/answer again', async (t) => {
  const engine = await engineFor(t)
  const [a, b] = await connectedPair(engine, { codecs: ['PCMU'] }, { codecs: ['PCMU'] })
  await sleep(200)
  const c = await engine.createSession({ codecs: ['PCMA', 'PCMU'] })
  // A's peer moves from B to C (e.g. a transfer behind a B2BUA): new port and codec.
  await a.setRemoteDescription(await c.createAnswer(await a.createOffer()))
  t.equal(a.codec!.name, 'PCMU', 'A keeps its codec (C picks from A’s offer order)')
  t.equal(a.stats().remote, `127.0.0.1:${c.localPort}`)
  const atC = frameCollector(c)
  const atA = frameCollector(a)
  await Promise.all([a.play(new PcmSource(sine(800, 8000, 1), 8000)), c.play(new PcmSource(sine(300, 8000, 1), 8000))])
  await sleep(300)
  t.ok(loudest(concatFrames(atC), 800) > 8000, 'C hears A')
  t.ok(loudest(concatFrames(atA), 300) > 8000, 'A hears C')
  t.ok(a.stats().garbage.wrongSource > 0, 'late packets from B are rejected after re-latching')
  void b
})

t.test('directional mute (VoipBin in/out/both)', async (t) => {
  const engine = await engineFor(t)
  const [a, b] = await connectedPair(engine, { codecs: ['PCMU'] }, { codecs: ['PCMU'] })
  const atA = frameCollector(a)
  const atB = frameCollector(b)
  a.mute('out')
  t.same(a.muted, { in: false, out: true })
  await Promise.all([a.play(new PcmSource(sine(800, 8000, 0.8), 8000)), b.play(new PcmSource(sine(300, 8000, 0.8), 8000))])
  await sleep(300)
  t.ok(rms(concatFrames(atB)) < 20, 'mute out: B hears silence')
  t.ok(loudest(concatFrames(atA), 300) > 8000, 'mute out: A still hears B')
  a.unmute('out')
  a.mute('in')
  atA.length = 0
  atB.length = 0
  await Promise.all([a.play(new PcmSource(sine(800, 8000, 0.8), 8000)), b.play(new PcmSource(sine(300, 8000, 0.8), 8000))])
  await sleep(300)
  t.ok(rms(concatFrames(atA)) < 20, 'mute in: A’s consumers get silence')
  t.ok(loudest(concatFrames(atB), 800) > 8000, 'mute in: B still hears A')
  a.unmute('both')
  t.same(a.muted, { in: false, out: false })
})

t.test('flush (barge-in) drops queued audio on the next tick and reports timing', async (t) => {
  const engine = await engineFor(t)
  const [a, b] = await connectedPair(engine, { codecs: ['PCMU'] }, { codecs: ['PCMU'] })
  const atB = frameCollector(b)
  a.enqueue(sine(600, 16000, 3), 16000) // TTS at 16 kHz into an 8 kHz call
  await sleep(500)
  const f = await new Promise<FlushEvent>((r) => { a.once('flushed', r); a.flush() })
  t.equal(f.appliedTick, f.requestedTick + 1, `applied on the next tick (${(f.appliedAt - f.requestedAt).toFixed(1)} ms after the request)`)
  t.equal(f.lastAudioTick, f.requestedTick, 'the last agent packet went out in the tick of the request')
  await sleep(300)
  const before = concatFrames(atB)
  t.ok(toneAmplitude(before, 8000, 600, 1000, 2400) > 8000, 'the resampled TTS was heard before the flush')
  const tail = atB.slice(-8)
  t.ok(tail.every((fr) => rms(fr.samples) < 20), 'silence after the flush')
  t.notOk(a.playing, 'queue empty')
})

t.test('re-INVITE switching codec (PCMU → G.722) keeps audio and fixed-rate consumers', async (t) => {
  const engine = await engineFor(t)
  const [a, b] = await connectedPair(engine, { codecs: ['PCMU', 'G722'] }, { codecs: ['PCMU', 'G722'] })
  t.equal(a.codec!.name, 'PCMU')
  const at16k: number[] = []
  b.addSink({ onFrame: (f) => { at16k.push(f.sampleRate) } }, { sampleRate: 16000 })
  await sleep(200)
  // B re-offers G.722 only (e.g. a wideband phone after a transfer).
  const offer = (await b.createOffer()).replace(/m=audio (\d+) RTP\/AVP 0 9/, 'm=audio $1 RTP/AVP 9')
  await b.setRemoteDescription(await a.createAnswer(offer))
  t.equal(a.codec!.name, 'G722', 'A switched to G.722')
  t.equal(b.codec!.name, 'G722', 'B switched to G.722')
  const heard = frameCollector(b)
  void a.play(new PcmSource(sine(5000, 16000, 1), 16000))
  await sleep(1300)
  const pcm = concatFrames(heard)
  t.equal(heard[0]?.sampleRate, 16000, 'frames now at 16 kHz')
  t.ok(toneAmplitude(pcm, 16000, 5000, 4000, 8000) > 7000, '5 kHz tone (impossible in G.711) arrives')
  t.ok(at16k.every((r) => r === 16000), 'fixed-rate consumer kept 16 kHz throughout')
})
