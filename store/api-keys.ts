import { hash, randomBytes, randomUUID } from 'node:crypto'
import type pg from 'pg'
import { pageQuery, type Page, type PageRequest } from './common.ts'
import { limitExceeded } from './errors.ts'

export const MAX_API_KEYS_PER_ACCOUNT = 10

export const SCOPES = ['calls:read', 'calls:write', 'agents:manage', 'numbers:manage', 'flows:manage', 'webhooks:manage', 'tools:manage', 'admin'] as const
export type Scope = (typeof SCOPES)[number]

export interface ApiKey {
  id: string
  accountId: string
  name: string
  prefix: string
  scopes: Scope[]
  expiresAt: Date | null
  lastUsedAt: Date | null
  revokedAt: Date | null
  createdAt: Date
}

interface ApiKeyRow {
  id: string; seq?: string; account_id: string; name: string; prefix: string; scopes: string[]
  expires_at: Date | null; last_used_at: Date | null; revoked_at: Date | null; created_at: Date
}

const toKey = (r: ApiKeyRow): ApiKey => ({
  id: r.id, accountId: r.account_id, name: r.name, prefix: r.prefix, scopes: r.scopes as Scope[],
  expiresAt: r.expires_at, lastUsedAt: r.last_used_at, revokedAt: r.revoked_at, createdAt: r.created_at,
})

/** Keys are high-entropy random tokens, so a fast unsalted hash is enough to make a stolen table useless. */
export function hashApiKey(token: string): string {
  // One-shot crypto.hash (Node ≥ 20.12) skips the Hash object: every API request hashes its key.
  return hash('sha256', token, 'hex')
}

export function generateApiKeyToken(): string {
  return `cp_${randomBytes(32).toString('base64url')}`
}

type Queryable = Pick<pg.Pool, 'query'> | Pick<pg.PoolClient, 'query'>

/** Persistence of API keys. The plaintext token is never stored. */
export class ApiKeyRepository {
  constructor(private readonly db: Queryable) {}

  async create(accountId: string, name: string, scopes: Scope[], expiresAt: Date | null, token = generateApiKeyToken()): Promise<{ key: ApiKey; token: string }> {
    const { rows } = await this.db.query<ApiKeyRow>(
      `INSERT INTO api_keys (id, account_id, name, prefix, key_hash, scopes, expires_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING *`,
      [randomUUID(), accountId, name, token.slice(0, 10), hashApiKey(token), scopes, expiresAt],
    )
    return { key: toKey(rows[0]!), token }
  }

  /** The live key for a presented token, or null when unknown, revoked or expired. */
  async findActiveByToken(token: string): Promise<ApiKey | null> {
    const { rows } = await this.db.query<ApiKeyRow>(
      `SELECT * FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL
         AND (expires_at IS NULL OR expires_at > now())`,
      [hashApiKey(token)],
    )
    return rows[0] ? toKey(rows[0]) : null
  }

  /** API creation: enforces at most MAX_API_KEYS_PER_ACCOUNT live keys. */
  async createLimited(accountId: string, name: string, scopes: Scope[], expiresAt: Date | null): Promise<{ key: ApiKey; token: string }> {
    const { rows: [n] } = await this.db.query<{ n: string }>(
      `SELECT count(*) AS n FROM api_keys WHERE account_id = $1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())`, [accountId])
    if (Number(n!.n) >= MAX_API_KEYS_PER_ACCOUNT) throw limitExceeded('active API keys', MAX_API_KEYS_PER_ACCOUNT)
    return this.create(accountId, name, scopes, expiresAt)
  }

  async get(accountId: string, id: string): Promise<ApiKey | null> {
    const { rows } = await this.db.query<ApiKeyRow>('SELECT * FROM api_keys WHERE account_id = $1 AND id = $2 AND revoked_at IS NULL', [accountId, id])
    return rows[0] ? toKey(rows[0]) : null
  }

  /** Live (unrevoked) keys; expired ones are listed so they can be cleaned up. */
  list(accountId: string, page: PageRequest): Promise<Page<ApiKey>> {
    return pageQuery<ApiKeyRow & { seq: string }, ApiKey>(this.db, { table: 'api_keys', accountId, where: ['revoked_at IS NULL'], order: 'asc', page }, toKey)
  }

  async revoke(accountId: string, id: string): Promise<ApiKey | null> {
    const { rows } = await this.db.query<ApiKeyRow>(
      'UPDATE api_keys SET revoked_at = now() WHERE account_id = $1 AND id = $2 AND revoked_at IS NULL RETURNING *', [accountId, id])
    return rows[0] ? toKey(rows[0]) : null
  }

  async touch(id: string): Promise<void> {
    await this.db.query('UPDATE api_keys SET last_used_at = now() WHERE id = $1', [id])
  }

  async existsByToken(token: string): Promise<boolean> {
    const { rowCount } = await this.db.query('SELECT 1 FROM api_keys WHERE key_hash = $1', [hashApiKey(token)])
    return (rowCount ?? 0) > 0
  }
}
