import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import pg from 'pg'
import { pino } from 'pino'
import { Registry } from 'prom-client'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import { openDatabase, type Database } from '../../store/database.ts'
import { seedPgliteDataDir } from '../harness/pglite-template.ts'
import { migrate } from '../../store/migrator.ts'
import { bootstrap } from '../../store/bootstrap.ts'
import { createStore, type Store } from '../../store/index.ts'
import { SecretBox } from '../../store/secrets.ts'
import type { Scope } from '../../store/api-keys.ts'
import { buildApiServer } from '../../control-api/app.ts'
import { HealthRegistry } from '../../control-api/health.ts'
import { CallControlSlot } from '../../call/call-control.ts'
import { v1Routes, type V1Options } from '../../control-api/routes/v1.ts'

export const silent = pino({ level: 'silent' })

/**
 * A fresh database: embedded PGlite in a temp dir, or — when DATABASE_URL is
 * set (the real-PostgreSQL run) — a new database created on that server.
 */
export async function openTestDatabase(): Promise<{ db: Database; dir: string; reopen: () => Promise<Database>; cleanup: () => Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), 'cp-api-'))
  const url = process.env.DATABASE_URL
  if (!url) {
    await seedPgliteDataDir(dir) // copy an initialised cluster instead of running initdb
    const db = await openDatabase({ dataDir: dir, logger: silent })
    return {
      db, dir,
      reopen: () => openDatabase({ dataDir: dir, logger: silent }),
      cleanup: async () => rmSync(dir, { recursive: true, force: true }),
    }
  }
  const name = `cp_test_${randomBytes(6).toString('hex')}`
  const admin = new pg.Client({ connectionString: url })
  await admin.connect()
  await admin.query(`CREATE DATABASE ${name}`)
  await admin.end()
  const u = new URL(url)
  u.pathname = `/${name}`
  const dbUrl = u.toString()
  const db = await openDatabase({ databaseUrl: dbUrl, dataDir: dir, logger: silent, poolSize: 4 })
  return {
    db, dir,
    reopen: () => openDatabase({ databaseUrl: dbUrl, dataDir: dir, logger: silent, poolSize: 4 }),
    cleanup: async () => {
      const a = new pg.Client({ connectionString: url })
      await a.connect()
      await a.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
      await a.end()
      rmSync(dir, { recursive: true, force: true })
    },
  }
}

export interface TestApp {
  app: FastifyInstance
  store: Store
  db: Database
  callControl: CallControlSlot
  /** Admin key of the operator (default) account. */
  adminKey: string
  accountId: string
  /** A second account with its own admin key, for isolation checks. */
  other: { accountId: string; key: string }
  /** A key in the default account holding only `scope`. */
  keyWith(scopes: Scope[]): Promise<string>
  close(): Promise<void>
}

export async function buildTestApp(opts: Partial<Pick<V1Options, 'rateLimit' | 'allowInsecureWebhooks' | 'urlPolicy'>> & { demo?: boolean } = {}): Promise<TestApp> {
  const t = await openTestDatabase()
  const db = t.db
  await migrate(db, silent)
  const adminKey = `cp_test_${randomBytes(16).toString('hex')}`
  const boot = await bootstrap(db, adminKey, silent, { demo: opts.demo ?? false })
  const store = createStore(db, new SecretBox('test-secret-key'), silent)
  await store.outbox.start()
  const callControl = new CallControlSlot()
  const app = await buildApiServer({
    logger: silent, registry: new Registry(), health: new HealthRegistry(), isDraining: () => false,
    registerRoutes: v1Routes({ store, callControl, allowInsecureWebhooks: opts.allowInsecureWebhooks ?? true, rateLimit: opts.rateLimit ?? false, ...(opts.urlPolicy ? { urlPolicy: opts.urlPolicy } : {}) }),
  })
  await app.ready()
  const res = await app.inject({ method: 'POST', url: '/v1/accounts', headers: { authorization: `Bearer ${adminKey}` }, payload: { name: 'other' } })
  if (res.statusCode !== 201) throw new Error(`creating the second account failed: ${res.statusCode} ${res.body}`)
  const created = res.json() as { account: { id: string }; apiKey: { token: string } }
  return {
    app, store, db, callControl, adminKey, accountId: boot.account.id,
    other: { accountId: created.account.id, key: created.apiKey.token },
    async keyWith(scopes) {
      return (await store.apiKeys.create(boot.account.id, `test ${scopes.join(',')}`, scopes, null)).token
    },
    async close() {
      await app.close()
      await store.outbox.stop()
      await db.close()
      await t.cleanup()
    },
  }
}

/** inject() with a key. */
export function call(app: FastifyInstance, key: string | null, method: string, url: string, payload?: unknown): Promise<LightMyRequestResponse> {
  return app.inject({
    method: method as 'GET',
    url,
    headers: key ? { authorization: `Bearer ${key}` } : {},
    ...(payload !== undefined ? { payload: payload as object } : {}),
  })
}
