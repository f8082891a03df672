import type { Store } from '../store/index.ts'
import type { CallControlSlot } from '../call/call-control.ts'
import type { CallPrograms } from '../call/flow/index.ts'
import type { CampaignDialer } from '../call/outbound/campaign-dialer.ts'
import { ApiError } from './errors.ts'
import type { ReadCache } from './read-cache.ts'
import type { OutboundUrlPolicy } from '../config/outbound-url-policy.ts'
import type { ScheduledCalls } from '../call/outbound/scheduled-calls.ts'
import type { Sequences } from '../call/outbound/sequences.ts'

/** What every /v1 route plugin gets. */
export interface ApiDeps {
  store: Store
  callControl: CallControlSlot
  /** Flows and webhook apps on this node's calls (absent where the API runs without a SIP side). */
  programs?: CallPrograms | undefined
  /** Embedded/dev mode: webhook URLs may be plain http. */
  allowInsecureWebhooks: boolean
  /** Drops cached auth for a key (revocation takes effect at once on this node). */
  invalidateKey: (keyId?: string) => void
  /** Short-lived cache for the hot call read routes. */
  readCache: ReadCache
  /** Which tenant URLs the engine may reach (status callbacks, webhook apps): checked when they are set. */
  urlPolicy: OutboundUrlPolicy
  /** The campaign dialer (status changes, targets added to a running campaign's list); absent without a scheduler. */
  campaigns?: CampaignDialer | undefined
  /** Scheduled calls and AI callbacks on the job scheduler (absent where the API runs without the engine). */
  scheduledCalls?: ScheduledCalls | undefined
  /** Leadlock sequences on the job scheduler (absent where the API runs without the engine). */
  sequences?: Sequences | undefined
}

export interface RouteOptions {
  deps: ApiDeps
}

export const notFoundError = (what: string, id: string) => new ApiError(404, 'not_found', `${what} ${id} not found`)

/** Returns the value or throws 404 (also for another account's resource: the repositories scope by account). */
export function found<T>(v: T | null | undefined, what: string, id: string): T {
  if (v === null || v === undefined) throw notFoundError(what, id)
  return v
}
