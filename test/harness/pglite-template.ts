import { join } from 'node:path'
import { buildPgliteTemplate, seedFromPgliteTemplate } from '../../store/pglite-template.ts'

/** Gives a test's fresh DATA_DIR an initialised empty cluster (copy, not initdb). */
export async function seedPgliteDataDir(dataDir: string): Promise<void> {
  await buildPgliteTemplate()
  seedFromPgliteTemplate(join(dataDir, 'pgdata'))
}
