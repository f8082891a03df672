import type Srf from 'drachtio-srf'
import type { Logger } from 'pino'
import type { Store } from '../../store/index.ts'
import type { Binding, RegistrarBindingRepository } from '../../store/registrar-bindings.ts'
import { receivedToProxy } from './outbound-dialer.ts'

/**
 * NAT keep-alive and liveness for registered contacts: this node sends
 * OPTIONS (RFC 3261 §11) to the bindings it accepted, through the address the
 * REGISTER came from, which keeps the NAT pinhole open. Any response means
 * alive; `maxMisses` unanswered probes in a row remove the binding.
 */
export interface KeepaliveOptions {
  srf: Srf
  store: Store
  logger: Logger
  nodeId: string
  localHost: () => string
  intervalMs?: number
  /** How long one OPTIONS may stay unanswered. */
  probeTimeoutMs?: number
  maxMisses?: number
}

export class RegistrarKeepalive {
  private timer: NodeJS.Timeout | null = null
  private readonly misses = new Map<string, number>()
  private running = false
  private readonly bindings: RegistrarBindingRepository

  constructor(private readonly o: KeepaliveOptions) {
    this.bindings = o.store.registrarBindings
  }

  start(): void {
    this.timer = setInterval(() => { void this.tick() }, this.o.intervalMs ?? 25_000)
    this.timer.unref()
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer)
    this.timer = null
  }

  async tick(): Promise<void> {
    if (this.running) return
    this.running = true
    try {
      const list = await this.bindings.listByNode(this.o.nodeId)
      await Promise.all(list.map((b) => this.probe(b)))
    } catch (err) {
      this.o.logger.warn({ err }, 'keep-alive round failed')
    } finally {
      this.running = false
    }
  }

  private async probe(b: Binding): Promise<void> {
    const key = `${b.aor}|${b.contact}`
    const alive = await this.options(b)
    if (alive) {
      this.misses.delete(key)
      return
    }
    const n = (this.misses.get(key) ?? 0) + 1
    this.misses.set(key, n)
    if (n < (this.o.maxMisses ?? 2)) return
    this.misses.delete(key)
    await this.bindings.transaction(async (store, emit) => {
      if (!(await store.remove(b.aor, b.contact))) return
      const left = await store.list(b.aor)
      await emit(b.accountId, 'registration.changed', {
        extensionId: b.extensionId, aor: b.aor, reason: 'unreachable',
        contacts: left.map((x) => ({ contact: x.contact, received: x.received, expiresAt: x.expiresAt.toISOString() })),
      })
    })
    this.o.logger.info({ aor: b.aor, contact: b.contact }, 'binding removed: contact unreachable')
  }

  private options(b: Binding): Promise<boolean> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), this.o.probeTimeoutMs ?? 5_000)
      const proxy = receivedToProxy(b.received)
      const opts = { method: 'OPTIONS', headers: { From: `<sip:keepalive@${this.o.localHost()}>`, To: `<${b.contact}>` }, ...(proxy ? { proxy } : {}) }
      const request = this.o.srf.request.bind(this.o.srf) as unknown as (uri: string, o: object, cb: (err: unknown, req: Srf.SrfRequest) => void) => void
      try {
        request(b.contact, opts, (err, req) => {
          if (err) { clearTimeout(timer); resolve(false); return }
          req.on('response', (res?: Srf.SrfResponse) => {
            if (!res || res.status < 200) return
            clearTimeout(timer)
            // 408/503 from our own server mean nobody answered (transaction timeout / transport error).
            resolve(res.status !== 408 && res.status !== 503)
          })
        })
      } catch {
        clearTimeout(timer)
        resolve(false)
      }
    })
  }
}
