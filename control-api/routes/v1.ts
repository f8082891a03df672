import type { FastifyInstance, FastifyPluginAsync } from 'fastify'
import websocket from '@fastify/websocket'
import { installAuth, type AuthOptions } from '../auth.ts'
import type { ApiDeps } from '../deps.ts'
import type { Store } from '../../store/index.ts'
import type { CallControlSlot } from '../../call/call-control.ts'
import type { CallPrograms } from '../../call/flow/index.ts'
import type { CampaignDialer } from '../../call/outbound/campaign-dialer.ts'
import { outplanRoutes } from './outplans.ts'
import { outdialRoutes } from './outdials.ts'
import { campaignRoutes } from './campaigns.ts'
import { ReadCache } from '../read-cache.ts'
import { OutboundUrlPolicy } from '../../config/outbound-url-policy.ts'
import { accountRoutes } from './accounts.ts'
import { apiKeyRoutes } from './api-keys.ts'
import { agentRoutes } from './agents.ts'
import { numberRoutes } from './numbers.ts'
import { trunkRoutes } from './trunks.ts'
import { carrierRouteRoutes } from './carrier-routes.ts'
import { extensionRoutes } from './extensions.ts'
import { toolRoutes } from './tools.ts'
import { webhookRoutes } from './webhooks.ts'
import { signingSecretRoutes } from './signing-secret.ts'
import { callRoutes } from './calls.ts'
import { recordingRoutes } from './recordings.ts'
import { conferenceRoutes } from './conferences.ts'
import { eventRoutes } from './events.ts'
import { flowRoutes } from './flows.ts'
import { groupcallRoutes } from './groupcalls.ts'
import { doNotCallRoutes } from './do-not-call.ts'
import { contactAgentRoutes } from './contact-agents.ts'
import { queueRoutes } from './queues.ts'
import { scheduledCallRoutes } from './scheduled-calls.ts'
import { sequenceRoutes } from './sequences.ts'
import type { Sequences } from '../../call/outbound/sequences.ts'
import type { ScheduledCalls } from '../../call/outbound/scheduled-calls.ts'

export interface V1Options {
  store: Store
  callControl: CallControlSlot
  programs?: CallPrograms
  /** The campaign dialer (/v1/campaigns status changes, targets added to running campaigns). */
  campaigns?: CampaignDialer
  allowInsecureWebhooks: boolean
  rateLimit?: AuthOptions['rateLimit']
  authCacheTtlMs?: number
  /** TTL of the call read cache (default 1000 ms; 0 disables). */
  readCacheTtlMs?: number
  /** The outbound URL policy tenant URLs are checked with when set; default: private addresses allowed exactly when insecure webhooks are (the embedded mode). */
  urlPolicy?: OutboundUrlPolicy
  /** Scheduled calls and AI callbacks (the engine's; absent in API-only tests: those routes answer 503). */
  scheduledCalls?: ScheduledCalls
  sequences?: Sequences
}

/** Everything under /v1: auth + rate limit, then one plugin per route group. */
const v1: FastifyPluginAsync<V1Options> = async (app, opts) => {
  await app.register(websocket, { options: { maxPayload: 1024 * 1024 } })
  const auth = await installAuth(app, {
    apiKeys: opts.store.apiKeys, accounts: opts.store.accounts,
    ...(opts.rateLimit !== undefined ? { rateLimit: opts.rateLimit } : {}),
    ...(opts.authCacheTtlMs !== undefined ? { cacheTtlMs: opts.authCacheTtlMs } : {}),
  })
  const readCache = new ReadCache(opts.store.bus, opts.readCacheTtlMs ?? 1000)
  app.addHook('onClose', async () => readCache.close())
  const urlPolicy = opts.urlPolicy ?? new OutboundUrlPolicy({ allowPrivate: opts.allowInsecureWebhooks })
  const deps: ApiDeps = { store: opts.store, callControl: opts.callControl, programs: opts.programs, campaigns: opts.campaigns, allowInsecureWebhooks: opts.allowInsecureWebhooks, invalidateKey: auth.invalidate, readCache, urlPolicy, scheduledCalls: opts.scheduledCalls, sequences: opts.sequences }
  for (const plugin of [accountRoutes, apiKeyRoutes, agentRoutes, numberRoutes, trunkRoutes, carrierRouteRoutes, extensionRoutes, toolRoutes, webhookRoutes, signingSecretRoutes, callRoutes, flowRoutes, groupcallRoutes, doNotCallRoutes, scheduledCallRoutes, sequenceRoutes, outplanRoutes, outdialRoutes, campaignRoutes, contactAgentRoutes, queueRoutes, recordingRoutes, conferenceRoutes, eventRoutes]) {
    await app.register(plugin, { deps })
  }
}

/** The `registerRoutes` callback for buildApiServer. */
export function v1Routes(opts: V1Options): (app: FastifyInstance) => Promise<void> {
  return async (app) => {
    await app.register(v1, { ...opts, prefix: '/v1' })
  }
}
