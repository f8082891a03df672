import type { Logger } from 'pino'
import type { Database } from './database.ts'
import { AccountRepository, type Account } from './accounts.ts'
import { ApiKeyRepository } from './api-keys.ts'

export interface BootstrapResult {
  account: Account
  /** Set only when a key was generated on this start: the one time it is shown. */
  generatedApiKey?: string
}

/**
 * First-start setup for the embedded default: one account and one admin key.
 * BOOTSTRAP_API_KEY names the key; otherwise one is generated and returned so
 * the caller can print it once (it is stored only as a hash).
 */
export async function bootstrap(db: Database, bootstrapApiKey: string | undefined, logger: Logger): Promise<BootstrapResult> {
  return db.transaction(async (c) => {
    // Two nodes starting together against one PostgreSQL must not both create a default account.
    await c.query('SELECT pg_advisory_xact_lock(72410002)')
    const accounts = new AccountRepository(c)
    const keys = new ApiKeyRepository(c)
    let account = await accounts.first()
    let generatedApiKey: string | undefined
    if (!account) {
      account = await accounts.create('default', 'default.callplane.local')
      logger.info({ accountId: account.id }, 'default account created')
      if (!bootstrapApiKey) {
        generatedApiKey = (await keys.create(account.id, 'bootstrap admin', ['admin'], null)).token
      }
    }
    if (bootstrapApiKey && !(await keys.existsByToken(bootstrapApiKey))) {
      await keys.create(account.id, 'bootstrap admin', ['admin'], null, bootstrapApiKey)
      logger.info({ accountId: account.id }, 'bootstrap API key installed from BOOTSTRAP_API_KEY')
    }
    return generatedApiKey ? { account, generatedApiKey } : { account }
  })
}
