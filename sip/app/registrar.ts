import Srf from 'drachtio-srf'
import type { Logger } from 'pino'
import type { Store } from '../../store/index.ts'
import type { ExtensionCredentials } from '../../store/extensions.ts'
import type { DigestAuthenticator } from './digest-auth.ts'
import type { Binding, RegistrarBindingRepository } from '../../store/registrar-bindings.ts'

/**
 * The registrar, RFC 3261 §10.3: extensions REGISTER with digest (§22, RFC
 * 8760), bindings with expiry live in PostgreSQL so every node can reach every
 * phone, several contacts per AOR, unregister by contact or "*", and the
 * source address (RFC 3581 received/rport) kept for NAT traversal.
 */

export interface RegistrarOptions {
  store: Store
  digest: DigestAuthenticator
  logger: Logger
  nodeId: string
  /** RFC 3261 §10.3 step 7: shorter non-zero expiries get 423 with Min-Expires. */
  minExpiresSec?: number
  maxExpiresSec?: number
  defaultExpiresSec?: number
  /** Realm used to challenge a username nobody has (so unknown users look like known ones). */
  fallbackRealm?: string
}

export interface RegisteredContact {
  contact: string
  received: string | null
  transport: string
  expiresAt: Date
}

export class Registrar {
  readonly bindings: RegistrarBindingRepository
  private readonly log: Logger
  private readonly minExpires: number
  private readonly maxExpires: number
  private readonly defaultExpires: number

  constructor(private readonly opts: RegistrarOptions) {
    this.bindings = opts.store.registrarBindings
    this.log = opts.logger
    this.minExpires = opts.minExpiresSec ?? 60
    this.maxExpires = opts.maxExpiresSec ?? 3600
    this.defaultExpires = opts.defaultExpiresSec ?? 3600
  }

  install(srf: Srf): void {
    // drachtio-srf has srf.register(); its typings omit it.
    const s = srf as unknown as { register(h: (req: Srf.SrfRequest, res: Srf.SrfResponse) => void): void }
    s.register((req, res) => {
      this.handle(req, res).catch((err: unknown) => {
        this.log.error({ err, callId: req.get('Call-ID') }, 'REGISTER failed')
        if (!res.finalResponseSent) res.send(500, 'Server Internal Error', {})
      })
    })
  }

  /** The reachable contacts of an extension, best first. */
  async contactsFor(extensionId: string): Promise<RegisteredContact[]> {
    return (await this.bindings.listByExtension(extensionId)).map((b) => ({ contact: b.contact, received: b.received, transport: b.transport, expiresAt: b.expiresAt }))
  }

  private async credentials(username: string, host: string): Promise<ExtensionCredentials | null> {
    const ext = this.opts.store.extensions
    return (await ext.findCredentials(username, host)) ?? (await ext.findCredentials(username))
  }

  async handle(req: Srf.SrfRequest, res: Srf.SrfResponse): Promise<void> {
    // §10.2: a REGISTER's Request-URI names a SIP domain; §8.2.2.1: other schemes get 416.
    if (!isSipUri(req.uri)) {
      res.send(416, 'Unsupported URI Scheme', {})
      return
    }
    const to = req.getParsedHeader('To')
    const toUri = Srf.parseUri(to.uri)
    const username = toUri?.user
    const host = toUri?.host ?? ''
    if (!username) {
      res.send(404, 'Not Found', {})
      return
    }
    const source = req.source_address
    const creds = await this.credentials(username, host)
    const realm = creds?.realm ?? this.opts.fallbackRealm ?? host
    // RFC 3261 §10.3 step 5: authenticate; §22.4: 401 with WWW-Authenticate.
    const result = await this.opts.digest.verify({
      method: 'REGISTER',
      header: req.get('Authorization') || undefined,
      realm,
      source,
      lookup: (u) => (creds && u === username ? { ha1Md5: creds.ha1Md5, ha1Sha256: creds.ha1Sha256 } : null),
    })
    if (!result.ok) {
      if (result.reason === 'locked') {
        this.log.warn({ source, username }, 'REGISTER refused: locked out')
        res.send(403, 'Forbidden (locked out)', { headers: { 'Retry-After': String(result.retryAfterSec ?? 60) } })
        return
      }
      if (result.reason !== 'missing' && result.reason !== 'stale') this.log.info({ source, username, reason: result.reason }, 'REGISTER authentication failed')
      res.send(401, 'Unauthorized', { headers: { 'WWW-Authenticate': this.opts.digest.challenge(realm, result.reason === 'stale') } })
      return
    }
    // §10.3 step 6: the authenticated user may only bind its own AOR.
    if (!creds || result.username !== username) {
      res.send(403, 'Forbidden', {})
      return
    }
    const aor = `${username}@${creds.realm}`
    const callId = req.get('Call-ID')
    const cseq = parseInt(req.get('CSeq'), 10)
    const headerExpires = req.has('Expires') ? parseInt(req.get('Expires'), 10) : null
    const rawContact = req.has('Contact') ? req.get('Contact').trim() : ''
    const accountId = creds.extension.accountId
    const extensionId = creds.extension.id
    let changed = false

    if (rawContact === '*') {
      // §10.3 step 6: "*" only with Expires: 0.
      if (headerExpires !== 0) {
        res.send(400, 'Invalid Contact *', {})
        return
      }
      changed = (await this.bindings.removeAll(aor)) > 0
    } else if (rawContact) {
      const contacts = req.getParsedHeader('Contact')
      const plan: Array<{ uri: string; expires: number; q: number | null; instance: string | null }> = []
      // Calls reach a binding over SIP only: a tel:/http: contact could be stored but never
      // called, so it is refused with 416 (§8.2.2.1) rather than accepted silently.
      if (contacts.some((c) => !isSipUri(c.uri))) {
        res.send(416, 'Unsupported URI Scheme', {})
        return
      }
      for (const c of contacts) {
        const p = c.params ?? {}
        const e = p.expires !== undefined ? parseInt(String(p.expires), 10) : headerExpires ?? this.defaultExpires
        const expires = Number.isFinite(e) ? e : this.defaultExpires
        if (expires !== 0 && expires < this.minExpires) {
          res.send(423, 'Interval Too Brief', { headers: { 'Min-Expires': String(this.minExpires) } })
          return
        }
        plan.push({ uri: c.uri, expires: Math.min(expires, this.maxExpires), q: p.q !== undefined ? Number(p.q) : null, instance: p['+sip.instance'] ? String(p['+sip.instance']) : null })
      }
      await this.bindings.transaction(async (store, emit) => {
        for (const p of plan) {
          const cur = await store.get(aor, p.uri)
          // §10.3 step 7: same Call-ID with a CSeq not higher is out of order: ignore it.
          if (cur && cur.callId === callId && cur.cseq >= cseq) continue
          if (p.expires === 0) {
            if (await store.remove(aor, p.uri)) changed = true
            continue
          }
          await store.upsert({
            accountId, extensionId, aor, username, contact: p.uri,
            received: `${(req.protocol || 'udp').toLowerCase()}:${source}:${req.source_port}`,
            transport: (req.protocol || 'udp').toLowerCase(), callId, cseq, q: p.q, instanceId: p.instance,
            userAgent: req.get('User-Agent') || null, nodeId: this.opts.nodeId, expiresSec: p.expires,
          })
          if (!cur) changed = true
        }
        if (changed) await emit(accountId, 'registration.changed', { extensionId, extension: username, aor, contacts: (await store.list(aor)).map(publicBinding) })
      })
    }
    const current = await this.bindings.list(aor)
    if (changed) this.log.info({ aor, contacts: current.length, source }, 'registration changed')
    const now = Date.now()
    const headers: Record<string, string> = { Date: new Date().toUTCString() }
    // §10.3 step 8: the 200 lists every current binding with its remaining expiry.
    if (current.length) headers.Contact = current.map((b) => `<${b.contact}>;expires=${Math.max(0, Math.round((b.expiresAt.getTime() - now) / 1000))}`).join(', ')
    res.send(200, 'OK', { headers })
  }

  /** Deletes expired bindings and announces the AORs that changed. */
  async sweep(): Promise<number> {
    const gone = await this.bindings.sweep()
    const seen = new Set<string>()
    for (const g of gone) {
      if (seen.has(g.aor)) continue
      seen.add(g.aor)
      await this.bindings.transaction(async (bindings, emit) => {
        const left = await bindings.list(g.aor)
        await emit(g.accountId, 'registration.changed', { extensionId: g.extensionId, aor: g.aor, contacts: left.map(publicBinding), reason: 'expired' })
      })
    }
    return gone.length
  }
}

function isSipUri(uri: string | undefined): boolean {
  return /^sips?:/i.test((uri ?? '').trim())
}

function publicBinding(b: Binding): Record<string, unknown> {
  return { contact: b.contact, received: b.received, transport: b.transport, expiresAt: b.expiresAt.toISOString(), userAgent: b.userAgent }
}
