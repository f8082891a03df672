import type { Logger } from 'pino'
import type { Counter } from 'prom-client'
import type { Store } from '../store/index.ts'
import type { ClaimedDelivery } from '../store/webhooks.ts'
import { signatureHeaders } from '../store/webhook-signature.ts'
import { CONFIG_VARS } from '../config/config.ts'
import { OutboundUrlRefused, type OutboundUrlPolicy } from '../config/outbound-url-policy.ts'
import { statusCallbackRequest } from './status-callback-request.ts'

export interface WebhookWorkerOptions {
  store: Store
  logger: Logger
  /** Look for due retries (and deliveries other nodes queued) this often, besides being woken by deliveries queued here and finished ones (ms). */
  pollIntervalMs?: number
  /** Deliveries in flight on this node. */
  concurrency?: number
  /** Deliveries in flight per webhook, across all nodes: what one slow endpoint can hold. */
  perEndpoint?: number
  /** A claimed delivery not settled within this time is claimed again (crash, restart). More than `timeoutMs`. */
  leaseMs?: number
  /** Per-request timeout (ms). */
  timeoutMs?: number
  /** Delay before retry n (ms), the first attempt being immediate; the last value repeats while the endpoint keeps failing. */
  retryScheduleMs?: readonly number[]
  /** A webhook whose every attempt failed for this long is disabled (ms). */
  disableAfterMs?: number
  /** On stop, how long in-flight requests may finish before they are cut off and given back (ms). */
  stopGraceMs?: number
  deliveries?: Counter<'outcome'>
  /**
   * The outbound URL policy tenants' URLs go through: status callbacks are
   * fetched through it (every connection to an approved address). Without
   * one they are fetched like webhooks.
   */
  urlPolicy?: OutboundUrlPolicy
}

export const DEFAULT_RETRY_SCHEDULE_MS: readonly number[] = CONFIG_VARS.webhookRetrySchedule.default
export const DEFAULT_DISABLE_AFTER_MS: number = CONFIG_VARS.webhookDisableAfterMs.default

type Options = Required<Omit<WebhookWorkerOptions, 'deliveries' | 'urlPolicy'>> & Pick<WebhookWorkerOptions, 'deliveries' | 'urlPolicy'>

/**
 * Delivers the outbox's webhook deliveries: a Standard Webhooks signed POST per
 * (event, webhook), `webhook-id` = event id (stable across retries, so receivers
 * can de-duplicate).
 *
 * Retries follow Svix's schedule (https://docs.svix.com/retries): immediately,
 * then 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h. A failing endpoint keeps
 * receiving new events and its deliveries keep waiting for it (at the last
 * delay) rather than being given up; it is disabled only after failing
 * continuously for `disableAfterMs` (5 days), and then still queues. Its first
 * success (or `PATCH enabled: true`) makes everything pending due at once.
 *
 * Deliveries are rows, so they survive restarts; claims are leases, so several
 * nodes share the work and no delivery is in flight twice. Each webhook is a
 * lane with at most `perEndpoint` deliveries in flight, and this node runs up
 * to `concurrency` at once, each settled on its own: a slow endpoint occupies
 * its own lane's slots, never the others'.
 *
 * A call's status callback (store/status-callbacks.ts) is a lane of its own
 * that the store hands out one delivery at a time, oldest first: its request
 * (status-callback-request.ts) is signed with the account signing secret,
 * POST or GET, through the outbound URL policy.
 */
export class WebhookWorker {
  private timer: NodeJS.Timeout | null = null
  private claiming: Promise<void> | null = null
  private again = false
  private stopped = true
  private unsubscribe: (() => void) | null = null
  private readonly inflight = new Map<string, { done: Promise<void>; abort: AbortController }>()
  private readonly o: Options

  constructor(opts: WebhookWorkerOptions) {
    this.o = {
      pollIntervalMs: 1000, concurrency: 32, perEndpoint: 4, leaseMs: 60_000, timeoutMs: 15_000,
      retryScheduleMs: DEFAULT_RETRY_SCHEDULE_MS, disableAfterMs: DEFAULT_DISABLE_AFTER_MS, stopGraceMs: 3000,
      ...opts,
    }
    if (this.o.retryScheduleMs.length === 0) throw new Error('webhook retry schedule must list at least one delay')
    // A lease shorter than a request would let a second claim deliver while the first is still in flight.
    this.o.leaseMs = Math.max(this.o.leaseMs, this.o.timeoutMs + 5000)
  }

  start(): void {
    if (!this.stopped) return
    this.stopped = false
    // Woken by transactions here that queued deliveries, not by every event (most have no webhook: a claim
    // each would be a transaction on the database's connection for nothing); other nodes' are found by the poll.
    this.unsubscribe = this.o.store.bus.onDeliveriesQueued(() => this.kick())
    this.kick()
  }

  /** Stops claiming; in-flight requests get `stopGraceMs` to finish, then are cut off and their claims given back. */
  async stop(): Promise<void> {
    this.stopped = true
    this.unsubscribe?.()
    this.unsubscribe = null
    if (this.timer) clearTimeout(this.timer)
    this.timer = null
    await this.claiming
    const pending = [...this.inflight.values()]
    if (pending.length === 0) return
    let grace: NodeJS.Timeout | undefined
    await Promise.race([
      Promise.all(pending.map((p) => p.done)),
      new Promise<void>((r) => { grace = setTimeout(r, this.o.stopGraceMs) }),
    ])
    clearTimeout(grace)
    for (const p of this.inflight.values()) p.abort.abort()
    await Promise.all([...this.inflight.values()].map((p) => p.done))
  }

  /** Claim what is due now (new events committed, a delivery finished). */
  kick(): void {
    if (this.stopped) return
    if (this.claiming) {
      this.again = true
      return
    }
    this.again = false
    this.claiming = this.fill().finally(() => {
      this.claiming = null
      if (this.again) this.kick()
    })
  }

  /** Claims until this node's slots are full or nothing more is due, then waits for the next poll. */
  private async fill(): Promise<void> {
    try {
      for (;;) {
        const free = this.o.concurrency - this.inflight.size
        if (free <= 0 || this.stopped) break
        const claimed = await this.o.store.webhooks.claimDue({ limit: free, leaseMs: this.o.leaseMs, perEndpoint: this.o.perEndpoint })
        for (const d of claimed) this.launch(d)
        if (claimed.length < free) break
      }
    } catch (err) {
      if (!this.stopped) this.o.logger.error({ err }, 'claiming webhook deliveries failed')
    }
    if (this.stopped) return
    if (this.timer) clearTimeout(this.timer)
    this.timer = setTimeout(() => {
      this.timer = null
      this.kick()
    }, this.o.pollIntervalMs)
    this.timer.unref?.()
  }

  private launch(d: ClaimedDelivery): void {
    const abort = new AbortController()
    const done = this.deliver(d, abort.signal).finally(() => {
      this.inflight.delete(d.id)
      // A slot (and a lane slot) is free: the next due delivery need not wait for the poll.
      this.kick()
    })
    this.inflight.set(d.id, { done, abort })
  }

  /** The HTTP request of one delivery: a webhook's event POST, or a call's status callback. */
  private request(d: ClaimedDelivery): { url: string; method: 'POST' | 'GET'; headers: Record<string, string>; body: string | null } {
    if (d.kind === 'status_callback') {
      const r = statusCallbackRequest(d)
      return {
        url: r.url, method: r.method, body: r.body,
        headers: { ...(r.body !== null ? { 'content-type': 'application/json' } : {}), 'user-agent': 'Callplane-StatusCallbacks/1', ...signatureHeaders(d.secret, r.signed, { id: d.event.id }) },
      }
    }
    const payload = JSON.stringify({ type: d.event.type, timestamp: d.event.createdAt, data: { ...d.event.data, eventId: d.event.id, accountId: d.event.accountId, callId: d.event.callId } })
    return {
      url: d.url, method: 'POST', body: payload,
      headers: { 'content-type': 'application/json', 'user-agent': 'Callplane-Webhooks/1', ...signatureHeaders(d.secret, payload, { id: d.event.id }) },
    }
  }

  private async deliver(d: ClaimedDelivery, stopping: AbortSignal): Promise<void> {
    const req = this.request(d)
    let status: number | null = null
    let error: string | null = null
    try {
      const init = {
        method: req.method, headers: req.headers, ...(req.body !== null ? { body: req.body } : {}),
        redirect: 'manual' as const, signal: AbortSignal.any([stopping, AbortSignal.timeout(this.o.timeoutMs)]),
      }
      const res = d.kind === 'status_callback' && this.o.urlPolicy ? await this.o.urlPolicy.fetch(req.url, init) : await fetch(req.url, init)
      status = res.status
      await res.body?.cancel().catch(() => {})
      if (res.status < 200 || res.status >= 300) error = `HTTP ${res.status}`
    } catch (err) {
      error = (err as Error).name === 'TimeoutError' ? `timed out after ${this.o.timeoutMs} ms`
        : err instanceof OutboundUrlRefused ? `refused by the outbound URL policy: ${err.message}`
        : ((err as { cause?: Error }).cause?.message ?? (err as Error).message)
    }
    const log = this.o.logger.child({ webhookId: d.webhookId, eventId: d.event.id, callId: d.event.callId, attempt: d.attempts, kind: d.kind })
    try {
      if (!error) {
        const { flushed } = await this.o.store.webhooks.markDelivered(d, status!)
        this.o.deliveries?.inc({ outcome: 'delivered' })
        if (flushed > 0) log.info({ flushed }, 'webhook recovered: its pending deliveries are due now')
        if (d.kind === 'status_callback') await this.o.store.webhooks.retireStatusCallback(d.webhookId)
        return
      }
      if (stopping.aborted) {
        // Cut off by stop(), not the receiver's fault: give the claim back uncounted.
        await this.o.store.webhooks.releaseClaim(d)
        return
      }
      const schedule = this.o.retryScheduleMs
      const exhausted = d.attempts > schedule.length
      const delay = schedule[Math.min(d.attempts - 1, schedule.length - 1)]!
      // Up to 10 % earlier at random, so deliveries that failed together do not all retry together.
      const retryAt = new Date(Date.now() + Math.round(delay * (1 - Math.random() * 0.1)))
      const r = await this.o.store.webhooks.markFailed(d, {
        error, status, retryAt, exhausted, disableAfterMs: this.o.disableAfterMs,
        disabledReason: `every delivery attempt failed for ${formatDuration(this.o.disableAfterMs)} (last: ${error})`.slice(0, 500),
      })
      if (!r.settled) return
      this.o.deliveries?.inc({ outcome: r.gaveUp ? 'failed' : 'retry' })
      if (r.gaveUp && d.kind === 'status_callback') await this.o.store.webhooks.retireStatusCallback(d.webhookId)
      log.warn({ error, retryAt: r.gaveUp ? null : retryAt.toISOString(), gaveUp: r.gaveUp }, 'webhook delivery failed')
      if (r.disabled) log.warn({ error }, 'webhook disabled after failing continuously; its events keep being queued')
    } catch (err) {
      // The lease will expire and the delivery be retried.
      log.error({ err }, 'webhook delivery bookkeeping failed')
    }
  }
}

/** 432000000 → "5 days", 90000 → "90 s": for the disabled reason people read. */
function formatDuration(ms: number): string {
  const units: Array<[number, string]> = [[86_400_000, 'day'], [3_600_000, 'hour'], [60_000, 'minute'], [1000, 'second']]
  for (const [size, name] of units) {
    if (ms >= size && ms % size === 0) return `${ms / size} ${name}${ms / size === 1 ? '' : 's'}`
  }
  return `${ms} ms`
}
