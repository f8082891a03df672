/**
 * What an agent on a call is told (the call, a logger) and what it reports:
 * its events and its end result. Shared by the pipeline runtime and the
 * websocket agent.
 */
import type { AmdResult } from './amd.ts'
import type { ToolCall } from './adapters/llm/contract.ts'
import type { ToolOutcome } from './tools.ts'
import type { BargeInRecord, Transcript, TranscriptEntry, TurnTiming } from './transcript.ts'

export interface AgentLogger {
  info(obj: object, msg?: string): void
  warn(obj: object, msg?: string): void
  error(obj: object, msg?: string): void
}

export const silentLogger: AgentLogger = { info() {}, warn() {}, error() {} }

export interface CallInfo {
  id: string
  from?: string
  to?: string
  direction?: 'inbound' | 'outbound'
}

export type AgentEndReason = 'end_call' | 'transfer' | 'max-duration' | 'max-silence' | 'remote-hangup' | 'stopped' | 'error' | 'machine-detected' | 'voicemail-left'

export interface AgentCallResult {
  reason: AgentEndReason
  transcript: ReturnType<Transcript['toJSON']>
  summary?: string
  transferTarget?: string
  /** Outbound calls with AMD: what answered. */
  amd?: AmdResult
}

export interface SpeechUpdate { role: 'user' | 'assistant'; status: 'started' | 'stopped' }

export interface ToolCallEvent {
  call: ToolCall
  outcome: ToolOutcome
}

export interface AgentEvents {
  transcript: [TranscriptEntry]
  turn: [TurnTiming]
  barge_in: [BargeInRecord]
  tool_call: [ToolCallEvent]
  /** Caller (VAD) or agent (first / last reply frame) started or stopped speaking: `call.speech_update`. */
  speech: [SpeechUpdate]
  stt_final: [{ text: string; source?: string }]
  amd: [AmdResult]
  ended: [AgentCallResult]
  error: [Error]
}
