import { readdirSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Logger } from 'pino'
import type { Database } from './database.ts'

const MIGRATIONS_DIR = join(dirname(fileURLToPath(import.meta.url)), 'migrations')
/** Arbitrary constant: serialises migrations when several engine nodes start at once. */
const MIGRATION_LOCK = 72_410_001

/**
 * Applies store/migrations/NNN_name.sql in order, each in its own transaction,
 * recording applied ids so restarts and other nodes skip them.
 */
export async function migrate(db: Database, logger: Logger, dir = MIGRATIONS_DIR): Promise<string[]> {
  const files = readdirSync(dir).filter((f) => /^\d+_.+\.sql$/.test(f)).sort()
  const applied: string[] = []
  await db.transaction(async (c) => {
    await c.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK])
    await c.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
      id text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`)
    const done = new Set((await c.query<{ id: string }>('SELECT id FROM schema_migrations')).rows.map((r) => r.id))
    for (const file of files) {
      const id = file.replace(/\.sql$/, '')
      if (done.has(id)) continue
      await c.query(readFileSync(join(dir, file), 'utf8'))
      await c.query('INSERT INTO schema_migrations (id) VALUES ($1)', [id])
      applied.push(id)
    }
  })
  if (applied.length) logger.info({ applied }, 'migrations applied')
  return applied
}
