/**
 * The real rtpengine daemon (userspace only) anchors media between a peer and
 * our session: offer/answer through ng, audio both ways, and PCMU ↔ Opus
 * transcoding done by rtpengine.
 */
import t from 'tap'
import { spawn, type ChildProcess } from 'node:child_process'
import { PcmSource } from '../../media/playback.ts'
import { RtpengineAnchor } from '../../media/rtpengine/anchor.ts'
import { freePort, freeUdpRange } from '../harness/ports.ts'
import { engineFor, frameCollector, concatFrames, sleep } from './helpers.ts'
import { sine, toneAmplitude } from '../codecs/signal.ts'

async function startRtpengine(t: { teardown(fn: () => unknown): void }): Promise<string> {
  const ng = await freePort()
  const range = await freeUdpRange(40)
  const child: ChildProcess = spawn('rtpengine', [
    '--foreground', '--log-stderr', '--table=-1', '--interface=127.0.0.1',
    `--listen-ng=127.0.0.1:${ng}`, `--port-min=${range.min}`, `--port-max=${range.max}`, '--log-level=6',
  ], { stdio: ['ignore', 'ignore', 'pipe'] })
  let log = ''
  child.stderr!.on('data', (d: Buffer) => { log += d.toString() })
  t.teardown(() => new Promise<void>((r) => { child.once('exit', () => r()); child.kill('SIGTERM'); setTimeout(() => { child.kill('SIGKILL'); r() }, 3000).unref() }))
  for (let i = 0; i < 50 && !log.includes('Startup complete'); i++) await sleep(100)
  if (!log.includes('Startup complete')) throw new Error(`rtpengine did not start: ${log}`)
  return `127.0.0.1:${ng}`
}

function loudest(pcm: Int16Array, rate: number, f: number): number {
  let best = 0
  for (let o = 0; o + rate / 2 < pcm.length; o += rate / 20) best = Math.max(best, toneAmplitude(pcm, rate, f, o, rate / 2))
  return best
}

t.test('rtpengine anchors a PCMU call and transcodes Opus ↔ PCMU', async (t) => {
  const ng = await startRtpengine(t)
  const anchor = new RtpengineAnchor({ ng })
  t.teardown(() => anchor.close())
  t.ok(await anchor.ping(), 'ng ping → pong')
  const engine = await engineFor(t, 16)

  for (const [peerCodec, transcode] of [['PCMU', []], ['opus', ['PCMU']]] as const) {
    const peer = await engine.createSession({ codecs: [peerCodec] })
    const ours = await engine.createSession({ codecs: ['PCMU'] })
    const ids = { callId: `call-${peerCodec}`, fromTag: 'peer-tag', toTag: 'our-tag' }
    const offer = await peer.createOffer()
    const answer = await anchor.answerThrough(ours, offer, ids, [...transcode])
    await peer.setRemoteDescription(answer)
    t.not(peer.negotiated!.remoteRtpPort, ours.localPort, 'peer sends to rtpengine, not to us')
    t.not(ours.negotiated!.remoteRtpPort, peer.localPort, 'we send to rtpengine, not to the peer')
    t.equal(ours.codec!.name, 'PCMU')
    t.equal(peer.codec!.name, peerCodec, `peer keeps ${peerCodec}`)
    const atUs = frameCollector(ours)
    const atPeer = frameCollector(peer)
    const pr = peer.codecSampleRate()
    void peer.play(new PcmSource(sine(600, pr, 1.5), pr))
    void ours.play(new PcmSource(sine(1100, 8000, 1.5), 8000))
    await sleep(1900)
    const usAmp = loudest(concatFrames(atUs), 8000, 600)
    const peerAmp = loudest(concatFrames(atPeer), pr, 1100)
    t.ok(usAmp > 6000, `${peerCodec}→rtpengine→PCMU: 600 Hz at ${usAmp.toFixed(0)}`)
    t.ok(peerAmp > 6000, `PCMU→rtpengine→${peerCodec}: 1100 Hz at ${peerAmp.toFixed(0)}`)
    const q = await anchor.query(ids)
    t.equal(q.result, 'ok', 'rtpengine knows the call')
    await anchor.delete(ids)
    await peer.close()
    await ours.close()
  }
})
