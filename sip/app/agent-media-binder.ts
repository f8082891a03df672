import { EventEmitter } from 'node:events'
import type Srf from 'drachtio-srf'
import type { Logger } from 'pino'
import type { MediaEngine } from '../../media/engine.ts'
import type { MediaSession } from '../../media/session.ts'
import { sourceFromSpec } from '../../media/playback.ts'
import type { FrameSource } from '../../media/frame.ts'
import { createAgent, type AgentConfigInput, type AgentMediaPort, type AgentRuntime } from '../../agent/index.ts'
import type { Store } from '../../store/index.ts'
import type { Agent } from '../../store/agents.ts'
import type { CallContext, MediaBinder, MediaLeg } from './media-binding.ts'

/**
 * The production MediaBinder: one MediaSession per call from the MediaEngine
 * (SDP offer/answer, RTP, hold with music-on-hold), and, when the call has an
 * agent, the agent runtime on top of it through an AgentMediaPort. The agent's
 * hangup/transfer go back to sip/app through `control`; its transcript, turn
 * timings and summary are persisted on the call record.
 */

export interface AgentControl {
  hangup(callId: string): Promise<void>
  transfer(callId: string, to: string): Promise<void>
}

export interface AgentMediaBinderOptions {
  media: MediaEngine
  store: Store
  logger: Logger
  control: () => AgentControl | null
}

/** The stored agent (API shape) as the runtime's configuration. */
export function agentConfigFrom(a: Agent): AgentConfigInput {
  const adapter = (r: { provider: string; model?: string; voice?: string; options?: Record<string, unknown> } | undefined) =>
    r ? { provider: r.provider, options: { ...(r.options ?? {}), ...(r.model ? { model: r.model } : {}), ...(r.voice ? { voice: r.voice } : {}) } } : undefined
  const cfg: Record<string, unknown> = {
    id: a.id, name: a.name, type: a.type,
    ...(a.prompt ? { systemPrompt: a.prompt } : {}),
    ...(a.greeting ? { greeting: a.greeting } : {}),
    ...(a.language ? { language: a.language } : {}),
    ...(a.voice ? { voice: a.voice } : {}),
    ...(a.stt ? { stt: adapter(a.stt) } : {}),
    ...(a.tts ? { tts: adapter(a.tts) } : {}),
    ...(a.llm ? { llm: adapter(a.llm) } : a.rules ? { llm: { provider: 'scripted', options: { rules: a.rules } } } : {}),
    ...(a.transferTargets ? { transferTargets: a.transferTargets } : {}),
    ...(a.maxDurationSec ? { maxCallDurationMinutes: a.maxDurationSec / 60 } : {}),
    ...(a.silenceTimeoutSec ? { maxSilenceSeconds: a.silenceTimeoutSec } : {}),
    ...(a.summary ? { summary: a.summary.enabled } : {}),
    ...(a.bargeIn ? { bargeIn: a.bargeIn } : {}),
  }
  return cfg as AgentConfigInput
}

class SessionLeg implements MediaLeg {
  localSdp = ''
  private awaitingAnswer = false
  private agent: AgentRuntime | null = null
  private readonly ended = new EventEmitter()
  private moh: FrameSource | null = null
  private closed = false

  constructor(readonly ctx: CallContext, readonly session: MediaSession, private readonly o: AgentMediaBinderOptions, private readonly log: Logger) {}

  async answer(remoteSdp: string): Promise<void> {
    this.localSdp = await this.session.createAnswer(remoteSdp)
  }

  async offer(): Promise<void> {
    this.localSdp = await this.session.createOffer()
    this.awaitingAnswer = true
  }

  async setRemote(sdp: string): Promise<string> {
    if (this.awaitingAnswer) {
      this.awaitingAnswer = false
      await this.session.setRemoteDescription(sdp)
      return this.localSdp
    }
    // A re-INVITE from the far end: answer its new offer (RFC 3264 §8).
    this.localSdp = await this.session.createAnswer(sdp)
    return this.localSdp
  }

  async holdOffer(held: boolean): Promise<string> {
    this.localSdp = held ? await this.session.hold() : await this.session.unhold()
    this.awaitingAnswer = true
    return this.localSdp
  }

  attach(_dialog: Srf.Dialog): void {
    if (!this.ctx.agentId || this.agent) return
    void this.startAgent().catch((err: unknown) => this.log.error({ err }, 'agent failed to start'))
  }

  private async startAgent(): Promise<void> {
    const rec = await this.o.store.agents.get(this.ctx.accountId, this.ctx.agentId!)
    if (!rec || this.closed) return
    const session = this.session
    const port: AgentMediaPort = {
      get sampleRate() { return session.codecSampleRate() },
      onFrame: (l) => { session.on('frame', l); return () => session.off('frame', l) },
      onDtmf: (l) => { const h = (e: { digit: string }) => l(e.digit); session.on('dtmf', h); return () => session.off('dtmf', h) },
      onEnded: (l) => { this.ended.on('ended', l); return () => this.ended.off('ended', l) },
      play: (source) => { void session.play(source) },
      flush: () => session.flush(),
      sendDtmf: async (digits) => { session.sendDtmf(digits) },
      hangup: async () => { await this.o.control()?.hangup(this.ctx.callId) },
      transfer: async (target) => { await this.o.control()?.transfer(this.ctx.callId, target) },
    }
    const agent = createAgent({ config: agentConfigFrom(rec), port, call: { id: this.ctx.callId, from: this.ctx.from, to: this.ctx.to, direction: this.ctx.direction }, log: this.log })
    this.agent = agent
    const calls = this.o.store.calls
    agent.on('transcript', (e) => { void calls.appendTranscript(this.ctx.callId, e as never).catch(() => {}) })
    agent.on('turn', (tm) => { void calls.addTiming(this.ctx.callId, tm as never).catch(() => {}) })
    agent.on('ended', (r) => { if (r.summary) void calls.setSummary(this.ctx.callId, r.summary).catch(() => {}) })
    await agent.start()
  }

  async setHold(held: boolean): Promise<void> {
    if (held) {
      this.moh = await sourceFromSpec({ type: 'tone', tone: 'moh' }, this.session.codecSampleRate())
      void this.session.play(this.moh)
    } else if (this.moh) {
      this.moh = null
      this.session.flush()
    }
  }

  async close(reason: string): Promise<void> {
    if (this.closed) return
    this.closed = true
    this.ended.emit('ended', reason)
    await this.session.close()
  }
}

export class AgentMediaBinder implements MediaBinder {
  constructor(private readonly o: AgentMediaBinderOptions) {}

  private async leg(ctx: CallContext): Promise<SessionLeg> {
    const session = await this.o.media.createSession({ id: ctx.callId })
    const log = this.o.logger.child({ callId: ctx.callId })
    const leg = new SessionLeg(ctx, session, this.o, log)
    // RTP inactivity (RFC 3550 has no BYE guarantee): end the call rather than hold it forever.
    session.on('timeout', () => { void this.o.control()?.hangup(ctx.callId).catch(() => {}) })
    return leg
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
    await leg.offer()
    return leg
  }
}
