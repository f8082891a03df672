import { createHash, randomUUID } from 'node:crypto'
import type pg from 'pg'
import type { Logger } from 'pino'
import type { Database } from './database.ts'

/**
 * Requests from one engine node to another through PostgreSQL, so that a node
 * can act on something only another node holds (a live call's SIP dialog and
 * media). Each node LISTENs on a channel of its own; a request is a NOTIFY on
 * the target node's channel, and the answer a NOTIFY on the sender's.
 * Only with a real PostgreSQL (`usesNotify`): the embedded PGlite serves one
 * node, which never needs it.
 *
 * The sender waits at most `timeoutMs` for any word from the target. A target
 * still working on the request says so every third of that (`alive`), so a
 * long action (a transfer that rings) is not mistaken for a dead node, and a
 * node that dies mid-action is noticed within `timeoutMs` all the same.
 */
export class NodeRelay {
  private listener: pg.Client | null = null
  private handler: RelayHandler | null = null
  private stopped = false
  private readonly pending = new Map<string, Pending>()
  private readonly channel: string
  private lastSweep = 0

  constructor(
    private readonly db: Database,
    readonly nodeId: string,
    private readonly logger: Logger,
    readonly timeoutMs = 5000,
  ) {
    this.channel = channelOf(nodeId)
  }

  get usesNotify(): boolean {
    return this.db.mode === 'postgres'
  }

  /** LISTENs on this node's channel and serves the requests that arrive there with `handler`. */
  async start(handler: RelayHandler): Promise<void> {
    this.handler = handler
    if (!this.usesNotify || this.listener || this.stopped) return
    const client = new (await import('pg')).default.Client({ ...this.db.pool.options })
    client.on('error', (err) => this.logger.error({ err }, 'node relay listener connection error'))
    client.on('notification', (msg) => {
      if (msg.channel !== this.channel || !msg.payload) return
      void this.receive(msg.payload).catch((err: unknown) => this.logger.warn({ err }, 'node relay message dropped'))
    })
    await client.connect()
    await client.query(`LISTEN ${this.channel}`)
    this.listener = client
    client.on('end', () => {
      if (this.listener === client) this.listener = null
      if (!this.stopped) setTimeout(() => void this.start(handler).catch((err: unknown) => this.logger.error({ err }, 'node relay reconnect failed')), 1000).unref()
    })
  }

  /**
   * Sends `method(args)` to node `nodeId` and resolves with what its handler
   * returned. Rejects with RelayedFailure when the handler threw there, and
   * with NodeUnreachable when the node said nothing for `timeoutMs`.
   */
  async request(nodeId: string, method: string, args: unknown): Promise<unknown> {
    if (!this.listener) throw new NodeUnreachable(nodeId, 0, `this node (${this.nodeId}) is not listening for answers (database connection down or stopping)`)
    const id = randomUUID()
    const answer = new Promise<unknown>((resolve, reject) => {
      const p: Pending = { nodeId, resolve, reject, timer: undefined }
      this.pending.set(id, p)
      this.arm(id, p)
    })
    try {
      await this.send(nodeId, { k: 'req', id, from: this.nodeId, t: this.timeoutMs, m: method, a: args })
    } catch (err) {
      this.settle(id)?.reject(err)
    }
    return answer
  }

  /**
   * Whether node `nodeId` answers at all (its relay listener, not its handler, replies):
   * false once it said nothing for `timeoutMs`. A node whose database connection is down
   * counts as gone too: it can act on nothing another node would ask of it.
   */
  async ping(nodeId: string): Promise<boolean> {
    try {
      await this.request(nodeId, PING, null)
      return true
    } catch (err) {
      // Unreachable after waiting: gone. Not sent at all (this node's own connection is down): unknown, so not gone.
      return !(err instanceof NodeUnreachable && err.waitedMs > 0)
    }
  }

  async stop(): Promise<void> {
    this.stopped = true
    const l = this.listener
    this.listener = null
    for (const id of [...this.pending.keys()]) this.settle(id)?.reject(new NodeUnreachable(this.nodeId, 0, `this node (${this.nodeId}) is stopping`))
    if (l) await l.end().catch(() => {})
  }

  // ------------------------------------------------------------------ waiting side

  /** (Re)starts the silence deadline of a pending request. */
  private arm(id: string, p: Pending): void {
    clearTimeout(p.timer)
    p.timer = setTimeout(() => this.settle(id)?.reject(new NodeUnreachable(p.nodeId, this.timeoutMs)), this.timeoutMs)
    p.timer.unref?.()
  }

  private settle(id: string): Pending | undefined {
    const p = this.pending.get(id)
    if (!p) return undefined
    this.pending.delete(id)
    clearTimeout(p.timer)
    return p
  }

  // ------------------------------------------------------------------ wire

  private async receive(payload: string): Promise<void> {
    const msg = JSON.parse(payload.startsWith('@') ? await this.take(payload.slice(1)) : payload) as Wire
    switch (msg.k) {
      case 'req': return this.serve(msg)
      case 'alive': {
        const p = this.pending.get(msg.id)
        if (p) this.arm(msg.id, p)
        return
      }
      case 'ok': return this.settle(msg.id)?.resolve(msg.v)
      case 'err': {
        const p = this.settle(msg.id)
        return p?.reject(new RelayedFailure(p.nodeId, msg.e))
      }
    }
  }

  private async serve(req: Extract<Wire, { k: 'req' }>): Promise<void> {
    const handler = this.handler
    // Keep the sender waiting only as long as the work goes on.
    const alive = setInterval(() => void this.send(req.from, { k: 'alive', id: req.id }).catch(() => {}), Math.max(50, Math.floor(req.t / 3)))
    alive.unref?.()
    let answer: Wire
    try {
      if (req.m === PING) {
        answer = { k: 'ok', id: req.id }
      } else {
        if (!handler) throw new Error(`node ${this.nodeId} serves no relayed requests`)
        const v = await handler(req.m, req.a)
        answer = v === undefined ? { k: 'ok', id: req.id } : { k: 'ok', id: req.id, v }
      }
    } catch (err) {
      answer = { k: 'err', id: req.id, e: describe(err) }
    } finally {
      clearInterval(alive)
    }
    await this.send(req.from, answer).catch((err: unknown) => this.logger.warn({ err, to: req.from, method: req.m }, 'node relay answer not sent'))
  }

  /** One NOTIFY; a message too long for one (8000 bytes) goes through node_relay_messages. */
  private async send(nodeId: string, msg: Wire): Promise<void> {
    const text = JSON.stringify(msg)
    let payload = text
    if (Buffer.byteLength(text) >= NOTIFY_LIMIT) {
      const id = randomUUID()
      await this.db.pool.query('INSERT INTO node_relay_messages (id, body) VALUES ($1, $2)', [id, text])
      payload = `@${id}`
      await this.sweep()
    }
    await this.db.pool.query('SELECT pg_notify($1, $2)', [channelOf(nodeId), payload])
  }

  private async take(id: string): Promise<string> {
    const { rows } = await this.db.pool.query<{ body: string }>('DELETE FROM node_relay_messages WHERE id = $1 RETURNING body', [id])
    if (!rows[0]) throw new Error(`node relay message ${id} is gone`)
    return rows[0].body
  }

  /** Rows whose receiver never took them (it died): dropped once they are long stale, at most once a minute. */
  private async sweep(): Promise<void> {
    const now = Date.now()
    if (now - this.lastSweep < 60_000) return
    this.lastSweep = now
    await this.db.pool.query(`DELETE FROM node_relay_messages WHERE created_at < now() - interval '10 minutes'`)
  }
}

/** Answers one relayed request on the node that received it; what it throws travels back as a RelayFailure. */
export type RelayHandler = (method: string, args: unknown) => Promise<unknown>

/** An error, as it crosses to the node that asked. */
export interface RelayFailure {
  name: string
  message: string
  code?: string | undefined
  details?: unknown
}

/** The target node's handler failed; `failure` is its error. */
export class RelayedFailure extends Error {
  constructor(readonly nodeId: string, readonly failure: RelayFailure) {
    super(failure.message)
    this.name = 'RelayedFailure'
  }
}

/** The target node said nothing within the relay's timeout (down, or cut off from the database). */
export class NodeUnreachable extends Error {
  constructor(readonly nodeId: string, readonly waitedMs: number, reason?: string) {
    super(reason ?? `node ${nodeId} did not answer within ${waitedMs} ms`)
    this.name = 'NodeUnreachable'
  }
}

/** The relay's own request (ping): answered by the listener itself, never passed to the handler. */
const PING = '\u0001ping'

// PostgreSQL: "the payload must be shorter than 8000 bytes" (NOTIFY); a little headroom.
const NOTIFY_LIMIT = 7900

type Wire =
  | { k: 'req'; id: string; from: string; t: number; m: string; a: unknown }
  | { k: 'alive'; id: string }
  | { k: 'ok'; id: string; v?: unknown }
  | { k: 'err'; id: string; e: RelayFailure }

interface Pending {
  nodeId: string
  resolve: (v: unknown) => void
  reject: (err: unknown) => void
  timer: ReturnType<typeof setTimeout> | undefined
}

/**
 * A node's channel: node ids are free text (hostnames by default) and channel
 * names are identifiers of at most 63 bytes, so the id is hashed into one.
 */
export function channelOf(nodeId: string): string {
  return `callplane_node_${createHash('sha256').update(nodeId).digest('hex').slice(0, 32)}`
}

function describe(err: unknown): RelayFailure {
  if (!(err instanceof Error)) return { name: 'Error', message: String(err) }
  const e = err as Error & { code?: unknown; details?: unknown }
  return {
    name: e.name, message: e.message,
    ...(typeof e.code === 'string' ? { code: e.code } : {}),
    ...(e.details !== undefined ? { details: e.details } : {}),
  }
}
