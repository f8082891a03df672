import { Bridge, type BridgeMode } from '../../media/bridge.ts'
import { CallControlError } from '../../control-api/call-control.ts'
import { sessionThroughOutput } from './media-output.ts'
import type { LiveMedia } from './media-sessions.ts'

/**
 * Two local calls talking to each other through media/Bridge: RTP relayed
 * untouched when both legs negotiated the same codec (the agents' audio is
 * then bypassed), else decoded and re-encoded per leg through each call's
 * CallOutput. Either call ending separates them; the survivor goes back to
 * its agent.
 */
export class CallBridges {
  private readonly bridges = new Map<string, { bridge: Bridge; a: string; b: string }>()

  partnerOf(callId: string): string | undefined {
    const e = this.bridges.get(callId)
    return e ? (e.a === callId ? e.b : e.a) : undefined
  }

  connect(a: LiveMedia, b: LiveMedia): { mode: BridgeMode } {
    const ida = a.ctx.callId
    const idb = b.ctx.callId
    for (const id of [ida, idb]) {
      if (this.bridges.has(id)) throw new CallControlError('invalid_state', `call ${id} is already bridged with ${this.partnerOf(id)}`)
    }
    if (!a.session.codec || !b.session.codec) throw new CallControlError('invalid_state', 'both calls must have negotiated media before bridging')
    const bridge = new Bridge(sessionThroughOutput(a.session, a.output), sessionThroughOutput(b.session, b.output))
    const entry = { bridge, a: ida, b: idb }
    this.bridges.set(ida, entry)
    this.bridges.set(idb, entry)
    a.onEnd(() => this.disconnect(ida))
    b.onEnd(() => this.disconnect(idb))
    return { mode: bridge.mode }
  }

  disconnect(callId: string): void {
    const e = this.bridges.get(callId)
    if (!e) return
    this.bridges.delete(e.a)
    this.bridges.delete(e.b)
    e.bridge.unbridge()
  }
}
