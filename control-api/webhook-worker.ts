import { Webhook as StandardWebhook } from 'standardwebhooks'
import type { Logger } from 'pino'
import type { Counter } from 'prom-client'
import type { Store } from '../store/index.ts'
import type { ClaimedDelivery } from '../store/webhooks.ts'

export interface WebhookWorkerOptions {
  store: Store
  logger: Logger
  /** Poll for due retries this often, besides being woken by new events (ms). */
  pollIntervalMs?: number
  batchSize?: number
  /** A claimed delivery not settled within this time is claimed again (crash, restart). */
  leaseMs?: number
  /** Per-request timeout (ms). */
  timeoutMs?: number
  /** Delay before retry n (ms); the last value repeats. */
  backoffMs?: number[]
  /** Attempts per delivery before it is given up as `failed`. */
  maxAttempts?: number
  /** Consecutive failed attempts after which the webhook is disabled. */
  disableAfter?: number
  deliveries?: Counter<'outcome'>
}

export const DEFAULT_BACKOFF_MS = [1_000, 5_000, 30_000, 120_000, 600_000, 1_800_000, 3_600_000]

/**
 * Delivers the outbox's webhook deliveries: a Standard Webhooks signed POST
 * per (event, webhook), `webhook-id` = event id (stable across retries, so
 * receivers can de-duplicate), retries with back-off, failureCount and
 * auto-disable on the webhook. Deliveries are rows, so they survive restarts;
 * claims are leases, so several nodes can run workers side by side.
 */
export class WebhookWorker {
  private timer: NodeJS.Timeout | null = null
  private running = false
  private again = false
  private stopped = true
  private unsubscribe: (() => void) | null = null
  private inflight: Promise<void> | null = null
  private readonly o: Required<Omit<WebhookWorkerOptions, 'deliveries'>> & Pick<WebhookWorkerOptions, 'deliveries'>

  constructor(opts: WebhookWorkerOptions) {
    this.o = {
      pollIntervalMs: 1000, batchSize: 20, leaseMs: 30_000, timeoutMs: 10_000, backoffMs: DEFAULT_BACKOFF_MS, maxAttempts: 12, disableAfter: 20,
      ...opts,
    }
  }

  start(): void {
    if (!this.stopped) return
    this.stopped = false
    this.unsubscribe = this.o.store.bus.subscribe(() => this.kick())
    this.schedule(0)
  }

  async stop(): Promise<void> {
    this.stopped = true
    this.unsubscribe?.()
    this.unsubscribe = null
    if (this.timer) clearTimeout(this.timer)
    this.timer = null
    await this.inflight
  }

  /** Run a pass now (new events committed). */
  kick(): void {
    if (this.stopped) return
    if (this.running) {
      this.again = true
      return
    }
    this.schedule(0)
  }

  private schedule(ms: number): void {
    if (this.stopped) return
    if (this.timer) clearTimeout(this.timer)
    this.timer = setTimeout(() => {
      this.timer = null
      this.inflight = this.pass().finally(() => {
        this.inflight = null
      })
    }, ms)
    this.timer.unref?.()
  }

  private async pass(): Promise<void> {
    this.running = true
    this.again = false
    let full = false
    try {
      const claimed = await this.o.store.webhooks.claimDue(this.o.batchSize, this.o.leaseMs)
      full = claimed.length === this.o.batchSize
      await Promise.all(claimed.map((d) => this.deliver(d)))
    } catch (err) {
      if (!this.stopped) this.o.logger.error({ err }, 'webhook pass failed')
    } finally {
      this.running = false
    }
    this.schedule(full || this.again ? 0 : this.o.pollIntervalMs)
  }

  private async deliver(d: ClaimedDelivery): Promise<void> {
    const payload = JSON.stringify({ type: d.event.type, timestamp: d.event.createdAt, data: { ...d.event.data, eventId: d.event.id, accountId: d.event.accountId, callId: d.event.callId } })
    const now = new Date()
    const signature = new StandardWebhook(d.secret).sign(d.event.id, now, payload)
    let status: number | null = null
    let error: string | null = null
    try {
      const res = await fetch(d.url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'user-agent': 'Callplane-Webhooks/1',
          'webhook-id': d.event.id,
          'webhook-timestamp': String(Math.floor(now.getTime() / 1000)),
          'webhook-signature': signature,
        },
        body: payload,
        redirect: 'manual',
        signal: AbortSignal.timeout(this.o.timeoutMs),
      })
      status = res.status
      await res.body?.cancel().catch(() => {})
      if (res.status < 200 || res.status >= 300) error = `HTTP ${res.status}`
    } catch (err) {
      error = (err as Error).name === 'TimeoutError' ? `timed out after ${this.o.timeoutMs} ms` : ((err as { cause?: Error }).cause?.message ?? (err as Error).message)
    }
    const log = this.o.logger.child({ webhookId: d.webhookId, eventId: d.event.id, callId: d.event.callId, attempt: d.attempts })
    try {
      if (!error) {
        await this.o.store.webhooks.markDelivered(d.id, d.webhookId, status!)
        this.o.deliveries?.inc({ outcome: 'delivered' })
        return
      }
      const retry = d.attempts < this.o.maxAttempts
        ? new Date(Date.now() + this.o.backoffMs[Math.min(d.attempts - 1, this.o.backoffMs.length - 1)]!)
        : null
      const disabled = await this.o.store.webhooks.markFailed(d.id, d.webhookId, error, status, retry, this.o.disableAfter)
      this.o.deliveries?.inc({ outcome: retry ? 'retry' : 'failed' })
      log.warn({ error, retryAt: retry?.toISOString() ?? null, disabled }, 'webhook delivery failed')
    } catch (err) {
      // The lease will expire and the delivery be retried.
      log.error({ err }, 'webhook delivery bookkeeping failed')
    }
  }
}
