import { EventEmitter } from 'node:events'
import { randomUUID } from 'node:crypto'
import type pg from 'pg'
import type { Logger } from 'pino'
import type { Database } from './database.ts'

export const EVENT_TYPES = [
  'call.started', 'call.ringing', 'call.answered', 'call.ended', 'call.failed', 'call.transcript',
  'call.speech_update', 'call.tool_call', 'call.dtmf', 'call.summary', 'call.report', 'call.recording.ready', 'registration.changed',
  'do_not_call.added', 'do_not_call.removed',
  'campaign.started', 'campaign.paused', 'campaign.stopped', 'campaigncall.created', 'campaigncall.ended',
  'queue.joined', 'queue.answered', 'queue.abandoned', 'queue.done', 'queue.kicked', 'contact_agent.status_changed',
  'contact_agent.created', 'contact_agent.updated', 'contact_agent.deleted',
  'scheduled_call.created', 'scheduled_call.updated', 'scheduled_call.dialing', 'scheduled_call.completed', 'scheduled_call.failed', 'scheduled_call.cancelled',
  'sequence_enrollment.created', 'sequence_enrollment.ended',
] as const
export type EventType = (typeof EVENT_TYPES)[number]

/** One announced state change, as webhooks and the events WebSocket carry it. */
export interface CallplaneEvent {
  id: string
  type: EventType
  accountId: string
  callId: string | null
  createdAt: string
  data: Record<string, unknown>
}

export type Emit = (accountId: string, type: EventType, data: Record<string, unknown>, callId?: string | null) => Promise<CallplaneEvent>

const NOTIFY_CHANNEL = 'callplane_events'

/** In-process fan-out of committed events (WebSockets, the webhook worker). */
export class EventBus {
  private readonly ee = new EventEmitter()
  constructor() {
    this.ee.setMaxListeners(0)
  }
  publish(evt: CallplaneEvent): void {
    this.ee.emit('event', evt)
  }
  subscribe(fn: (evt: CallplaneEvent) => void): () => void {
    this.ee.on('event', fn)
    return () => this.ee.off('event', fn)
  }
  /** A transaction of this node committed webhook deliveries (events with a subscribed webhook, status callbacks). */
  deliveriesQueued(): void {
    this.ee.emit('deliveries')
  }
  /** `fn` runs after each transaction here that queued webhook deliveries (the webhook worker claims them at once). */
  onDeliveriesQueued(fn: () => void): () => void {
    this.ee.on('deliveries', fn)
    return () => this.ee.off('deliveries', fn)
  }
}

/**
 * Connections whose open transaction queued webhook deliveries: most events
 * have no webhook subscribed, and waking the webhook worker for them would
 * cost a claim transaction each on the database's connection.
 */
const queuedDeliveries = new WeakSet<object>()
/** In a transaction: `c` wrote webhook_deliveries rows (the outbox wakes the worker after COMMIT). */
export function noteDeliveriesQueued(c: object): void {
  queuedDeliveries.add(c)
}

interface EventRow { id: string; type: string; account_id: string; call_id: string | null; created_at: Date; data: Record<string, unknown> }
export const toEvent = (r: EventRow): CallplaneEvent => ({
  id: r.id, type: r.type as EventType, accountId: r.account_id, callId: r.call_id, createdAt: r.created_at.toISOString(), data: r.data,
})

/**
 * The transactional outbox. `transaction(fn)` gives `fn` a client and an `emit`
 * that writes the event row and one pending delivery per subscribed webhook
 * (enabled, or disabled by the engine), all in the caller's transaction. After COMMIT the events reach the
 * in-process bus; on a real PostgreSQL they go through NOTIFY instead, so every
 * node's bus (and its WebSocket clients) sees every node's events.
 */
export class Outbox {
  private listener: pg.Client | null = null
  private stopped = false

  constructor(
    private readonly db: Database,
    readonly bus: EventBus,
    private readonly logger: Logger,
  ) {}

  /** Database.whenIdle: for writes nobody waits on. */
  whenIdle(maxWaitMs?: number): Promise<void> {
    return this.db.whenIdle(maxWaitMs)
  }

  get usesNotify(): boolean {
    return this.db.mode === 'postgres'
  }

  async transaction<T>(fn: (c: pg.PoolClient, emit: Emit) => Promise<T>): Promise<T> {
    const emitted: CallplaneEvent[] = []
    let queued = false
    const out = await this.db.transaction(async (c) => {
      queuedDeliveries.delete(c)
      const emit: Emit = async (accountId, type, data, callId = null) => {
        const evt = await writeEvent(c, accountId, type, data, callId)
        if (this.usesNotify) {
          // NOTIFY payloads are limited to 8000 bytes: small events travel whole, big ones by id.
          const whole = JSON.stringify(evt)
          await c.query('SELECT pg_notify($1, $2)', [NOTIFY_CHANNEL, whole.length < 7900 ? whole : evt.id])
        }
        emitted.push(evt)
        return evt
      }
      const r = await fn(c, emit)
      queued = queuedDeliveries.has(c)
      queuedDeliveries.delete(c)
      return r
    })
    if (!this.usesNotify) for (const e of emitted) this.bus.publish(e)
    if (queued) this.bus.deliveriesQueued()
    return out
  }

  /**
   * Announces one event that goes with no other write (e.g. `registration.changed`
   * from the registrar): its own small transaction, webhooks and bus included.
   */
  emit(accountId: string, type: EventType, data: Record<string, unknown>, callId: string | null = null): Promise<CallplaneEvent> {
    return this.transaction((_c, emit) => emit(accountId, type, data, callId))
  }

  /** On real PostgreSQL: LISTEN on a dedicated connection and republish locally. */
  async start(): Promise<void> {
    if (!this.usesNotify || this.listener) return
    const opts = this.db.pool.options
    const client = new (await import('pg')).default.Client({ ...opts })
    client.on('error', (err) => this.logger.error({ err }, 'event listener connection error'))
    // Notifications arrive in commit order; a chain keeps the bus in that order
    // even when a large event has to be fetched by id.
    let chain: Promise<void> = Promise.resolve()
    client.on('notification', (msg) => {
      if (msg.channel !== NOTIFY_CHANNEL || !msg.payload) return
      const payload = msg.payload
      chain = chain.then(async () => {
        if (payload.startsWith('{')) return this.bus.publish(JSON.parse(payload) as CallplaneEvent)
        const { rows } = await this.db.pool.query<EventRow>('SELECT * FROM events WHERE id = $1', [payload])
        if (rows[0]) this.bus.publish(toEvent(rows[0]))
      }).catch((err: unknown) => this.logger.warn({ err }, 'event fan-out after NOTIFY failed'))
    })
    await client.connect()
    await client.query(`LISTEN ${NOTIFY_CHANNEL}`)
    this.listener = client
    client.on('end', () => {
      this.listener = null
      if (!this.stopped) setTimeout(() => void this.start().catch((err: unknown) => this.logger.error({ err }, 'event listener reconnect failed')), 1000).unref()
    })
  }

  async stop(): Promise<void> {
    this.stopped = true
    const l = this.listener
    this.listener = null
    if (l) await l.end().catch(() => {})
  }
}

/** Writes an event and its pending webhook deliveries with the given client (inside a transaction). */
export async function writeEvent(
  c: Pick<pg.PoolClient, 'query'>, accountId: string, type: EventType, data: Record<string, unknown>, callId: string | null,
): Promise<CallplaneEvent> {
  const id = randomUUID()
  // One statement for the event and its deliveries: every event pays it, on a connection shared by everything.
  // A webhook the engine disabled (disabledReason set) keeps queuing, so that
  // enabling it again delivers everything it missed; one the user disabled does not.
  const { rows } = await c.query<EventRow & { deliveries: number }>(
    `WITH ev AS (INSERT INTO events (id, account_id, type, call_id, data) VALUES ($1, $2, $3, $4, $5) RETURNING *),
     queued AS (
       INSERT INTO webhook_deliveries (id, account_id, webhook_id, event_id)
       SELECT gen_random_uuid(), account_id, id, $1 FROM webhooks
        WHERE account_id = $2 AND (enabled OR disabled_reason IS NOT NULL) AND $3 = ANY(events)
       RETURNING 1)
     SELECT ev.*, (SELECT count(*) FROM queued)::int AS deliveries FROM ev`,
    [id, accountId, type, callId, JSON.stringify(data)],
  )
  if (rows[0]!.deliveries > 0) noteDeliveriesQueued(c)
  return toEvent(rows[0]!)
}
