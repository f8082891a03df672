import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { PGlite } from '@electric-sql/pglite'

/**
 * An initialised, empty PGlite cluster kept under node_modules/.cache. A new
 * cluster costs an initdb (about 5–10 s on a small machine); copying this one
 * costs milliseconds, so a first `make start` and every test stack start fast.
 * Keyed by PGlite's version: a cluster is only valid for the build that made it.
 * `make` builds it after `npm ci`; when it is missing, PGlite runs initdb itself.
 */
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..')

function pgliteVersion(): string {
  // The package's exports hide package.json, so read it from its folder.
  const pkg = JSON.parse(readFileSync(join(ROOT, 'node_modules', '@electric-sql', 'pglite', 'package.json'), 'utf8')) as { version: string }
  return pkg.version
}

export function pgliteTemplateDir(): string {
  return join(ROOT, 'node_modules', '.cache', 'callplane', `pglite-${pgliteVersion()}`, 'pgdata')
}

/** Builds the template once; concurrent builders race on an atomic rename. */
export async function buildPgliteTemplate(): Promise<string> {
  const target = pgliteTemplateDir()
  if (existsSync(join(target, 'PG_VERSION'))) return target
  mkdirSync(dirname(target), { recursive: true })
  const staging = mkdtempSync(join(dirname(target), 'staging-'))
  const db = await PGlite.create(join(staging, 'pgdata'))
  await db.close()
  try {
    renameSync(join(staging, 'pgdata'), target)
  } catch { /* another process built it first */ }
  rmSync(staging, { recursive: true, force: true })
  return target
}

/** Seeds an empty data directory from the template; false when there is none. */
export function seedFromPgliteTemplate(pgdataDir: string): boolean {
  const template = pgliteTemplateDir()
  if (existsSync(join(pgdataDir, 'PG_VERSION')) || !existsSync(join(template, 'PG_VERSION'))) return false
  cpSync(template, pgdataDir, { recursive: true })
  return true
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const dir = await buildPgliteTemplate()
  process.stdout.write(`PGlite template ready: ${dir}\n`)
}
