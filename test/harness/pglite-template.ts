import { cpSync, existsSync, mkdtempSync, renameSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { PGlite } from '@electric-sql/pglite'

const TEMPLATE = join(tmpdir(), 'callplane-pglite-template', 'pgdata')

/**
 * Creating a PGlite cluster runs initdb (seconds); copying an initialised one
 * takes milliseconds. Tests copy a shared template into their fresh DATA_DIR,
 * so each stack still starts from an empty database of its own.
 */
export async function seedPgliteDataDir(dataDir: string): Promise<void> {
  if (!existsSync(join(TEMPLATE, 'PG_VERSION'))) {
    const staging = mkdtempSync(join(tmpdir(), 'callplane-pglite-staging-'))
    const db = await PGlite.create(join(staging, 'pgdata'))
    await db.close()
    try {
      cpSync(join(staging, 'pgdata'), join(tmpdir(), 'callplane-pglite-template', 'pgdata.tmp'), { recursive: true })
      // Two tap jobs may race to create it: rename is atomic, the loser keeps the winner's.
      if (!existsSync(TEMPLATE)) renameSync(join(tmpdir(), 'callplane-pglite-template', 'pgdata.tmp'), TEMPLATE)
    } catch { /* the other job won */ }
    rmSync(staging, { recursive: true, force: true })
    rmSync(join(tmpdir(), 'callplane-pglite-template', 'pgdata.tmp'), { recursive: true, force: true })
  }
  cpSync(TEMPLATE, join(dataDir, 'pgdata'), { recursive: true })
}
