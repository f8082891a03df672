import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { freePort } from './ports.ts'
import { runSipp, waitListening, type SippOptions, type SippResult } from './sipp.ts'
import { SCN as SCENARIOS, sippUas } from '../sip/app/sipp-util.ts'

/**
 * The sipp scenarios the tests and bench scripts write for themselves, built
 * from one set of pieces: a UAS (phone, carrier's number, contact agent's
 * phone) that answers (RTP at a given port or sipp's own, a pcap played),
 * answers 486 busy or rings until CANCEL; a UAC calling the engine; and the
 * launchers (a UAS on a free port once it listens, an extension registering
 * with digest). bench/ imports this too (dependency-cruiser leaves test/ and
 * bench/ out of the layers).
 *
 * sipp trims each message line, so the pieces indent freely; it also refuses
 * a variable assigned but never used, hence the `<Reference>` every scenario
 * ends with (for what it captured).
 */

/** A whole scenario: the XML prologue, `body`, and a Reference to `variables`. */
export function scenario(name: string, body: string, variables: string[] = []): string {
  const refs = variables.length ? `\n  <Reference variables="${variables.join(',')}"/>` : ''
  return `<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="${name}">${body}${refs}
</scenario>
`
}

/**
 * What a UAS keeps of the INVITE: `dialog` (From, To, Contact: to send its own
 * BYE or INFO), `cseq` (for the 487 after a CANCEL), the users of From, To and
 * the Request-URI (to log whom the engine called, and as whom).
 */
const CAPTURES = {
  dialog: { xml: ['<ereg regexp=".*" search_in="hdr" header="From:" assign_to="ifrom"/>', '<ereg regexp=".*" search_in="hdr" header="To:" assign_to="ito"/>', '<ereg regexp="Contact: *.?(sips?:[^>;\\r\\n]+)" search_in="msg" assign_to="icall,icontact"/>'], variables: ['icall', 'ifrom', 'ito', 'icontact'] },
  cseq: { xml: ['<ereg regexp="[0-9]+" search_in="hdr" header="CSeq:" assign_to="invcseq"/>'], variables: ['invcseq'] },
  fromuser: { xml: ['<ereg regexp="From: [^\\r\\n]*sip:([^@>;]+)" search_in="msg" assign_to="fall,fromuser"/>'], variables: ['fall'] },
  touser: { xml: ['<ereg regexp="To: *.?sip:([^@>;]+)" search_in="msg" assign_to="tall,touser"/>'], variables: ['tall', 'touser'] },
  ruser: { xml: ['<ereg regexp="^INVITE sips?:([^@; ]+)" search_in="msg" assign_to="rall,ruser"/>'], variables: ['rall'] },
} as const
export type InviteCapture = keyof typeof CAPTURES

/** Receives the INVITE, capturing `capture` and logging `log` (sipp keywords and [$fromuser], [$touser], [$ruser] welcome). */
export function recvInvite(capture: InviteCapture[], log?: string): { xml: string; variables: string[] } {
  const actions = [...capture.flatMap((c) => CAPTURES[c].xml), ...(log ? [`<log message="${log}"/>`] : [])]
  const xml = actions.length ? `
  <recv request="INVITE">
    <action>
${actions.map((a) => `      ${a}`).join('\n')}
    </action>
  </recv>` : '\n  <recv request="INVITE"/>'
  return { xml, variables: capture.flatMap((c) => [...CAPTURES[c].variables]) }
}

/**
 * A response to the last request. `toTag` (default on) tags our To for a
 * response that makes the dialog (the engine's in-dialog requests carry it
 * already); `contact` (default on) adds our Contact; `sdp` is a body; `retrans`
 * retransmits it until the ACK (a 200 to an INVITE).
 */
export function reply(status: string, o: { toTag?: boolean; contact?: boolean | string; sdp?: string; retrans?: boolean; cseq?: string } = {}): string {
  const contact = o.contact === false ? [] : [`Contact: ${typeof o.contact === 'string' ? o.contact : '<sip:[local_ip]:[local_port];transport=[transport]>'}`]
  const lines = [
    `SIP/2.0 ${status}`, '[last_Via:]', '[last_From:]', `[last_To:]${o.toTag === false ? '' : ';tag=[pid]SIPpTag01[call_number]'}`, '[last_Call-ID:]', o.cseq ?? '[last_CSeq:]',
    ...contact,
    ...(o.sdp ? ['Content-Type: application/sdp', 'Content-Length: [len]'] : ['Content-Length: 0']),
  ]
  return `
  <send${o.retrans ? ' retrans="500"' : ''}><![CDATA[
${lines.map((l) => `      ${l}`).join('\n')}${o.sdp ? `\n\n${o.sdp}` : ''}

    ]]></send>`
}

/** An SDP offer/answer for one audio stream at `port` (a number, or sipp's `[media_port]`). */
export function sdp(o: { port: number | string; origin?: string; codec?: 'PCMU' | 'PCMA'; telephoneEvent?: boolean; ptime?: boolean; version?: number; direction?: string }): string {
  const pt = o.codec === 'PCMA' ? 8 : 0
  return [
    'v=0', `o=${o.origin ?? 'callee'} 1 ${o.version ?? 1} IN IP4 127.0.0.1`, 's=-', 'c=IN IP4 127.0.0.1', 't=0 0',
    `m=audio ${o.port} RTP/AVP ${pt}${o.telephoneEvent ? ' 101' : ''}`,
    `a=rtpmap:${pt} ${o.codec ?? 'PCMU'}/8000`,
    ...(o.telephoneEvent ? ['a=rtpmap:101 telephone-event/8000', 'a=fmtp:101 0-16'] : []),
    ...(o.ptime ? ['a=ptime:20'] : []),
    `a=${o.direction ?? 'sendrecv'}`,
  ].map((l) => `      ${l}`).join('\n')
}

/** A UAS's in-dialog request on the dialog it captured (`dialog`): BYE or INFO, answered 200. */
export function uasRequest(method: 'BYE' | 'INFO', cseq: number, body?: { type: string; text: string }): string {
  return `
  <send retrans="500"><![CDATA[
      ${method} [$icontact] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From:[$ito];tag=[pid]SIPpTag01[call_number]
      To:[$ifrom]
      Call-ID: [call_id]
      CSeq: ${cseq} ${method}
      Contact: <sip:[local_ip]:[local_port];transport=[transport]>
      Max-Forwards: 70
${body ? `      Content-Type: ${body.type}\n      Content-Length: [len]\n\n${body.text}` : '      Content-Length: 0'}
    ]]></send>
  <recv response="200"/>`
}

/** Waits up to `timeoutMs` for the engine's BYE and answers it. */
export function awaitBye(timeoutMs: number): string {
  return `
  <recv request="BYE" timeout="${timeoutMs}"/>${reply('200 OK', { toTag: false, contact: false })}`
}

/** SIP INFO application/dtmf-relay body for one digit. */
export const dtmfRelay = (digit: string) => ({ type: 'application/dtmf-relay', text: `Signal=${digit}\nDuration=160` })

/** How a UAS ends an answered call. */
export type UasEnd =
  /** waits for the engine's BYE (up to timeoutMs, default 60 s) */
  | { by: 'engine'; timeoutMs?: number }
  /** hangs up itself after afterMs */
  | { by: 'callee'; afterMs: number }
  /** hangs up after holdMs unless the engine's BYE came first; logs HANGUP and END [timestamp] [call_id] callee|engine */
  | { by: 'either'; holdMs: number }

export interface UasScenario {
  name: string
  /** What the INVITE is answered with. */
  kind: 'answer' | 'busy' | 'ring'
  /** Captured besides what the kind needs (log placeholders). */
  capture?: InviteCapture[]
  log?: string
  /** answer: a 180 first (default true) */
  ringing?: boolean
  /** answer: pause before the 200 */
  answerAfterMs?: number
  /** answer: the SDP's port (a test's RTP socket), default sipp's [media_port] */
  rtpPort?: number
  codec?: 'PCMU' | 'PCMA'
  telephoneEvent?: boolean
  /** answer: plays this pcap (sipp's media) once ACKed */
  playPcap?: string
  /** answer: presses this digit (SIP INFO) 1.5 s after the ACK */
  infoDigit?: string
  end?: UasEnd
  /** ring: how long it waits for the CANCEL (default 60 s) */
  cancelTimeoutMs?: number
}

/** A UAS scenario: rings (180) then answers, answers 486 Busy Here, or rings until CANCEL (200, 487, ACK). */
export function uasScenario(o: UasScenario): string {
  const end = o.end ?? { by: 'engine' }
  const needs: InviteCapture[] = o.kind === 'ring' ? ['cseq'] : o.kind === 'answer' && (end.by !== 'engine' || o.infoDigit) ? ['dialog'] : []
  const capture = [...new Set([...needs, ...(o.capture ?? [])])]
  const invite = recvInvite(capture, o.log)
  if (o.kind === 'busy') return scenario(o.name, `${invite.xml}${reply('486 Busy Here', { contact: false })}\n  <recv request="ACK"/>`, invite.variables)
  const ringing = reply('180 Ringing')
  if (o.kind === 'ring') {
    return scenario(o.name, `${invite.xml}${ringing}
  <recv request="CANCEL" timeout="${o.cancelTimeoutMs ?? 60_000}"/>${reply('200 OK', { contact: false })}${reply('487 Request Terminated', { contact: false, cseq: 'CSeq: [$invcseq] INVITE' })}
  <recv request="ACK"/>
  <timewait milliseconds="200"/>`, invite.variables)
  }
  const body = sdp({ port: o.rtpPort ?? '[media_port]', codec: o.codec, telephoneEvent: o.telephoneEvent })
  let xml = `${invite.xml}${o.ringing === false ? '' : ringing}${o.answerAfterMs ? `\n  <pause milliseconds="${o.answerAfterMs}"/>` : ''}${reply('200 OK', { sdp: body, retrans: true })}
  <recv request="ACK"/>`
  if (o.playPcap) xml += `\n  <nop><action><exec play_pcap_audio="${o.playPcap}"/></action></nop>`
  let cseq = 2
  if (o.infoDigit) xml += `\n  <pause milliseconds="1500"/>${uasRequest('INFO', cseq++, dtmfRelay(o.infoDigit))}`
  if (end.by === 'engine') xml += `${awaitBye(end.timeoutMs ?? 60_000)}\n  <timewait milliseconds="200"/>`
  else if (end.by === 'callee') xml += `\n  <pause milliseconds="${end.afterMs}"/>${uasRequest('BYE', cseq)}`
  else {
    xml += `
  <recv request="BYE" timeout="${end.holdMs}" ontimeout="hangup" next="gotbye"/>
  <label id="hangup"/>
  <nop><action><log message="HANGUP [timestamp] [call_id]"/></action></nop>${uasRequest('BYE', cseq).replace('<recv response="200"/>', `<recv response="200" next="done">
    <action><log message="END [timestamp] [call_id] callee"/></action>
  </recv>`)}
  <label id="gotbye"/>${reply('200 OK', { toTag: false, contact: false })}
  <nop><action><log message="END [timestamp] [call_id] engine"/></action></nop>
  <label id="done"/>`
  }
  return scenario(o.name, xml, invite.variables)
}

/** A phone that rings until CANCEL, or answers after `answerAfterMs` with RTP (and telephone-event) at the test's `rtpPort`, then hangs up after `byeAfterMs` or waits for the engine's BYE. */
export type PhoneBehaviour = { kind: 'ring' } | { kind: 'answer'; rtpPort: number; answerAfterMs: number; byeAfterMs?: number }

export function phoneScenario(b: PhoneBehaviour, o: { name: string; capture?: InviteCapture[]; log?: string }): string {
  if (b.kind === 'ring') return uasScenario({ ...o, kind: 'ring' })
  return uasScenario({
    ...o, kind: 'answer', rtpPort: b.rtpPort, answerAfterMs: b.answerAfterMs, telephoneEvent: true,
    end: b.byeAfterMs !== undefined ? { by: 'callee', afterMs: b.byeAfterMs } : { by: 'engine' },
  })
}

/**
 * A UAC calling [service] at the engine: INVITE with `sdp` from `from`
 * (a From header's value, tagged here), ACK through the Record-Route set
 * (RFC 3261 §13.2.2.4, §12.1.2: sipp's rrs/[next_url]/[routes]), then
 * `afterAck` (the caller's own steps), then the engine's BYE answered.
 */
export function callerScenario(o: { name: string; from: string; contact: string; sdp: string; afterAck?: string; byeTimeoutMs: number; variables?: string[] }): string {
  return scenario(o.name, `
  <send retrans="500"><![CDATA[
      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: ${o.from};tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: ${o.contact}
      Max-Forwards: 70
      Content-Type: application/sdp
      Content-Length: [len]

${o.sdp}
    ]]></send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="183" optional="true"/>
  <recv response="200" rtd="true" rrs="true"/>
  <send><![CDATA[
      ACK [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: ${o.from};tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      [routes]
      CSeq: 1 ACK
      Contact: ${o.contact}
      Max-Forwards: 70
      Content-Length: 0
    ]]></send>${o.afterAck ?? ''}${awaitBye(o.byeTimeoutMs)}`, o.variables)
}

/** A caller's in-dialog request after the ACK (CSeq `cseq`), e.g. INFO with a digit, answered 200. */
export function callerRequest(o: { method: 'INFO'; from: string; contact: string; cseq: number; body: { type: string; text: string } }): string {
  return `
  <send retrans="500"><![CDATA[
      ${o.method} [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: ${o.from};tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      [routes]
      CSeq: ${o.cseq} ${o.method}
      Contact: ${o.contact}
      Max-Forwards: 70
      Content-Type: ${o.body.type}
      Content-Length: [len]

${o.body.text}
    ]]></send>
  <recv response="200"/>`
}

export type RunningUas = { port: number; file: string; done: Promise<SippResult & { log: string }>; kill: () => void }

/** Writes `xml` to `dir` and starts it as a UAS on `port` (a free one by default); resolves once sipp listens. */
export async function startUas(dir: string, name: string, xml: string, opts: Omit<SippOptions, 'scenario' | 'localPort'> & { port?: number } = {}): Promise<RunningUas> {
  const { port: wanted, ...sippOpts } = opts
  const port = wanted ?? await freePort()
  const file = join(dir, `${name}-${port}.xml`)
  writeFileSync(file, xml)
  const uas = sippUas(file, port, sippOpts)
  await waitListening(port)
  return { ...uas, file }
}

/** Registers extension `username` (digest, sipp's register-auth.xml) from `localPort` at the engine's SIP port. */
export async function registerExtension(o: { sipPort: number; localPort: number; username: string; password: string; timeoutMs?: number }): Promise<SippResult> {
  return runSipp({ scenario: join(SCENARIOS, 'register-auth.xml'), remote: `127.0.0.1:${o.sipPort}`, localPort: o.localPort, service: o.username, args: ['-au', o.username, '-ap', o.password], timeoutMs: o.timeoutMs ?? 15_000 }).done
}
