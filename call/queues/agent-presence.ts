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
 *   lives, queue offer or not, for every queue; free again after. (A queue
 *   offer's own leg starting is skipped: its agent is `ringing` until the
 *   offer ends, and the end of a caller's service frees its agent in the
 *   queuecall's own transaction, acd.ts; the leg's end is still followed.)
 * Each changed status is announced (`contact_agent.status_changed`), and an
 * agent back to `available` is what wakes the queues (acd.ts) at once.
 *
 * Several nodes see every event (NOTIFY): a call's changes are applied by
 * the node holding it, a registration's by every node (the recompute is
 * idempotent and row-locked, so its event is sent once).
 *
 * Cost: most calls are no agent's. Each node keeps, per account, the set of
 * its agents' presence keys (extension ids, dial keys), so a call event
 * whose parties are none of them costs no query at all; only calls of agents
 * reach the store. The set is loaded on an account's first call event, dropped
 * on `contact_agent.created/updated/deleted` (from any node) and reloaded at
 * the latest after KEYS_TTL_MS (a lost NOTIFY). A created agent, or one
 * whose addresses changed, is recomputed once here when that event arrives:
 * a call of theirs that ended on this node before it did was judged with the
 * old set.
 */

const CALL_EVENTS = new Set(['call.started', 'call.ended', 'call.failed'])
/** How long an account's presence keys are trusted without an event. */
const KEYS_TTL_MS = 30_000
/** Accounts whose keys are kept (least recently loaded dropped first). */
const KEYS_MAX_ACCOUNTS = 10_000

interface AccountKeys { extensionIds: Set<string>; dialKeys: Set<string>; loadedAt: number }

export class AgentPresence {
  private readonly unsubscribe: () => void
  private readonly log: Logger
  private readonly keys = new Map<string, Promise<AccountKeys>>()
  /** Bumped per account on each invalidation: a load that started before one is not kept. */
  private readonly generation = new Map<string, number>()

  constructor(private readonly o: {
    store: Store; nodeId: string; logger: Logger
    /** True when this node's ACD frees the agent of this ended queue leg itself (the queuecall's end recomputes it). */
    accountedEnd?: (callId: string) => boolean
  }) {
    this.log = o.logger.child({ component: 'agent-presence' })
    this.unsubscribe = o.store.bus.subscribe((e) => this.onEvent(e))
  }

  close(): void {
    this.unsubscribe()
    this.keys.clear()
  }

  private onEvent(e: CallplaneEvent): void {
    if (e.type === 'registration.changed') {
      const extensionId = (e.data as { extensionId?: unknown }).extensionId
      if (typeof extensionId !== 'string') return
      this.apply(e.accountId, { extensionIds: [extensionId] })
      return
    }
    if (e.type === 'contact_agent.created' || e.type === 'contact_agent.updated' || e.type === 'contact_agent.deleted') {
      this.invalidate(e.accountId)
      const d = e.data as { contact_agent?: { id?: string }; changed?: string[] }
      const id = d.contact_agent?.id
      if (id && (e.type === 'contact_agent.created' || d.changed?.includes('addresses'))) {
        void this.o.store.contactAgents.refresh(e.accountId, id)
          .catch((err: unknown) => this.log.warn({ err, accountId: e.accountId }, 'contact agent presence could not be updated'))
      }
      return
    }
    if (!CALL_EVENTS.has(e.type)) return
    const call = (e.data as { call?: Partial<Call> }).call
    if (!call || (call.nodeId && call.nodeId !== this.o.nodeId)) return
    // A queue offer's leg (acd.ts) starting moves nothing: its agent is `ringing` for that offer (rule 1)
    // until the offer ends, and ending it recomputes the agent with this leg live. Its end is followed,
    // unless it is the leg of a caller in service on this node: ending that queuecall frees the agent (acd.ts).
    if (e.type === 'call.started' && typeof call.metadata?.queuecallId === 'string') return
    if (e.type !== 'call.started' && e.callId && typeof call.metadata?.queuecallId === 'string' && this.o.accountedEnd?.(e.callId)) return
    const dialKeys = [call.to, call.from].filter((v): v is string => typeof v === 'string' && v.length > 0)
    const extensionId = call.extensionId ?? null
    void this.keysOf(e.accountId).then((k) => {
      const ext = extensionId && k.extensionIds.has(extensionId) ? [extensionId] : []
      const keys = dialKeys.filter((x) => k.dialKeys.has(x))
      if (ext.length || keys.length) this.apply(e.accountId, { dialKeys: keys, extensionIds: ext }, true)
    }, (err: unknown) => {
      // Not known: ask the store as if it were an agent's call.
      this.log.warn({ err, accountId: e.accountId }, 'contact agents\' presence keys could not be read')
      this.apply(e.accountId, { dialKeys, ...(extensionId ? { extensionIds: [extensionId] } : {}) })
    })
  }

  private keysOf(accountId: string): Promise<AccountKeys> {
    const cached = this.keys.get(accountId)
    if (cached) {
      return cached.then((k) => {
        if (Date.now() - k.loadedAt < KEYS_TTL_MS) return k
        if (this.keys.get(accountId) === cached) this.keys.delete(accountId)
        return this.keysOf(accountId)
      })
    }
    const gen = this.generation.get(accountId) ?? 0
    const loading = this.o.store.contactAgents.presenceKeys(accountId).then((k) => ({
      extensionIds: new Set(k.extensionIds), dialKeys: new Set(k.dialKeys), loadedAt: Date.now(),
    }))
    this.keys.set(accountId, loading)
    if (this.keys.size > KEYS_MAX_ACCOUNTS) this.keys.delete(this.keys.keys().next().value!)
    loading.then(() => {
      // Invalidated while loading: what was read may predate the change; the next event loads again.
      if ((this.generation.get(accountId) ?? 0) !== gen && this.keys.get(accountId) === loading) this.keys.delete(accountId)
    }, () => { if (this.keys.get(accountId) === loading) this.keys.delete(accountId) })
    return loading
  }

  private invalidate(accountId: string): void {
    this.keys.delete(accountId)
    this.generation.set(accountId, (this.generation.get(accountId) ?? 0) + 1)
  }

  /** `known`: the keys were matched to agents from memory (the store need not look first). */
  private apply(accountId: string, what: { extensionIds?: string[]; dialKeys?: string[] }, known = false): void {
    void this.o.store.contactAgents.presenceChanged(accountId, what, { known })
      .catch((err: unknown) => this.log.warn({ err, accountId }, 'contact agent presence could not be updated'))
  }
}
