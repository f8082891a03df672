import type Srf from 'drachtio-srf'

/**
 * The boundary between signalling and media: sip/app asks for an endpoint,
 * gets SDP back, and tells the endpoint about the dialog. The media engine
 * (and the agent runtime on top of it) implements this; sip/app never touches
 * RTP itself.
 */

export interface CallContext {
  callId: string
  accountId: string
  direction: 'inbound' | 'outbound'
  agentId: string | null
  from: string
  to: string
  /** Free-form: whisper text, transfer context, the number that was called... */
  metadata?: Record<string, unknown>
  /**
   * The SIP dialog this media answers (RFC 3261 §12: Call-ID and tags), when
   * known: an inbound INVITE's Call-ID and From tag. Our own To tag is chosen
   * by the SIP server when it answers, after the binder, so it is absent.
   */
  sip?: { callId: string; fromTag?: string; toTag?: string }
  /** Record the call from answer (`record` on POST /v1/calls). */
  record?: boolean
  /** Outbound agent calls: answering-machine detection instead of the agent's own setting (a campaign's `amd`). */
  amd?: AmdOverride
}

/**
 * A call's own answering-machine policy for its agent (call/agent-binder.ts
 * applies it over the agent's `amd`): `enabled: false` means no detection.
 */
export interface AmdOverride {
  enabled: boolean
  onMachine?: 'hangup' | 'leave_message' | 'continue' | undefined
  /** What leave_message says. */
  message?: string | undefined
}

export interface MediaLeg {
  /** Our SDP: an answer (answer()) or an offer (offer()). */
  readonly localSdp: string
  /** The far end's answer to our offer (UAC), or a new offer in a re-INVITE; returns our SDP for that re-INVITE. */
  setRemote(sdp: string): Promise<string>
  /** Called once the dialog exists (200/ACK): the agent may start talking. */
  attach(dialog: Srf.Dialog): void
  /**
   * Our re-INVITE offer for hold (sendonly) or unhold (sendrecv); the answer
   * then goes to setRemote. Without it sip/app rewrites localSdp's direction.
   */
  holdOffer?(held: boolean): Promise<string>
  /** Plays music-on-hold (true) or stops it (false) while the other side is held. */
  setHold?(held: boolean): Promise<void>
  /** Plays a short announcement (whisper) and resolves when done. */
  say?(text: string): Promise<void>
  /** A DTMF digit that arrived by SIP INFO on the dialog (RFC 2976), handled as if it came by RFC 4733. */
  injectDtmf?(digit: string, durationMs?: number): void
  close(reason: string): Promise<void>
  /** After close(): resolves once what the end-of-call report carries (quality, recordings, summary) is stored. */
  settled?(): Promise<void>
}

export interface MediaBinder {
  /** UAS: answer the caller's offer with a media session bound to the call's agent. */
  answer(ctx: CallContext, remoteSdp: string): Promise<MediaLeg>
  /** UAC: a fresh offer for an outbound call whose media we terminate. */
  offer(ctx: CallContext): Promise<MediaLeg>
  /** Moves an answered call's media into a conference's mix (a number whose target is a conference). */
  joinConference?(callId: string, conferenceId: string): Promise<void>
}

/**
 * Runs a call's program (a flow, inline verbs or a webhook app: call/flow)
 * once the call is answered. sip/app only says when; what runs is on the
 * call's record or its number.
 */
export interface CallProgramHost {
  start(callId: string): void
}
