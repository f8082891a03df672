import type { FastifyInstance, FastifyRequest } from 'fastify'
import rateLimit from '@fastify/rate-limit'
import { hashApiKey, type ApiKey, type ApiKeyRepository, type Scope } from '../store/api-keys.ts'
import type { AccountRepository } from '../store/accounts.ts'
import { ApiError } from './errors.ts'

export interface AuthContext {
  accountId: string
  keyId: string
  scopes: Scope[]
  /** The key belongs to the operator (embedded default) account. */
  operator: boolean
}

declare module 'fastify' {
  interface FastifyRequest {
    auth: AuthContext
  }
  interface FastifyContextConfig {
    /** The scope a route needs; `admin` satisfies every scope. Routes without one need only a valid key. */
    scope?: Scope
    /** Accept the key as `?token=` too (WebSockets from browsers cannot set headers). */
    queryToken?: boolean
    /** No API key needed (none of the /v1 routes use this today). */
    public?: boolean
  }
}

export interface AuthOptions {
  apiKeys: ApiKeyRepository
  accounts: AccountRepository
  /** Requests per key per window (default 1200 per minute). */
  rateLimit?: { max: number; timeWindowMs: number } | false
  /** How long a looked-up key is trusted before it is read again (default 5 s; revocations on this node apply at once). */
  cacheTtlMs?: number
}

interface CacheEntry { ctx: AuthContext | null; key: ApiKey | null; until: number }

/** Does a key with `scopes` satisfy `need`? admin covers all; calls:write covers calls:read. */
export function hasScope(scopes: readonly Scope[], need: Scope): boolean {
  return scopes.includes('admin') || scopes.includes(need) || (need === 'calls:read' && scopes.includes('calls:write'))
}

function presentedToken(req: FastifyRequest): string | null {
  const h = req.headers.authorization
  if (typeof h === 'string' && h.length) {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(h)
    if (!m) throw new ApiError(401, 'unauthorized', 'Authorization header must be "Bearer <api key>"')
    return m[1]!
  }
  const x = req.headers['x-api-key']
  if (typeof x === 'string' && x.length) return x.trim()
  if (req.routeOptions.config.queryToken) {
    const t = (req.query as Record<string, unknown> | undefined)?.token
    if (typeof t === 'string' && t.length) return t
  }
  return null
}

/**
 * Installs API-key auth on an encapsulated scope (the /v1 plugin): every route
 * in it needs a live key; `config.scope` adds a scope check; a per-key rate
 * limit runs after auth. Keys are looked up by SHA-256 hash with a short
 * cache so hot read paths do not hit the database for every request.
 */
export async function installAuth(app: FastifyInstance, opts: AuthOptions): Promise<{ invalidate: (keyId?: string) => void }> {
  const ttl = opts.cacheTtlMs ?? 5000
  const cache = new Map<string, CacheEntry>()
  const touched = new Map<string, number>()
  // One database lookup per key at a time: when a hot key's entry expires with
  // hundreds of requests in flight, they share it instead of each reading the
  // key and its account. `stale` is set by invalidate(): a lookup that started
  // before a revocation must not put the key back.
  const inflight = new Map<string, { promise: Promise<AuthContext | null>; stale: boolean }>()

  const load = (hash: string, token: string): Promise<AuthContext | null> => {
    const pending = inflight.get(hash)
    if (pending) return pending.promise
    const record = { promise: Promise.resolve<AuthContext | null>(null), stale: false }
    record.promise = (async () => {
      const key = await opts.apiKeys.findActiveByToken(token)
      let ctx: AuthContext | null = null
      if (key) {
        const account = await opts.accounts.get(key.accountId)
        if (account) ctx = { accountId: key.accountId, keyId: key.id, scopes: key.scopes, operator: account.operator }
      }
      if (!record.stale) {
        if (cache.size > 10_000) cache.clear()
        cache.set(hash, { ctx, key, until: Date.now() + ttl })
      }
      return ctx
    })().finally(() => {
      if (inflight.get(hash) === record) inflight.delete(hash)
    })
    inflight.set(hash, record)
    return record.promise
  }

  const lookup = async (token: string): Promise<AuthContext | null> => {
    const hash = hashApiKey(token)
    const now = Date.now()
    const hit = cache.get(hash)
    if (hit && hit.until > now && (!hit.key?.expiresAt || hit.key.expiresAt.getTime() > now)) {
      // A hot key is read again in the background before its entry runs out, so
      // its requests never wait for the database; the entry still ends at `until`.
      if (hit.until - now < ttl / 4 && !inflight.has(hash)) load(hash, token).catch(() => cache.delete(hash))
      return hit.ctx
    }
    return load(hash, token)
  }

  app.decorateRequest('auth', null as unknown as AuthContext)
  app.addHook('onRequest', async (req) => {
    const cfg = req.routeOptions.config
    if (cfg.public) return
    const token = presentedToken(req)
    if (!token) throw new ApiError(401, 'unauthorized', 'missing API key: send "Authorization: Bearer <key>" or "X-API-Key: <key>"')
    const ctx = await lookup(token)
    if (!ctx) throw new ApiError(401, 'invalid_api_key', 'the API key is unknown, revoked or expired')
    req.auth = ctx
    if (cfg.scope && !hasScope(ctx.scopes, cfg.scope)) {
      throw new ApiError(403, 'insufficient_scope', `this API key lacks the "${cfg.scope}" scope`, { required: cfg.scope, granted: ctx.scopes })
    }
    // lastUsedAt, at most once a minute per key, off the request path.
    const now = Date.now()
    if ((touched.get(ctx.keyId) ?? 0) + 60_000 < now) {
      touched.set(ctx.keyId, now)
      opts.apiKeys.touch(ctx.keyId).catch((err: unknown) => req.log.warn({ err }, 'api key lastUsedAt update failed'))
    }
  })

  if (opts.rateLimit !== false) {
    const rl = opts.rateLimit ?? { max: 1200, timeWindowMs: 60_000 }
    await app.register(rateLimit, {
      hook: 'preHandler',
      max: rl.max,
      timeWindow: rl.timeWindowMs,
      keyGenerator: (req) => req.auth?.keyId ?? req.ip,
      errorResponseBuilder: (_req, ctx) => new ApiError(429, 'rate_limited', `rate limit of ${ctx.max} requests per ${ctx.after} exceeded for this API key; retry later`, { max: ctx.max, retryAfter: ctx.after }),
    })
  }

  return {
    invalidate: (keyId?: string) => {
      // In-flight lookups may have read the key before the change (we do not know
      // which key a lookup is for until it returns): none of them may cache.
      for (const l of inflight.values()) l.stale = true
      inflight.clear()
      if (!keyId) return cache.clear()
      for (const [h, e] of cache) if (e.key?.id === keyId) cache.delete(h)
    },
  }
}
