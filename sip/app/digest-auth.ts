import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto'

/**
 * Server side of HTTP Digest as used by SIP (RFC 3261 §22.4, RFC 2617,
 * RFC 8760 for SHA-256). Only qop=auth is offered; auth-int is not.
 *
 * Nonces are stateless: base64url(issuedAt ‖ random ‖ HMAC(secret, issuedAt ‖ random ‖ realm)),
 * so any node sharing the secret can verify them (scale-out), expiry needs no
 * storage, and only the nonce-count replay window is kept in memory.
 *
 * Passwords are never stored: credentials carry HA1 = H(username:realm:password)
 * for each algorithm (RFC 2617 §3.2.2.2).
 */

export type DigestAlgorithm = 'MD5' | 'SHA-256'
/**
 * Offered in this order. RFC 8760 §2.4 lets a server list SHA-256 first, but
 * many deployed UAs (sipp 3.6, baresip 1.x, drachtio-srf's own client) only
 * do MD5 and take the first challenge, so MD5 leads by default.
 */
export const DIGEST_ALGORITHMS: readonly DigestAlgorithm[] = ['MD5', 'SHA-256']

const HASH: Record<DigestAlgorithm, string> = { MD5: 'md5', 'SHA-256': 'sha256' }

export function digestHash(alg: DigestAlgorithm, s: string): string {
  return createHash(HASH[alg]).update(s, 'utf8').digest('hex')
}

/** HA1 = H(username ":" realm ":" password), RFC 2617 §3.2.2.2 / RFC 8760 §3. */
export function computeHa1(alg: DigestAlgorithm, username: string, realm: string, password: string): string {
  return digestHash(alg, `${username}:${realm}:${password}`)
}

/** Both HA1 variants for a password: what gets persisted instead of the password. */
export function ha1Pair(username: string, realm: string, password: string): { ha1Md5: string; ha1Sha256: string } {
  return { ha1Md5: computeHa1('MD5', username, realm, password), ha1Sha256: computeHa1('SHA-256', username, realm, password) }
}

/** What a lookup returns for a username in a realm. */
export interface DigestSecret {
  ha1Md5?: string | null
  ha1Sha256?: string | null
}

/** The parsed `Authorization` / `Proxy-Authorization` header (RFC 2617 §3.2.2). */
export interface DigestCredentials {
  username: string
  realm: string
  nonce: string
  uri: string
  response: string
  algorithm: DigestAlgorithm
  qop?: string
  nc?: string
  cnonce?: string
  opaque?: string
}

/** Parses `Digest k=v, k="v", ...`; null when it is not a usable Digest header. */
export function parseDigestHeader(header: string | undefined | null): DigestCredentials | null {
  if (!header) return null
  const m = /^\s*Digest\s+(.*)$/is.exec(header)
  if (!m) return null
  const params: Record<string, string> = {}
  const re = /([a-zA-Z0-9_-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))\s*(?:,|$)/g
  let p: RegExpExecArray | null
  while ((p = re.exec(m[1]!)) !== null) {
    params[p[1]!.toLowerCase()] = p[2] !== undefined ? p[2].replace(/\\(.)/g, '$1') : p[3]!
  }
  const { username, realm, nonce, uri, response } = params
  if (!username || realm === undefined || !nonce || !uri || !response) return null
  const algRaw = (params.algorithm ?? 'MD5').toUpperCase()
  // RFC 8760 §2.5: the -sess variants are not offered, so not accepted.
  if (algRaw !== 'MD5' && algRaw !== 'SHA-256') return null
  const out: DigestCredentials = { username, realm, nonce, uri, response: response.toLowerCase(), algorithm: algRaw as DigestAlgorithm }
  if (params.qop) out.qop = params.qop
  if (params.nc) out.nc = params.nc
  if (params.cnonce) out.cnonce = params.cnonce
  if (params.opaque) out.opaque = params.opaque
  return out
}

/** The expected `response` value, RFC 2617 §3.2.2.1 (qop=auth or no qop). */
export function computeDigestResponse(ha1: string, method: string, c: Pick<DigestCredentials, 'algorithm' | 'nonce' | 'uri' | 'qop' | 'nc' | 'cnonce'>): string {
  const ha2 = digestHash(c.algorithm, `${method}:${c.uri}`)
  if (c.qop) return digestHash(c.algorithm, `${ha1}:${c.nonce}:${c.nc ?? ''}:${c.cnonce ?? ''}:${c.qop}:${ha2}`)
  return digestHash(c.algorithm, `${ha1}:${c.nonce}:${ha2}`)
}

/**
 * Brute-force lockout. Only the attacking source is locked out, never a user
 * everywhere: counting failures per username alone would let anyone lock a
 * real phone out by guessing from another address (a denial of service), so
 * the per-user count is kept per user *and* source.
 */
export interface LockoutPolicy {
  /** Failures from one source address (any username) within `windowMs` before that source is locked out. */
  maxFailuresPerSource: number
  /** Failures for one username from one source within `windowMs` before that user is locked out from that source. */
  maxFailuresPerUser: number
  windowMs: number
  lockMs: number
  /** Counters kept per map at most (sources, user+source pairs, nonces): memory stays bounded under a spoofed-source spray. */
  maxEntries: number
}

export const DEFAULT_LOCKOUT: LockoutPolicy = { maxFailuresPerSource: 20, maxFailuresPerUser: 5, windowMs: 60_000, lockMs: 300_000, maxEntries: 50_000 }

export interface DigestAuthOptions {
  /** HMAC key for nonces; nodes sharing a database should share it. */
  secret?: Buffer | string
  /** A nonce older than this is answered with a fresh challenge and stale=true (RFC 2617 §3.2.1). */
  nonceTtlMs?: number
  algorithms?: readonly DigestAlgorithm[]
  lockout?: Partial<LockoutPolicy>
  /** Accept responses without qop (RFC 2069 clients). Replay cannot be detected for those. */
  allowNoQop?: boolean
  now?: () => number
}

export type DigestFailure =
  | 'missing' // no credentials: the normal first request, not counted as a failure
  | 'malformed'
  | 'stale' // expired or foreign nonce: re-challenge with stale=true, not counted
  | 'realm'
  | 'unknown-user'
  | 'bad-response'
  | 'replay'
  | 'locked'

export type DigestResult =
  | { ok: true; username: string; realm: string; algorithm: DigestAlgorithm }
  | { ok: false; reason: DigestFailure; username?: string; retryAfterSec?: number }

export interface VerifyInput {
  method: string
  /** The Authorization or Proxy-Authorization header value. */
  header: string | undefined | null
  realm: string
  /** The request's source address, for per-source lockout. */
  source: string
  lookup: (username: string, realm: string) => Promise<DigestSecret | null> | DigestSecret | null
}

interface FailureCounter { count: number; windowStart: number; lockedUntil: number }

/**
 * Issues challenges, verifies responses, tracks nonce counts (replay) and
 * counts failures per source and per user (brute-force lockout).
 */
export class DigestAuthenticator {
  private readonly secret: Buffer
  private readonly nonceTtlMs: number
  readonly algorithms: readonly DigestAlgorithm[]
  private readonly lockout: LockoutPolicy
  private readonly allowNoQop: boolean
  private readonly now: () => number
  /** nonce → highest nc seen (RFC 2617 §3.2.2: the server detects replays by nc). */
  private readonly nonceCounts = new Map<string, { nc: number; expires: number }>()
  private readonly sourceFailures = new Map<string, FailureCounter>()
  private readonly userFailures = new Map<string, FailureCounter>()
  private lastSweep = 0

  constructor(opts: DigestAuthOptions = {}) {
    this.secret = opts.secret === undefined ? randomBytes(32) : Buffer.isBuffer(opts.secret) ? opts.secret : Buffer.from(opts.secret)
    this.nonceTtlMs = opts.nonceTtlMs ?? 300_000
    this.algorithms = opts.algorithms ?? DIGEST_ALGORITHMS
    this.lockout = { ...DEFAULT_LOCKOUT, ...opts.lockout }
    this.allowNoQop = opts.allowNoQop ?? false
    this.now = opts.now ?? Date.now
  }

  createNonce(realm: string): string {
    const buf = Buffer.alloc(16)
    buf.writeBigUInt64BE(BigInt(this.now()), 0)
    randomBytes(8).copy(buf, 8)
    const mac = createHmac('sha256', this.secret).update(buf).update(realm).digest().subarray(0, 16)
    return Buffer.concat([buf, mac]).toString('base64url')
  }

  /** 'ok', 'expired' or 'invalid' (not ours / tampered). */
  checkNonce(nonce: string, realm: string): 'ok' | 'expired' | 'invalid' {
    let raw: Buffer
    try { raw = Buffer.from(nonce, 'base64url') } catch { return 'invalid' }
    if (raw.length !== 32) return 'invalid'
    const body = raw.subarray(0, 16)
    const mac = createHmac('sha256', this.secret).update(body).update(realm).digest().subarray(0, 16)
    if (!timingSafeEqual(mac, raw.subarray(16))) return 'invalid'
    const issued = Number(body.readBigUInt64BE(0))
    const age = this.now() - issued
    if (age < -5_000 || age > this.nonceTtlMs) return 'expired'
    return 'ok'
  }

  /**
   * WWW-Authenticate / Proxy-Authenticate values, one per algorithm, most
   * preferred first (RFC 8760 §2.4: the client picks the first it supports).
   */
  challenge(realm: string, stale = false): string[] {
    const nonce = this.createNonce(realm)
    return this.algorithms.map((alg) =>
      `Digest realm="${realm}", nonce="${nonce}", algorithm=${alg}, qop="auth"${stale ? ', stale=true' : ''}`)
  }

  /** Seconds left on a lockout for this source, or for this user from this source; 0 when not locked. */
  lockedFor(source: string, userKey?: string): number {
    const now = this.now()
    const s = this.sourceFailures.get(source)
    const u = userKey !== undefined ? this.userFailures.get(pairKey(userKey, source)) : undefined
    const until = Math.max(s?.lockedUntil ?? 0, u?.lockedUntil ?? 0)
    return until > now ? Math.ceil((until - now) / 1000) : 0
  }

  async verify(input: VerifyInput): Promise<DigestResult> {
    this.sweep()
    const sourceLock = this.lockedFor(input.source)
    if (sourceLock) return { ok: false, reason: 'locked', retryAfterSec: sourceLock }
    if (!input.header) return { ok: false, reason: 'missing' }
    const c = parseDigestHeader(input.header)
    if (!c) return this.fail(input.source, undefined, 'malformed')
    const userKey = `${c.username}@${input.realm}`
    const userLock = this.lockedFor(input.source, userKey)
    if (userLock) return { ok: false, reason: 'locked', username: c.username, retryAfterSec: userLock }
    if (!this.algorithms.includes(c.algorithm)) return this.fail(input.source, userKey, 'malformed', c.username)
    if (c.realm !== input.realm) return { ok: false, reason: 'realm', username: c.username }
    const nonceState = this.checkNonce(c.nonce, input.realm)
    if (nonceState !== 'ok') return { ok: false, reason: 'stale', username: c.username }
    if (!c.qop && !this.allowNoQop) return this.fail(input.source, userKey, 'malformed', c.username)
    if (c.qop && (c.qop !== 'auth' || !c.nc || !c.cnonce || !/^[0-9a-fA-F]{8}$/.test(c.nc))) return this.fail(input.source, userKey, 'malformed', c.username)

    const secret = await input.lookup(c.username, input.realm)
    const ha1 = secret ? (c.algorithm === 'MD5' ? secret.ha1Md5 : secret.ha1Sha256) : null
    // Compute something either way so an unknown user costs the same as a wrong password.
    const expected = computeDigestResponse(ha1 ?? '0'.repeat(64), input.method, c)
    const match = expected.length === c.response.length && timingSafeEqual(Buffer.from(expected), Buffer.from(c.response))
    if (!ha1) return this.fail(input.source, userKey, 'unknown-user', c.username)
    if (!match) return this.fail(input.source, userKey, 'bad-response', c.username)

    if (c.qop) {
      // RFC 2617 §3.2.2: nc must grow for each request reusing a nonce.
      const nc = parseInt(c.nc!, 16)
      const seen = this.nonceCounts.get(c.nonce)
      if (seen && nc <= seen.nc) return { ok: false, reason: 'replay', username: c.username }
      this.setBounded(this.nonceCounts, c.nonce, { nc, expires: this.now() + this.nonceTtlMs + 5_000 })
    }
    this.userFailures.delete(pairKey(userKey, input.source))
    return { ok: true, username: c.username, realm: input.realm, algorithm: c.algorithm }
  }

  private fail(source: string, userKey: string | undefined, reason: DigestFailure, username?: string): DigestResult {
    const now = this.now()
    const bump = (map: Map<string, FailureCounter>, key: string, max: number): void => {
      let f = map.get(key)
      if (!f || now - f.windowStart > this.lockout.windowMs) f = { count: 0, windowStart: now, lockedUntil: 0 }
      f.count++
      if (f.count >= max) f.lockedUntil = now + this.lockout.lockMs
      this.setBounded(map, key, f)
    }
    bump(this.sourceFailures, source, this.lockout.maxFailuresPerSource)
    if (userKey !== undefined) bump(this.userFailures, pairKey(userKey, source), this.lockout.maxFailuresPerUser)
    return username !== undefined ? { ok: false, reason, username } : { ok: false, reason }
  }

  /**
   * Map insert with a size cap: when full, the oldest entry goes (Map keeps
   * insertion order; a re-set key moves to the end). A spray from many
   * addresses thus costs bounded memory and can only evict other attackers'
   * oldest counters.
   */
  private setBounded<V>(map: Map<string, V>, key: string, value: V): void {
    map.delete(key)
    if (map.size >= this.lockout.maxEntries) {
      const oldest = map.keys().next()
      if (!oldest.done) map.delete(oldest.value)
    }
    map.set(key, value)
  }

  /** Entries held, for tests and metrics. */
  get trackedEntries(): { sources: number; userSources: number; nonces: number } {
    return { sources: this.sourceFailures.size, userSources: this.userFailures.size, nonces: this.nonceCounts.size }
  }

  /** Forgets expired nonce counts and stale failure windows, at most once a second. */
  private sweep(): void {
    const now = this.now()
    if (now - this.lastSweep < 1_000) return
    this.lastSweep = now
    for (const [k, v] of this.nonceCounts) if (v.expires < now) this.nonceCounts.delete(k)
    for (const map of [this.sourceFailures, this.userFailures]) {
      for (const [k, v] of map) if (v.lockedUntil < now && now - v.windowStart > this.lockout.windowMs) map.delete(k)
    }
  }
}

function pairKey(userKey: string, source: string): string { return `${userKey}|${source}` }
