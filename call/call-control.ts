import type { Call } from '../store/calls.ts'

/**
 * The one contract for acting on a live call, whoever asks (the API today,
 * flows and webhook apps next). call/api-call-control.ts serves it from
 * sip/app's signalling (CallSignalling) and the media plane's actions. Routes validate input, check the call
 * belongs to the caller's account and is live, then call these methods. Any
 * method may be absent: the route then answers 503 `unavailable`.
 * Implementations throw CallControlError for expected failures.
 */
export interface CallControl {
  /**
   * Places an outbound call. The implementation creates the call record
   * (CallRepository.create, status `queued`) and returns it at once; the
   * lifecycle then proceeds asynchronously through the repository.
   */
  originate?(req: OriginateRequest): Promise<Call>
  hangup?(call: Call, opts: { reason?: string | undefined }): Promise<void>
  say?(call: Call, opts: { text: string; voice?: string | undefined; language?: string | undefined; bargeIn?: boolean | undefined }): Promise<ActionResult>
  /** Exactly one of `url` (file:// or http(s) WAV/MP3) and `tone` is set. */
  play?(call: Call, opts: PlayRequest): Promise<ActionResult>
  sendDtmf?(call: Call, opts: { digits: string; durationMs?: number | undefined; method?: 'rfc4733' | 'info' | undefined }): Promise<ActionResult>
  startRecording?(call: Call, opts: { format?: 'wav' | undefined; channels?: 'mono' | 'dual' | undefined }): Promise<{ recordingId: string }>
  stopRecording?(call: Call): Promise<ActionResult>
  hold?(call: Call): Promise<ActionResult>
  unhold?(call: Call): Promise<ActionResult>
  mute?(call: Call, opts: { direction: MuteDirection }): Promise<ActionResult>
  unmute?(call: Call, opts: { direction: MuteDirection }): Promise<ActionResult>
  transfer?(call: Call, opts: { to: string; mode?: 'blind' | 'attended' | undefined }): Promise<ActionResult>
  bridge?(call: Call, other: Call): Promise<ActionResult>
  conferenceJoin?(call: Call, conferenceId: string, opts: { muted?: boolean | undefined }): Promise<ActionResult>
  conferenceKick?(call: Call, conferenceId: string): Promise<ActionResult>
  conferenceRecord?(conferenceId: string, accountId: string, on: boolean): Promise<{ recordingId?: string }>
  /**
   * Opens the call's media fork for `GET /v1/calls/:id/stream`. `send` delivers
   * one message to the client (already encapsulated); the returned object
   * takes the client's messages and closes the fork. `encapsulation`: 'twilio'
   * (Media Streams JSON) or 'raw' (binary L16 8 kHz); the engine's
   * implementation also takes 'l16' and 'pcmu'. `close` is called when the
   * call ends first.
   */
  openStream?(call: Call, opts: { encapsulation: string; send: (msg: string | Buffer) => void; close: () => void }): Promise<MediaStreamHandle>
}

export interface MediaStreamHandle {
  onMessage(msg: Buffer | string): void
  close(): void
}

export type MuteDirection = 'in' | 'out' | 'both'

/** Generated tones `play` can send (media/playback.ts ToneSource). */
export const PLAY_TONES = ['beep', 'ringback', 'ringback-uk', 'busy', 'moh'] as const
export type PlayTone = (typeof PLAY_TONES)[number]

export type PlayRequest =
  | { url: string; tone?: undefined; loop?: number | undefined; durationMs?: undefined }
  | { tone: PlayTone; url?: undefined; loop?: undefined; durationMs?: number | undefined }

export interface ActionResult {
  /** Identifies an asynchronous action (a prompt being spoken, a recording). */
  actionId?: string
  [k: string]: unknown
}

export interface OriginateRequest {
  accountId: string
  from: string
  to: string
  agentId?: string | undefined
  trunkId?: string | undefined
  timeoutSec: number
  record: boolean
  metadata?: Record<string, string> | undefined
}

export { CallControlError, type CallControlErrorCode } from '../sip/app/call-control-error.ts'

/**
 * A late-bound holder: the engine builds the API before (or independently of)
 * the SIP app, which installs its implementation when ready.
 */
export class CallControlSlot {
  private impl: CallControl | null = null
  install(impl: CallControl | null): void {
    this.impl = impl
  }
  get current(): CallControl | null {
    return this.impl
  }
}
