import { randomUUID } from 'node:crypto'
import type { OutboundUrlPolicy } from '../config/outbound-url-policy.ts'
import { EventEmitter } from 'node:events'
import type Srf from 'drachtio-srf'
import type { Logger } from 'pino'
import type { MediaEngine } from '../media/media-engine.ts'
import type { MediaSession } from '../media/session/media-session.ts'
import { sourceFromSpec } from '../media/playback.ts'
import type { FrameSource } from '../audio/frame.ts'
import { createAgentTts, type AgentConfigInput, type CallAgent } from '../agent/index.ts'
import { PcmQueueSource } from '../media/playback.ts'
import { StreamResampler } from '../codecs/stream-resampler.ts'
import type { MediaStore } from './plane/media-store.ts'
import type { AmdOverride, CallContext, MediaBinder, MediaLeg } from '../sip/app/media-binding.ts'
import type { RtpengineAnchor, AnchorableSession, CallIds } from '../media/rtpengine/anchor.ts'
import { MediaSessionRegistry, type LiveMedia } from './live-media.ts'
import { callQualityOf } from './call-quality.ts'
import { SpeechDetector } from '../agent/vad/speech-detector.ts'
import { createAgentOnCall } from './call-agent.ts'

export { agentConfigFrom } from './agent-config.ts'

/** While a call runs, its `quality` is stored this often (GET /v1/calls/:id shows it live), and once more at the end. */
const QUALITY_INTERVAL_MS = 5000
/** The first live figures, as soon as some media has flowed. */
const QUALITY_FIRST_MS = 1500

/**
 * The production MediaBinder: one MediaSession per call from the MediaEngine
 * (SDP offer/answer, RTP, hold with music-on-hold), and, when the call has an
 * agent, the agent runtime on top of it through an AgentMediaPort. The agent's
 * hangup/transfer go back to sip/app through `control`; its transcript, turn
 * timings and summary are persisted on the call record.
 *
 * Each session is listed in `sessions` (MediaSessionRegistry) while the call
 * lives, so the API's media actions reach it. With `anchor` (RTPENGINE_NG)
 * every offer/answer passes through the rtpengine daemon, so RTP flows
 * peer ↔ rtpengine ↔ our session.
 */

/**
 * The agent's own end reasons that say more than "the agent hung up" and so
 * become the call's endedReason; the rest (end_call tool, errors) stay `agent-hangup`.
 */
const AGENT_ENDED_REASONS: Record<string, string> = {
  'machine-detected': 'machine-detected',
  'voicemail-left': 'voicemail-left',
  'max-duration': 'exceeded-max-duration',
  'max-silence': 'silence-timed-out',
}

/** The call's own AMD policy (a campaign's) over the agent's: `enabled: false` turns detection off. */
function withAmd(amd: AmdOverride): (cfg: AgentConfigInput) => AgentConfigInput {
  return (cfg) => {
    const { amd: own, ...rest } = cfg
    if (!amd.enabled) return rest
    return { ...rest, amd: { ...own, onMachine: amd.onMachine ?? own?.onMachine ?? 'hangup', ...(amd.message ? { message: amd.message } : {}) } }
  }
}

export interface AgentControl {
  hangup(callId: string, endedReason?: string): Promise<void>
  /** With a whisper the target hears it before the caller is connected (a bridged transfer). */
  transfer(callId: string, to: string, opts?: { whisper?: string }): Promise<void>
}

export interface AgentMediaBinderOptions {
  media: MediaEngine
  store: MediaStore
  logger: Logger
  control: () => AgentControl | null
  /** Live sessions by call id, for the API's media actions (media-actions.ts); a private one when absent. */
  sessions?: MediaSessionRegistry
  anchor?: RtpengineAnchor
  /** Which URLs agents' HTTP tools may call (config/outbound-url-policy.ts). */
  urlPolicy?: OutboundUrlPolicy
  /** Starts recording a call (the API's record/start); agents with `recording.enabled` use it when answered. */
  record?: (callId: string) => Promise<void>
  /** Puts a call into a conference's mix (the API's conference join), for numbers whose target is a conference. */
  joinConference?: (callId: string, conferenceId: string) => Promise<void>
}

/** The SIP dialog identifiers of a call (CallContext.sip). */
type SipDialogIds = NonNullable<CallContext['sip']>

/**
 * rtpengine keys a call by Call-ID and the two tags (ng `call-id`,
 * `from-tag`, `to-tag`). With the real SIP Call-ID an operator can find our
 * anchor in rtpengine's `list`/`query` and logs by what the SIP traces show;
 * without it (an outbound call, whose Call-ID exists only once the INVITE is
 * sent) any stable unique strings work. Missing tags get fixed stand-ins:
 * they only need to stay the same for the life of the call.
 */
function anchorIds(callId: string, sip?: SipDialogIds | null): CallIds & { toTag: string } {
  // Per leg, not per call: a transfer's whisper leg offers media for the same
  // call id, and must not land on (and later delete) the call's own anchor.
  if (!sip?.callId) return { callId: `callplane-${callId}-${randomUUID().slice(0, 8)}`, fromTag: 'peer', toTag: 'engine' }
  return { callId: sip.callId, fromTag: sip.fromTag || 'peer', toTag: sip.toTag || 'engine' }
}

class SessionLeg implements MediaLeg {
  localSdp = ''
  private awaitingAnswer = false
  private agent: CallAgent | null = null
  private readonly ended = new EventEmitter()
  private moh: FrameSource | null = null
  private closed = false
  private anchored = false
  /** rtpengine keys, fixed at the first offer/answer and reused for re-INVITEs, hold and delete. */
  private ids: (CallIds & { toTag: string }) | null = null
  private qualityTimer: NodeJS.Timeout | null = null
  private qualityWrites: Promise<void> = Promise.resolve()
  /** The final quality write (closeOnce). */
  private finalQuality: Promise<void> = Promise.resolve()
  /** The agent's end: its summary stored (or known absent). */
  private agentSettled: Promise<void> = Promise.resolve()
  private closedDone: Promise<void> | null = null
  private answered = false

  constructor(readonly ctx: CallContext, readonly session: MediaSession, private readonly o: AgentMediaBinderOptions, private readonly log: Logger, private readonly live: LiveMedia) {
    // Digits the caller sends, by RFC 4733 or SIP INFO (injectDtmf), are announced as they arrive.
    session.on('dtmf', (e) => this.announce('call.dtmf', { digit: e.digit, source: e.source, durationMs: e.durationMs }))
  }

  /** A call event through the outbox (webhooks, /v1/events); a store hiccup never reaches the media path. */
  private announce(type: 'call.dtmf' | 'call.tool_call' | 'call.speech_update', data: Record<string, unknown>): void {
    void this.o.store.calls.emit(this.ctx.callId, type, data).catch((err: unknown) => this.log.warn({ err, type }, 'call event could not be stored'))
  }

  /** Stores the call's quality figures; `final` once the media has ended. Writes go one after another, so the final one is the last. */
  private storeQuality(final: boolean): Promise<void> {
    const stats = this.session.stats()
    if (!final && stats.packetsReceived === 0) return this.qualityWrites
    this.qualityWrites = this.qualityWrites.then(() => this.o.store.calls.setQuality(this.ctx.callId, { ...callQualityOf(stats), final }))
      .catch((err: unknown) => this.log.warn({ err }, 'call quality could not be stored'))
    return this.qualityWrites
  }

  private startQualityUpdates(): void {
    if (this.qualityTimer || this.closed) return
    const tick = (ms: number) => {
      this.qualityTimer = setTimeout(() => {
        if (this.closed) return
        void this.storeQuality(false).finally(() => { if (!this.closed) tick(QUALITY_INTERVAL_MS) })
      }, ms)
      this.qualityTimer.unref()
    }
    tick(QUALITY_FIRST_MS)
  }

  private watchCallerSpeech(): void {
    const vad = new SpeechDetector()
    vad.on('speechStart', () => this.announce('call.speech_update', { role: 'user', status: 'started' }))
    vad.on('speechEnd', () => this.announce('call.speech_update', { role: 'user', status: 'stopped' }))
    this.session.addSink(vad)
    this.live.onEnd(() => { if (!this.session.isClosed) this.session.removeSink(vad) })
  }

  /** SIP INFO DTMF (RFC 2976, application/dtmf-relay) that reached the call's dialog: handled like RFC 4733 digits. */
  injectDtmf(digit: string, durationMs?: number): void {
    if (!this.closed) this.session.injectDtmf(digit, durationMs)
  }

  /**
   * Resolves when everything the end-of-call report carries is stored: the
   * media closed (final quality, recordings finalised) and the agent's summary.
   */
  async settled(): Promise<void> {
    await this.closedDone
    await this.finalQuality
    await this.agentSettled
  }

  /**
   * The SIP ids from the context when it has them, else, when answering, the
   * Call-ID sip/app stored on the call record (an inbound call's record is
   * created with the INVITE's Call-ID before the binder answers), else
   * made-up keys. Not the record when offering: our offer starts a new dialog
   * (an outbound call, a transfer's whisper leg on an existing call) whose
   * Call-ID is not the record's.
   */
  private async anchorKeys(answering: boolean): Promise<CallIds & { toTag: string }> {
    if (this.ids) return this.ids
    let sip: SipDialogIds | null = this.ctx.sip ?? null
    if (!sip?.callId && answering) {
      const rec = await this.o.store.calls.getById(this.ctx.callId).catch((err: unknown) => { this.log.warn({ err }, 'call record lookup for rtpengine keys failed'); return null })
      if (rec?.sipCallId) sip = { ...(sip ?? {}), callId: rec.sipCallId }
    }
    this.ids = anchorIds(this.ctx.callId, sip)
    return this.ids
  }

  private get keys(): CallIds & { toTag: string } {
    // Set by anchorKeys() before `anchored` is, so never the fallback mid-call.
    return (this.ids ??= anchorIds(this.ctx.callId))
  }

  async answer(remoteSdp: string): Promise<void> {
    const a = this.o.anchor
    if (a) {
      const ids = await this.anchorKeys(true)
      this.anchored = true
      this.localSdp = await a.answerThrough(this.session, remoteSdp, ids)
    } else {
      this.localSdp = await this.session.createAnswer(remoteSdp)
    }
  }

  async offer(): Promise<void> {
    const a = this.o.anchor
    if (a) {
      const ids = await this.anchorKeys(false)
      this.anchored = true
      this.localSdp = await a.offerThrough(this.session, ids)
    } else {
      this.localSdp = await this.session.createOffer()
    }
    this.awaitingAnswer = true
  }

  async setRemote(sdp: string): Promise<string> {
    const a = this.anchored ? this.o.anchor : undefined
    if (this.awaitingAnswer) {
      this.awaitingAnswer = false
      if (a) await a.acceptAnswer(this.session, sdp, this.keys)
      else await this.session.setRemoteDescription(sdp)
      return this.localSdp
    }
    // A re-INVITE from the far end: answer its new offer (RFC 3264 §8);
    // anchored, rtpengine sees the re-offer under the same call keys.
    this.localSdp = a ? await a.answerThrough(this.session, sdp, this.keys) : await this.session.createAnswer(sdp)
    return this.localSdp
  }

  async holdOffer(held: boolean): Promise<string> {
    const a = this.anchored ? this.o.anchor : undefined
    if (a) {
      // Our hold/unhold offer goes out through rtpengine like the first offer.
      const session = this.session
      const heldOffer: AnchorableSession = {
        createOffer: () => held ? session.hold() : session.unhold(),
        createAnswer: (o) => session.createAnswer(o),
        setRemoteDescription: (s) => session.setRemoteDescription(s),
      }
      this.localSdp = await a.offerThrough(heldOffer, this.keys)
    } else {
      this.localSdp = held ? await this.session.hold() : await this.session.unhold()
    }
    this.awaitingAnswer = true
    return this.localSdp
  }

  attach(dialog: Srf.Dialog): void {
    this.live.dialog = dialog
    if (!this.answered) {
      this.answered = true
      this.startQualityUpdates()
      // Without an agent (its turn-taking reports them), the caller's speech is detected here for call.speech_update.
      if (!this.ctx.agentId) this.watchCallerSpeech()
      // `record` on POST /v1/calls: the whole call from answer.
      if (this.ctx.record && this.o.record) void this.o.record(this.ctx.callId).catch((err: unknown) => this.log.error({ err }, 'recording from answer could not start'))
    }
    if (!this.ctx.agentId || this.agent) return
    void this.startAgent().catch((err: unknown) => this.log.error({ err }, 'agent failed to start'))
  }

  private async startAgent(): Promise<void> {
    const rec = await this.o.store.agents.get(this.ctx.accountId, this.ctx.agentId!)
    if (!rec || this.closed) return
    const started = await createAgentOnCall({
      live: this.live, record: rec, store: this.o.store, log: this.log, urlPolicy: this.o.urlPolicy, startRecording: this.o.record,
      onEnded: (l) => { this.ended.on('ended', l); return () => this.ended.off('ended', l) },
      hangup: async (reason) => { await this.o.control()?.hangup(this.ctx.callId, AGENT_ENDED_REASONS[reason]) },
      transfer: async (target, opts) => { await this.o.control()?.transfer(this.ctx.callId, target, opts) },
      // The agent reports the caller's speech itself (no leg VAD on an agent call).
      announceCallerSpeech: true,
      isClosed: () => this.closed,
      ...(this.ctx.amd ? { adjust: withAmd(this.ctx.amd) } : {}),
    })
    if (!started) return
    const { agent } = started
    this.agent = agent
    this.agentSettled = started.settled
    try {
      await agent.start()
    } catch (err) {
      // An agent that cannot start (a websocket bot that does not answer) must not leave the caller in silence.
      this.log.warn({ err: (err as Error).message, type: rec.type }, 'agent could not start; hanging up')
      await this.o.control()?.hangup(this.ctx.callId, 'agent-error').catch(() => {})
    }
  }

  /**
   * A line said on this leg (a transfer's whisper to its target): espeak-ng,
   * resampled to the leg's codec rate; resolves when it has been sent.
   */
  async say(text: string): Promise<void> {
    const rate = this.session.codecSampleRate()
    const src = new PcmQueueSource(rate)
    const played = this.live.output.play(src)
    try {
      let rs: StreamResampler | undefined
      for await (const chunk of createAgentTts({ name: 'whisper' }).synthesize({ text, signal: AbortSignal.timeout(30_000) })) {
        rs ??= new StreamResampler(chunk.sampleRate, rate)
        src.push(rs.process(chunk.samples))
      }
      if (rs) src.push(rs.flush())
    } finally {
      src.end()
    }
    await played
  }

  async setHold(held: boolean): Promise<void> {
    if (held) {
      this.moh = await sourceFromSpec({ type: 'tone', tone: 'moh' }, this.session.codecSampleRate())
      void this.live.output.play(this.moh)
    } else if (this.moh) {
      this.live.output.stop(this.moh)
      this.moh = null
    }
  }

  close(reason: string): Promise<void> {
    this.closedDone ??= this.closeOnce(reason)
    return this.closedDone
  }

  private async closeOnce(reason: string): Promise<void> {
    this.closed = true
    if (this.qualityTimer) clearTimeout(this.qualityTimer)
    this.ended.emit('ended', reason)
    await this.live.end(reason)
    // The final figures are read now; their write is not waited for here (the call's end, which waits on
    // the close, queues right behind it), only by settled() and so by the report.
    if (this.answered) this.finalQuality = this.storeQuality(true)
    await this.session.close()
    if (this.anchored) await this.o.anchor?.delete(this.keys).catch((err: unknown) => this.log.warn({ err }, 'rtpengine delete failed'))
  }
}

export class AgentMediaBinder implements MediaBinder {
  private readonly o: AgentMediaBinderOptions & { sessions: MediaSessionRegistry }
  constructor(o: AgentMediaBinderOptions) {
    this.o = { ...o, sessions: o.sessions ?? new MediaSessionRegistry() }
  }

  private async leg(ctx: CallContext): Promise<SessionLeg> {
    const session = await this.o.media.createSession({ id: ctx.callId })
    const log = this.o.logger.child({ callId: ctx.callId })
    const leg = new SessionLeg(ctx, session, this.o, log, this.o.sessions.add(ctx, session))
    // RTP inactivity (RFC 3550 has no BYE guarantee): end the call rather than hold it forever.
    session.on('timeout', () => { void this.o.control()?.hangup(ctx.callId).catch(() => {}) })
    return leg
  }

  async joinConference(callId: string, conferenceId: string): Promise<void> {
    if (!this.o.joinConference) throw new Error('conferences are not available on this media plane')
    await this.o.joinConference(callId, conferenceId)
  }

  async answer(ctx: CallContext, remoteSdp: string): Promise<MediaLeg> {
    const leg = await this.leg(ctx)
    try {
      await leg.answer(remoteSdp)
    } catch (err) {
      await leg.close('sdp-failed')
      throw err
    }
    return leg
  }

  async offer(ctx: CallContext): Promise<MediaLeg> {
    const leg = await this.leg(ctx)
    try {
      await leg.offer()
    } catch (err) {
      await leg.close('sdp-failed')
      throw err
    }
    return leg
  }
}
