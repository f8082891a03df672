/**
 * Adapters are chosen per agent by provider name plus options. A new vendor is
 * one file plus one `register*` call. A list of specs becomes a fallback chain.
 */
import type { AdapterChoice, AdapterSpec, AgentConfig } from '../config.ts'
import type { FallbackOptions } from './fallback-chain.ts'
import { FallbackStt } from './stt/fallback.ts'
import { FallbackLlm } from './llm/fallback.ts'
import { FallbackTts } from './tts/fallback.ts'
import type { JsonValue } from './json.ts'
import type { SttAdapter } from './stt/contract.ts'
import type { LlmAdapter } from './llm/contract.ts'
import type { TtsAdapter } from './tts/contract.ts'

export type AdapterOptions = { [key: string]: JsonValue }
export type Factory<T> = (options: AdapterOptions, agent: AgentConfig) => T

/**
 * What a provider reads from an agent's adapter settings, so the API can
 * refuse a setting that would do nothing (`model` on espeak-ng, a misspelt
 * option). Absent: the provider takes anything (a deployment's own adapter).
 */
export interface ProviderFields {
  /** Whether the provider has a model choice (the API's `model`). */
  model: boolean
  /** Whether the provider has voices (the API's `voice`). */
  voice: boolean
  /** The option keys it reads. */
  options: readonly string[]
}

export type AdapterKind = 'stt' | 'llm' | 'tts'

const stt = new Map<string, Factory<SttAdapter>>()
const llm = new Map<string, Factory<LlmAdapter>>()
const tts = new Map<string, Factory<TtsAdapter>>()
const fields = new Map<string, ProviderFields>()

export function registerStt(name: string, f: Factory<SttAdapter>, reads?: ProviderFields): void {
  stt.set(name, f)
  if (reads) fields.set(`stt:${name}`, reads)
}
export function registerLlm(name: string, f: Factory<LlmAdapter>, reads?: ProviderFields): void {
  llm.set(name, f)
  if (reads) fields.set(`llm:${name}`, reads)
}
export function registerTts(name: string, f: Factory<TtsAdapter>, reads?: ProviderFields): void {
  tts.set(name, f)
  if (reads) fields.set(`tts:${name}`, reads)
}

export function providers(): { stt: string[]; llm: string[]; tts: string[] } {
  return { stt: [...stt.keys()], llm: [...llm.keys()], tts: [...tts.keys()] }
}

/** What a registered provider reads (undefined: unknown provider, or one that declared nothing). */
export function providerFields(kind: AdapterKind, name: string): ProviderFields | undefined {
  return fields.get(`${kind}:${name}`)
}

function build<T>(kind: string, table: Map<string, Factory<T>>, spec: AdapterSpec, agent: AgentConfig): T {
  const f = table.get(spec.provider)
  if (!f) throw new Error(`unknown ${kind} provider "${spec.provider}" (known: ${[...table.keys()].join(', ')})`)
  return f(spec.options ?? {}, agent)
}

function specs(choice: AdapterChoice): AdapterSpec[] {
  const list = Array.isArray(choice) ? choice : [choice]
  if (list.length === 0) throw new Error('empty adapter chain')
  return list
}

export function createStt(choice: AdapterChoice, agent: AgentConfig, fb?: FallbackOptions): SttAdapter {
  const list = specs(choice).map((s) => build('stt', stt, s, agent))
  return list.length === 1 ? list[0]! : new FallbackStt(list, fb)
}
export function createLlm(choice: AdapterChoice, agent: AgentConfig, fb?: FallbackOptions): LlmAdapter {
  const list = specs(choice).map((s) => build('llm', llm, s, agent))
  return list.length === 1 ? list[0]! : new FallbackLlm(list, fb)
}
export function createTts(choice: AdapterChoice, agent: AgentConfig, fb?: FallbackOptions): TtsAdapter {
  const list = specs(choice).map((s) => build('tts', tts, s, agent))
  return list.length === 1 ? list[0]! : new FallbackTts(list, fb)
}
