/**
 * The failover policy between carrier routes (pure: no SIP here): which
 * outcomes of one attempt move on to the next carrier route, and the final
 * status of a call no carrier answered. The candidates themselves, in
 * failover order (longest prefix, then priority), come from the store
 * (store/carrier-routes.ts `candidates`).
 */

export type AttemptOutcome =
  | { kind: 'answered' }
  | { kind: 'response'; status: number }
  /** No final response at all (Timer B, RFC 3261 §17.1.1.2) or transport error. */
  | { kind: 'timeout' }
  /** Our ring timeout expired after the far end started ringing: no-answer. */
  | { kind: 'ring-timeout' }
  /** We (or the API) canceled. */
  | { kind: 'canceled' }

/**
 * Whether to try the next carrier route. Yes on 408, 5xx, 6xx and transport timeout;
 * never on busy (486, 600), no-answer (480, ring timeout) or cancel (487):
 * those are the callee's answer, not the carrier's failure. 4xx other than 408
 * is a problem with the request (404, 484...) that another carrier may route,
 * but retrying it would mostly repeat the rejection, so it ends the call.
 */
export function shouldFailover(outcome: AttemptOutcome): boolean {
  switch (outcome.kind) {
    case 'timeout': return true
    case 'response': {
      const s = outcome.status
      if (s === 408) return true
      if (s >= 500 && s < 600) return true
      // RFC 3261 §21.6: 600 Busy Everywhere is busy; 603/604/606 are global failures.
      if (s >= 600 && s !== 600) return true
      return false
    }
    default: return false
  }
}

export type TerminalStatus = 'completed' | 'failed' | 'busy' | 'no-answer' | 'canceled'

/** The call status and endedReason for a call that never got answered. */
export function failureStatus(outcome: AttemptOutcome): { status: TerminalStatus; endedReason: string } {
  switch (outcome.kind) {
    case 'answered': return { status: 'completed', endedReason: 'completed' }
    case 'timeout': return { status: 'failed', endedReason: 'sip-timeout' }
    case 'ring-timeout': return { status: 'no-answer', endedReason: 'no-answer' }
    case 'canceled': return { status: 'canceled', endedReason: 'canceled' }
    case 'response': {
      const s = outcome.status
      if (s === 486 || s === 600) return { status: 'busy', endedReason: `sip-${s}-busy` }
      if (s === 480 || s === 408) return { status: s === 408 ? 'failed' : 'no-answer', endedReason: s === 408 ? 'sip-408-timeout' : 'sip-480-unavailable' }
      if (s === 487) return { status: 'canceled', endedReason: 'sip-487-canceled' }
      if (s === 603) return { status: 'failed', endedReason: 'sip-603-declined' }
      return { status: 'failed', endedReason: `sip-${s}` }
    }
  }
}
