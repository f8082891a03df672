import type { Logger } from 'pino'
import type { Store } from '../../store/index.ts'
import type { Call } from '../../store/calls.ts'
import type { CallplaneEvent } from '../../store/outbox.ts'

/**
 * Contact agents' presence: what moves their status besides the API and the
 * queues' offers. The rules themselves are one SQL expression,
 * `STATUS_RULE` in store/contact-agents.ts; this module only tells the store
 * when to apply them again:
 * - `registration.changed` (an extension registered, unregistered, expired):
 *   the agents reached on that extension (offline ↔ back to what was set);
 * - `call.started` / `call.ended` / `call.failed`: the agents that are a party of
 *   that call (their extension, number or URI): busy while any call of theirs
 *   lives, queue offer or not, for every queue; free again after.
 * Each changed status is announced (`contact_agent.status_changed`), and an
 * agent back to `available` is what wakes the queues (acd.ts) at once.
 *
 * Several nodes see every event (NOTIFY): a call's changes are applied by
 * the node holding it, a registration's by every node (the recompute is
 * idempotent and row-locked, so its event is sent once).
 */

const CALL_EVENTS = new Set(['call.started', 'call.ended', 'call.failed'])

export class AgentPresence {
  private readonly unsubscribe: () => void
  private readonly log: Logger

  constructor(private readonly o: { store: Store; nodeId: string; logger: Logger }) {
    this.log = o.logger.child({ component: 'agent-presence' })
    this.unsubscribe = o.store.bus.subscribe((e) => this.onEvent(e))
  }

  close(): void {
    this.unsubscribe()
  }

  private onEvent(e: CallplaneEvent): void {
    if (e.type === 'registration.changed') {
      const extensionId = (e.data as { extensionId?: unknown }).extensionId
      if (typeof extensionId !== 'string') return
      this.apply(e.accountId, { extensionIds: [extensionId] })
      return
    }
    if (!CALL_EVENTS.has(e.type)) return
    const call = (e.data as { call?: Partial<Call> }).call
    if (!call || (call.nodeId && call.nodeId !== this.o.nodeId)) return
    const dialKeys = [call.to, call.from].filter((v): v is string => typeof v === 'string' && v.length > 0)
    this.apply(e.accountId, { dialKeys, ...(call.extensionId ? { extensionIds: [call.extensionId] } : {}) })
  }

  private apply(accountId: string, what: { extensionIds?: string[]; dialKeys?: string[] }): void {
    void this.o.store.contactAgents.presenceChanged(accountId, what)
      .catch((err: unknown) => this.log.warn({ err, accountId }, 'contact agent presence could not be updated'))
  }
}
