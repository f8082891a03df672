import type { OutboundUrlPolicy } from '../config/outbound-url-policy.ts'
import { randomUUID } from 'node:crypto'
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import type Srf from 'drachtio-srf'
import type { Logger } from 'pino'
import type { Call } from '../store/calls.ts'
import type { MediaStore } from './plane/media-store.ts'
import {
  CallControlError, type ActionResult, type CallControl, type ListenRequest, type ListenResult, type MediaStreamHandle, type MuteDirection, type PlayRequest,
  type PromptRequest, type PromptResult,
} from './call-control.ts'
import { sourceFromSpec } from '../media/playback.ts'
import { SpeechDetector } from '../agent/vad/speech-detector.ts'
import type { WavRecorder } from '../media/recorder.ts'
import * as taps from '../media/taps.ts'
import type { MediaSession } from '../media/session/media-session.ts'
import { createAgentStt, createAgentTts, type AgentConfigInput, type SttStream, type TtsAdapter } from '../agent/index.ts'
import { agentConfigFrom } from './agent-binder.ts'
import { CallMediaStream, STREAM_ENCAPSULATIONS, type StreamEncapsulation } from './media-stream.ts'
import type { LiveMedia, MediaSessionRegistry } from './live-media.ts'
import type { MediaScheduler } from '../media/scheduler.ts'
import { ConferenceRooms } from './conferences.ts'
import { CallBridges } from './bridges.ts'
import { FrameLink } from '../media/frame-link.ts'
import type { BridgeMode } from '../media/bridge.ts'
import type { MessagePort } from 'node:worker_threads'
import { SpokenLine } from './spoken-line.ts'
import { loadPlaylist, toneSpec } from './prompt-audio.ts'
import { CallActivities } from './call-activities.ts'
import { checkPromptRequest, preparePrompt, type PromptDeps, type PromptRun } from './prompts.ts'
import { Listening, checkListenRequest } from './listener.ts'
import { EchoSource } from './echo.ts'
import { CallTranscription, type TranscribeDirection } from './transcription.ts'
import { EXTERNAL_MEDIA_ENCAPSULATIONS, ExternalMediaFork, type ExternalMediaEncapsulation } from './external-media.ts'
import type { AgentTalkRequest, AgentTalkResult, MachineDetection, DetectMachineRequest } from './call-control.ts'
import { AgentTalks } from './agent-talks.ts'
import { detectMachine } from './machine-detection.ts'
import type { AgentControl } from './agent-binder.ts'

/**
 * The media half of the control API's CallControl: say, play, DTMF,
 * recording, mute, the media stream WebSocket, conferences (conferences.ts)
 * and two-call bridges (bridges.ts), acting on the MediaSession of a
 * call this node terminates media for (MediaSessionRegistry).
 *
 * A call the API sees as live but that has no session here answers 404 when
 * it runs on another node and 409 when it is a proxied leg (B2BUA to an
 * extension or trunk: the media never touches us).
 */
export interface MediaCallControlOptions {
  sessions: MediaSessionRegistry
  store: MediaStore
  logger: Logger
  /** Whether the call's signalling lives on this node (sip/app). */
  isLocal: (callId: string) => boolean
  /** Recordings are written to `<recordingsDir>/<uuid>.wav`. */
  recordingsDir: string
  /**
   * Directories `play` may read file:// URLs from; anything else is refused so
   * an API key cannot read arbitrary files off the node.
   */
  mediaRoots: string[]
  /** Which http(s) URLs `play` may fetch (config/outbound-url-policy.ts); unset allows any. */
  urlPolicy?: OutboundUrlPolicy
  /** The media engine's scheduler (conference mixing and recording run on its ticks). */
  scheduler: MediaScheduler
  /** The call's signalling, for what an agent put on a call (agentTalk) asks of it: a transfer. */
  control?: (() => AgentControl | null) | undefined
}

/** ',' and 'w' pause between digits (the dial-string convention). */
const DTMF_PAUSE_MS = 500
/** codecs/dtmf.ts leaves 40 ms between RFC 4733 events. */
const DTMF_GAP_MS = 40

interface ActiveRecording { id: string; session: MediaSession; rec: WavRecorder }

export class MediaActions {
  private readonly recordings = new Map<string, ActiveRecording>()
  private readonly log: Logger
  private readonly rooms: ConferenceRooms
  private readonly bridges = new CallBridges()
  /** Prompts, listens and echoes running per call, for interrupt() and the call's end. */
  private readonly activities = new CallActivities()
  private readonly transcriptions = new Map<string, CallTranscription>()
  private readonly forks = new Map<string, ExternalMediaFork>()
  /** Transcriptions and forks being set up (`transcribe:<id>`, `fork:<id>`), so two requests cannot both start one. */
  private readonly opening = new Set<string>()
  private readonly promptDeps: PromptDeps
  private readonly talks: AgentTalks

  constructor(private readonly o: MediaCallControlOptions) {
    this.log = o.logger.child({ component: 'media-actions' })
    this.rooms = new ConferenceRooms({ store: o.store, scheduler: o.scheduler, logger: this.log, recordingsDir: o.recordingsDir })
    this.promptDeps = {
      store: o.store, log: this.log, ttsFor: (live) => this.ttsFor(live),
      audio: { mediaRoots: o.mediaRoots, ...(o.urlPolicy ? { urlPolicy: o.urlPolicy } : {}) },
    }
    this.talks = new AgentTalks({
      store: o.store, log: this.log, urlPolicy: o.urlPolicy, control: o.control ?? (() => null),
      startRecording: async (callId) => { const c = await o.store.calls.getById(callId); if (c) await this.startRecording(c, {}) },
    })
  }

  /** The CallControl methods this provides, to pass as `media` to createApiCallControl. */
  api(): CallControl {
    return {
      say: (call, opts) => this.say(call, opts),
      play: (call, opts) => this.play(call, opts),
      sendDtmf: (call, opts) => this.sendDtmf(call, opts),
      startRecording: (call, opts) => this.startRecording(call, opts),
      stopRecording: (call) => this.stopRecording(call),
      mute: (call, opts) => this.mute(call, opts.direction, true),
      unmute: (call, opts) => this.mute(call, opts.direction, false),
      openStream: (call, opts) => this.openStream(call, opts),
      bridge: (call, other) => this.bridge(call, other),
      conferenceJoin: (call, conferenceId, opts) => this.conferenceJoin(call, conferenceId, opts.muted ?? false),
      conferenceKick: (call, conferenceId) => this.conferenceKick(call, conferenceId),
      conferenceRecord: (conferenceId, accountId, on) => this.rooms.record(conferenceId, accountId, on),
      prompt: (call, opts) => this.prompt(call, opts),
      listen: (call, opts) => this.listen(call, opts),
      echo: (call, opts) => this.echo(call, opts),
      transcribe: (call, opts) => this.transcribe(call, opts),
      externalMedia: (call, opts) => this.externalMedia(call, opts),
      interrupt: (call) => this.interrupt(call),
      agentTalk: (call, opts) => this.agentTalk(call, opts),
      detectMachine: (call, opts) => this.detectMachine(call, opts),
    }
  }

  private media(call: Call): LiveMedia {
    const live = this.o.sessions.get(call.id)
    if (live && !live.session.isClosed) return live
    throw noMediaError(call, live !== undefined, this.o.isLocal(call.id))
  }

  /** Whether a conference has participants on this node's media (worker routing asks). */
  conferenceActive(conferenceId: string): boolean {
    return this.rooms.has(conferenceId)
  }

  // ------------------------------------------------------------------ say

  /** The agent's configuration when the call has one (its TTS and STT speak and hear for the call), else the offline defaults. */
  private async adapterConfig(live: LiveMedia, name: string): Promise<AgentConfigInput> {
    const rec = live.ctx.agentId ? await this.o.store.agents.get(live.ctx.accountId, live.ctx.agentId) : null
    // No agent: the offline defaults (espeak-ng, pocketsphinx), which need no key.
    return rec ? agentConfigFrom(rec) : { name }
  }

  private async ttsFor(live: LiveMedia): Promise<TtsAdapter> {
    return createAgentTts(await this.adapterConfig(live, 'api-say'))
  }

  /** A stream of the call's STT (its agent's adapter, else pocketsphinx) with `phrases` as hints (the offline grammar). */
  private async openStt(live: LiveMedia, opts: { phrases: string[]; language?: string | undefined }): Promise<SttStream> {
    const cfg = await this.adapterConfig(live, 'listen')
    const language = opts.language ?? cfg.language
    try {
      return await createAgentStt(cfg).open({ sampleRate: live.session.codecSampleRate(), phrases: opts.phrases, ...(language ? { language } : {}) })
    } catch (err) {
      throw new CallControlError('unavailable', `speech recognition could not start: ${(err as Error).message}`)
    }
  }

  async say(call: Call, opts: { text: string; voice?: string | undefined; language?: string | undefined; bargeIn?: boolean | undefined }): Promise<ActionResult> {
    const live = this.media(call)
    const { session } = live
    const tts = await this.ttsFor(live)
    const actionId = randomUUID()
    const log = this.log.child({ callId: call.id, actionId })
    const line = new SpokenLine({ live, call, tts, text: opts.text, voice: opts.voice, language: opts.language, store: this.o.store, source: 'api-say', log })
    let vad: SpeechDetector | null = null
    if (opts.bargeIn) {
      // Barge-in drops only this prompt: the agent's own audio stays queued.
      vad = new SpeechDetector()
      vad.once('speechStart', () => {
        log.info('say interrupted by caller speech')
        line.cut()
      })
      session.addSink(vad)
    }
    void line.played.then((r) => {
      if (vad && !session.isClosed) session.removeSink(vad)
      log.debug({ result: r }, 'say finished')
    })
    return { actionId }
  }

  // ------------------------------------------------------------------ play

  async play(call: Call, opts: PlayRequest): Promise<ActionResult> {
    const live = this.media(call)
    const rate = live.session.codecSampleRate()
    const src = opts.tone !== undefined
      ? await sourceFromSpec(toneSpec(opts.tone, opts.durationMs), rate)
      : await loadPlaylist([opts.url], opts.loop || 1, rate, this.promptDeps.audio)
    if (live.session.isClosed) throw new CallControlError('invalid_state', `call ${call.id} has ended`)
    const actionId = randomUUID()
    void live.output.play(src).then((r) => this.log.debug({ callId: call.id, actionId, result: r }, 'play finished'))
    return { actionId }
  }

  // ------------------------------------------------------------------ dtmf

  async sendDtmf(call: Call, opts: { digits: string; durationMs?: number | undefined; method?: 'rfc4733' | 'info' | undefined }): Promise<ActionResult> {
    const live = this.media(call)
    const durationMs = opts.durationMs ?? 100
    const tokens = opts.digits.toUpperCase().match(/[0-9A-D*#]+|[,W]/g) ?? []
    // RFC 4733 when the session negotiated telephone-event (an empty enqueue
    // reports that); else SIP INFO application/dtmf-relay on the dialog.
    const method = opts.method === 'info' || !live.session.sendDtmf('', durationMs) ? 'info' : 'rfc4733'
    if (method === 'info' && !live.dialog) throw new CallControlError('invalid_state', `call ${call.id} has no dialog to send SIP INFO on`)
    const actionId = randomUUID()
    const log = this.log.child({ callId: call.id, actionId })
    void (async () => {
      for (const t of tokens) {
        if (live.session.isClosed) return
        if (t === ',' || t === 'W') { await sleep(DTMF_PAUSE_MS); continue }
        if (method === 'rfc4733') {
          live.session.sendDtmf(t, durationMs)
          await sleep(t.length * (durationMs + DTMF_GAP_MS) + 60)
        } else {
          for (const d of t) {
            // RFC 2976 INFO with the de-facto application/dtmf-relay body (Cisco/SIP INFO DTMF).
            await live.dialog!.request({ method: 'INFO', headers: { 'Content-Type': 'application/dtmf-relay' }, body: `Signal=${d}\r\nDuration=${durationMs}\r\n` } as unknown as Srf.SrfRequest)
            await sleep(durationMs)
          }
        }
      }
    })().catch((err: unknown) => log.warn({ err: (err as Error).message }, 'dtmf: sending failed'))
    return { actionId, method }
  }

  // ------------------------------------------------------------------ recording

  async startRecording(call: Call, opts: { format?: 'wav' | undefined; channels?: 'mono' | 'dual' | undefined }): Promise<{ recordingId: string }> {
    return this.record(call, this.media(call), opts)
  }

  private async record(call: Pick<Call, 'id' | 'accountId'>, live: LiveMedia, opts: { channels?: 'mono' | 'dual' | undefined }): Promise<{ recordingId: string }> {
    if (this.recordings.has(call.id)) throw new CallControlError('invalid_state', `call ${call.id} is already being recorded (recording ${this.recordings.get(call.id)!.id})`)
    mkdirSync(this.o.recordingsDir, { recursive: true })
    const path = join(this.o.recordingsDir, `${randomUUID()}.wav`)
    const row = await this.o.store.recordings.start({ accountId: call.accountId, callId: call.id, format: 'wav', path })
    if (live.session.isClosed || this.recordings.has(call.id)) {
      await this.o.store.recordings.markFailed(row.id)
      throw new CallControlError('invalid_state', `call ${call.id} ended or started another recording meanwhile`)
    }
    // dual: caller on the left channel, what we send on the right; mono: both mixed.
    const rec = taps.startRecording(live.session, path, opts.channels === 'dual' ? 'stereo' : 'mixed')
    this.recordings.set(call.id, { id: row.id, session: live.session, rec })
    live.onEnd(() => this.finish(call.id))
    return { recordingId: row.id }
  }

  async stopRecording(call: Call): Promise<ActionResult> {
    this.media(call)
    const id = this.recordings.get(call.id)?.id
    if (!id) throw new CallControlError('invalid_state', `call ${call.id} is not being recorded`)
    await this.finish(call.id)
    return { actionId: id, recordingId: id }
  }

  /** Closes the WAV and marks the row ready (emits call.recording.ready). */
  private async finish(callId: string): Promise<void> {
    const r = this.recordings.get(callId)
    if (!r) return
    this.recordings.delete(callId)
    try {
      const res = taps.stopRecording(r.session, r.rec)
      await this.o.store.recordings.markReady(r.id, { durationMs: res.durationMs, sizeBytes: res.bytes })
    } catch (err) {
      this.log.error({ err, callId, recordingId: r.id }, 'recording could not be finalised')
      await this.o.store.recordings.markFailed(r.id).catch(() => {})
    }
  }

  // ------------------------------------------------------------------ mute

  /**
   * VoipBin's directions are seen from the call: `in` = the call cannot hear
   * incoming audio, i.e. what we send it goes silent (the session's `out`);
   * `out` = the call's audio is not sent to others, i.e. what it sends us is
   * silenced before the agent, bridges, conferences and recorders (the
   * session's `in`). `muted` is reported in the API's terms.
   */
  async mute(call: Call, direction: MuteDirection, on: boolean): Promise<ActionResult> {
    const { session } = this.media(call)
    const sessionDirection: MuteDirection = direction === 'in' ? 'out' : direction === 'out' ? 'in' : 'both'
    if (on) session.mute(sessionDirection)
    else session.unmute(sessionDirection)
    const m = session.muted
    return { direction, muted: { in: m.out, out: m.in } }
  }

  // ------------------------------------------------------------------ bridge, conference

  async bridge(call: Call, other: Call): Promise<ActionResult> {
    const a = this.media(call)
    const b = this.media(other)
    for (const c of [call, other]) {
      const room = this.rooms.roomOf(c.id)
      if (room) throw new CallControlError('invalid_state', `call ${c.id} is in conference ${room}`)
    }
    const { mode } = this.bridges.connect(a, b)
    return { bridgedWith: other.id, mode }
  }

  async conferenceJoin(call: Call, conferenceId: string, muted: boolean): Promise<ActionResult> {
    const live = this.media(call)
    this.leaveLinkedConference(call.id, conferenceId)
    const partner = this.bridges.partnerOf(call.id)
    if (partner) throw new CallControlError('invalid_state', `call ${call.id} is bridged with ${partner}`)
    const r = await this.rooms.join(live, conferenceId, call.accountId, muted)
    return { callId: call.id, conferenceId, muted, participants: r.participants }
  }

  async conferenceKick(call: Call, conferenceId: string): Promise<ActionResult> {
    // A member may be a call on another media worker (joinLinked): no session here to check.
    if (this.rooms.roomOf(call.id) !== conferenceId) {
      this.media(call)
      throw new CallControlError('not_found', `call ${call.id} is not in conference ${conferenceId} on this node`)
    }
    await this.rooms.leave(call.id, 'kick')
    return { callId: call.id, conferenceId }
  }

  // ------------------------------------------------------------------ across media workers

  /**
   * The call's half of a bridge with a call on another media worker, or of
   * its membership in a conference mixed there (`conferenceId`): the other
   * half is at the far end of `port` (worker-planes.ts pairs them).
   * The port is closed if the call cannot be linked, so the far half ends too.
   */
  async linkCall(call: Call, partner: { callId: string; mode: BridgeMode } | { conferenceId: string; muted: boolean }, port: MessagePort): Promise<ActionResult> {
    const link = new FrameLink(port)
    try {
      const live = this.media(call)
      const room = this.rooms.roomOf(call.id)
      if ('callId' in partner) {
        if (room) throw new CallControlError('invalid_state', `call ${call.id} is in conference ${room}`)
        this.bridges.connectLinked(live, partner.callId, link, { relay: partner.mode === 'relay' })
        return { bridgedWith: partner.callId, mode: partner.mode }
      }
      // Joining a conference moves the call out of the one it is in, wherever that one is mixed.
      if (room === partner.conferenceId) throw new CallControlError('invalid_state', `call ${call.id} is already in conference ${room}`)
      this.leaveLinkedConference(call.id, partner.conferenceId)
      if (room) await this.rooms.leave(call.id, 'moved')
      this.bridges.connectLinked(live, `conference ${partner.conferenceId} (mixed on another media worker)`, link, { muteIn: partner.muted, conferenceId: partner.conferenceId })
      return { conferenceId: partner.conferenceId }
    } catch (err) {
      link.close()
      throw err
    }
  }

  /**
   * A call joining a conference leaves the one mixed on another worker it is
   * linked to (closing the link makes that worker drop it), as a local join
   * moves a call between rooms. Joining the same one again is a 409.
   */
  private leaveLinkedConference(callId: string, joining: string): void {
    const linked = this.bridges.linkedConferenceOf(callId)
    if (!linked) return
    if (linked === joining) throw new CallControlError('invalid_state', `call ${callId} is already in conference ${joining}`)
    this.bridges.disconnect(callId)
  }

  /** The call's negotiated codec, so a bridge across workers can choose relay or transcode as Bridge does. */
  codecOf(call: Call): { name: string; clockRate: number; sampleRate: number } | null {
    const c = this.media(call).session.codec
    return c ? { name: c.name, clockRate: c.clockRate, sampleRate: c.sampleRate } : null
  }

  /** The conference's side of linkCall: the call joins a room here as a linked member. */
  async conferenceJoinLinked(call: Call, conferenceId: string, muted: boolean, port: MessagePort): Promise<ActionResult> {
    const link = new FrameLink(port)
    try {
      const r = await this.rooms.joinLinked(call.id, conferenceId, call.accountId, link)
      return { callId: call.id, conferenceId, muted, participants: r.participants }
    } catch (err) {
      link.close()
      throw err
    }
  }

  // ------------------------------------------------------------------ flow primitives

  /** Whether the call is still the live one `live` was looked up as (it may have ended during an await). */
  private stillLive(call: Call, live: LiveMedia): boolean {
    return this.o.sessions.get(call.id) === live && !live.session.isClosed
  }

  async prompt(call: Call, req: PromptRequest): Promise<PromptResult> {
    const live = this.media(call)
    checkPromptRequest(req)
    const state: { run: PromptRun | null; over: PromptResult | null } = { run: null, over: null }
    // Registered before loading: an interrupt, the hangup or (stopOnDigit) a digit during the load means it never plays.
    const end = (r: PromptResult) => {
      state.over ??= r
      state.run?.stop(r)
    }
    const unregister = this.activities.add(live, (why) => end({ result: why }))
    const onDtmf = (e: { digit: string }) => end({ result: 'digit', digit: e.digit })
    if (req.stopOnDigit) live.session.on('dtmf', onDtmf)
    try {
      const prepared = await preparePrompt(live, call, req, this.promptDeps)
      if (state.over) return state.over
      state.run = prepared.start()
      return await state.run.done
    } catch (err) {
      if (state.over) return state.over
      throw err
    } finally {
      unregister()
      live.session.off('dtmf', onDtmf)
    }
  }

  async listen(call: Call, req: ListenRequest): Promise<ListenResult> {
    const live = this.media(call)
    checkListenRequest(req)
    const listening = new Listening(live, req, {
      log: this.log.child({ callId: call.id }),
      preparePrompt: () => preparePrompt(live, call, req.prompt!, this.promptDeps),
      openStt: (o) => this.openStt(live, o),
    })
    const unregister = this.activities.add(live, (why) => listening.stop(why))
    try {
      await listening.start()
      return await listening.result
    } finally {
      unregister()
    }
  }

  async echo(call: Call, opts: { durationMs: number }): Promise<void> {
    const live = this.media(call)
    if (typeof opts.durationMs !== 'number' || !Number.isFinite(opts.durationMs) || opts.durationMs <= 0) {
      throw new CallControlError('rejected', 'echo: durationMs must be a number of ms > 0')
    }
    const { session, output } = live
    const src = new EchoSource(session.codecSampleRate())
    session.addSink(src)
    const played = output.play(src)
    const stop = () => output.stop(src)
    const unregister = this.activities.add(live, stop)
    const timer = setTimeout(stop, opts.durationMs)
    try {
      await played
    } finally {
      clearTimeout(timer)
      unregister()
      if (!session.isClosed) session.removeSink(src)
    }
  }

  /** Turns the call's live transcription on or off (transcription.ts). */
  async transcribe(call: Call, opts: { on: boolean; language?: string | undefined; direction?: TranscribeDirection | undefined }): Promise<ActionResult> {
    const live = this.media(call)
    const key = `transcribe:${call.id}`
    if (!opts.on) {
      const t = this.transcriptions.get(call.id)
      if (!t) throw new CallControlError('invalid_state', `call ${call.id} is not being transcribed`)
      this.transcriptions.delete(call.id)
      await t.stop()
      return { transcribing: false }
    }
    const direction = opts.direction ?? 'in'
    if (!['in', 'out', 'both'].includes(direction)) throw new CallControlError('rejected', 'transcribe: direction must be in, out or both')
    if (this.transcriptions.has(call.id) || this.opening.has(key)) throw new CallControlError('invalid_state', `call ${call.id} is already being transcribed`)
    this.opening.add(key)
    let t: CallTranscription
    try {
      t = await CallTranscription.start({
        live, call, direction, store: this.o.store, log: this.log.child({ callId: call.id }),
        openStt: () => this.openStt(live, { phrases: [], language: opts.language }),
      })
    } finally {
      this.opening.delete(key)
    }
    if (!this.stillLive(call, live)) {
      await t.stop()
      throw new CallControlError('invalid_state', `call ${call.id} has ended`)
    }
    this.transcriptions.set(call.id, t)
    live.onEnd(async () => {
      if (this.transcriptions.get(call.id) !== t) return
      this.transcriptions.delete(call.id)
      await t.stop()
    })
    return { transcribing: true, direction, ...(opts.language ? { language: opts.language } : {}) }
  }

  /** Starts or stops the call's fork to a WebSocket it dials (external-media.ts); one per call. */
  async externalMedia(call: Call, opts: { on: boolean; url?: string | undefined; encapsulation?: ExternalMediaEncapsulation | undefined }): Promise<ActionResult> {
    const live = this.media(call)
    const key = `fork:${call.id}`
    if (!opts.on) {
      const f = this.forks.get(call.id)
      if (!f) throw new CallControlError('invalid_state', `call ${call.id} has no external media`)
      f.close()
      return { forking: false }
    }
    if (!opts.url) throw new CallControlError('rejected', 'externalMedia: url is required to start')
    const encapsulation = opts.encapsulation ?? 'twilio'
    if (!(EXTERNAL_MEDIA_ENCAPSULATIONS as readonly string[]).includes(encapsulation)) {
      throw new CallControlError('rejected', `externalMedia: encapsulation must be one of ${EXTERNAL_MEDIA_ENCAPSULATIONS.join(', ')}`)
    }
    if (this.forks.has(call.id) || this.opening.has(key)) throw new CallControlError('invalid_state', `call ${call.id} already has external media`)
    this.opening.add(key)
    let fork: ExternalMediaFork
    try {
      fork = await ExternalMediaFork.open({ live, url: opts.url, encapsulation, urlPolicy: this.o.urlPolicy, log: this.log.child({ callId: call.id }) })
    } finally {
      this.opening.delete(key)
    }
    if (!this.stillLive(call, live)) {
      fork.close()
      throw new CallControlError('invalid_state', `call ${call.id} has ended`)
    }
    this.forks.set(call.id, fork)
    fork.onClose(() => { if (this.forks.get(call.id) === fork) this.forks.delete(call.id) })
    live.onEnd(() => fork.close())
    return { forking: true, url: opts.url, encapsulation }
  }

  /** Ends every prompt, listen and echo running on the call ('stopped'). */
  async interrupt(call: Call): Promise<void> {
    this.media(call)
    this.activities.interrupt(call.id)
  }

  // ------------------------------------------------------------------ agents, answering machines

  /** A stored agent talks on the call until it is done with it (agent-talks.ts); the call stays up. */
  agentTalk(call: Call, req: AgentTalkRequest): Promise<AgentTalkResult> {
    return this.talks.talk(this.media(call), call, req, this.activities)
  }

  /** Answering-machine detection on the caller's audio from now on (machine-detection.ts). */
  async detectMachine(call: Call, opts?: DetectMachineRequest): Promise<MachineDetection> {
    return detectMachine(this.media(call), this.activities, opts)
  }

  // ------------------------------------------------------------------ stream

  async openStream(call: Call, opts: { encapsulation: string; send: (msg: string | Buffer) => void; close: () => void }): Promise<MediaStreamHandle> {
    const live = this.media(call)
    if (!(STREAM_ENCAPSULATIONS as readonly string[]).includes(opts.encapsulation)) {
      throw new CallControlError('rejected', `encapsulation must be one of ${STREAM_ENCAPSULATIONS.join(', ')}`)
    }
    const stream = new CallMediaStream(live.session, live.output, opts.encapsulation as StreamEncapsulation, opts.send, call.id)
    stream.start()
    let closed = false
    live.onEnd(() => {
      if (closed) return
      closed = true
      stream.close()
      opts.close()
    })
    return {
      onMessage: (msg) => stream.onMessage(msg),
      close: () => { closed = true; stream.close() },
    }
  }
}

/**
 * Why a call has no media session to act on. `ending`: the session is listed
 * but closing. Live here without a session is either a B2BUA leg (extension,
 * SIP URI, trunk), whose SDP goes end to end so the RTP never reaches us, or
 * a call still ringing: say which, since the first never changes.
 */
export function noMediaError(call: Call, ending: boolean, local: boolean): CallControlError {
  if (!local) return new CallControlError('not_found', `call ${call.id} is not live on this node`)
  if (ending) return new CallControlError('invalid_state', `call ${call.id} is ending`)
  if (call.status === 'in-progress') {
    return new CallControlError('invalid_state', `call ${call.id} has no media on this node: it is a proxied leg (B2BUA to an extension, SIP URI or trunk) and its audio does not pass through the engine, so media actions are not available on it`)
  }
  return new CallControlError('invalid_state', `call ${call.id} has no media on this node yet (status ${call.status}): media actions need an answered call`)
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms))
}
