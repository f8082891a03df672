import t from 'tap'
import { createCodec } from '../../codecs/index.ts'
import { startRtpLoadGenerators, type RtpStreamSpec } from '../../bench/rtp-load-generator.ts'
import { engineFor, sleep } from './helpers.ts'

const sdpFor = (port: number, pt: number, codec: string) =>
  `v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio ${port} RTP/AVP ${pt}\r\na=rtpmap:${pt} ${codec}\r\na=ptime:20\r\n`

// The media bench's load: G.711 filler and pre-encoded Opus from two generator
// processes into real sessions. Regression for the old Opus feeder, whose
// packets left with another stream's SSRC (one buffer reused across deferred
// sends) and were dropped by the sessions as foreign, showing up as loss.
t.test('RTP load generator: two processes, PCMU and Opus streams, every packet accepted by its session', async (t) => {
  const engine = await engineFor(t, 24, { sessionDefaults: { inactivityTimeoutMs: 0 } })
  const gen = await startRtpLoadGenerators(2)
  t.teardown(() => gen.close())
  t.equal(gen.pids.length, 2, 'two generator processes')
  const ports = await gen.open(4)
  t.equal(new Set(ports).size, 4, 'four distinct generator sockets')
  const peer = createCodec({ name: 'opus', sampleRate: 48000 })
  const pcm = new Int16Array(960).map((_, i) => Math.round(6000 * Math.sin((2 * Math.PI * 300 * i) / 48000)))
  const buf = new Uint8Array(1500)
  const opusPayloads = Array.from({ length: 10 }, () => Buffer.from(buf.subarray(0, peer.encode(pcm, buf))).toString('base64'))
  const streams: RtpStreamSpec[] = []
  const sessions = []
  for (let i = 0; i < 6; i++) {
    const opus = i >= 4
    const s = await engine.createSession({ codecs: [opus ? 'opus' : 'PCMU'], opusSampleRate: 8000 })
    const sock = i % 4
    await s.createAnswer(sdpFor(ports[sock]!, opus ? 111 : 0, opus ? 'opus/48000/2' : 'PCMU/8000'))
    s.addSink({ onFrame() { /* decode every frame */ } })
    streams.push({ ssrc: 0x1000 + i, socket: sock, host: '127.0.0.1', port: s.localPort, ...(opus ? { pt: 111, payloadSet: 0, timestampStep: 960 } : {}) })
    sessions.push(s)
  }
  // Every stream starts in the same tick of each process: the burst that mixed SSRCs before.
  const stats = await gen.run({ streams, durationMs: 1000, drainMs: 300, payloadSets: [opusPayloads] })
  await sleep(100)
  t.equal(stats.streamsSent, 6)
  t.equal(stats.packetsSent, 300, '50 packets per stream')
  t.equal(stats.unsent, 0)
  let received = 0
  for (const [i, s] of sessions.entries()) {
    const st = s.stats()
    received += st.packetsReceived
    t.equal(st.garbage.unknownSsrc + st.garbage.wrongSource + st.garbage.malformed + st.garbage.undecodable, 0, `session ${i}: no packet dropped as foreign or undecodable`)
    t.ok(st.framesIn >= 40, `session ${i} (${i >= 4 ? 'Opus' : 'PCMU'}): ${st.framesIn} frames decoded`)
  }
  t.equal(received, 300, 'every packet sent reached its session')
  t.equal(stats.streamsReceived, 6, 'every session\'s own stream came back to the generators')
  t.equal(stats.lost, 0, 'no loss on the way back')
  t.ok((stats.interArrivalDevMs?.count ?? 0) > 200, `merged inter-arrival histogram holds ${stats.interArrivalDevMs?.count} samples`)
  // A second run on the same streams continues their sequence numbers: nothing dropped by RFC 3550 probation.
  await gen.run({ streams, durationMs: 400, drainMs: 200, payloadSets: [opusPayloads] })
  await sleep(100)
  t.equal(sessions.reduce((a, s) => a + s.stats().garbage.malformed, 0), 0, 'no sequence restart between runs')
  await Promise.all(sessions.map((s) => s.close()))
})
