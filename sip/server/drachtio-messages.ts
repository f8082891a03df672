/**
 * What a drachtio client sees of SIP: the `sip|...` lines that carry network messages to it,
 * the `OK|...` replies that tell it what was sent on its behalf, `cdr:*` events, and how an
 * application's message is merged into the one the server completes (the server owns the
 * core headers). Line formats follow drachtio-srf's `lib/drachtio-agent.js`.
 */
import type { SipMessage } from './message.ts'
import type { Remote, Inbound, Protocol } from './transport.ts'
import type { SipAddressing } from './addressing.ts'
import { formatMeta, stackTime, type AppConnection } from './drachtio-protocol.ts'

/** Headers the server owns when completing app messages; the app's copies are ignored. */
const CORE_HEADERS = new Set(['via', 'call-id', 'cseq', 'content-length', 'max-forwards', 'from', 'to', 'route', 'record-route'])

/** App-supplied headers that are not owned by the core, in order (Contact with our address for `localhost`). */
export function appHeaders(msg: SipMessage, protocol: Protocol, address: SipAddressing): { name: string; value: string }[] {
  return msg.headers
    .filter((h) => !CORE_HEADERS.has(h.name.toLowerCase()))
    .map((h) => (h.name === 'Contact' ? { name: h.name, value: address.localize(h.value, protocol, true) } : h))
}

/** `sip|network|<meta>|<txnId>|<dialogId>|<local addr>|<local port>` + message, as drachtio-agent parses it. */
export function deliverRequest(app: AppConnection, msg: SipMessage, from: Inbound | Remote, txnId: string, dlgId: string, address: SipAddressing): void {
  const raw = msg.toString()
  // receivedOn: a wildcard bind does not tell us the datagram's destination, so advertise ours.
  const la = 'localAddress' in from && from.localAddress !== '0.0.0.0' && from.localAddress !== '::' ? from.localAddress : address.localHost()
  const local = `${la}|${'localPort' in from ? from.localPort : address.port}`
  const meta = formatMeta({ source: 'network', length: Buffer.byteLength(raw), protocol: from.protocol, address: from.address, port: from.port, time: stackTime() })
  app.send(`sip|${meta}|${txnId}|${dlgId}|${local}\r\n${raw}`)
}

/** A response from the network to a request the app sent. */
export function deliverResponse(app: AppConnection, res: SipMessage, from: Inbound | Remote, txnId: string, dlgId: string): void {
  const raw = res.toString()
  const meta = formatMeta({ source: 'network', length: Buffer.byteLength(raw), protocol: from.protocol, address: from.address, port: from.port, time: stackTime() })
  app.send(`sip|${meta}|${txnId}|${dlgId}|\r\n${raw}`)
}

/** A request the server sent in the app's dialog on its own (drachtio-server's `unsolicited`). */
export function deliverUnsolicited(app: AppConnection, sent: SipMessage, to: Remote, dlgId: string): void {
  const raw = sent.toString()
  const meta = formatMeta({ source: 'application', length: Buffer.byteLength(raw), protocol: to.protocol, address: to.address, port: to.port, time: stackTime() })
  app.send(`sip|${meta}|unsolicited|${dlgId}\r\n${raw}`)
}

/** `OK|<meta>|<txnId>|<dialogId>` + the message as sent: the reply to the app's `sip` command. */
export function ackApp(app: AppConnection, clientMsgId: string, sent: SipMessage, to: Remote, txnId: string, dlgId: string): void {
  const raw = sent.toString()
  const meta = formatMeta({ source: 'application', length: Buffer.byteLength(raw), protocol: to.protocol, address: to.address, port: to.port, time: stackTime() })
  app.respond(clientMsgId, `OK|${meta}|${txnId}|${dlgId}`, raw)
}

export type CdrKind = 'attempt' | 'start' | 'stop'

/** `cdr:<kind>|<source>|<time>[|<extra>]` + the message, to every app that routes `cdr:<kind>`. */
export function sendCdr(apps: AppConnection[], kind: CdrKind, source: 'network' | 'application', msg: SipMessage, extra?: string): void {
  const verb = `cdr:${kind}`
  const routed = apps.filter((a) => a.routes.has(verb))
  if (routed.length === 0) return
  const raw = msg.toString()
  const time = new Date().toISOString()
  for (const a of routed) a.send(`${verb}|${source}|${time}${extra !== undefined && kind !== 'attempt' ? '|' + extra : ''}\r\n${raw}`)
}

