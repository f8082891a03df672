import { randomUUID } from 'node:crypto'
import type pg from 'pg'
import { pageQuery, type Page, type PageRequest, type Queryable } from './common.ts'
import { invalidState } from './errors.ts'
import type { CallplaneEvent, Emit, EventType, Outbox } from './outbox.ts'
import { attachStatusCallback, queueStatusCallback, toStatusCallback, type StatusCallback } from './status-callbacks.ts'

export const CALL_STATUSES = ['queued', 'ringing', 'in-progress', 'completed', 'failed', 'busy', 'no-answer', 'canceled'] as const
export type CallStatus = (typeof CALL_STATUSES)[number]
export const FINAL_STATUSES: readonly CallStatus[] = ['completed', 'failed', 'busy', 'no-answer', 'canceled']
export const isFinal = (s: CallStatus) => FINAL_STATUSES.includes(s)

export type CallDirection = 'inbound' | 'outbound'
/** Who ended the call. */
export type HangupBy = 'caller' | 'callee' | 'agent' | 'api' | 'system'

export interface TranscriptEntry {
  role: 'user' | 'assistant' | 'system' | 'tool'
  text: string
  /** ms since the call was answered (or created). */
  offsetMs?: number
  final?: boolean
  /** The agent runtime's entries: ms since the agent started. */
  startMs?: number
  endMs?: number
  /** A line cut short by the caller (barge-in): `text` is what was heard. */
  interrupted?: boolean
  /** Where the line came from: an STT engine, "dtmf", "api-say" (POST /v1/calls/:id/say)... */
  source?: string
  /** Tool entries: which tool, whether it succeeded, how long it took. */
  tool?: { name: string; ok: boolean; durationMs: number }
}

/** One agent turn: end of speech → final transcript → first LLM token → first TTS audio → first RTP out (ms). */
export interface TurnTiming {
  turn: number
  endOfSpeechAt?: string
  sttFinalMs?: number
  llmFirstTokenMs?: number
  ttsFirstAudioMs?: number
  firstRtpOutMs?: number
  totalMs?: number
  bargeIn?: boolean
  bargeInLatencyMs?: number
}

export interface CallQuality {
  jitterMs?: number
  lossPct?: number
  rttMs?: number | null
  mos?: number
  packetsIn?: number
  packetsOut?: number
  [k: string]: unknown
}

export interface Call {
  id: string
  accountId: string
  direction: CallDirection
  status: CallStatus
  from: string
  to: string
  agentId: string | null
  numberId: string | null
  trunkId: string | null
  extensionId: string | null
  conferenceId: string | null
  sipCallId: string | null
  nodeId: string | null
  endedReason: string | null
  hangupBy: HangupBy | null
  summary: string | null
  transcript: TranscriptEntry[]
  timings: TurnTiming[]
  quality: CallQuality | null
  metadata: Record<string, unknown>
  createdAt: string
  ringingAt: string | null
  answeredAt: string | null
  endedAt: string | null
  /** Seconds from answer to end (0 when never answered); null while live. */
  duration: number | null
  updatedAt: string
  /** Where its status changes are sent (Telefon `status_callback`), or null. */
  statusCallback: StatusCallback | null
}

export interface CreateCallInput {
  accountId: string
  direction: CallDirection
  from: string
  to: string
  /** Default `queued` (outbound) — an inbound call is usually created `ringing`. */
  status?: 'queued' | 'ringing' | 'in-progress'
  agentId?: string | null
  numberId?: string | null
  trunkId?: string | null
  extensionId?: string | null
  sipCallId?: string | null
  nodeId?: string | null
  metadata?: Record<string, unknown>
  /** What the call runs once answered (call/flow): a flow, inline actions or a webhook app. */
  program?: CallProgram | null
  /** Telefon `status_callback`; an inbound call to a number without one takes the number's. */
  statusCallback?: StatusCallback | null
}

/**
 * A call's program, kept on its record so whichever node answers it runs it:
 * a stored flow, an inline action list (VoipBin FlowManagerAction[]), or a
 * webhook app (Telefon `url`) asked for its verbs on answer.
 */
export type CallProgram =
  | { flowId: string }
  | { actions: Array<{ id?: string; next_id?: string; type: string; option?: Record<string, unknown> }> }
  | { url: string; method: 'POST' | 'GET' }

export interface EndCallInput {
  status: Exclude<CallStatus, 'queued' | 'ringing' | 'in-progress'>
  endedReason: string
  hangupBy?: HangupBy | null
}

export interface CallFilter {
  status?: CallStatus | undefined
  direction?: CallDirection | undefined
  /** Matches either side. */
  number?: string | undefined
  agentId?: string | undefined
  /** created_at bounds (ISO). */
  after?: string | undefined
  before?: string | undefined
}

interface Row {
  id: string; seq: string; account_id: string; direction: string; status: string; from_number: string; to_number: string
  agent_id: string | null; number_id: string | null; trunk_id: string | null; extension_id: string | null; conference_id: string | null
  sip_call_id: string | null; node_id: string | null; ended_reason: string | null; hangup_by: string | null; summary: string | null
  transcript: TranscriptEntry[]; timings: TurnTiming[]; quality: CallQuality | null; metadata: Record<string, unknown>
  created_at: Date; ringing_at: Date | null; answered_at: Date | null; ended_at: Date | null; updated_at: Date
  status_callback: string | null; status_callback_method: string | null
}

export const toCall = (r: Row): Call => ({
  id: r.id, accountId: r.account_id, direction: r.direction as CallDirection, status: r.status as CallStatus,
  from: r.from_number, to: r.to_number, agentId: r.agent_id, numberId: r.number_id, trunkId: r.trunk_id,
  extensionId: r.extension_id, conferenceId: r.conference_id, sipCallId: r.sip_call_id, nodeId: r.node_id,
  endedReason: r.ended_reason, hangupBy: r.hangup_by as HangupBy | null, summary: r.summary, transcript: r.transcript,
  timings: r.timings, quality: r.quality, metadata: r.metadata,
  createdAt: r.created_at.toISOString(), ringingAt: r.ringing_at?.toISOString() ?? null, answeredAt: r.answered_at?.toISOString() ?? null,
  endedAt: r.ended_at?.toISOString() ?? null,
  duration: r.ended_at ? (r.answered_at ? Math.round((r.ended_at.getTime() - r.answered_at.getTime()) / 1000) : 0) : null,
  updatedAt: r.updated_at.toISOString(),
  statusCallback: toStatusCallback(r.status_callback, r.status_callback_method),
})

/** The event payload for call lifecycle events: the call without its bulky arrays. */
export function callEventData(c: Call): Record<string, unknown> {
  const { transcript: _t, timings: _tm, ...rest } = c
  return { call: rest }
}

/**
 * Call records. Every state change commits together with its outbox event
 * (and the webhook deliveries it fans out to). The SIP app drives the
 * lifecycle with create → ringing → answered → end; the agent runtime appends
 * transcript, timings, quality and summary. Methods addressed by call id alone
 * are for the engine; the API always goes through the account-scoped ones.
 */
export class CallRepository {
  constructor(private readonly db: Queryable, private readonly outbox: Outbox) {}

  /** Creates the call and emits `call.started` (plus `call.ringing` when created ringing). */
  /** The program the call runs once answered (set when it was created), or null. */
  async program(callId: string): Promise<CallProgram | null> {
    const { rows } = await this.db.query<{ program: CallProgram | null }>('SELECT program FROM calls WHERE id = $1', [callId])
    return rows[0]?.program ?? null
  }

  async create(input: CreateCallInput): Promise<Call> {
    const status = input.status ?? 'queued'
    return this.outbox.transaction(async (c, emit) => {
      const { rows } = await c.query<Row>(
        `INSERT INTO calls (id, account_id, direction, status, from_number, to_number, agent_id, number_id, trunk_id, extension_id,
            sip_call_id, node_id, metadata, program, ringing_at, answered_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14,
            CASE WHEN $4 IN ('ringing', 'in-progress') THEN now() END, CASE WHEN $4 = 'in-progress' THEN now() END) RETURNING *`,
        [randomUUID(), input.accountId, input.direction, status, input.from, input.to, input.agentId ?? null, input.numberId ?? null,
          input.trunkId ?? null, input.extensionId ?? null, input.sipCallId ?? null, input.nodeId ?? null, JSON.stringify(input.metadata ?? {}),
          input.program ? JSON.stringify(input.program) : null],
      )
      const call = toCall(rows[0]!)
      call.statusCallback = await attachStatusCallback(c, call, input.statusCallback)
      let latest = await emit(call.accountId, 'call.started', callEventData(call), call.id)
      if (status === 'ringing') latest = await emit(call.accountId, 'call.ringing', callEventData(call), call.id)
      if (status === 'in-progress') latest = await emit(call.accountId, 'call.answered', callEventData(call), call.id)
      // One status callback per status: the event that announces the status the call was created in.
      if (call.statusCallback) await queueStatusCallback(c, call.id, latest.id)
      return call
    })
  }

  // The API's hot reads run as named (prepared) statements: parsed and planned
  // once per connection instead of on every request, which on PGlite (one
  // in-process backend) more than halves their cost.
  async get(accountId: string, id: string): Promise<Call | null> {
    const { rows } = await this.db.query<Row>({ name: 'calls.get', text: 'SELECT * FROM calls WHERE id = $2 AND account_id = $1', values: [accountId, id] })
    return rows[0] ? toCall(rows[0]) : null
  }

  /** The call with its recordings, in one round-trip (the API's GET /v1/calls/:id). */
  async getDetail(accountId: string, id: string): Promise<(Call & { recordings: unknown[] }) | null> {
    const { rows } = await this.db.query<Row & { recordings: unknown[] }>({
      name: 'calls.getDetail',
      text: `SELECT c.*, COALESCE((SELECT json_agg(json_build_object(
           'id', r.id, 'accountId', r.account_id, 'callId', r.call_id, 'conferenceId', r.conference_id, 'status', r.status,
           'format', r.format, 'durationMs', r.duration_ms, 'sizeBytes', r.size_bytes,
           'createdAt', to_char(r.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
           'updatedAt', to_char(r.updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')) ORDER BY r.seq)
         FROM recordings r WHERE r.account_id = c.account_id AND r.call_id = c.id), '[]'::json) AS recordings
       FROM calls c WHERE c.id = $2 AND c.account_id = $1`,
      values: [accountId, id],
    })
    return rows[0] ? { ...toCall(rows[0]), recordings: rows[0].recordings } : null
  }

  async getById(id: string): Promise<Call | null> {
    const { rows } = await this.db.query<Row>('SELECT * FROM calls WHERE id = $1', [id])
    return rows[0] ? toCall(rows[0]) : null
  }

  async findBySipCallId(sipCallId: string): Promise<Call | null> {
    const { rows } = await this.db.query<Row>('SELECT * FROM calls WHERE sip_call_id = $1 ORDER BY seq DESC LIMIT 1', [sipCallId])
    return rows[0] ? toCall(rows[0]) : null
  }

  /** Newest first. */
  list(accountId: string, filter: CallFilter, page: PageRequest): Promise<Page<Call>> {
    const where: string[] = []
    const params: unknown[] = []
    const add = (sql: string, v: unknown) => {
      params.push(v)
      where.push(sql.replaceAll('?', `$${params.length + 1}`))
    }
    if (filter.status) add('status = ?', filter.status)
    if (filter.direction) add('direction = ?', filter.direction)
    if (filter.number) add('(from_number = ? OR to_number = ?)', filter.number)
    if (filter.agentId) add('agent_id = ?', filter.agentId)
    if (filter.after) add('created_at >= ?', filter.after)
    if (filter.before) add('created_at < ?', filter.before)
    return pageQuery<Row, Call>(this.db, { table: 'calls', accountId, where, params, order: 'desc', page }, toCall)
  }

  /** Live calls of this engine node (or all), e.g. to end them on drain. */
  async listActive(nodeId?: string): Promise<Call[]> {
    const { rows } = await this.db.query<Row>(
      `SELECT * FROM calls WHERE status IN ('queued', 'ringing', 'in-progress') ${nodeId ? 'AND node_id = $1' : ''} ORDER BY seq`,
      nodeId ? [nodeId] : [],
    )
    return rows.map(toCall)
  }

  private async transition(
    id: string, allowedFrom: CallStatus[], set: string, params: unknown[], events: (call: Call) => Array<[EventType, Record<string, unknown>]>,
  ): Promise<Call> {
    return this.outbox.transaction(async (c, emit) => {
      const { rows } = await c.query<Row>(
        `UPDATE calls SET ${set}, updated_at = now() WHERE id = $1 AND status = ANY($2::text[]) RETURNING *`,
        [id, allowedFrom, ...params],
      )
      if (!rows[0]) {
        const cur = await c.query<Row>('SELECT * FROM calls WHERE id = $1', [id])
        if (!cur.rows[0]) throw invalidState(`call ${id} does not exist`)
        const call = toCall(cur.rows[0])
        // Repeating a transition the call already made is a no-op (SIP retransmissions, races with BYE).
        return call
      }
      const call = toCall(rows[0])
      for (const [type, data] of events(call)) {
        const event = await emit(call.accountId, type, data, call.id)
        // Each transition announces one status: its event goes to the call's status callback too.
        if (call.statusCallback) await queueStatusCallback(c, call.id, event.id)
      }
      return call
    })
  }

  /** queued → ringing (180/183 seen); emits `call.ringing`. */
  markRinging(id: string): Promise<Call> {
    return this.transition(id, ['queued'], `status = 'ringing', ringing_at = now()`, [], (c) => [['call.ringing', callEventData(c)]])
  }

  /** → in-progress (200 OK); emits `call.answered`. `sipCallId`: an outbound leg's, stored in the same statement. */
  markAnswered(id: string, sipCallId?: string): Promise<Call> {
    return this.transition(id, ['queued', 'ringing'], `status = 'in-progress', answered_at = now(), ringing_at = COALESCE(ringing_at, now()), sip_call_id = COALESCE($3, sip_call_id)`, [sipCallId ?? null],
      (c) => [['call.answered', callEventData(c)]])
  }

  /**
   * Ends a live call with a final status; emits `call.failed` for `failed`,
   * `call.ended` otherwise. Ending an already ended call changes nothing.
   */
  end(id: string, input: EndCallInput): Promise<Call> {
    return this.transition(id, ['queued', 'ringing', 'in-progress'],
      'status = $3, ended_reason = $4, hangup_by = $5, ended_at = now()', [input.status, input.endedReason, input.hangupBy ?? null],
      (c) => [[c.status === 'failed' ? 'call.failed' : 'call.ended', callEventData(c)]])
  }

  /** Sets the SIP Call-ID or trunk once known (outbound legs). */
  /** `agentId`: the agent a flow's ai_talk put on the call (the call is listed under it, as an agent call is). */
  async attach(id: string, fields: { sipCallId?: string; trunkId?: string; nodeId?: string; conferenceId?: string | null; agentId?: string }): Promise<void> {
    await this.db.query(
      `UPDATE calls SET sip_call_id = COALESCE($2, sip_call_id), trunk_id = COALESCE($3, trunk_id), node_id = COALESCE($4, node_id),
         conference_id = CASE WHEN $5::boolean THEN $6::uuid ELSE conference_id END, agent_id = COALESCE($7::uuid, agent_id), updated_at = now() WHERE id = $1`,
      [id, fields.sipCallId ?? null, fields.trunkId ?? null, fields.nodeId ?? null, 'conferenceId' in fields, fields.conferenceId ?? null, fields.agentId ?? null],
    )
  }

  private async withCall<T>(id: string, fn: (c: pg.PoolClient, emit: Emit, call: Call) => Promise<T>): Promise<T> {
    return this.outbox.transaction(async (c, emit) => {
      const { rows } = await c.query<Row>('SELECT * FROM calls WHERE id = $1 FOR UPDATE', [id])
      if (!rows[0]) throw invalidState(`call ${id} does not exist`)
      return fn(c, emit, toCall(rows[0]))
    })
  }

  /** Appends to the transcript; emits `call.transcript`. */
  appendTranscript(id: string, entry: TranscriptEntry): Promise<CallplaneEvent> {
    return this.withCall(id, async (c, emit, call) => {
      await c.query(`UPDATE calls SET transcript = transcript || $2::jsonb, updated_at = now() WHERE id = $1`, [id, JSON.stringify([entry])])
      return emit(call.accountId, 'call.transcript', { callId: id, ...entry }, id)
    })
  }

  /** Records one turn's latency breakdown (no event). */
  async addTiming(id: string, timing: TurnTiming): Promise<void> {
    await this.db.query(`UPDATE calls SET timings = timings || $2::jsonb, updated_at = now() WHERE id = $1`, [id, JSON.stringify([timing])])
  }

  /** Replaces the call's quality figures (RTCP-derived; no event). */
  async setQuality(id: string, quality: CallQuality): Promise<void> {
    await this.db.query(`UPDATE calls SET quality = $2, updated_at = now() WHERE id = $1`, [id, JSON.stringify(quality)])
  }

  /** Stores the summary; emits `call.summary`. */
  setSummary(id: string, summary: string): Promise<CallplaneEvent> {
    return this.withCall(id, async (c, emit, call) => {
      await c.query(`UPDATE calls SET summary = $2, updated_at = now() WHERE id = $1`, [id, summary])
      return emit(call.accountId, 'call.summary', { callId: id, summary }, id)
    })
  }

  /**
   * Announces a call event that changes no column: `call.dtmf`, `call.tool_call`,
   * `call.speech_update` (still through the outbox, so webhooks get it).
   */
  emit(id: string, type: Extract<EventType, 'call.dtmf' | 'call.tool_call' | 'call.speech_update'>, data: Record<string, unknown>): Promise<CallplaneEvent> {
    return this.withCall(id, async (_c, emit, call) => emit(call.accountId, type, { callId: id, ...data }, id))
  }

  /**
   * Emits `call.report`, the end-of-call report (Fonella's end-of-call report:
   * transcript, summary, recording, endedReason, duration, timings, quality in
   * one payload), once per call: only for a finished call, and only the first
   * time (report_at). Returns null when there was nothing (more) to report.
   */
  async emitReport(id: string): Promise<CallplaneEvent | null> {
    // Nothing waits on the report: it yields to what live calls wait on (e.g. a queue's next caller).
    await this.outbox.whenIdle()
    return this.outbox.transaction(async (c, emit) => {
      const { rows } = await c.query<Row>(
        `UPDATE calls SET report_at = now() WHERE id = $1 AND report_at IS NULL AND status = ANY($2::text[]) RETURNING *`, [id, FINAL_STATUSES],
      )
      if (!rows[0]) return null
      const call = toCall(rows[0])
      const recs = await c.query<{ id: string; status: string; format: string; duration_ms: number | null; size_bytes: string | null; conference_id: string | null }>(
        'SELECT id, status, format, duration_ms, size_bytes, conference_id FROM recordings WHERE account_id = $1 AND call_id = $2 ORDER BY seq', [call.accountId, id],
      )
      return emit(call.accountId, 'call.report', callReport(call, recs.rows), id)
    })
  }
}

/** Fonella's transcript string: one "Role: text" line per entry. */
const REPORT_ROLES: Record<TranscriptEntry['role'], string> = { user: 'User', assistant: 'AI', system: 'System', tool: 'Tool' }

/** The `call.report` payload (field names after Fonella's call object and end-of-call report). */
export function callReport(
  call: Call, recordings: Array<{ id: string; status: string; format: string; duration_ms: number | null; size_bytes: string | null }>,
): Record<string, unknown> {
  const recs = recordings.map((r) => ({
    id: r.id, status: r.status, format: r.format, durationMs: r.duration_ms, sizeBytes: r.size_bytes === null ? null : Number(r.size_bytes),
    ...(r.status === 'ready' ? { url: `/v1/recordings/${r.id}/download` } : {}),
  }))
  return {
    callId: call.id,
    type: call.direction === 'inbound' ? 'inboundPhoneCall' : 'outboundPhoneCall',
    status: call.status,
    from: call.from,
    to: call.to,
    agentId: call.agentId,
    startedAt: call.answeredAt ?? call.createdAt,
    endedAt: call.endedAt,
    duration: call.duration,
    endedReason: call.endedReason,
    hangupBy: call.hangupBy,
    summary: call.summary,
    // A line cut before a word of it was heard has nothing to show here (transcriptMessages keeps it, interrupted).
    transcript: call.transcript.filter((e) => e.text.length > 0).map((e) => `${REPORT_ROLES[e.role] ?? e.role}: ${e.text}`).join('\n'),
    transcriptMessages: call.transcript,
    timings: call.timings,
    quality: call.quality,
    recording: recs.find((r) => r.status === 'ready') ?? null,
    recordings: recs,
    metadata: call.metadata,
  }
}
