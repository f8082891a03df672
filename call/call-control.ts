import type { Call, CallProgram } from '../store/calls.ts'
import type { StatusCallback } from '../store/status-callbacks.ts'
import type { AmdOverride } from '../sip/app/media-binding.ts'

/**
 * The one contract for acting on a live call, whoever asks (the API today,
 * flows and webhook apps next). call/api-call-control.ts serves it from
 * sip/app's signalling (CallSignalling) and the media plane's actions. Routes validate input, check the call
 * belongs to the caller's account and is live, then call these methods. Any
 * method may be absent: the route then answers 503 `unavailable`.
 * Implementations throw CallControlError for expected failures. With a real
 * PostgreSQL the engine wraps its implementation in remote-call-control.ts,
 * which runs a method on the node that holds the call (`call.nodeId`): every
 * method must be entered in its ROUTING table, and the arguments of the
 * relayed ones must survive JSON.
 */
export interface CallControl {
  /**
   * Places an outbound call. The implementation creates the call record
   * (CallRepository.create, status `queued`) and returns it at once; the
   * lifecycle then proceeds asynchronously through the repository.
   */
  originate?(req: OriginateRequest): Promise<Call>
  /** `endedReason` (default `api-hangup`) and `by` (default `api`) are what the call record says ended it. */
  hangup?(call: Call, opts: { reason?: string | undefined; endedReason?: string | undefined; by?: 'api' | 'system' | undefined }): Promise<void>
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

  // The media primitives the flow verbs (call/flow/) are built from. Each
  // resolves when its media work is over, so a verb can await it; a call that
  // ends meanwhile resolves them with 'ended' (never rejects).

  /** Plays one prompt and resolves when it finished, a digit stopped it, interrupt() stopped it, or the call ended. */
  prompt?(call: Call, opts: PromptRequest): Promise<PromptResult>
  /** gather / digits_receive / recording end conditions: optional prompt first, then waits for input per the rules. */
  listen?(call: Call, opts: ListenRequest): Promise<ListenResult>
  /** Sends the caller's own audio back to it for durationMs (the `echo` verb). */
  echo?(call: Call, opts: { durationMs: number }): Promise<void>
  /** Live transcription without an agent: `call.transcript` events + stored transcript lines while on. */
  transcribe?(call: Call, opts: { on: boolean; language?: string | undefined; direction?: 'in' | 'out' | 'both' | undefined }): Promise<ActionResult>
  /** Forks the call's audio to a WebSocket the engine connects OUT to (VoipBin external_media_start/stop). */
  externalMedia?(call: Call, opts: { on: boolean; url?: string | undefined; encapsulation?: 'twilio' | 'raw' | 'pcmu' | undefined }): Promise<ActionResult>
  /**
   * Runs verbs (call/flow) on the call, on the node whose flows run it:
   * queued after, or instead of, the rest of the flow running there, or as
   * a new run (POST /v1/calls/:id/actions). `actions` are already checked.
   */
  runActions?(call: Call, opts: { actions: Array<{ id: string; next_id?: string; type: string; option?: Record<string, unknown> }>; mode: 'queue' | 'interrupt' }): Promise<{ activeflowId: string; mode: 'queue' | 'interrupt' | 'started' }>
  /** Stops a flow run on the call (POST /v1/activeflows/:id/stop); false when it was not running. */
  stopFlow?(call: Call, opts: { activeflowId: string }): Promise<{ stopped: boolean }>
  /** Ends every prompt/listen/echo started through these methods on the call (they resolve with 'stopped'). */
  interrupt?(call: Call): Promise<void>

  /**
   * Hands the call to an AI agent (a flow's `ai_talk`) and resolves when the
   * agent is done with it: its end_call tool, `maxDurationMs`, its silence
   * timeout, a transfer, interrupt() ('stopped') or the call's end. Unlike an
   * agent call, the agent's own hangup does not end the call: the caller
   * decides what comes next. 404 for an agent not in the call's account,
   * 409 when an agent already talks on the call.
   */
  agentTalk?(call: Call, opts: AgentTalkRequest): Promise<AgentTalkResult>
  /**
   * Answering-machine detection on the caller's audio from now on
   * (agent/amd.ts, energy and cadence): resolves with the verdict, or
   * 'stopped' (interrupt()) / 'ended' (the call ended first).
   */
  detectMachine?(call: Call, opts?: DetectMachineRequest): Promise<MachineDetection>
}

export interface AgentTalkRequest {
  agentId: string
  /** The agent's part ends after this long (the agent's own maxDurationSec still applies when shorter). */
  maxDurationMs?: number | undefined
  /** Continue this agent's earlier conversation on this call (its chat history) instead of starting over; pipeline agents only. */
  resume?: boolean | undefined
  /** Overrides the agent's language (its STT and TTS) for this talk. */
  language?: string | undefined
}

export interface AgentTalkResult {
  /**
   * `end_call`: the agent hung up (its tool or rule); `transfer`: it moved
   * the caller to `transferTarget` (the call is now with the target);
   * `max-duration` / `max-silence`: its timers; `stopped`: interrupt();
   * `ended`: the call ended; `error`: the agent could not start or failed.
   */
  reason: 'end_call' | 'transfer' | 'max-duration' | 'max-silence' | 'stopped' | 'ended' | 'error'
  transferTarget?: string | undefined
  error?: string | undefined
}

export interface DetectMachineRequest {
  /**
   * After a `machine` verdict, keep listening until the machine's greeting is
   * over (its beep, or silence after it: agent/amd.ts MessageCue) before
   * resolving, so what is said next lands on the recording (a voicemail drop).
   */
  waitForBeep?: boolean | undefined
}

export interface MachineDetection {
  result: 'human' | 'machine' | 'unknown' | 'stopped' | 'ended'
  /** With waitForBeep, on a machine: what ended its greeting. */
  cue?: 'beep' | 'silence' | 'timeout' | undefined
  /** Why, in Asterisk's AMD terms: HUMAN, LONGGREETING, MAXWORDS, INITIALSILENCE, TOOLONG. */
  cause?: string | undefined
  /** From the start of detection. */
  decidedAfterMs?: number | undefined
}

/** One prompt: exactly one of `say`, `play`, `tone`. */
export type PromptRequest = {
  say?: { text: string; voice?: string | undefined; language?: string | undefined } | undefined
  /** file:// (media roots) or http(s) WAV/MP3, played in order; `loop` = times through the list. */
  play?: { urls: string[]; loop?: number | undefined } | undefined
  tone?: { tone: PlayTone; durationMs?: number | undefined } | undefined
  /** A DTMF digit from the caller stops the prompt at once (VoipBin talk digits_handle: next). */
  stopOnDigit?: boolean | undefined
}

export interface PromptResult {
  result: 'done' | 'digit' | 'stopped' | 'ended'
  digit?: string | undefined
}

export interface ListenRequest {
  /** Played first; digits typed during it count (type-ahead); caller speech barges it in when speech is on. */
  prompt?: PromptRequest | undefined
  digits?: { max: number; min?: number | undefined; finishKey?: string | undefined; interDigitTimeoutMs?: number | undefined } | undefined
  speech?: { hints?: string[] | undefined; language?: string | undefined } | undefined
  /** Wait for the first input after the prompt ends. */
  timeoutMs: number
  /** Ends when the caller has been silent this long after having spoken (recording end_of_silence). */
  silenceMs?: number | undefined
  /** Overall cap from the start of listening (recording duration). */
  maxDurationMs?: number | undefined
}

export interface ListenResult {
  reason: 'max-digits' | 'finish-key' | 'inter-digit-timeout' | 'speech' | 'timeout' | 'silence' | 'max-duration' | 'stopped' | 'ended'
  /** The digits collected, without the finish key. */
  digits: string
  speech?: { text: string; confidence?: number | undefined } | undefined
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
  /** What the call runs once answered (a stored flow, inline verbs, a webhook app). */
  program?: CallProgram | undefined
  /** The live call this one is placed for (a flow's connect): its parties may be the caller ID. */
  parentCallId?: string | undefined
  /** Telefon `status_callback`: where the call's status changes are sent (the URL already checked). */
  statusCallback?: StatusCallback | undefined
  /** With `agentId`: answering-machine detection for this call instead of the agent's own `amd` (a campaign's behaviour). */
  amd?: AmdOverride | undefined
}

export type { AmdOverride } from '../sip/app/media-binding.ts'

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
