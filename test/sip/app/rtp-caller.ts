import { createSocket, type Socket } from 'node:dgram'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { ALAW_DECODE, ALAW_ENCODE, ULAW_DECODE, ULAW_ENCODE } from '../../../codecs/g711.ts'
import { encodeWav } from '../../../media/wav.ts'
import { G722Decoder, G722Encoder } from '../../../codecs/g722.ts'
import { runSipp, type SippResult } from '../../harness/sipp.ts'
import { freePort } from '../../harness/ports.ts'
import { sleep } from '../../harness/wait.ts'
import { callerRequest, callerScenario, dtmfRelay, reply } from '../../harness/sipp-scenarios.ts'

/**
 * The caller side of a real call for media tests: sipp does the SIP (INVITE,
 * ACK, waits for our BYE), and the SDP it sends points at this process's UDP
 * socket, so the test itself sends and receives the call's RTP: audio in one
 * codec (PCMU unless told otherwise) from a signal function, the decoded audio
 * and RFC 4733 events received.
 */
export interface ReceivedEvent { event: number; end: boolean; timestamp: number }

export type CodecName = 'PCMU' | 'PCMA' | 'G722'
/** Static payload types, RFC 3551 §6 table 4. */
export const CODECS: Record<CodecName, { pt: number; rtpmap: string; rate: 8000 | 16000 }> = {
  PCMU: { pt: 0, rtpmap: 'PCMU/8000', rate: 8000 },
  PCMA: { pt: 8, rtpmap: 'PCMA/8000', rate: 8000 },
  // RFC 3551 §4.5.2: G.722 samples at 16 kHz but its RTP clock runs at 8000
  // (an error kept for compatibility), so 20 ms is still 160 timestamp units.
  G722: { pt: 9, rtpmap: 'G722/8000', rate: 16000 },
}
/** RTP timestamp units per 20 ms packet: an 8000 Hz clock for all three codecs (and for telephone-event). */
const TS_PER_PACKET = 160
/** Payload bytes per 20 ms: 160 G.711 samples, or 320 G.722 samples at 4 bits each (64 kbit/s). */
const PAYLOAD_BYTES = 160

/** Deterministic white noise: a fixed pseudo-random sequence, known sample by sample. */
export function noise(len: number, amplitude = 6000, seed = 12345): Int16Array {
  const out = new Int16Array(len)
  let x = seed >>> 0
  for (let i = 0; i < len; i++) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0
    out[i] = Math.round(((x / 0xffffffff) * 2 - 1) * amplitude)
  }
  return out
}

/** A sinusoid as a signal function: sample n at `rate` Hz. */
export const tone = (freq: number, rate = 8000, amplitude = 6000) => (n: number): number => Math.round(amplitude * Math.sin((2 * Math.PI * freq * n) / rate))

export class RtpCaller {
  readonly socket: Socket
  port = 0
  /** Where the engine's RTP comes from (learnt from its first packet). */
  remote: { address: string; port: number } | null = null
  /** Everything received in the caller's codec, decoded (at `rate`), in arrival order, with the wall time of each packet. */
  readonly audio: Int16Array[] = []
  readonly audioAt: number[] = []
  readonly events: ReceivedEvent[] = []
  /** The signal sent, at the codec's sample rate: sample n of the call is signal(n). */
  signal: (n: number) => number = () => 0
  /** Samples sent so far (the index of the next sample). */
  sent = 0
  private seq = 1
  private ts = 0
  /** RFC 4733 digits to send, one event each (5 packets of 20 ms, then 3 end packets). */
  private readonly digitQueue: number[] = []
  private digitPkt = 0
  private digitTs = 0
  private timer: NodeJS.Timeout | null = null
  private t0 = 0
  /** G.722 is stateful (ADPCM predictors, QMF delay lines): one encoder and one decoder per direction of the call. */
  private readonly g722enc: G722Encoder | null
  private readonly g722dec: G722Decoder | null
  private readonly frame: Int16Array

  constructor(readonly codec: CodecName = 'PCMU') {
    this.socket = createSocket('udp4')
    this.g722enc = codec === 'G722' ? new G722Encoder() : null
    this.g722dec = codec === 'G722' ? new G722Decoder() : null
    this.frame = new Int16Array(this.rate / 50)
  }

  /** The codec's sample rate: what signal(n), `sent` and the decoded audio count in. */
  get rate(): 8000 | 16000 { return CODECS[this.codec].rate }

  async start(): Promise<void> {
    await new Promise<void>((r) => this.socket.bind(0, '127.0.0.1', () => r()))
    this.port = this.socket.address().port
    const audioPt = CODECS[this.codec].pt
    this.socket.on('message', (msg, rinfo) => {
      if (msg.length < 12 || msg[0]! >> 6 !== 2) return
      this.remote ??= { address: rinfo.address, port: rinfo.port }
      const pt = msg[1]! & 0x7f
      const cc = msg[0]! & 0x0f
      const payload = msg.subarray(12 + cc * 4)
      if (pt === audioPt) {
        this.audio.push(this.decode(payload))
        this.audioAt.push(Date.now())
      } else if (pt === 101 && payload.length >= 4) {
        // RFC 4733 §2.3: event, E bit, volume, duration.
        this.events.push({ event: payload[0]!, end: (payload[1]! & 0x80) !== 0, timestamp: msg.readUInt32BE(4) })
      }
    })
    // Paced against the wall clock so a late timer does not slow the stream.
    this.t0 = Date.now()
    this.timer = setInterval(() => {
      const due = Math.floor((Date.now() - this.t0) / 20)
      while (this.ts / TS_PER_PACKET < due) this.sendFrame()
    }, 10)
  }

  /** Sends `digits` as RFC 4733 telephone-events (PT 101) in place of audio. */
  sendDigits(digits: string): void {
    for (const d of digits) this.digitQueue.push('0123456789*#ABCD'.indexOf(d.toUpperCase()))
  }

  private decode(payload: Uint8Array): Int16Array {
    if (this.g722dec) {
      const pcm = new Int16Array(payload.length * 2)
      this.g722dec.decode(payload, pcm)
      return pcm
    }
    const table = this.codec === 'PCMA' ? ALAW_DECODE : ULAW_DECODE
    return Int16Array.from(payload, (b) => table[b]!)
  }

  private sendFrame(): void {
    if (this.digitQueue.length > 0) return this.sendEvent()
    const b = Buffer.alloc(12 + PAYLOAD_BYTES)
    b[0] = 0x80
    b[1] = CODECS[this.codec].pt
    b.writeUInt16BE(this.seq++ & 0xffff, 2)
    b.writeUInt32BE(this.ts >>> 0, 4)
    b.writeUInt32BE(0x1234abcd, 8)
    const pcm = this.frame
    for (let i = 0; i < pcm.length; i++) pcm[i] = this.signal(this.sent + i)
    if (this.g722enc) this.g722enc.encode(pcm, b.subarray(12))
    else {
      const table = this.codec === 'PCMA' ? ALAW_ENCODE : ULAW_ENCODE
      for (let i = 0; i < pcm.length; i++) b[12 + i] = table[pcm[i]! & 0xffff]!
    }
    this.sent += pcm.length
    this.ts += TS_PER_PACKET
    if (this.remote) this.socket.send(b, this.remote.port, this.remote.address)
  }

  private sendEvent(): void {
    // RFC 4733 §2.5: same timestamp for every packet of an event, duration grows, E bit on the last three.
    if (this.digitPkt === 0) this.digitTs = this.ts
    const end = this.digitPkt >= 5
    const b = Buffer.alloc(16)
    b[0] = 0x80
    b[1] = 101 | (this.digitPkt === 0 ? 0x80 : 0)
    b.writeUInt16BE(this.seq++ & 0xffff, 2)
    b.writeUInt32BE(this.digitTs >>> 0, 4)
    b.writeUInt32BE(0x1234abcd, 8)
    b[12] = this.digitQueue[0]!
    b[13] = (end ? 0x80 : 0) | 10
    // Duration in RTP clock units (telephone-event/8000), whatever the audio codec's sample rate.
    b.writeUInt16BE(Math.min(this.digitPkt + 1, 6) * TS_PER_PACKET, 14)
    this.sent += this.frame.length
    this.ts += TS_PER_PACKET
    if (this.remote) this.socket.send(b, this.remote.port, this.remote.address)
    if (++this.digitPkt >= 8) { this.digitQueue.shift(); this.digitPkt = 0 }
  }

  /** Decoded audio received at or after wall time `since` (ms), concatenated. */
  audioSince(since: number, until = Infinity): Int16Array {
    const parts = this.audio.filter((_, i) => this.audioAt[i]! >= since && this.audioAt[i]! < until)
    const out = new Int16Array(parts.reduce((a, p) => a + p.length, 0))
    let o = 0
    for (const p of parts) { out.set(p, o); o += p.length }
    return out
  }

  /** Digits of the completed RFC 4733 events received, in order (one per event, by timestamp). */
  digits(): string {
    const seen = new Set<number>()
    let s = ''
    for (const e of this.events) {
      if (!e.end || seen.has(e.timestamp)) continue
      seen.add(e.timestamp)
      s += '0123456789*#ABCD'[e.event] ?? '?'
    }
    return s
  }

  close(): void {
    if (this.timer) clearInterval(this.timer)
    this.socket.close()
  }
}

/**
 * The caller's SDP (RFC 4566), indented for a sipp CDATA block: one m=audio
 * line at its socket offering its codec alone, plus telephone-event
 * (RFC 4733 §7.1.1, events 0-16) when `dtmf`.
 */
export function callerSdp(caller: RtpCaller, version: number, direction: string, dtmf: boolean): string {
  const { pt, rtpmap } = CODECS[caller.codec]
  return [
    'v=0',
    `o=caller 1 ${version} IN IP4 127.0.0.1`,
    's=-',
    'c=IN IP4 127.0.0.1',
    't=0 0',
    `m=audio ${caller.port} RTP/AVP ${pt}${dtmf ? ' 101' : ''}`,
    `a=rtpmap:${pt} ${rtpmap}`,
    ...(dtmf ? ['a=rtpmap:101 telephone-event/8000', 'a=fmtp:101 0-16'] : []),
    `a=${direction}`,
  ].map((l) => `      ${l}`).join('\n')
}

/**
 * Places a call from sipp to `service` on the engine with SDP that points at
 * `caller`'s socket (its codec, plus telephone-event unless `dtmf` is false).
 * sipp answers the engine's BYE; with `infoDigits` it first expects one SIP
 * INFO application/dtmf-relay per digit, in order (the DTMF fallback).
 * `localIp` is the address sipp sends from (a trunk matched by source address).
 */
export async function placeCall(o: {
  dir: string; sipPort: number; service: string; caller: RtpCaller; dtmf?: boolean; infoDigits?: string; reinvites?: number; timeoutMs?: number; localIp?: string
  /** The caller sends these digits as SIP INFO (application/dtmf-relay), `afterMs` after its ACK, one per second. */
  sendInfo?: { digits: string; afterMs: number }
}): Promise<{ done: Promise<SippResult>; kill: () => void }> {
  const dtmf = o.dtmf !== false
  const from = 'sipp <sip:+14155550100@[local_ip]:[local_port]>'
  const contact = 'sip:sipp@[local_ip]:[local_port]'
  const sendInfo = [...(o.sendInfo?.digits ?? '')].map((d, i) => `
  <pause milliseconds="${i === 0 ? o.sendInfo!.afterMs : 1000}"/>${callerRequest({ method: 'INFO', from, contact, cseq: 2 + i, body: dtmfRelay(d) })}`).join('')
  // Hold/unhold re-INVITEs from the engine (RFC 3264 §8.4): answered with the
  // mirror direction of the offer (sendonly → recvonly).
  const reinvites = Array.from({ length: o.reinvites ?? 0 }, (_, i) => `
  <recv request="INVITE" timeout="60000">
    <action><ereg regexp="a=(sendonly|sendrecv|inactive)" search_in="body" check_it="true" assign_to="dir${i},offered${i}"/></action>
  </recv>${reply('200 OK', { toTag: false, contact: '<sip:sipp@[local_ip]:[local_port]>', sdp: callerSdp(o.caller, 2 + i, i % 2 === 0 ? 'recvonly' : 'sendrecv', dtmf) })}
  <recv request="ACK"/>`).join('')
  // check_it: sipp fails the call when the INFO body does not carry the expected digit.
  const info = [...(o.infoDigits ?? '')].map((d, i) => `
  <recv request="INFO" timeout="60000">
    <action><ereg regexp="Signal=${d === '*' ? '\\*' : d}" search_in="body" check_it="true" assign_to="info${i}"/></action>
  </recv>${reply('200 OK', { toTag: false, contact: false })}`).join('')
  const xml = callerScenario({
    name: 'media caller', from, contact, sdp: callerSdp(o.caller, 1, 'sendrecv', dtmf),
    afterAck: `${sendInfo}${info}${reinvites}`, byeTimeoutMs: o.timeoutMs ?? 120000, variables: refs(o.infoDigits?.length ?? 0, o.reinvites ?? 0),
  })
  const file = join(o.dir, `caller-${o.caller.port}.xml`)
  writeFileSync(file, xml)
  return runSipp({ scenario: file, remote: `127.0.0.1:${o.sipPort}`, localPort: await freePort(), ...(o.localIp ? { localIp: o.localIp } : {}), service: o.service, timeoutMs: (o.timeoutMs ?? 120000) + 10000 })
}

/** What the caller's scenario captured (sipp refuses variables assigned but never used). */
function refs(infos: number, reinvites: number): string[] {
  return [...Array.from({ length: infos }, (_, i) => `info${i}`), ...Array.from({ length: reinvites }, (_, i) => [`dir${i}`, `offered${i}`]).flat()]
}

/**
 * After placeCall: the id of the call the API lists as in progress (polled for
 * up to 20 s) and whether the engine's RTP reached the caller (up to 5 s more).
 */
export async function awaitAnsweredCall(api: (path: string) => Promise<Response>, caller: RtpCaller): Promise<{ callId: string; rtp: boolean }> {
  let callId = ''
  for (let i = 0; i < 200 && !callId; i++) {
    const page = await (await api('/v1/calls?status=in-progress')).json() as { data: Array<{ id: string }> }
    callId = page.data[0]?.id ?? ''
    if (!callId) await sleep(100)
  }
  for (let i = 0; i < 100 && callId && !caller.remote; i++) await sleep(50)
  return { callId, rtp: Boolean(caller.remote) }
}

/** Power of `freq` in `pcm` (sampled at `rate`) relative to its total power (Goertzel), 0..1. */
export function toneRatio(pcm: Int16Array, freq: number, rate = 8000): number {
  const n = pcm.length
  if (n === 0) return 0
  const k = 2 * Math.cos((2 * Math.PI * freq) / rate)
  let s1 = 0, s2 = 0, total = 0
  for (let i = 0; i < n; i++) {
    const s = pcm[i]! + k * s1 - s2
    s2 = s1
    s1 = s
    total += pcm[i]! * pcm[i]!
  }
  const power = s1 * s1 + s2 * s2 - k * s1 * s2
  // A pure sinusoid gives power ≈ total·n/2.
  return total === 0 ? 0 : Math.min(1, (2 * power) / (n * total))
}

export function rms(pcm: Int16Array): number {
  let acc = 0
  for (let i = 0; i < pcm.length; i++) acc += pcm[i]! * pcm[i]!
  return pcm.length ? Math.sqrt(acc / pcm.length) : 0
}

/** 20 ms frames of `pcm` at 8 kHz. */
export const frames = (pcm: Int16Array): Int16Array[] => Array.from({ length: Math.floor(pcm.length / 160) }, (_, i) => pcm.subarray(i * 160, i * 160 + 160))
/** A frame with speech or tone in it (not silence or comfort noise). */
export const voiced = (f: Int16Array): boolean => rms(f) > 300

export function sine(freq: number, seconds: number, amplitude = 8000, rate = 8000): Int16Array {
  const out = new Int16Array(Math.round(seconds * rate))
  for (let i = 0; i < out.length; i++) out[i] = Math.round(amplitude * Math.sin((2 * Math.PI * freq * i) / rate))
  return out
}

/** A mono 16-bit PCM WAV file of `pcm`. */
export function wavFile(pcm: Int16Array, rate = 8000): Buffer {
  return encodeWav(pcm, rate)
}

/**
 * Best normalised cross-correlation of `window` against `reference` over
 * offsets [from, to): where in what was sent a recorded stretch came from.
 */
export function bestCorrelation(window: Int16Array, reference: Int16Array, from: number, to: number): { offset: number; r: number } {
  let best = { offset: -1, r: 0 }
  let ew = 0
  for (let i = 0; i < window.length; i++) ew += window[i]! * window[i]!
  for (let off = Math.max(0, from); off < Math.min(to, reference.length - window.length); off++) {
    let dot = 0, er = 0
    for (let i = 0; i < window.length; i++) { const r = reference[off + i]!; dot += window[i]! * r; er += r * r }
    const r = ew && er ? dot / Math.sqrt(ew * er) : 0
    if (r > best.r) best = { offset: off, r }
  }
  return best
}

/** Mean tone ratio over the loud 20 ms frames (8 kHz) heard since `since`, and how many there were. */
export function heard(c: RtpCaller, since: number, f: number): { frames: number; ratio: number } {
  const pcm = c.audioSince(since)
  const frames: Int16Array[] = []
  for (let i = 0; i + 160 <= pcm.length; i += 160) { const fr = pcm.subarray(i, i + 160); if (rms(fr) > 500) frames.push(fr) }
  const ratio = frames.length ? frames.reduce((a, fr) => a + toneRatio(fr, f), 0) / frames.length : 0
  return { frames: frames.length, ratio }
}

/**
 * Places a sipp call with its own RtpCaller to `service` and waits for the
 * new in-progress call record (one not in `known`, which it joins) and for
 * the engine's first RTP. Teardown closes both.
 */
export async function placeTrackedCall(o: {
  dir: string; sipPort: number; service: string; known: Set<string>
  api: (path: string) => Promise<Response>
  teardown: (fn: () => unknown) => void
}): Promise<{ c: RtpCaller; id: string; sipp: Awaited<ReturnType<typeof placeCall>> }> {
  const c = new RtpCaller()
  await c.start()
  o.teardown(() => c.close())
  const sipp = await placeCall({ dir: o.dir, sipPort: o.sipPort, service: o.service, caller: c })
  o.teardown(() => sipp.kill())
  let id = ''
  for (let i = 0; i < 200 && !id; i++) {
    const page = await (await o.api('/v1/calls?status=in-progress')).json() as { data: Array<{ id: string }> }
    id = page.data.find((x) => !o.known.has(x.id))?.id ?? ''
    if (!id) await sleep(100)
  }
  o.known.add(id)
  for (let i = 0; i < 100 && !c.remote; i++) await sleep(50)
  return { c, id, sipp }
}
