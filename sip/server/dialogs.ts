/**
 * Dialog state (RFC 3261 §12) for dialogs the server holds on behalf of an
 * application: enough to build in-dialog requests the app sends with only a
 * dialog id, and to route in-dialog requests from the network to the app
 * that owns the dialog.
 */
import type { Remote } from './transport.ts'
import { SipMessage, parseNameAddr, formatParams } from './message.ts'

/** Methods whose 2xx (or To-tagged provisional) creates a dialog (§12.1; RFC 6665 for SUBSCRIBE). */
export const DIALOG_METHODS = new Set(['INVITE', 'SUBSCRIBE'])

export type DialogRole = 'uas' | 'uac'

export interface Dialog {
  /** drachtio's dialog id: `<Call-ID>;from-tag=<From tag of the dialog-creating request>`. */
  id: string
  role: DialogRole
  callId: string
  localTag: string
  remoteTag: string
  /** From/To values without tag, as they appear in requests we send (§12.2.1.1). */
  localUri: string
  remoteUri: string
  localSeq: number
  remoteSeq: number
  remoteTarget: string
  routeSet: string[]
  /** Where the peer's messages came from; used as next hop when no route set forces one. */
  peer: Remote
  appId: string
  state: 'early' | 'confirmed' | 'terminated'
  method: string
  /** CSeq of the INVITE that created or last refreshed the session (for ACK). */
  inviteSeq: number
  /** UAS: 2xx being retransmitted until ACK (§13.3.1.4). */
  pending2xx?: { res: SipMessage; timer: NodeJS.Timeout; giveUp: NodeJS.Timeout; seq: number }
  /** UAC: last ACK sent, resent when a 2xx is retransmitted (§13.2.2.4). */
  lastAck?: { seq: number; msg: SipMessage; dest: Remote }
  /** Reliable provisionals awaiting PRACK (RFC 3262 §3), keyed by RSeq. */
  pendingReliable: Map<number, { timer: NodeJS.Timeout; giveUp: NodeJS.Timeout }>
  nextRSeq: number
  createdAt: number
  connectedAt?: number
}

/** A From/To value without its tag: a dialog's local/remote URI (§12.1.1, §12.1.2). */
export function stripTag(value: string, na = parseNameAddr(value)): string {
  if (!na) return value
  const params = { ...na.params }
  delete params['tag']
  return `${na.display ? na.display + ' ' : ''}<${na.uri}>${formatParams(params)}`
}

export function dialogId(callId: string, fromTag: string): string {
  return `${callId};from-tag=${fromTag}`
}

/**
 * The dialog-owned part of a request sent inside `d` (§12.2.1.1): Request-URI = remote target,
 * Route = route set, From/To with the dialog's tags, Call-ID, and the next local CSeq (an ACK
 * reuses its INVITE's, §13.2.2.4). The caller adds Via and the rest.
 */
export function inDialogRequest(d: Dialog, method: string): SipMessage {
  const req = SipMessage.request(method, d.remoteTarget)
  req.add('Max-Forwards', '70')
  for (const r of d.routeSet) req.add('Route', r)
  req.add('From', `${d.localUri};tag=${d.localTag}`)
  req.add('To', d.remoteTag ? `${d.remoteUri};tag=${d.remoteTag}` : d.remoteUri)
  req.add('Call-ID', d.callId)
  let seq: number
  if (method === 'ACK') seq = d.inviteSeq
  else { d.localSeq += 1; seq = d.localSeq }
  if (method === 'INVITE') d.inviteSeq = seq
  req.add('CSeq', `${seq} ${method}`)
  return req
}

export class DialogStore {
  private byId = new Map<string, Dialog>()
  private byKey = new Map<string, Dialog>()
  private byCallId = new Map<string, Dialog>()

  get size(): number { return this.byId.size }

  add(d: Dialog): void {
    this.byId.set(d.id, d)
    this.byKey.set(`${d.callId}|${d.localTag}|${d.remoteTag}`, d)
    this.byCallId.set(d.callId, d)
  }

  /** Any live dialog with this Call-ID (drachtio maps app requests carrying one into it). */
  findByCallId(callId: string): Dialog | undefined { return this.byCallId.get(callId) }

  get(id: string): Dialog | undefined { return this.byId.get(id) }

  /** §12.2.2: match by Call-ID, local tag (To tag of the request) and remote tag (From tag). */
  match(callId: string, localTag: string, remoteTag: string): Dialog | undefined {
    return this.byKey.get(`${callId}|${localTag}|${remoteTag}`)
  }

  /** Early UAC dialogs learn the remote tag from a provisional/2xx response. */
  setRemoteTag(d: Dialog, tag: string): void {
    this.byKey.delete(`${d.callId}|${d.localTag}|${d.remoteTag}`)
    d.remoteTag = tag
    this.byKey.set(`${d.callId}|${d.localTag}|${d.remoteTag}`, d)
  }

  remove(d: Dialog): void {
    d.state = 'terminated'
    if (d.pending2xx) { clearTimeout(d.pending2xx.timer); clearTimeout(d.pending2xx.giveUp); d.pending2xx = undefined }
    for (const p of d.pendingReliable.values()) { clearTimeout(p.timer); clearTimeout(p.giveUp) }
    d.pendingReliable.clear()
    if (this.byId.get(d.id) === d) this.byId.delete(d.id)
    const k = `${d.callId}|${d.localTag}|${d.remoteTag}`
    if (this.byKey.get(k) === d) this.byKey.delete(k)
    if (this.byCallId.get(d.callId) === d) this.byCallId.delete(d.callId)
  }

  all(): IterableIterator<Dialog> { return this.byId.values() }

  byApp(appId: string): Dialog[] { return [...this.byId.values()].filter((d) => d.appId === appId) }
}
