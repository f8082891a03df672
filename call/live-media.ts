import type Srf from 'drachtio-srf'
import type { MediaSession } from '../media/session/media-session.ts'
import type { CallAgent } from '../agent/index.ts'
import type { CallContext } from '../sip/app/media-binding.ts'
import { OutputArbiter } from '../media/session/output-arbiter.ts'

/**
 * The live calls whose media this node terminates: call id → its
 * MediaSession, the agent on it (if any) and the dialog (for SIP INFO).
 * The binder fills an entry when the session is created and clears it when
 * the leg closes; API media actions look calls up here. Each entry owns the
 * call's OutputArbiter, the single source queued on the session. A call that is live
 * but absent (a proxied B2BUA leg) has no media to act on.
 */
export interface LiveMedia {
  readonly ctx: CallContext
  readonly session: MediaSession
  /** Everything the call sends goes through here (media/session/output-arbiter.ts). */
  readonly output: OutputArbiter
  agent: CallAgent | null
  dialog: Srf.Dialog | null
  /**
   * Runs once when the call's media ends (hangup, RTP timeout, SDP failure);
   * registered after that, it runs at once (next microtask), so work that
   * awaited something while the call ended still hears of it.
   */
  onEnd(fn: (reason: string) => void | Promise<void>): void
  /** True once end() ran: the call's media is going or gone. */
  readonly ended: boolean
  /** Unlists the call and runs the end handlers (the leg calls it before closing the session). */
  end(reason: string): Promise<void>
}

export class MediaSessionRegistry {
  private readonly live = new Map<string, LiveMedia & { endHandlers: Array<(reason: string) => void | Promise<void>>; endedWith: string | null }>()

  add(ctx: CallContext, session: MediaSession): LiveMedia {
    const endHandlers: Array<(reason: string) => void | Promise<void>> = []
    const entry = {
      ctx, session, output: new OutputArbiter(session), agent: null, dialog: null, endHandlers, endedWith: null as string | null,
      get ended(): boolean { return entry.endedWith !== null },
      onEnd: (fn: (reason: string) => void | Promise<void>) => {
        if (entry.endedWith === null) { endHandlers.push(fn); return }
        const reason = entry.endedWith
        queueMicrotask(() => { void Promise.resolve().then(() => fn(reason)).catch(() => { /* as end() does: one handler's failure stays its own */ }) })
      },
      end: (reason: string) => this.end(ctx.callId, reason),
    }
    this.live.set(ctx.callId, entry)
    return entry
  }

  get(callId: string): LiveMedia | undefined {
    return this.live.get(callId)
  }

  /**
   * Removes the entry and runs its end handlers before the session closes,
   * so recordings are finalised and streams told `stop` while the session
   * still holds their sinks.
   */
  async end(callId: string, reason: string): Promise<void> {
    const e = this.live.get(callId)
    if (!e) return
    this.live.delete(callId)
    e.endedWith = reason
    e.output.end()
    for (const fn of e.endHandlers.splice(0)) {
      try { await fn(reason) } catch { /* one failing handler must not keep the others from running */ }
    }
  }

  get size(): number {
    return this.live.size
  }
}
