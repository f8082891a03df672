/**
 * A minimal SIP UAS for media tests (RFC 3261 just enough for sipp and
 * baresip to set up one call): answers INVITE with the SDP a callback returns,
 * absorbs ACK, answers BYE. The real SIP stack lives in sip/ and is tested
 * there; this keeps the media tests independent of it.
 */
import { createSocket, type Socket, type RemoteInfo } from 'node:dgram'
import { EventEmitter } from 'node:events'

interface SipMessage { start: string; headers: Map<string, string[]>; body: string }

function parse(text: string): SipMessage {
  const [head, ...rest] = text.split('\r\n\r\n')
  const lines = head!.split('\r\n')
  const headers = new Map<string, string[]>()
  const compact: Record<string, string> = { v: 'via', f: 'from', t: 'to', i: 'call-id', m: 'contact', l: 'content-length', c: 'content-type' }
  for (const line of lines.slice(1)) {
    const idx = line.indexOf(':')
    if (idx < 0) continue
    let name = line.slice(0, idx).trim().toLowerCase()
    name = compact[name] ?? name
    const list = headers.get(name) ?? []
    list.push(line.slice(idx + 1).trim())
    headers.set(name, list)
  }
  return { start: lines[0]!, headers, body: rest.join('\r\n\r\n') }
}

export interface MiniUasEvents {
  invite: [{ callId: string; sdp: string }]
  bye: [{ callId: string }]
}

export class MiniUas extends EventEmitter<MiniUasEvents> {
  private readonly sock: Socket
  private readonly answers = new Map<string, string>()
  port = 0

  constructor(private readonly answer: (offer: string, callId: string) => Promise<string>, private readonly host = '127.0.0.1') {
    super()
    this.sock = createSocket('udp4')
    this.sock.on('message', (m, r) => { void this.onMessage(m.toString('utf8'), r) })
  }

  async listen(port = 0): Promise<number> {
    await new Promise<void>((r) => this.sock.bind(port, this.host, () => r()))
    this.port = this.sock.address().port
    return this.port
  }

  private reply(req: SipMessage, r: RemoteInfo, status: string, extra: string[] = [], body = ''): void {
    const h = req.headers
    const to = h.get('to')![0]!
    const lines = [
      `SIP/2.0 ${status}`,
      ...h.get('via')!.map((v) => `Via: ${v}`),
      `From: ${h.get('from')![0]}`,
      `To: ${/;tag=/.test(to) ? to : `${to};tag=uas${Math.floor(Math.random() * 1e6)}`}`,
      `Call-ID: ${h.get('call-id')![0]}`,
      `CSeq: ${h.get('cseq')![0]}`,
      `Contact: <sip:media@${this.host}:${this.port}>`,
      ...extra,
      `Content-Length: ${Buffer.byteLength(body)}`,
      '',
      body,
    ]
    this.sock.send(lines.join('\r\n'), r.port, r.address)
  }

  private async onMessage(text: string, r: RemoteInfo): Promise<void> {
    if (text.startsWith('SIP/2.0')) return // responses to nothing we sent
    const req = parse(text)
    const method = req.start.split(' ')[0]
    const callId = req.headers.get('call-id')?.[0] ?? ''
    if (method === 'INVITE') {
      let answer = this.answers.get(callId + req.headers.get('cseq')?.[0])
      if (!answer) {
        this.reply(req, r, '100 Trying')
        this.emit('invite', { callId, sdp: req.body })
        answer = await this.answer(req.body, callId)
        this.answers.set(callId + req.headers.get('cseq')?.[0], answer)
      }
      this.reply(req, r, '200 OK', ['Content-Type: application/sdp'], answer)
    } else if (method === 'BYE') {
      this.reply(req, r, '200 OK')
      this.emit('bye', { callId })
    } else if (method === 'ACK') {
      // nothing to do
    } else {
      this.reply(req, r, '200 OK')
    }
  }

  close(): void { this.sock.close() }
}
