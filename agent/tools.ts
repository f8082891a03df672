/**
 * Tools the agent's LLM can call mid-call.
 *
 * - Custom HTTP tools in the Fonella shape (name, description, url, method,
 *   headers, inputSchema), signed with the Standard Webhooks scheme (the same
 *   scheme as our outbound webhooks, so one verifier serves both), 5 s default
 *   timeout clamped to 1–30 s. The endpoint answers JSON `{ "result": "..." }`.
 * - Built-ins: end_call, transfer_call(target), send_dtmf(digits).
 * - Host tools, opted into per agent (`builtinTools`): add_to_do_not_call,
 *   schedule_callback(when, reason), mark_booked. Their definitions are
 *   here; what they do is the engine's (store writes, the scheduler), so
 *   the call layer hands in a `run` per tool (call/call-agent.ts).
 *
 * A tool never throws into the runtime: every failure (timeout, HTTP error,
 * malformed JSON, network) becomes an `ERROR: ...` string that goes back to the
 * LLM, so the conversation continues and the model can apologise or retry.
 */
import { OutboundUrlRefused, type OutboundUrlPolicy } from '../config/outbound-url-policy.ts'
import { randomUUID } from 'node:crypto'
import { performance } from 'node:perf_hooks'
import { signatureHeaders } from '../store/webhook-signature.ts'
import type { JsonSchema, JsonValue } from './adapters/json.ts'
import type { ToolCall, ToolDefinition } from './adapters/llm/contract.ts'

export interface HttpToolConfig {
  name: string
  description: string
  url: string
  method?: 'GET' | 'POST'
  headers?: Record<string, string>
  inputSchema?: JsonSchema
  /** Fonella/Leadlock `webhook_timeout_ms`: default 5000, clamped to 1000–30000. */
  timeoutMs?: number
  /**
   * Leadlock `speak_during_execution` (default true): while the request runs,
   * true says the agent's `toolFillerPhrase`, a string says that line, false stays quiet.
   */
  speakDuringExecution?: boolean | string
  /** Standard Webhooks secret (`whsec_...` or raw base64) used to sign requests. */
  signingSecret?: string
}

export type BuiltinToolName = 'end_call' | 'transfer_call' | 'send_dtmf'

/** Built-ins an agent opts into (stored agent `builtinTools`), carried out by the engine around the agent. */
export const HOST_TOOL_NAMES = ['add_to_do_not_call', 'schedule_callback', 'mark_booked'] as const
export type HostToolName = (typeof HOST_TOOL_NAMES)[number]

/** What the engine does for one host tool call: its answer goes back to the LLM. Never throws. */
export type HostToolRun = (args: { [key: string]: JsonValue }, ctx: ToolContext) => Promise<{ ok: boolean; content: string }>
export type HostTools = Partial<Record<HostToolName, HostToolRun>>

export interface TransferTarget {
  name: string
  number: string
  reason?: string
  /** Said to the target when it answers, before the caller is connected. */
  whisper?: string
}

export interface ToolContext {
  callId: string
  from?: string
  to?: string
  agentId?: string
  signal?: AbortSignal
  /** Refuses tool URLs that reach the engine's own network (config/outbound-url-policy.ts). */
  urlPolicy?: OutboundUrlPolicy
}

export interface ToolOutcome {
  ok: boolean
  /** Sent back to the LLM as the tool message content. */
  content: string
  durationMs: number
  /** Set for the built-ins so the runtime can act on them. */
  action?: { kind: 'end_call' } | { kind: 'transfer'; target: string; whisper?: string } | { kind: 'send_dtmf'; digits: string }
  status?: number
}

export const DEFAULT_TOOL_TIMEOUT_MS = 5000

export function clampTimeout(ms: number | undefined): number {
  if (ms === undefined || !Number.isFinite(ms)) return DEFAULT_TOOL_TIMEOUT_MS
  return Math.min(30000, Math.max(1000, Math.round(ms)))
}

const BUILTIN_DEFS: Record<BuiltinToolName, ToolDefinition> = {
  end_call: {
    name: 'end_call',
    description: 'End the phone call. Use after saying goodbye.',
    parameters: { type: 'object', properties: {} },
  },
  transfer_call: {
    name: 'transfer_call',
    description: 'Transfer the caller to another number or named target.',
    parameters: {
      type: 'object',
      properties: { target: { type: 'string', description: 'Target name or phone number / SIP URI' } },
      required: ['target'],
    },
  },
  send_dtmf: {
    name: 'send_dtmf',
    description: 'Send DTMF digits on the call (e.g. to navigate an IVR).',
    parameters: {
      type: 'object',
      properties: { digits: { type: 'string', description: 'Digits 0-9, *, #, A-D' } },
      required: ['digits'],
    },
  },
}

const HOST_DEFS: Record<HostToolName, ToolDefinition> = {
  add_to_do_not_call: {
    name: 'add_to_do_not_call',
    description: 'Put the person on this call on the do-not-call list when they ask not to be called again ("stop calling me", "take me off your list"). They will not be called again.',
    parameters: { type: 'object', properties: { reason: { type: 'string', description: 'What they said, briefly' } } },
  },
  schedule_callback: {
    name: 'schedule_callback',
    description: 'Book a call back to the person on this call at the time they ask for. `when` is an ISO 8601 date-time (2025-06-01T10:00:00-04:00), "in N minutes/hours/days", or "today/tomorrow at HH[:MM] [am|pm]".',
    parameters: {
      type: 'object',
      properties: {
        when: { type: 'string', description: 'When to call back' },
        reason: { type: 'string', description: 'What the callback is about: it is given to the agent on the callback' },
        timezone: { type: 'string', description: 'IANA time zone of the person (e.g. America/New_York) for local times; default UTC' },
      },
      required: ['when'],
    },
  },
  mark_booked: {
    name: 'mark_booked',
    description: 'Record that an appointment or meeting was booked on this call.',
    parameters: { type: 'object', properties: { details: { type: 'string', description: 'What was booked, and when' } } },
  },
}

function parseArgs(raw: string): { [key: string]: JsonValue } | undefined {
  try {
    const v: unknown = JSON.parse(raw || '{}')
    if (v && typeof v === 'object' && !Array.isArray(v)) return v as { [key: string]: JsonValue }
  } catch {
    /* reported below */
  }
  return undefined
}

export class ToolBox {
  private readonly http = new Map<string, HttpToolConfig>()
  private readonly builtins: Set<BuiltinToolName>

  constructor(
    httpTools: HttpToolConfig[] = [],
    builtins: BuiltinToolName[] = ['end_call', 'transfer_call', 'send_dtmf'],
    private readonly transferTargets: TransferTarget[] = [],
    private readonly hostTools: HostTools = {},
  ) {
    for (const t of httpTools) this.http.set(t.name, t)
    this.builtins = new Set(builtins)
  }

  definitions(): ToolDefinition[] {
    const defs: ToolDefinition[] = [...this.builtins].map((b) => (b === 'transfer_call' ? this.transferDefinition() : BUILTIN_DEFS[b]))
    for (const name of HOST_TOOL_NAMES) if (this.hostTools[name]) defs.push(HOST_DEFS[name])
    for (const t of this.http.values()) {
      defs.push({ name: t.name, description: t.description, parameters: t.inputSchema ?? { type: 'object', properties: {} } })
    }
    return defs
  }

  /** transfer_call naming the agent's targets and when to use each (their `reason`), so the model can choose. */
  private transferDefinition(): ToolDefinition {
    const base = BUILTIN_DEFS.transfer_call
    if (this.transferTargets.length === 0) return base
    const list = this.transferTargets.map((t) => `"${t.name}"${t.reason ? `: ${t.reason}` : ''}`).join('; ')
    return { ...base, description: `${base.description} Named targets: ${list}.` }
  }

  get(name: string): HttpToolConfig | undefined {
    return this.http.get(name)
  }

  async execute(call: ToolCall, ctx: ToolContext): Promise<ToolOutcome> {
    const started = performance.now()
    const done = (o: Omit<ToolOutcome, 'durationMs'>): ToolOutcome => ({ ...o, durationMs: performance.now() - started })
    const args = parseArgs(call.arguments)
    if (!args) return done({ ok: false, content: `ERROR: arguments for ${call.name} are not a JSON object` })
    if (this.builtins.has(call.name as BuiltinToolName)) {
      switch (call.name as BuiltinToolName) {
        case 'end_call':
          return done({ ok: true, content: 'Call will end after the current reply.', action: { kind: 'end_call' } })
        case 'transfer_call': {
          const raw = typeof args.target === 'string' ? args.target : ''
          const named = this.transferTargets.find((t) => t.name.toLowerCase() === raw.toLowerCase())
          const target = named?.number ?? raw
          if (!target) return done({ ok: false, content: 'ERROR: transfer_call needs a target' })
          return done({ ok: true, content: `Transferring to ${named?.name ?? target}.`, action: { kind: 'transfer', target, ...(named?.whisper ? { whisper: named.whisper } : {}) } })
        }
        case 'send_dtmf': {
          const digits = typeof args.digits === 'string' ? args.digits : ''
          if (!/^[0-9*#A-Da-d]+$/.test(digits)) return done({ ok: false, content: 'ERROR: send_dtmf needs digits 0-9 * # A-D' })
          return done({ ok: true, content: `Sent ${digits}.`, action: { kind: 'send_dtmf', digits: digits.toUpperCase() } })
        }
      }
    }
    const host = this.hostTools[call.name as HostToolName]
    if (host) {
      const r = await host(args, ctx).catch((err: unknown) => ({ ok: false, content: `ERROR: ${call.name} failed (${(err as Error).message})` }))
      return done(r)
    }
    const tool = this.http.get(call.name)
    if (!tool) return done({ ok: false, content: `ERROR: unknown tool ${call.name}` })
    const r = await invokeHttpTool(tool, args, ctx)
    return done(r)
  }
}

/** Calls one HTTP tool; never throws. */
export async function invokeHttpTool(
  tool: HttpToolConfig,
  args: { [key: string]: JsonValue },
  ctx: ToolContext,
): Promise<Omit<ToolOutcome, 'durationMs'>> {
  const timeoutMs = clampTimeout(tool.timeoutMs)
  const method = tool.method ?? 'POST'
  const payload = JSON.stringify({ tool: tool.name, arguments: args, call: { id: ctx.callId, from: ctx.from, to: ctx.to, agentId: ctx.agentId } })
  const headers: Record<string, string> = { ...(tool.headers ?? {}), 'user-agent': 'callplane-agent' }
  let url = tool.url
  if (method === 'GET') {
    const u = new URL(tool.url)
    for (const [k, v] of Object.entries(args)) u.searchParams.set(k, typeof v === 'string' ? v : JSON.stringify(v))
    url = u.toString()
  } else headers['content-type'] = 'application/json'
  if (tool.signingSecret) {
    // GET has no body; sign the URL so the receiver can still verify the request.
    Object.assign(headers, signatureHeaders(tool.signingSecret, method === 'GET' ? url : payload, { id: `tool_${randomUUID()}` }))
  }
  const signals = [AbortSignal.timeout(timeoutMs)]
  if (ctx.signal) signals.push(ctx.signal)
  try {
    // check() answers early; the policy's own fetch re-checks every address
    // it connects to (redirects included), closing the DNS-rebinding gap.
    await ctx.urlPolicy?.check(url)
    const init = { method, headers, ...(method === 'GET' ? {} : { body: payload }), signal: AbortSignal.any(signals) }
    const res = ctx.urlPolicy ? await ctx.urlPolicy.fetch(url, init) : await fetch(url, init)
    const text = await res.text()
    if (!res.ok) return { ok: false, content: `ERROR: ${tool.name} failed with HTTP ${res.status}`, status: res.status }
    let parsed: unknown
    try {
      parsed = JSON.parse(text)
    } catch {
      return { ok: false, content: `ERROR: ${tool.name} returned malformed JSON`, status: res.status }
    }
    const result = parsed && typeof parsed === 'object' && 'result' in parsed ? (parsed as { result: unknown }).result : undefined
    if (result === undefined) return { ok: false, content: `ERROR: ${tool.name} returned no "result"`, status: res.status }
    return { ok: true, content: typeof result === 'string' ? result : JSON.stringify(result), status: res.status }
  } catch (err) {
    const e = err as Error
    if (e instanceof OutboundUrlRefused) return { ok: false, content: `ERROR: ${tool.name} is not allowed to call that address (${e.message})` }
    if (ctx.signal?.aborted) return { ok: false, content: `ERROR: ${tool.name} was cancelled` }
    if (e.name === 'TimeoutError') return { ok: false, content: `ERROR: ${tool.name} timed out after ${timeoutMs} ms` }
    return { ok: false, content: `ERROR: ${tool.name} could not be reached (${e.message})` }
  }
}
