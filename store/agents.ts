import { randomUUID } from 'node:crypto'
import { pageQuery, type Page, type PageRequest, type Queryable } from './common.ts'
import { invalidReference } from './errors.ts'

export interface AdapterRef {
  provider: string
  model?: string
  voice?: string
  options?: Record<string, unknown>
}

export interface BargeInPolicy {
  enabled?: boolean
  /** Voiced audio needed before an interruption stands. */
  minSpeechMs?: number
  /** Words STT must confirm before the interruption stands (0: VAD alone decides). */
  minWords?: number
  /** After a false alarm, this much caller silence before the paused speech resumes. */
  resumeAfterMs?: number
}

export interface TransferTarget {
  name: string
  destination: string
  description?: string
  /** Said to the target when it answers, before the caller is connected. */
  whisper?: string
}

/** Leadlock's vad_threshold / vad_silence_duration_ms / vad_prefix_padding_ms. */
export interface VadSettings {
  threshold?: number
  silenceMs?: number
  prefixPaddingMs?: number
}

export interface ScriptRule {
  /** Case-insensitive regular expression matched against the caller's final transcript. */
  match: string
  reply?: string
  tool?: string
  args?: Record<string, unknown>
  transferTo?: string
  hangup?: boolean
}

/** What the agent runtime needs to run a conversation. */
export interface AgentSpec {
  prompt?: string
  greeting?: string
  language?: string
  voice?: string
  stt?: AdapterRef
  llm?: AdapterRef
  tts?: AdapterRef
  /** Tool ids (see ToolRepository) the agent may call. */
  tools?: string[]
  bargeIn?: BargeInPolicy
  aiSpeaksFirst?: boolean
  greetingOutbound?: string
  aiSpeaksFirstOutbound?: boolean
  greetingInterruptible?: boolean
  /** Phrases callers are expected to say (offline STT grammar, cloud STT hints). */
  expectedPhrases?: string[]
  vad?: 'webrtc' | 'energy' | 'silero'
  vadSettings?: VadSettings
  /** Answering-machine detection on outbound calls. */
  amd?: { onMachine: 'hangup' | 'leave_message' | 'continue'; message?: string; endOfGreetingSilenceMs?: number; maxWaitMs?: number }
  silenceTimeoutSec?: number
  maxDurationSec?: number
  transferTargets?: TransferTarget[]
  recording?: { enabled: boolean; format?: string; disclosure?: string }
  summary?: { enabled: boolean; prompt?: string }
  /** type `websocket`: stream the call to this URL (Twilio Media Streams format). */
  websocket?: { url: string; encapsulation?: string }
  /** Rules for the offline scripted LLM. */
  rules?: ScriptRule[]
  /** Built-in tools the agent opts into beyond end_call/transfer_call/send_dtmf (agent/tools.ts HOST_TOOL_NAMES). */
  builtinTools?: Array<'add_to_do_not_call' | 'schedule_callback' | 'mark_booked'>
  metadata?: Record<string, string>
}

export type AgentType = 'pipeline' | 'websocket'

export interface Agent extends AgentSpec {
  id: string
  accountId: string
  name: string
  type: AgentType
  createdAt: string
  updatedAt: string
}

interface Row { id: string; seq: string; account_id: string; name: string; type: string; spec: AgentSpec; created_at: Date; updated_at: Date }
const toAgent = (r: Row): Agent => ({
  id: r.id, accountId: r.account_id, name: r.name, type: r.type as AgentType, ...r.spec,
  createdAt: r.created_at.toISOString(), updatedAt: r.updated_at.toISOString(),
})

export type AgentInput = AgentSpec & { name: string; type?: AgentType }

export class AgentRepository {
  constructor(private readonly db: Queryable) {}

  private async checkTools(accountId: string, tools: string[] | undefined): Promise<void> {
    if (!tools?.length) return
    const { rows } = await this.db.query<{ id: string }>('SELECT id FROM tools WHERE account_id = $1 AND id = ANY($2::uuid[])', [accountId, tools])
    if (rows.length !== new Set(tools).size) throw invalidReference('tools', 'tool')
  }

  async create(accountId: string, input: AgentInput): Promise<Agent> {
    const { name, type = 'pipeline', ...spec } = input
    await this.checkTools(accountId, spec.tools)
    const { rows } = await this.db.query<Row>(
      'INSERT INTO agents (id, account_id, name, type, spec) VALUES ($1, $2, $3, $4, $5) RETURNING *',
      [randomUUID(), accountId, name, type, JSON.stringify(spec)],
    )
    return toAgent(rows[0]!)
  }

  async get(accountId: string, id: string): Promise<Agent | null> {
    const { rows } = await this.db.query<Row>('SELECT * FROM agents WHERE account_id = $1 AND id = $2', [accountId, id])
    return rows[0] ? toAgent(rows[0]) : null
  }

  /** For the SIP app: the agent a number points at, whatever the account. */
  async getById(id: string): Promise<Agent | null> {
    const { rows } = await this.db.query<Row>('SELECT * FROM agents WHERE id = $1', [id])
    return rows[0] ? toAgent(rows[0]) : null
  }

  list(accountId: string, page: PageRequest): Promise<Page<Agent>> {
    return pageQuery<Row, Agent>(this.db, { table: 'agents', accountId, order: 'asc', page }, toAgent)
  }

  /** Top-level fields in `patch` replace the stored ones; `null` removes one. */
  async update(accountId: string, id: string, patch: Partial<AgentInput>): Promise<Agent | null> {
    const cur = await this.get(accountId, id)
    if (!cur) return null
    const { id: _i, accountId: _a, createdAt: _c, updatedAt: _u, name, type, ...spec } = { ...cur, ...patch } as Agent
    for (const [k, v] of Object.entries(spec)) if (v === null) delete (spec as Record<string, unknown>)[k]
    await this.checkTools(accountId, spec.tools)
    const { rows } = await this.db.query<Row>(
      'UPDATE agents SET name = $3, type = $4, spec = $5, updated_at = now() WHERE account_id = $1 AND id = $2 RETURNING *',
      [accountId, id, name, type, JSON.stringify(spec)],
    )
    return rows[0] ? toAgent(rows[0]) : null
  }

  async delete(accountId: string, id: string): Promise<boolean> {
    const { rowCount } = await this.db.query('DELETE FROM agents WHERE account_id = $1 AND id = $2', [accountId, id])
    return (rowCount ?? 0) > 0
  }
}
