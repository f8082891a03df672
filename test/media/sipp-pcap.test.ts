/**
 * sipp calls in and replays RTP from pcap files (its bundled PCMA speech and
 * RFC 4733 digit captures, and a PCMU capture generated here) into a media
 * session answered by a minimal UAS. Decoded frames, digits and stats are
 * asserted.
 */
import t from 'tap'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { MediaEngine } from '../../media/media-engine.ts'
import type { MediaSession } from '../../media/session/media-session.ts'
import type { AudioFrame } from '../../audio/frame.ts'
import { encodeUlaw } from '../../codecs/g711.ts'
import { freePort, freeUdpRange } from '../harness/ports.ts'
import { runSipp } from '../harness/sipp.ts'
import { MiniUas } from './mini-uas.ts'
import { writeRtpPcap } from './pcap.ts'
import { chirpy } from '../codecs/signal.ts'

const PCAPS = '/usr/share/sip-tester'

function scenario(pt: number, codec: string, plays: { pcap: string; pauseMs: number }[]): string {
  const actions = plays.map((p) => `
  <nop><action><exec play_pcap_audio="${p.pcap}"/></action></nop>
  <pause milliseconds="${p.pauseMs}"/>`).join('')
  return `<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="pcap into media session">
  <send retrans="500"><![CDATA[
INVITE sip:media@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag[call_number]
To: <sip:media@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: 1 INVITE
Contact: sip:sipp@[local_ip]:[local_port]
Max-Forwards: 70
Content-Type: application/sdp
Content-Length: [len]

v=0
o=user1 53655765 2353687637 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[local_ip_type] [local_ip]
t=0 0
m=audio [auto_media_port] RTP/AVP ${pt} 101
a=rtpmap:${pt} ${codec}/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
]]></send>
  <recv response="100" optional="true"/>
  <recv response="200" rtd="true"/>
  <send><![CDATA[
ACK sip:media@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag[call_number]
To: <sip:media@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 1 ACK
Max-Forwards: 70
Content-Length: 0

]]></send>${actions}
  <send retrans="500"><![CDATA[
BYE sip:media@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag[call_number]
To: <sip:media@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 2 BYE
Max-Forwards: 70
Content-Length: 0

]]></send>
  <recv response="200"/>
</scenario>
`
}

async function runCall(t: { teardown(fn: () => unknown): void }, xml: string, codecs: string[]) {
  const dir = mkdtempSync(join(tmpdir(), 'media-sipp-'))
  const file = join(dir, 'scenario.xml')
  writeFileSync(file, xml)
  const range = await freeUdpRange(4)
  const engine = new MediaEngine({ rtpPortMin: range.min, rtpPortMax: range.max, bindHost: '127.0.0.1' })
  t.teardown(() => engine.stop())
  let session: MediaSession | null = null
  const frames: AudioFrame[] = []
  const digits: string[] = []
  const uas = new MiniUas(async (offer) => {
    session = await engine.createSession({ codecs })
    session.on('frame', (f) => frames.push({ ...f, samples: f.samples.slice() }))
    session.on('dtmf', (e) => digits.push(e.digit))
    return session.createAnswer(offer)
  })
  t.teardown(() => uas.close())
  const sipPort = await uas.listen()
  const sippPort = await freePort()
  const mediaPort = (await freeUdpRange(4)).min
  const bye = new Promise<void>((r) => uas.once('bye', () => r()))
  const run = runSipp({ scenario: file, remote: `127.0.0.1:${sipPort}`, localPort: sippPort, args: ['-mp', String(mediaPort), '-mi', '127.0.0.1'], timeoutMs: 40_000 })
  t.teardown(() => run.kill())
  const res = await run.done
  await bye
  await new Promise((r) => setTimeout(r, 300)) // let the jitter buffer drain
  return { res, session: session as MediaSession | null, frames, digits }
}

t.test('sipp PCMA pcap (30 ms packets) + RFC 4733 digits into a session', async (t) => {
  const { res, session, frames, digits } = await runCall(t, scenario(8, 'PCMA', [
    { pcap: `${PCAPS}/g711a.pcap`, pauseMs: 7400 },
    { pcap: `${PCAPS}/dtmf_2833_1.pcap`, pauseMs: 400 },
    { pcap: `${PCAPS}/dtmf_2833_5.pcap`, pauseMs: 400 },
    { pcap: `${PCAPS}/dtmf_2833_pound.pcap`, pauseMs: 400 },
    { pcap: `${PCAPS}/dtmf_2833_star.pcap`, pauseMs: 400 },
  ]), ['PCMA', 'PCMU'])
  t.equal(res.code, 0, `sipp succeeded ${res.errors}`)
  t.ok(session, 'session created')
  const st = session!.stats()
  t.equal(st.codec, 'PCMA')
  t.same(digits, ['1', '5', '#', '*'], 'each digit once despite triple end packets')
  // The capture holds 236 packets of 30 ms: 7.08 s of audio = 354 frames of 20 ms.
  t.ok(st.packetsReceived >= 236, `received ${st.packetsReceived} packets`)
  t.equal(st.packetsLost, 0, 'no loss')
  const voiced = frames.filter((f) => { let e = 0; for (const v of f.samples) e += Math.abs(v); return e / f.samples.length > 100 })
  t.ok(frames.length >= 350 && frames.length <= 380, `${frames.length} frames decoded`)
  t.ok(voiced.length > 150, `${voiced.length} frames carry speech`)
  t.equal(st.dtmfReceived, 4)
  // A loaded box adds scheduling jitter; the point is that it is measured.
  t.ok(st.jitterMs >= 0 && st.jitterMs < 200, `jitter measured: ${st.jitterMs} ms`)
})

t.test('sipp PCMU pcap: decoded audio matches the source samples', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'media-pcmu-'))
  const src = chirpy(8000, 3)
  const payloads: Uint8Array[] = []
  for (let i = 0; i + 160 <= src.length; i += 160) {
    const p = new Uint8Array(160)
    encodeUlaw(src.subarray(i, i + 160), p)
    payloads.push(p)
  }
  const pcap = join(dir, 'pcmu.pcap')
  writeRtpPcap(pcap, payloads, { payloadType: 0 })
  const { res, session, frames } = await runCall(t, scenario(0, 'PCMU', [{ pcap, pauseMs: 3400 }]), ['PCMU'])
  t.equal(res.code, 0, 'sipp succeeded')
  const st = session!.stats()
  t.equal(st.packetsReceived, 150)
  t.equal(st.packetsLost, 0)
  // Every packet the network delivered must come out bit-exact and in order;
  // the jitter buffer may only add concealment frames between them.
  const { decodeUlaw } = await import('../../codecs/g711.ts')
  const ref = new Int16Array(160)
  let j = 0
  let matched = 0
  for (const p of payloads) {
    decodeUlaw(p, ref)
    for (let k = j; k < frames.length; k++) {
      if (frames[k]!.samples.every((v, i) => v === ref[i])) { matched++; j = k + 1; break }
    }
  }
  t.equal(matched + st.skewDrops, payloads.length, `${matched}/${payloads.length} frames delivered bit-exact and in order, ${st.skewDrops} near-silent frames shed for skew (${frames.length} frames incl. concealment)`)
})
