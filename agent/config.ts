/**
 * An agent's runtime configuration. Field names follow the references
 * (Leadlock agent fields in camelCase: systemPrompt, greeting, aiSpeaksFirst,
 * vadSilenceDurationMs, maxCallDurationMinutes, maxSilenceSeconds, toolsEnabled,
 * transferTargets; Fonella tools), so control-api can map stored agents 1:1.
 */
import type { JsonValue } from './adapters/json.ts'
import type { AmdOptions } from './amd.ts'
import type { BuiltinToolName, HttpToolConfig, TransferTarget } from './tools.ts'

export interface AdapterSpec {
  /** Registered provider name: "pocketsphinx", "deepgram", "scripted", "openai", "espeak", "elevenlabs", ... */
  provider: string
  options?: { [key: string]: JsonValue }
}

/** One spec, or a fallback chain (first is primary). */
export type AdapterChoice = AdapterSpec | AdapterSpec[]

export interface BargeInPolicy {
  enabled: boolean
  /** Voiced time before an interruption stands (shorter bursts are false alarms). */
  minSpeechMs: number
  /** Words the STT must have heard before an interruption stands (0 = don't wait for STT). */
  minWords: number
  /** Resume the paused agent speech when the burst turns out to be a false alarm. */
  resumeAfterFalseAlarm: boolean
  /** After a false alarm, the caller's silence before the paused speech resumes (0 = at once). */
  resumeAfterMs: number
  /** Voiced time before output pauses (the packet-level reaction). */
  onsetMs: number
}

/** Answering-machine detection on outbound calls (agent/amd.ts). */
export interface AmdPolicy {
  /**
   * When a machine answers: `hangup` ends the call at once (reason
   * `machine-detected`); `leave_message` waits for the beep (or the end of the
   * machine's greeting), speaks `message`, and hangs up (`voicemail-left`);
   * `continue` talks as if a person had answered.
   */
  onMachine: 'hangup' | 'leave_message' | 'continue'
  /** What leave_message says (default: the greeting). */
  message?: string
  detector?: AmdOptions
  /** leave_message without a beep: this much silence after the machine's greeting means "speak now". */
  endOfGreetingSilenceMs?: number
  /** leave_message: speak after this long even if neither beep nor silence came. */
  maxWaitMs?: number
}

export interface AgentConfig {
  id?: string
  name?: string
  /** `pipeline`: STT→LLM→TTS here. `websocket`: bring your own bot (Twilio Media Streams). */
  type: 'pipeline' | 'websocket'
  systemPrompt: string
  greeting?: string
  aiSpeaksFirst: boolean
  /** Outbound calls: said instead of `greeting` (Leadlock `greeting_outbound`). */
  greetingOutbound?: string
  /** Outbound calls: whether the agent speaks first (Leadlock `ai_speaks_first_outbound`); default `aiSpeaksFirst`. */
  aiSpeaksFirstOutbound?: boolean
  /** Said before anything else, not interruptible (e.g. "this call is recorded"). */
  disclosure?: string
  /**
   * `{{name}}` values substituted into the prompt, greetings, disclosure and
   * voicemail message when the call starts (agent/template-variables.ts).
   */
  variables?: Record<string, string>
  greetingInterruptible: boolean
  voice?: string
  language?: string
  temperature?: number
  stt: AdapterChoice
  llm: AdapterChoice
  tts: AdapterChoice
  /** Phrases the caller is expected to say (STT grammar / keyword hints). */
  expectedPhrases: string[]
  tools: HttpToolConfig[]
  toolsEnabled: BuiltinToolName[]
  transferTargets: TransferTarget[]
  /** What the agent says while a `speakDuringExecution` tool runs. */
  toolFillerPhrase: string
  vadThreshold?: number
  /** Inbound VAD engine (agent/vad/choice.ts); default `webrtc`. */
  vad?: 'webrtc' | 'energy' | 'silero'
  vadSilenceDurationMs: number
  /** Audio before the detected onset that still belongs to the caller's turn (Leadlock `vad_prefix_padding_ms`). */
  vadPrefixPaddingMs: number
  bargeIn: BargeInPolicy
  /** 0 = unlimited. */
  maxCallDurationMinutes: number
  /** 0 = unlimited. After this much mutual silence the agent prompts once, then hangs up. */
  maxSilenceSeconds: number
  silencePrompt: string
  /** Said when max duration is reached, before hanging up. */
  maxDurationMessage?: string
  /** Ask the LLM for a summary at call end. */
  summary: boolean
  /** System prompt for that summary (default: two sentences). */
  summaryPrompt?: string
  /** Outbound calls only: detect answering machines first and apply this policy. */
  amd?: AmdPolicy
  /**
   * websocket agent type: `twilio` (default) speaks Twilio Media Streams JSON,
   * `raw` sends and takes binary 16-bit little-endian PCM at 8 kHz, 20 ms per message.
   */
  websocket?: { url: string; encapsulation?: 'twilio' | 'raw'; headers?: Record<string, string>; customParameters?: Record<string, string> }
}

/** A transfer target as the API stores it (`destination`), accepted beside the runtime's own shape (`number`). */
export interface StoredTransferTarget {
  name: string
  destination: string
  description?: string
  whisper?: string
}

export type AgentConfigInput = Partial<Omit<AgentConfig, 'bargeIn' | 'transferTargets'>> & {
  bargeIn?: Partial<BargeInPolicy>
  transferTargets?: Array<TransferTarget | StoredTransferTarget>
}

function transferTarget(t: TransferTarget | StoredTransferTarget): TransferTarget {
  if ('number' in t) return t
  return { name: t.name, number: t.destination, ...(t.description !== undefined ? { reason: t.description } : {}), ...(t.whisper !== undefined ? { whisper: t.whisper } : {}) }
}

export function resolveAgentConfig(input: AgentConfigInput): AgentConfig {
  return {
    type: input.type ?? 'pipeline',
    systemPrompt: input.systemPrompt ?? 'You are a helpful phone agent. Keep answers short.',
    aiSpeaksFirst: input.aiSpeaksFirst ?? true,
    greetingInterruptible: input.greetingInterruptible ?? true,
    stt: input.stt ?? { provider: 'pocketsphinx' },
    llm: input.llm ?? { provider: 'scripted' },
    tts: input.tts ?? { provider: 'espeak' },
    expectedPhrases: input.expectedPhrases ?? [],
    tools: input.tools ?? [],
    toolsEnabled: input.toolsEnabled ?? ['end_call', 'transfer_call', 'send_dtmf'],
    transferTargets: (input.transferTargets ?? []).map(transferTarget),
    toolFillerPhrase: input.toolFillerPhrase ?? 'One moment please.',
    vadSilenceDurationMs: input.vadSilenceDurationMs ?? 500,
    vadPrefixPaddingMs: input.vadPrefixPaddingMs ?? 0,
    maxCallDurationMinutes: input.maxCallDurationMinutes ?? 30,
    maxSilenceSeconds: input.maxSilenceSeconds ?? 120,
    silencePrompt: input.silencePrompt ?? 'Are you still there?',
    summary: input.summary ?? false,
    ...(input.id !== undefined ? { id: input.id } : {}),
    ...(input.name !== undefined ? { name: input.name } : {}),
    ...(input.greeting !== undefined ? { greeting: input.greeting } : {}),
    ...(input.greetingOutbound !== undefined ? { greetingOutbound: input.greetingOutbound } : {}),
    ...(input.aiSpeaksFirstOutbound !== undefined ? { aiSpeaksFirstOutbound: input.aiSpeaksFirstOutbound } : {}),
    ...(input.disclosure !== undefined ? { disclosure: input.disclosure } : {}),
    ...(input.variables !== undefined ? { variables: input.variables } : {}),
    ...(input.voice !== undefined ? { voice: input.voice } : {}),
    ...(input.language !== undefined ? { language: input.language } : {}),
    ...(input.temperature !== undefined ? { temperature: input.temperature } : {}),
    ...(input.vadThreshold !== undefined ? { vadThreshold: input.vadThreshold } : {}),
    ...(input.vad !== undefined ? { vad: input.vad } : {}),
    ...(input.maxDurationMessage !== undefined ? { maxDurationMessage: input.maxDurationMessage } : {}),
    ...(input.summaryPrompt !== undefined ? { summaryPrompt: input.summaryPrompt } : {}),
    ...(input.amd !== undefined ? { amd: input.amd } : {}),
    ...(input.websocket !== undefined ? { websocket: input.websocket } : {}),
    bargeIn: {
      enabled: input.bargeIn?.enabled ?? true,
      minSpeechMs: input.bargeIn?.minSpeechMs ?? 300,
      minWords: input.bargeIn?.minWords ?? 0,
      resumeAfterFalseAlarm: input.bargeIn?.resumeAfterFalseAlarm ?? true,
      resumeAfterMs: input.bargeIn?.resumeAfterMs ?? 0,
      onsetMs: input.bargeIn?.onsetMs ?? 40,
    },
  }
}
