/**
 * A deterministic "LLM" driven by the agent's rules: the offline default, and
 * the reference model for tests and benchmarks (zero latency unless asked).
 *
 * Rules are tried in order against the latest user turn (speech or DTMF):
 * phrase match (all words of the phrase present, in order) or keyword/intent
 * match, then the rule replies, calls a tool, transfers or ends the call.
 * After a tool result comes back, the rule's `afterTool` template is spoken
 * with `{result}` (or `{result.field}`) substituted, or a failure line when
 * the tool failed or the call does not have it.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import { normalizePhrase } from '../stt/jsgf.ts'
import { compileRulePattern, rulePatternMatches, type RulePattern } from './rule-pattern.ts'
import type { JsonValue } from '../json.ts'
import type { ChatMessage, LlmAdapter, LlmChunk, LlmRequest } from './contract.ts'

export interface ScriptedRule {
  /** Rule id, shown in logs; defaults to the first phrase. */
  id?: string
  /** Any of these phrases (word order kept, other words allowed in between). */
  phrases?: string[]
  /** Any of these keywords anywhere in the utterance. */
  keywords?: string[]
  /** Case-insensitive regular expression on the utterance (the stored agent's `match`). */
  pattern?: string
  /** DTMF digits that trigger this rule (the runtime sends them as "DTMF: 1"). */
  dtmf?: string
  reply?: string
  tool?: { name: string; arguments?: { [key: string]: JsonValue } }
  /** Spoken after the tool returns: `{result}` is the tool's result string. */
  afterTool?: string
  /** Spoken after the tool fails. */
  onToolError?: string
  transferTo?: string
  endCall?: boolean
  sendDtmf?: string
}

export interface ScriptedOptions {
  rules: ScriptedRule[]
  fallback?: string
  /** Simulated latency before the first token, for tests and the benchmark. */
  firstTokenDelayMs?: number
  /** Delay between tokens. */
  tokenDelayMs?: number
}

const DTMF_PREFIX = 'DTMF: '

const MAX_CACHED_PATTERNS = 10_000
const patterns = new Map<string, RulePattern | null>()
/**
 * Rules come from stored JSON: a pattern that does not compile never matches
 * (the API validates them on write). Compiled for RE2: linear-time matching,
 * so no pattern can hang the call path.
 */
function compiled(pattern: string): RulePattern | null {
  let re = patterns.get(pattern)
  if (re === undefined) {
    try {
      re = compileRulePattern(pattern)
    } catch {
      re = null
    }
    // Tenants write patterns: the cache is bounded so edits over a long uptime cannot grow it without end.
    if (patterns.size >= MAX_CACHED_PATTERNS) patterns.clear()
    patterns.set(pattern, re)
  }
  return re
}

/**
 * Phrases a pattern stands for when it is plain words, or alternatives of
 * plain words ("opening hours|when are you open"): those can go into the STT
 * grammar. Anything with other regex syntax gives none (the general model
 * fallback still hears it).
 */
export function patternPhrases(pattern: string): string[] {
  const body = pattern.replace(/^\^|\$$/g, '').replace(/^\((.*)\)$/, '$1')
  const alts = body.split('|').map((a) => a.trim())
  return alts.every((a) => /^[a-z0-9' ]+$/i.test(a)) ? alts.filter(Boolean) : []
}

function matches(rule: ScriptedRule, text: string): boolean {
  if (text.startsWith(DTMF_PREFIX)) {
    if (rule.dtmf !== undefined) return text.slice(DTMF_PREFIX.length).trim() === rule.dtmf
    // A stored agent's rules have only `match`: a pattern written for keypresses ("^DTMF: 1$") matches them.
    return rule.pattern !== undefined && compiled(rule.pattern)?.test(text) === true
  }
  const words = normalizePhrase(text)
  for (const p of rule.phrases ?? []) {
    const want = normalizePhrase(p)
    let i = 0
    for (const w of words) if (w === want[i]) i++
    if (want.length > 0 && i === want.length) return true
  }
  if (rule.pattern !== undefined) {
    const re = compiled(rule.pattern)
    if (re && rulePatternMatches(re, text)) return true
  }
  for (const k of rule.keywords ?? []) {
    const kw = normalizePhrase(k)
    if (kw.length && kw.every((w) => words.includes(w))) return true
  }
  return false
}

let callSeq = 0

const TOOL_FAILED = "Sorry, I couldn't get that information right now."

/**
 * A reply template with the tool's result: `{result}` is the whole result
 * string; when the result is a JSON object, `{result.key}` is one of its
 * fields (a missing field says nothing rather than "undefined").
 */
export function fillResult(template: string, result: string): string {
  let obj: { [key: string]: JsonValue } | undefined
  try {
    const v: unknown = JSON.parse(result)
    if (v && typeof v === 'object' && !Array.isArray(v)) obj = v as { [key: string]: JsonValue }
  } catch {
    /* a plain string result */
  }
  return template.replace(/\{result(?:\.([A-Za-z0-9_]+))?\}/g, (_m, key: string | undefined) => {
    if (key === undefined) return result
    const v = obj?.[key]
    return v === undefined || v === null ? '' : typeof v === 'string' ? v : JSON.stringify(v)
  })
}

/**
 * The scripted model's summary: what the caller said and how the agent's last
 * line went, taken from the transcript text the runtime sends
 * ("Caller: …" / "Agent: …" lines). Deterministic, so tests can check it.
 */
function summarize(transcript: string): string {
  const lines = transcript.split('\n')
  const said = lines.filter((l) => l.startsWith('Caller: ')).map((l) => l.slice('Caller: '.length).trim())
  const agent = lines.filter((l) => l.startsWith('Agent: ')).map((l) => l.slice('Agent: '.length).trim())
  const caller = said.length ? `The caller said: ${said.join('; ')}.` : 'The caller said nothing.'
  return agent.length ? `${caller} The agent's last words: ${agent[agent.length - 1]}` : caller
}

export class ScriptedLlm implements LlmAdapter {
  readonly name = 'scripted'
  constructor(private readonly opts: ScriptedOptions) {}

  /** All phrases the rules listen for: the STT grammar is built from these. */
  expectedPhrases(): string[] {
    return this.opts.rules.flatMap((r) => [...(r.phrases ?? []), ...(r.keywords ?? []), ...(r.pattern !== undefined ? patternPhrases(r.pattern) : [])])
  }

  async *chat(request: LlmRequest): AsyncIterable<LlmChunk> {
    const { signal } = request
    const last = request.messages[request.messages.length - 1]
    if (this.opts.firstTokenDelayMs) await sleep(this.opts.firstTokenDelayMs, undefined, { signal })
    signal.throwIfAborted()
    if (request.purpose === 'summary') {
      yield* this.speak(summarize(last?.role === 'user' ? last.content : ''), signal)
      yield { type: 'done', finishReason: 'stop' }
      return
    }
    if (last?.role === 'tool') {
      const rule = this.ruleForToolResult(request.messages)
      const failed = last.content.startsWith('ERROR')
      const template = failed
        ? (rule?.onToolError ?? TOOL_FAILED)
        : (rule?.afterTool ?? '{result}')
      yield* this.speak(fillResult(template, last.content), signal)
      yield* this.actions(rule, signal, false)
      yield { type: 'done', finishReason: 'stop' }
      return
    }
    const userText = last?.role === 'user' ? last.content : ''
    const rule = this.opts.rules.find((r) => matches(r, userText))
    if (!rule) {
      yield* this.speak(this.opts.fallback ?? "Sorry, I didn't catch that.", signal)
      yield { type: 'done', finishReason: 'stop' }
      return
    }
    if (rule.reply) yield* this.speak(rule.reply, signal)
    if (rule.tool) {
      if (!request.tools.some((t) => t.name === rule.tool!.name)) {
        // The rule names a tool this call does not have (not attached, disabled): say so rather than nothing.
        yield* this.speak(rule.onToolError ?? TOOL_FAILED, signal)
        yield { type: 'done', finishReason: 'stop' }
        return
      }
      yield {
        type: 'tool_call',
        call: { id: `call_${++callSeq}`, name: rule.tool.name, arguments: JSON.stringify(rule.tool.arguments ?? {}) },
      }
      yield { type: 'done', finishReason: 'tool_calls' }
      return
    }
    yield* this.actions(rule, signal, true)
    yield { type: 'done', finishReason: 'stop' }
  }

  /** Transfer / end / DTMF are expressed as calls to the built-in tools, like a real model would. */
  private async *actions(rule: ScriptedRule | undefined, signal: AbortSignal, _first: boolean): AsyncIterable<LlmChunk> {
    if (!rule) return
    signal.throwIfAborted()
    if (rule.sendDtmf) yield { type: 'tool_call', call: { id: `call_${++callSeq}`, name: 'send_dtmf', arguments: JSON.stringify({ digits: rule.sendDtmf }) } }
    if (rule.transferTo) yield { type: 'tool_call', call: { id: `call_${++callSeq}`, name: 'transfer_call', arguments: JSON.stringify({ target: rule.transferTo }) } }
    if (rule.endCall) yield { type: 'tool_call', call: { id: `call_${++callSeq}`, name: 'end_call', arguments: '{}' } }
  }

  private ruleForToolResult(messages: ChatMessage[]): ScriptedRule | undefined {
    const last = messages[messages.length - 1]
    if (last?.role !== 'tool') return undefined
    // The user turn that led to this tool call decides which rule continues.
    for (let i = messages.length - 1; i >= 0; i--) {
      const m = messages[i]!
      if (m.role === 'user') return this.opts.rules.find((r) => r.tool?.name === last.name && matches(r, m.content))
    }
    return undefined
  }

  private async *speak(text: string, signal: AbortSignal): AsyncIterable<LlmChunk> {
    // Word-sized tokens, like a real stream, so the sentence splitter is exercised.
    const tokens = text.match(/\S+\s*/g) ?? []
    for (const t of tokens) {
      signal.throwIfAborted()
      if (this.opts.tokenDelayMs) await sleep(this.opts.tokenDelayMs, undefined, { signal })
      yield { type: 'text', text: t }
    }
  }
}
