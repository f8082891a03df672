/**
 * The call state machine of DESIGN.md:
 *
 *   queued → ringing → in-progress → completed
 *      ╰──────┴→ failed | busy | no-answer | canceled
 *
 * Pure: `transition` validates a step and stamps the timestamps; persistence
 * (and the outbox event in the same transaction) is the CallStore's job.
 */

export const CALL_STATUSES = ['queued', 'ringing', 'in-progress', 'completed', 'failed', 'busy', 'no-answer', 'canceled'] as const
export type CallStatus = (typeof CALL_STATUSES)[number]
export const TERMINAL_STATUSES: ReadonlySet<CallStatus> = new Set(['completed', 'failed', 'busy', 'no-answer', 'canceled'])
export type HangupBy = 'caller' | 'callee' | 'api' | 'system' | 'agent'
export type CallDirection = 'inbound' | 'outbound'

const NEXT: Record<CallStatus, readonly CallStatus[]> = {
  queued: ['ringing', 'in-progress', 'failed', 'busy', 'no-answer', 'canceled'],
  ringing: ['in-progress', 'failed', 'busy', 'no-answer', 'canceled'],
  // An answered call can only complete; how it ended is in endedReason.
  'in-progress': ['completed'],
  completed: [], failed: [], busy: [], 'no-answer': [], canceled: [],
}

export function isTerminal(s: CallStatus): boolean {
  return TERMINAL_STATUSES.has(s)
}

export function canTransition(from: CallStatus, to: CallStatus): boolean {
  return NEXT[from].includes(to)
}

/** The event DESIGN.md names for entering a status. */
export function eventFor(to: CallStatus): 'call.started' | 'call.ringing' | 'call.answered' | 'call.ended' | 'call.failed' {
  if (to === 'queued') return 'call.started'
  if (to === 'ringing') return 'call.ringing'
  if (to === 'in-progress') return 'call.answered'
  if (to === 'completed') return 'call.ended'
  return 'call.failed'
}

export interface CallTimes {
  createdAt: Date
  ringingAt?: Date | null
  answeredAt?: Date | null
  endedAt?: Date | null
}

export interface CallSnapshot extends CallTimes {
  status: CallStatus
  endedReason?: string | null
  hangupBy?: HangupBy | null
}

export interface TransitionInput {
  to: CallStatus
  endedReason?: string
  hangupBy?: HangupBy
  at?: Date
}

export class InvalidTransition extends Error {
  constructor(readonly from: CallStatus, readonly to: CallStatus) {
    super(`call cannot go from ${from} to ${to}`)
    this.name = 'InvalidTransition'
  }
}

/** The snapshot after a step, or throws InvalidTransition. Terminal steps need an endedReason. */
export function transition(cur: CallSnapshot, input: TransitionInput): CallSnapshot {
  if (!canTransition(cur.status, input.to)) throw new InvalidTransition(cur.status, input.to)
  const at = input.at ?? new Date()
  const next: CallSnapshot = { ...cur, status: input.to }
  if (input.to === 'ringing') next.ringingAt = at
  if (input.to === 'in-progress') next.answeredAt = at
  if (isTerminal(input.to)) {
    next.endedAt = at
    next.endedReason = input.endedReason ?? input.to
    next.hangupBy = input.hangupBy ?? null
  }
  return next
}

/** Whole seconds between answer and end; 0 for unanswered calls. */
export function durationSec(c: CallTimes): number {
  if (!c.answeredAt || !c.endedAt) return 0
  return Math.max(0, Math.round((c.endedAt.getTime() - c.answeredAt.getTime()) / 1000))
}

/**
 * The terminal step for a call whose node died (restart recovery): answered
 * calls complete, the others fail, both with an endedReason saying why.
 */
export function recoveryStep(cur: CallSnapshot, at = new Date()): TransitionInput | null {
  if (isTerminal(cur.status)) return null
  if (cur.status === 'in-progress') return { to: 'completed', endedReason: 'node-restart', hangupBy: 'system', at }
  return { to: 'failed', endedReason: 'node-restart', hangupBy: 'system', at }
}
