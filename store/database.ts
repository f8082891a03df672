import { splitHostPort } from '../config/reachable-address.ts'
import { mkdirSync } from 'node:fs'
import { resolve } from 'node:path'
import pg from 'pg'
import { Worker } from 'node:worker_threads'
import type { Logger } from 'pino'
import { seedFromPgliteTemplate } from './pglite-template.ts'

/**
 * The one way the engine reaches PostgreSQL. With DATABASE_URL it is a plain
 * pg pool; without, PGlite runs in a worker thread of this process and is
 * served over the Postgres wire protocol on loopback, so the same `pg` client
 * and the same SQL serve both.
 */
export interface Database {
  readonly mode: 'embedded' | 'postgres'
  readonly pool: pg.Pool
  /** Runs `fn` in one transaction: state changes and their outbox rows commit together. */
  transaction<T>(fn: (client: pg.PoolClient) => Promise<T>): Promise<T>
  /**
   * Resolves once no query is waiting for a connection, or after `maxWaitMs`:
   * for writes nobody waits on (an end-of-call report, a dial's progress),
   * so that on the embedded PGlite's one connection they yield to the ones a
   * call is waiting on. On PostgreSQL's pool this is nearly always at once.
   */
  whenIdle(maxWaitMs?: number): Promise<void>
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
  const backend = await startPgliteThread(dir, opts.logger)
  const { host, port } = splitHostPort(backend.conn)
  // PGlite is one backend: a single pooled connection keeps transactions whole.
  const pool = new pg.Pool({ host, port, user: 'postgres', database: 'postgres', max: 1, idleTimeoutMillis: 0 })
  opts.logger.info({ dir, listen: backend.conn, seededFromTemplate: seeded, thread: 'worker' }, 'embedded PGlite started')
  return wrap('embedded', pool, opts.logger, backend.close)
}

type PgliteWorkerMessage =
  | { kind: 'ready'; conn: string }
  | { kind: 'error'; message: string }
  | { kind: 'closed' }
  | { kind: 'log'; level: 'error' | 'warn'; message: string }

/**
 * PGlite runs its queries synchronously on the thread that owns it, so it gets
 * a worker thread of its own (pglite-worker.mjs): SQL never stalls the main
 * thread's SIP, RTP and HTTP work.
 */
async function startPgliteThread(dir: string, logger: Logger): Promise<{ conn: string; close: () => Promise<void> }> {
  const worker = new Worker(new URL('./pglite-worker.mjs', import.meta.url), { workerData: { dir } })
  worker.on('message', (m: PgliteWorkerMessage) => { if (m.kind === 'log') logger[m.level]({ thread: 'pglite' }, m.message) })
  const first = await new Promise<PgliteWorkerMessage>((resolve, reject) => {
    worker.once('message', resolve)
    worker.once('error', reject)
    worker.once('exit', (code) => reject(new Error(`PGlite thread exited with code ${code} before it was ready`)))
  })
  if (first.kind !== 'ready') {
    await worker.terminate()
    throw new Error(`embedded PGlite did not start: ${first.kind === 'error' ? first.message : first.kind}`)
  }
  return {
    conn: first.conn,
    close: async () => {
      // Let PGlite flush and close its files before the thread goes.
      const closed = new Promise<void>((resolve) => {
        worker.on('message', (m: PgliteWorkerMessage) => { if (m.kind === 'closed') resolve() })
        worker.once('exit', () => resolve())
      })
      worker.postMessage({ kind: 'close' })
      await Promise.race([closed, new Promise((r) => setTimeout(r, 10_000).unref())])
      await worker.terminate()
    },
  }
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
    whenIdle(maxWaitMs = 300) {
      const idle = () => pool.waitingCount === 0 && (pool.idleCount > 0 || pool.totalCount < (pool.options.max ?? 10))
      return new Promise<void>((resolve) => {
        let settled = false
        const done = () => {
          if (settled) return
          settled = true
          clearTimeout(timer)
          pool.off('release', onRelease)
          resolve()
        }
        // Always looked at a turn of the event loop later (after a release too): whoever was waiting on
        // what just finished (a call's next step, queued from its continuation) has asked for the
        // connection by then and goes first.
        const look = () => setImmediate(() => { if (idle()) done() })
        const onRelease = () => look()
        const timer = setTimeout(done, maxWaitMs)
        timer.unref()
        pool.on('release', onRelease)
        look()
      })
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
