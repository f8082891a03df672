/**
 * Media anchoring through rtpengine (RTPENGINE_NG): offer/answer/delete over
 * the ng protocol with rtpengine-client, so RTP flows
 * peer ↔ rtpengine ↔ our MediaSession. rtpengine then handles NAT, and later
 * SRTP/WebRTC and recording; our session is just the endpoint behind it.
 *
 * Two directions:
 * - the peer offers (inbound call): `answerThrough` runs the peer's offer
 *   through rtpengine ("offer"), answers the rewritten SDP with our session,
 *   and runs our answer back through rtpengine ("answer") for the peer;
 * - we offer (outbound call): `offerThrough` then `acceptAnswer`.
 * `transcode` asks rtpengine to add codecs towards the answerer (ng
 * `codec: { transcode: [...] }`), e.g. an Opus peer reaching a PCMU-only leg.
 */
import { splitHostPort } from '../../config/reachable-address.ts'
import { createRequire } from 'node:module'

interface NgResponse { result: string; sdp?: string; 'error-reason'?: string; [k: string]: unknown }
interface NgClient {
  offer(port: number, host: string, opts: Record<string, unknown>): Promise<NgResponse>
  answer(port: number, host: string, opts: Record<string, unknown>): Promise<NgResponse>
  delete(port: number, host: string, opts: Record<string, unknown>): Promise<NgResponse>
  ping(port: number, host: string): Promise<NgResponse>
  query(port: number, host: string, opts: Record<string, unknown>): Promise<NgResponse>
  close(): void
  on(ev: 'listening' | 'error', fn: (...a: unknown[]) => void): void
}
const { Client } = createRequire(import.meta.url)('rtpengine-client') as { Client: new (opts: { timeout?: number; localAddress?: string }) => NgClient }

/** What the anchor needs from a session (a MediaSession, or a hold offer built on one). */
export interface AnchorableSession {
  createOffer(): Promise<string>
  createAnswer(offer: string): Promise<string>
  setRemoteDescription(answer: string): Promise<void>
}

export interface CallIds { callId: string; fromTag: string; toTag?: string }

export interface AnchorOptions {
  /** "host:port" of rtpengine's ng listener (RTPENGINE_NG). */
  ng: string
  timeoutMs?: number
}

export class RtpengineError extends Error {}

export class RtpengineAnchor {
  private readonly client: NgClient
  private readonly host: string
  private readonly port: number

  constructor(opts: AnchorOptions) {
    const { host, port } = splitHostPort(opts.ng)
    this.host = host || '127.0.0.1'
    this.port = port
    if (!this.port) throw new RangeError(`bad RTPENGINE_NG ${opts.ng}`)
    this.client = new Client({ timeout: opts.timeoutMs ?? 2000, localAddress: this.host === '127.0.0.1' ? '127.0.0.1' : undefined })
  }

  private check(r: NgResponse, verb: string): string {
    if (r.result !== 'ok' || !r.sdp) throw new RtpengineError(`rtpengine ${verb} failed: ${r['error-reason'] ?? r.result}`)
    return r.sdp
  }

  private flags(extra: Record<string, unknown>): Record<string, unknown> {
    // Both sides of our anchor are plain RTP/AVP; let rtpengine rewrite c=/m=
    // to its own address (replace origin + session connection).
    return { replace: ['origin', 'session-connection'], 'ICE': 'remove', ...extra }
  }

  async ping(): Promise<boolean> {
    const r = await this.client.ping(this.port, this.host)
    return r.result === 'pong'
  }

  /** Inbound: returns the SDP answer to send to the peer. */
  async answerThrough(session: AnchorableSession, peerOffer: string, ids: CallIds & { toTag: string }, transcode: string[] = []): Promise<string> {
    const towardsUs = this.check(await this.client.offer(this.port, this.host, this.flags({
      sdp: peerOffer, 'call-id': ids.callId, 'from-tag': ids.fromTag,
      ...(transcode.length ? { codec: { transcode } } : {}),
    })), 'offer')
    const ourAnswer = await session.createAnswer(towardsUs)
    return this.check(await this.client.answer(this.port, this.host, this.flags({
      sdp: ourAnswer, 'call-id': ids.callId, 'from-tag': ids.fromTag, 'to-tag': ids.toTag,
    })), 'answer')
  }

  /** Outbound: returns the SDP offer to send to the peer. */
  async offerThrough(session: AnchorableSession, ids: CallIds, transcode: string[] = []): Promise<string> {
    const ourOffer = await session.createOffer()
    return this.check(await this.client.offer(this.port, this.host, this.flags({
      sdp: ourOffer, 'call-id': ids.callId, 'from-tag': ids.fromTag,
      ...(transcode.length ? { codec: { transcode } } : {}),
    })), 'offer')
  }

  /** Outbound: the peer's answer, rewritten by rtpengine, completes our session. */
  async acceptAnswer(session: AnchorableSession, peerAnswer: string, ids: CallIds & { toTag: string }): Promise<void> {
    const towardsUs = this.check(await this.client.answer(this.port, this.host, this.flags({
      sdp: peerAnswer, 'call-id': ids.callId, 'from-tag': ids.fromTag, 'to-tag': ids.toTag,
    })), 'answer')
    await session.setRemoteDescription(towardsUs)
  }

  /** rtpengine's per-call statistics (packets relayed per stream). */
  async query(ids: CallIds): Promise<NgResponse> {
    // Without a from-tag rtpengine reports the whole call, every tag included.
    return this.client.query(this.port, this.host, { 'call-id': ids.callId, ...(ids.fromTag ? { 'from-tag': ids.fromTag } : {}) })
  }

  async delete(ids: CallIds): Promise<void> {
    await this.client.delete(this.port, this.host, { 'call-id': ids.callId, 'from-tag': ids.fromTag })
  }

  close(): void {
    this.client.close()
  }
}
