import { mkdirSync } from 'node:fs'
import { resolve } from 'node:path'
import pg from 'pg'
import { PGlite } from '@electric-sql/pglite'
import { PGLiteSocketServer } from '@electric-sql/pglite-socket'
import type { Logger } from 'pino'
import { seedFromPgliteTemplate } from './pglite-template.ts'

/**
 * The one way the engine reaches PostgreSQL. With DATABASE_URL it is a plain
 * pg pool; without, PGlite runs in-process and is served over the Postgres wire
 * protocol on loopback, so the same `pg` client and the same SQL serve both.
 */
export interface Database {
  readonly mode: 'embedded' | 'postgres'
  readonly pool: pg.Pool
  /** Runs `fn` in one transaction: state changes and their outbox rows commit together. */
  transaction<T>(fn: (client: pg.PoolClient) => Promise<T>): Promise<T>
  /** Round-trips a trivial query; false when the database is unreachable. */
  ping(): Promise<boolean>
  close(): Promise<void>
}

export interface DatabaseOptions {
  databaseUrl?: string | undefined
  dataDir: string
  logger: Logger
  /** Pool size for a real PostgreSQL (ignored for PGlite, which is single-connection). */
  poolSize?: number
}

export async function openDatabase(opts: DatabaseOptions): Promise<Database> {
  if (opts.databaseUrl) {
    const pool = new pg.Pool({ connectionString: opts.databaseUrl, max: opts.poolSize ?? 10 })
    return wrap('postgres', pool, opts.logger, async () => {})
  }
  const dir = resolve(opts.dataDir, 'pgdata')
  const seeded = seedFromPgliteTemplate(dir)
  mkdirSync(dir, { recursive: true })
  const db = await PGlite.create(dir)
  // PGlite is one backend: a single pooled connection keeps transactions whole.
  // The server admits two so that when pg-pool discards a client after a query
  // error and reconnects at once, the new connection is not refused ("Too many
  // connections") while the old socket is still closing.
  const server = new PGLiteSocketServer({ db, host: '127.0.0.1', port: 0, maxConnections: 2 })
  await server.start()
  const conn = server.getServerConn() // "127.0.0.1:PORT"
  const [host, port] = conn.split(':')
  const pool = new pg.Pool({ host, port: Number(port), user: 'postgres', database: 'postgres', max: 1, idleTimeoutMillis: 0 })
  opts.logger.info({ dir, listen: conn, seededFromTemplate: seeded }, 'embedded PGlite started')
  return wrap('embedded', pool, opts.logger, async () => {
    await server.stop()
    await db.close()
  })
}

function wrap(mode: Database['mode'], pool: pg.Pool, logger: Logger, closeBackend: () => Promise<void>): Database {
  // An idle client error (backend restart) must not crash the process; the pool replaces it.
  pool.on('error', (err) => logger.error({ err }, 'database pool client error'))
  let closed = false
  return {
    mode,
    pool,
    async transaction(fn) {
      const client = await pool.connect()
      try {
        await client.query('BEGIN')
        const out = await fn(client)
        await client.query('COMMIT')
        return out
      } catch (err) {
        await client.query('ROLLBACK').catch(() => {})
        throw err
      } finally {
        client.release()
      }
    },
    async ping() {
      if (closed) return false
      try {
        await pool.query('SELECT 1')
        return true
      } catch {
        return false
      }
    },
    async close() {
      if (closed) return
      closed = true
      await pool.end()
      await closeBackend()
    },
  }
}
