import t from 'tap'
import { createSocket, type Socket } from 'node:dgram'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ALAW_DECODE, ALAW_ENCODE, ULAW_DECODE, ULAW_ENCODE } from '../../../codecs/g711.ts'
import { G722Decoder, G722Encoder } from '../../../codecs/g722.ts'
import { startStack } from '../../harness/stack.ts'
import { runSipp, type SippResult } from '../../harness/sipp.ts'
import { freePort } from '../../harness/ports.ts'
import { rms, toneRatio } from './rtp-caller.ts'
import { sippUas } from './sipp-util.ts'

/**
 * Two API paths media-actions.test.ts does not reach, on the whole engine
 * (startStack) with sipp doing the SIP and this process owning the callers' RTP:
 * - a bridge between two calls that negotiated different codecs (PCMU and
 *   G.722: different payload and clock rate), which must transcode;
 * - media actions on a call that has no media session here (a number routed
 *   to a SIP URI: a B2BUA leg whose RTP never touches the engine), a 409.
 *
 * rtp-caller.ts speaks PCMU only; the caller below takes the codec as a
 * parameter so one side can offer G.722 alone.
 */
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

type CodecName = 'PCMU' | 'PCMA' | 'G722'
const CODECS: Record<CodecName, { pt: number; rtpmap: string; rate: 8000 | 16000 }> = {
  PCMU: { pt: 0, rtpmap: 'PCMU/8000', rate: 8000 },
  PCMA: { pt: 8, rtpmap: 'PCMA/8000', rate: 8000 },
  // RFC 3551 §4.5.2: G.722 samples at 16 kHz but its RTP clock runs at 8000.
  G722: { pt: 9, rtpmap: 'G722/8000', rate: 16000 },
}

/** One caller's RTP endpoint in a single codec: sends signal(n) at the codec's rate, keeps what it hears with arrival times. */
class CodecCaller {
  readonly socket: Socket = createSocket('udp4')
  port = 0
  remote: { address: string; port: number } | null = null
  readonly heard: Array<{ at: number; pcm: Int16Array }> = []
  signal: (n: number) => number = () => 0
  private sent = 0
  private seq = 1
  private ts = 0
  private timer: NodeJS.Timeout | null = null
  private readonly enc = new G722Encoder()
  private readonly dec = new G722Decoder()

  constructor(readonly codec: CodecName) {}

  get rate(): 8000 | 16000 { return CODECS[this.codec].rate }

  async start(): Promise<void> {
    await new Promise<void>((r) => this.socket.bind(0, '127.0.0.1', () => r()))
    this.port = this.socket.address().port
    const { pt } = CODECS[this.codec]
    this.socket.on('message', (msg, rinfo) => {
      if (msg.length < 12 || msg[0]! >> 6 !== 2 || (msg[1]! & 0x7f) !== pt) return
      this.remote ??= { address: rinfo.address, port: rinfo.port }
      const payload = msg.subarray(12 + (msg[0]! & 0x0f) * 4)
      let pcm: Int16Array
      if (this.codec === 'G722') { pcm = new Int16Array(payload.length * 2); this.dec.decode(payload, pcm) }
      else { const table = this.codec === 'PCMU' ? ULAW_DECODE : ALAW_DECODE; pcm = Int16Array.from(payload, (b) => table[b]!) }
      this.heard.push({ at: Date.now(), pcm })
    })
    const t0 = Date.now()
    this.timer = setInterval(() => {
      const due = Math.floor((Date.now() - t0) / 20)
      while (this.ts / 160 < due) this.sendFrame()
    }, 10)
  }

  private sendFrame(): void {
    const n = this.rate / 50
    const pcm = Int16Array.from({ length: n }, (_, i) => this.signal(this.sent + i))
    const b = Buffer.alloc(12 + 160)
    b[0] = 0x80
    b[1] = CODECS[this.codec].pt
    b.writeUInt16BE(this.seq++ & 0xffff, 2)
    b.writeUInt32BE(this.ts >>> 0, 4)
    b.writeUInt32BE(0x5eed0000 + this.port, 8)
    if (this.codec === 'G722') this.enc.encode(pcm, b.subarray(12))
    else { const table = this.codec === 'PCMU' ? ULAW_ENCODE : ALAW_ENCODE; for (let i = 0; i < n; i++) b[12 + i] = table[pcm[i]! & 0xffff]! }
    this.sent += n
    this.ts += 160 // 20 ms at an 8000 Hz RTP clock, G.722 included
    if (this.remote) this.socket.send(b, this.remote.port, this.remote.address)
  }

  audioSince(since: number, until = Infinity): Int16Array {
    const parts = this.heard.filter((h) => h.at >= since && h.at < until).map((h) => h.pcm)
    const out = new Int16Array(parts.reduce((a, p) => a + p.length, 0))
    let o = 0
    for (const p of parts) { out.set(p, o); o += p.length }
    return out
  }

  close(): void {
    if (this.timer) clearInterval(this.timer)
    this.socket.close()
  }
}

const tone = (freq: number, rate: number, amplitude = 6000) => (n: number) => Math.round(amplitude * Math.sin((2 * Math.PI * freq * n) / rate))

/** sipp calls `service` offering only the caller's codec (SDP at its socket), then waits for the engine's BYE. */
async function placeCall(o: { dir: string; sipPort: number; service: string; caller: CodecCaller; localIp?: string }): Promise<{ done: Promise<SippResult>; kill: () => void }> {
  const { pt, rtpmap } = CODECS[o.caller.codec]
  const xml = `<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="single-codec caller">
  <send retrans="500"><![CDATA[
      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: sipp <sip:+14155550100@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: sip:sipp@[local_ip]:[local_port]
      Max-Forwards: 70
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=caller 1 1 IN IP4 127.0.0.1
      s=-
      c=IN IP4 127.0.0.1
      t=0 0
      m=audio ${o.caller.port} RTP/AVP ${pt}
      a=rtpmap:${pt} ${rtpmap}
      a=sendrecv
    ]]></send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="183" optional="true"/>
  <recv response="200" rtd="true" rrs="true"/>
  <send><![CDATA[
      ACK [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: sipp <sip:+14155550100@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      [routes]
      CSeq: 1 ACK
      Contact: sip:sipp@[local_ip]:[local_port]
      Max-Forwards: 70
      Content-Length: 0
    ]]></send>
  <recv request="BYE" timeout="120000"/>
  <send><![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0
    ]]></send>
</scenario>
`
  const file = join(o.dir, `caller-${o.caller.port}.xml`)
  writeFileSync(file, xml)
  return runSipp({ scenario: file, remote: `127.0.0.1:${o.sipPort}`, localPort: await freePort(), ...(o.localIp ? { localIp: o.localIp } : {}), service: o.service, timeoutMs: 130_000 })
}

t.test('bridge across codecs and media actions on a proxied leg', async (t) => {
  const stack = await startStack(process.env.DATABASE_URL ? { DATABASE_URL: process.env.DATABASE_URL } : {})
  t.teardown(() => stack.stop())
  const dir = mkdtempSync(join(tmpdir(), 'media-actions-extra-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const store = stack.engine.store
  const account = (await store.accounts.first())!
  // An agent with nothing to say: whatever a caller hears comes from the bridge.
  const agent = await store.agents.create(account.id, { name: 'quiet', llm: { provider: 'scripted', options: { rules: [], fallback: ' ' } } })
  await store.numbers.create(account.id, { number: '+14155550181', target: { type: 'agent', id: agent.id } })
  const api = (path: string, init: RequestInit = {}) => fetch(`${stack.baseUrl}${path}`, {
    ...init, headers: { authorization: `Bearer ${stack.apiKey}`, ...(init.body ? { 'content-type': 'application/json' } : {}) },
  })
  const post = (path: string, body?: unknown) => api(path, { method: 'POST', ...(body !== undefined ? { body: JSON.stringify(body) } : {}) })
  const liveIds = async () => new Set(((await (await api('/v1/calls?status=in-progress')).json()) as { data: Array<{ id: string }> }).data.map((c) => c.id))
  /** The id of the call that went in progress after `before` was taken (polled for up to 20 s). */
  const newCall = async (before: Set<string>) => {
    for (let i = 0; i < 200; i++) {
      const id = [...await liveIds()].find((x) => !before.has(x))
      if (id) return id
      await sleep(100)
    }
    return ''
  }

  t.test('bridge between a PCMU call and a G.722 call transcodes both ways', async (t) => {
    const a = new CodecCaller('PCMU')
    const b = new CodecCaller('G722')
    await a.start()
    await b.start()
    t.teardown(() => { a.close(); b.close() })
    let before = await liveIds()
    const sippA = await placeCall({ dir, sipPort: stack.sipPort, service: '+14155550181', caller: a })
    t.teardown(() => sippA.kill())
    const idA = await newCall(before)
    before = await liveIds()
    const sippB = await placeCall({ dir, sipPort: stack.sipPort, service: '+14155550181', caller: b })
    t.teardown(() => sippB.kill())
    const idB = await newCall(before)
    t.ok(idA && idB, 'both calls answered')
    for (let i = 0; i < 100 && (!a.remote || !b.remote); i++) await sleep(50)
    t.ok(a.remote && b.remote, 'the engine sends RTP to both callers, each in its own codec')

    // Each caller sends its own tone, well inside the narrowband both legs share.
    a.signal = tone(500, a.rate)
    b.signal = tone(1300, b.rate)
    await sleep(800)
    const t0 = Date.now()
    await sleep(600)
    t.ok(rms(a.audioSince(t0)) < 100 && rms(b.audioSince(t0)) < 100, 'before the bridge neither caller hears the other')

    const r = await post(`/v1/calls/${idA}/bridge`, { callId: idB })
    t.equal(r.status, 202)
    t.match(await r.json(), { bridgedWith: idB, mode: 'transcode' }, 'different codecs: the bridge decodes and re-encodes')
    await sleep(400)
    const t1 = Date.now()
    await sleep(1500)
    const atA = a.audioSince(t1)
    const atB = b.audioSince(t1)
    t.ok(atA.length >= 8000 * 1.2, `caller A keeps receiving 8 kHz audio (${(atA.length / 8000).toFixed(2)} s)`)
    t.ok(atB.length >= 16000 * 1.2, `caller B keeps receiving 16 kHz audio (${(atB.length / 16000).toFixed(2)} s)`)
    const aHears = toneRatio(atA, 1300, 8000)
    const bHears = toneRatio(atB, 500, 16000)
    t.ok(rms(atA) > 1000 && aHears > 0.7, `the PCMU caller hears the G.722 caller's 1300 Hz (rms ${rms(atA).toFixed(0)}, ratio ${aHears.toFixed(2)})`)
    t.ok(rms(atB) > 1000 && bHears > 0.7, `the G.722 caller hears the PCMU caller's 500 Hz (rms ${rms(atB).toFixed(0)}, ratio ${bHears.toFixed(2)})`)
    t.ok(toneRatio(atA, 500, 8000) < 0.1 && toneRatio(atB, 1300, 16000) < 0.1, 'and not its own tone back')

    t.equal((await post(`/v1/calls/${idA}/bridge`, { callId: idB })).status, 409, 'bridging an already bridged call is refused')
    t.equal((await api(`/v1/calls/${idA}`, { method: 'DELETE' })).status, 204)
    t.equal((await sippA.done).code, 0, 'caller A got its BYE')
    // Unbridged when A ended: B is live again, back with its agent.
    t.equal((await api(`/v1/calls/${idB}`, { method: 'DELETE' })).status, 204)
    t.equal((await sippB.done).code, 0, 'caller B got its BYE')
  })

  t.test('media actions on a call the engine only proxies (no local media session) are 409', async (t) => {
    // A carrier trunk (by source address) delivers a number routed to a SIP URI:
    // the engine is a B2BUA in signalling only, the SDP goes end to end.
    const trunk = await store.trunks.create(account.id, { name: 'carrier', inbound: { allowedIps: ['127.0.0.2/32'] } })
    const uasPort = await freePort()
    const uas = sippUas('uas-answer.xml', uasPort, { timeoutMs: 60_000 })
    t.teardown(() => uas.kill())
    await store.numbers.create(account.id, { number: '+14155550182', trunkId: trunk.id, target: { type: 'sip', uri: `sip:desk@127.0.0.1:${uasPort}` } })
    const c = new CodecCaller('PCMU')
    await c.start()
    t.teardown(() => c.close())
    const before = await liveIds()
    const sipp = await placeCall({ dir, sipPort: stack.sipPort, service: '+14155550182', caller: c, localIp: '127.0.0.2' })
    t.teardown(() => sipp.kill())
    const id = await newCall(before)
    t.ok(id, 'the proxied call is in progress')
    const detail = await (await api(`/v1/calls/${id}`)).json() as { to: string; agentId: string | null }
    t.match(detail, { to: '+14155550182', agentId: null })

    for (const [action, body] of [['say', { text: 'hello' }], ['play', { tone: 'beep' }], ['dtmf', { digits: '1' }], ['record/start', {}], ['mute', {}]] as const) {
      const r = await post(`/v1/calls/${id}/${action}`, body)
      t.equal(r.status, 409, `${action} → 409`)
      t.match(await r.json(), { error: { code: 'invalid_state', message: /has no media on this node.*proxied/ } }, `${action}: the message says why`)
    }
    t.equal((await api(`/v1/calls/${id}`, { method: 'DELETE' })).status, 204, 'signalling actions still work on it')
    t.equal((await sipp.done).code, 0, 'the caller got the BYE')
    t.equal((await uas.done).code, 0, 'so did the callee')
  })
})
