import type pg from 'pg'
import { invalidCursor } from './errors.ts'

/** A pool or a client inside a transaction: repositories work on either. */
export type Queryable = Pick<pg.Pool, 'query'> | Pick<pg.PoolClient, 'query'>

export interface Page<T> {
  data: T[]
  nextCursor: string | null
}

export interface PageRequest {
  limit?: number | undefined
  cursor?: string | undefined
}

export const DEFAULT_LIMIT = 20
export const MAX_LIMIT = 100

/** Cursors are opaque to clients: the base64url of the row's `seq`. */
export function encodeCursor(seq: string | number | bigint): string {
  return Buffer.from(`s:${seq}`).toString('base64url')
}

export function decodeCursor(cursor: string): string {
  const raw = Buffer.from(cursor, 'base64url').toString('utf8')
  const m = /^s:(\d{1,19})$/.exec(raw)
  if (!m) throw invalidCursor()
  return m[1]!
}

/**
 * Runs a keyset-paginated SELECT. `where` is a list of SQL conditions using
 * $1.. placeholders over `params`; the account condition is always first.
 */
export async function pageQuery<R extends { seq: string }, T>(
  db: Queryable,
  opts: { table: string; accountId: string; where?: string[]; params?: unknown[]; order: 'asc' | 'desc'; page: PageRequest; columns?: string },
  map: (row: R) => T,
): Promise<Page<T>> {
  const limit = Math.min(Math.max(opts.page.limit ?? DEFAULT_LIMIT, 1), MAX_LIMIT)
  const params: unknown[] = [opts.accountId, ...(opts.params ?? [])]
  const where = ['account_id = $1', ...(opts.where ?? [])]
  if (opts.page.cursor) {
    params.push(decodeCursor(opts.page.cursor))
    where.push(`seq ${opts.order === 'asc' ? '>' : '<'} $${params.length}`)
  }
  params.push(limit + 1)
  const sql = `SELECT ${opts.columns ?? '*'} FROM ${opts.table} WHERE ${where.join(' AND ')}
    ORDER BY seq ${opts.order === 'asc' ? 'ASC' : 'DESC'} LIMIT $${params.length}`
  const { rows } = await db.query<R>(sql, params)
  const more = rows.length > limit
  const slice = more ? rows.slice(0, limit) : rows
  return { data: slice.map(map), nextCursor: more ? encodeCursor(slice[slice.length - 1]!.seq) : null }
}

export const iso = (d: Date | null | undefined): string | null => (d ? d.toISOString() : null)
