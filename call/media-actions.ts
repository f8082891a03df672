import type { OutboundUrlPolicy } from '../config/outbound-url-policy.ts'
import { randomUUID } from 'node:crypto'
import { mkdirSync } from 'node:fs'
import { join, resolve, sep } from 'node:path'
import { fileURLToPath } from 'node:url'
import type Srf from 'drachtio-srf'
import type { Logger } from 'pino'
import type { Call } from '../store/calls.ts'
import type { MediaStore } from './plane/media-store.ts'
import { CallControlError, type ActionResult, type CallControl, type MediaStreamHandle, type MuteDirection, type PlayRequest } from './call-control.ts'
import { PcmQueueSource, sourceFromSpec, type PlaySpec } from '../media/playback.ts'
import { SpeechDetector } from '../agent/vad/speech-detector.ts'
import type { WavRecorder } from '../media/recorder.ts'
import * as taps from '../media/taps.ts'
import type { MediaSession } from '../media/session/media-session.ts'
import { createAgentTts, type AgentConfigInput, type TtsAdapter } from '../agent/index.ts'
import { StreamResampler } from '../codecs/stream-resampler.ts'
import { agentConfigFrom } from './agent-binder.ts'
import { CallMediaStream, STREAM_ENCAPSULATIONS, type StreamEncapsulation } from './media-stream.ts'
import type { LiveMedia, MediaSessionRegistry } from './live-media.ts'
import type { MediaScheduler } from '../media/scheduler.ts'
import { ConferenceRooms } from './conferences.ts'
import { CallBridges } from './bridges.ts'
import { FrameLink } from '../media/frame-link.ts'
import type { BridgeMode } from '../media/bridge.ts'
import type { MessagePort } from 'node:worker_threads'

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

  constructor(private readonly o: MediaCallControlOptions) {
    this.log = o.logger.child({ component: 'media-actions' })
    this.rooms = new ConferenceRooms({ store: o.store, scheduler: o.scheduler, logger: this.log, recordingsDir: o.recordingsDir })
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

  private async ttsFor(live: LiveMedia): Promise<TtsAdapter> {
    const rec = live.ctx.agentId ? await this.o.store.agents.get(live.ctx.accountId, live.ctx.agentId) : null
    // No agent: the offline default (espeak-ng), which needs no key.
    return createAgentTts(rec ? agentConfigFrom(rec) : ({ name: 'api-say' } satisfies AgentConfigInput))
  }

  async say(call: Call, opts: { text: string; voice?: string | undefined; language?: string | undefined; bargeIn?: boolean | undefined }): Promise<ActionResult> {
    const live = this.media(call)
    const { session } = live
    const tts = await this.ttsFor(live)
    const rate = session.codecSampleRate()
    const actionId = randomUUID()
    const ac = new AbortController()
    const src = new PcmQueueSource(rate)
    const played = live.output.play(src)
    const log = this.log.child({ callId: call.id, actionId })
    // What the caller heard, for the transcript: samples queued vs still buffered when cut.
    let queued = 0
    let heardSamples: number | null = null
    let synthesized = false
    const startedAt = Date.now()
    let vad: SpeechDetector | null = null
    if (opts.bargeIn) {
      // Barge-in drops only this prompt: the agent's own audio stays queued.
      vad = new SpeechDetector()
      vad.once('speechStart', () => {
        log.info('say interrupted by caller speech')
        heardSamples = queued - src.buffered
        ac.abort()
        src.clear()
        src.end()
      })
      session.addSink(vad)
    }
    void played.then((r) => {
      ac.abort()
      if (vad && !session.isClosed) session.removeSink(vad)
      log.debug({ result: r }, 'say finished')
      // The line goes into the call's transcript as far as it was heard (all of it unless cut by barge-in or the hangup).
      const cut = heardSamples ?? (r === 'done' ? null : queued - src.buffered)
      const interrupted = cut !== null && (!synthesized || cut < queued)
      const text = interrupted ? heardWords(opts.text, queued > 0 ? cut / queued : 0) : opts.text
      if (!text && !interrupted) return
      void this.o.store.calls.appendTranscript(call.id, {
        role: live.ctx.agentId ? 'assistant' : 'system', text, source: 'api-say', interrupted,
        ...(call.answeredAt ? { offsetMs: startedAt - Date.parse(call.answeredAt) } : {}),
      }).catch((err: unknown) => log.warn({ err }, 'say: transcript entry could not be stored'))
    })
    void (async () => {
      const stream = tts.synthesize({ text: opts.text, signal: ac.signal, ...(opts.voice ? { voice: opts.voice } : {}), ...(opts.language ? { language: opts.language } : {}) })
      let rs: StreamResampler | undefined
      for await (const chunk of stream) {
        if (ac.signal.aborted) break
        rs ??= new StreamResampler(chunk.sampleRate, rate)
        const pcm = rs.process(chunk.samples)
        queued += pcm.length
        src.push(pcm)
      }
      if (rs && !ac.signal.aborted) {
        const tail = rs.flush()
        queued += tail.length
        src.push(tail)
      }
      if (!ac.signal.aborted) synthesized = true
    })().catch((err: unknown) => {
      if (!ac.signal.aborted) log.warn({ err: (err as Error).message }, 'say: synthesis failed')
    }).finally(() => src.end())
    return { actionId }
  }

  // ------------------------------------------------------------------ play

  private location(url: string): { type: 'file' | 'url'; location: string } {
    if (/^https?:\/\//i.test(url)) return { type: 'url', location: url }
    let path: string
    try { path = resolve(fileURLToPath(url)) } catch { throw new CallControlError('rejected', `play: ${url} is not a usable file URL`) }
    if (!this.o.mediaRoots.some((root) => path.startsWith(resolve(root) + sep))) {
      throw new CallControlError('rejected', `play: file URLs must point under ${this.o.mediaRoots.join(', ')}`)
    }
    return { type: 'file', location: url }
  }

  async play(call: Call, opts: PlayRequest): Promise<ActionResult> {
    const live = this.media(call)
    const spec: PlaySpec = opts.tone !== undefined
      // Cadenced tones never end by themselves and there is no stop action:
      // bound them so the agent (queued behind API audio) is not silenced for good.
      ? { type: 'tone', tone: opts.tone, durationMs: opts.durationMs ?? (opts.tone === 'beep' ? 250 : 30_000) }
      : { ...this.location(opts.url), ...(opts.loop ? { loops: opts.loop } : {}) }
    if (spec.type === 'url') {
      await this.o.urlPolicy?.check(spec.location).catch((err: unknown) => { throw new CallControlError('rejected', `play: ${(err as Error).message}`) })
    }
    // The policy's fetch connects only to addresses it approves at connect
    // time, so a name re-resolving to a private address after check() fails here.
    const policy = this.o.urlPolicy
    const src = await sourceFromSpec(spec, live.session.codecSampleRate(), policy ? { fetch: (u, init) => policy.fetch(u, init) } : {})
      .catch((err: unknown) => { throw new CallControlError('rejected', `play: cannot load ${opts.url ?? opts.tone}: ${(err as Error).message}`) })
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

/** The first `share` of a line's words: what was heard of a prompt cut after that share of its audio. */
function heardWords(text: string, share: number): string {
  const words = text.split(/\s+/).filter((w) => w.length > 0)
  return words.slice(0, Math.floor(words.length * Math.max(0, Math.min(1, share)))).join(' ')
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms))
}
