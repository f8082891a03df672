import type { Logger } from 'pino'
import type { Database } from './database.ts'
import { AccountRepository } from './accounts.ts'
import { ApiKeyRepository } from './api-keys.ts'
import { AgentRepository } from './agents.ts'
import { CallRepository } from './calls.ts'
import { CarrierRouteRepository } from './carrier-routes.ts'
import { ConferenceRepository } from './conferences.ts'
import { DoNotCallRepository } from './do-not-call.ts'
import { ContactAgentRepository } from './contact-agents.ts'
import { ScheduledCallRepository } from './scheduled-calls.ts'
import { SequenceRepository } from './sequences.ts'
import { ExtensionRepository } from './extensions.ts'
import { GroupcallRepository } from './groupcalls.ts'
import { JobRepository } from './jobs.ts'
import { OutplanRepository } from './outplans.ts'
import { OutdialRepository } from './outdials.ts'
import { CampaignRepository } from './campaigns.ts'
import { CampaigncallRepository } from './campaigncalls.ts'
import { ActiveflowRepository, FlowRepository } from './flows.ts'
import { NumberRepository } from './numbers.ts'
import { OutboundRegistrationRepository } from './outbound-registrations.ts'
import { EventBus, Outbox } from './outbox.ts'
import { QueuecallRepository } from './queuecalls.ts'
import { QueueRepository } from './queues.ts'
import { RecordingRepository } from './recordings.ts'
import { RegistrarBindingRepository } from './registrar-bindings.ts'
import type { SecretBox } from './secrets.ts'
import { SipDirectoryRepository } from './sip-directory.ts'
import { SigningSecretRepository } from './signing-secrets.ts'
import { ToolRepository } from './tools.ts'
import { TrunkRepository } from './trunks.ts'
import { WebhookRepository } from './webhooks.ts'

/** Every repository over one database, plus the outbox and the in-process event bus. */
export interface Store {
  db: Database
  bus: EventBus
  outbox: Outbox
  accounts: AccountRepository
  apiKeys: ApiKeyRepository
  agents: AgentRepository
  numbers: NumberRepository
  trunks: TrunkRepository
  /** Outbound routing over trunks by destination prefix (the API's /v1/routes). */
  carrierRoutes: CarrierRouteRepository
  extensions: ExtensionRepository
  tools: ToolRepository
  webhooks: WebhookRepository
  /** Each account's application signing secret: status callbacks and webhook apps are signed with it. */
  signingSecrets: SigningSecretRepository
  calls: CallRepository
  recordings: RecordingRepository
  conferences: ConferenceRepository
  /** Stored flows (VoipBin action lists) and their runs on calls. */
  flows: FlowRepository
  activeflows: ActiveflowRepository
  /** Destinations dialled together or in turn (POST /v1/groupcalls, a flow's connect). */
  groupcalls: GroupcallRepository
  /** The per-account do-not-call list, checked before every outbound dial. */
  doNotCall: DoNotCallRepository
  /** Outbound agent calls at a set time (Leadlock scheduled calls, AI callbacks), fired by the job scheduler. */
  scheduledCalls: ScheduledCallRepository
  /** Leadlock sequences (steps an agent works through per enrolled contact) and their enrollments. */
  sequences: SequenceRepository
  /** Durable jobs (campaign dials, scheduled calls, sequence steps), run by job-scheduler.ts's JobScheduler. */
  jobs: JobRepository
  /** Outbound campaigns: how to dial (outplans), contact lists (outdials and targets), campaigns and their attempts (campaigncalls). */
  outplans: OutplanRepository
  outdials: OutdialRepository
  campaigns: CampaignRepository
  campaigncalls: CampaigncallRepository
  /** Contact centre: human contact agents (derived status), ACD queues, the callers in them. */
  contactAgents: ContactAgentRepository
  queues: QueueRepository
  queuecalls: QueuecallRepository
  /** Trunks registering to their carriers: status written by the owning node, read by the API and /health. */
  outboundRegistrations: OutboundRegistrationRepository
  /** Extensions registered here (RFC 3261 §10.3 bindings) and the digest nonce key. */
  registrarBindings: RegistrarBindingRepository
  /** The cross-account trunk and extension lookups SIP signalling makes per request. */
  sipDirectory: SipDirectoryRepository
}

export function createStore(db: Database, secrets: SecretBox, logger: Logger): Store {
  const pool = db.pool
  const bus = new EventBus()
  const outbox = new Outbox(db, bus, logger)
  const accounts = new AccountRepository(pool, (fn) => db.transaction(fn))
  const realm = (id: string) => accounts.realm(id)
  const signingSecrets = new SigningSecretRepository(pool, secrets)
  const jobs = new JobRepository(pool)
  return {
    db, bus, outbox, accounts,
    apiKeys: new ApiKeyRepository(pool),
    agents: new AgentRepository(pool),
    numbers: new NumberRepository(pool),
    trunks: new TrunkRepository(pool, secrets, realm),
    carrierRoutes: new CarrierRouteRepository(pool),
    extensions: new ExtensionRepository(pool, realm),
    tools: new ToolRepository(pool, secrets),
    webhooks: new WebhookRepository(pool, secrets, (fn) => db.transaction(fn), signingSecrets),
    signingSecrets,
    calls: new CallRepository(pool, outbox),
    recordings: new RecordingRepository(pool, outbox),
    conferences: new ConferenceRepository(pool),
    flows: new FlowRepository(pool),
    activeflows: new ActiveflowRepository(pool),
    groupcalls: new GroupcallRepository(pool),
    doNotCall: new DoNotCallRepository(pool, outbox),
    jobs,
    scheduledCalls: new ScheduledCallRepository(pool, outbox, jobs),
    sequences: new SequenceRepository(pool, outbox, jobs),
    outplans: new OutplanRepository(pool),
    outdials: new OutdialRepository(pool),
    campaigns: new CampaignRepository(pool, jobs, (fn) => db.transaction(fn)),
    campaigncalls: new CampaigncallRepository(pool),
    contactAgents: new ContactAgentRepository(pool, outbox),
    queues: new QueueRepository(pool, outbox),
    queuecalls: new QueuecallRepository(pool, outbox),
    outboundRegistrations: new OutboundRegistrationRepository(pool),
    registrarBindings: new RegistrarBindingRepository(pool, outbox),
    sipDirectory: new SipDirectoryRepository(pool),
  }
}

export type { Database } from './database.ts'
export type { CallplaneEvent, EventType } from './outbox.ts'
