import type { Logger } from 'pino'
import type { Database } from './database.ts'
import { AccountRepository, type Account } from './accounts.ts'
import { ApiKeyRepository } from './api-keys.ts'
import { AgentRepository } from './agents.ts'
import { NumberRepository } from './numbers.ts'

export interface BootstrapResult {
  account: Account
  /** Set only when a key was generated on this start: the one time it is shown. */
  generatedApiKey?: string
  /** Set on the start that created the demo agent. */
  demo?: { agentId: string; numberId: string; number: string }
}

export const DEMO_NUMBER = '1000'

/**
 * First-start setup for the embedded default: one (operator) account, one
 * admin key, and a demo agent on the offline adapters answering number 1000.
 * BOOTSTRAP_API_KEY names the key; otherwise one is generated and returned so
 * the caller can print it once (it is stored only as a hash). The demo is
 * created once (a `settings` marker), so deleting it keeps it deleted.
 */
export async function bootstrap(db: Database, bootstrapApiKey: string | undefined, logger: Logger, opts: { demo?: boolean } = {}): Promise<BootstrapResult> {
  return db.transaction(async (c) => {
    // Two nodes starting together against one PostgreSQL must not both create a default account.
    await c.query('SELECT pg_advisory_xact_lock(72410002)')
    const accounts = new AccountRepository(c)
    const keys = new ApiKeyRepository(c)
    let account = await accounts.first()
    let generatedApiKey: string | undefined
    if (!account) {
      account = await accounts.create('default', 'default.callplane.local')
      await accounts.setOperator(account.id)
      account = { ...account, operator: true }
      logger.info({ accountId: account.id }, 'default account created')
      if (!bootstrapApiKey) {
        generatedApiKey = (await keys.create(account.id, 'bootstrap admin', ['admin'], null)).token
      }
    }
    if (bootstrapApiKey && !(await keys.existsByToken(bootstrapApiKey))) {
      await keys.create(account.id, 'bootstrap admin', ['admin'], null, bootstrapApiKey)
      logger.info({ accountId: account.id }, 'bootstrap API key installed from BOOTSTRAP_API_KEY')
    }
    let demo: BootstrapResult['demo']
    if (opts.demo !== false) {
      const seeded = await c.query(`SELECT 1 FROM settings WHERE key = 'demo_seeded'`)
      if (!seeded.rowCount) {
        await c.query(`INSERT INTO settings (key, value) VALUES ('demo_seeded', 'true')`)
        const taken = await new NumberRepository(c).findByNumber(DEMO_NUMBER)
        if (!taken) {
          const agent = await new AgentRepository(c).create(account.id, {
            name: 'Demo agent',
            type: 'pipeline',
            greeting: 'Hello, this is the Callplane demo agent. Ask me what I can do, or say goodbye to hang up.',
            prompt: 'You are the Callplane demo agent. Be brief and friendly.',
            language: 'en-US',
            stt: { provider: 'pocketsphinx' },
            llm: { provider: 'scripted' },
            tts: { provider: 'espeak', voice: 'en-us' },
            bargeIn: { enabled: true, minSpeechMs: 300, minWords: 0 },
            silenceTimeoutSec: 30,
            maxDurationSec: 600,
            // Plain-word patterns: they also become the offline STT's grammar (agentConfigFrom),
            // which is what lets pocketsphinx hear them reliably on a phone line.
            rules: [
              { match: 'goodbye', reply: 'Goodbye, and thanks for calling.', hangup: true },
              { match: 'what can you do', reply: 'I can say hello, tell you a joke, or tell you who I am. When you are done, say goodbye.' },
              { match: 'tell me a joke', reply: 'Why did the phone wear glasses? It lost all its contacts.' },
              { match: 'who are you', reply: 'I am the Callplane demo agent. I run on offline speech recognition, a scripted model and espeak.' },
              { match: 'what time is it', reply: 'I have no clock, but the phone in your hand does.' },
              { match: 'hello', reply: 'Hello! Ask me what I can do.' },
              { match: '.*', reply: 'Sorry, I only know a few phrases. Say what can you do, tell me a joke, or goodbye.' },
            ],
          })
          const number = await new NumberRepository(c).create(account.id, { number: DEMO_NUMBER, name: 'Demo', target: { type: 'agent', id: agent.id } })
          demo = { agentId: agent.id, numberId: number.id, number: DEMO_NUMBER }
          logger.info({ agentId: agent.id, number: DEMO_NUMBER }, 'demo agent created')
        }
      }
    }
    return { account, ...(generatedApiKey ? { generatedApiKey } : {}), ...(demo ? { demo } : {}) }
  })
}
