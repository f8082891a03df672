/**
 * Programmable calls: the verb interpreter (flow-run.ts), the verbs
 * (verbs/), their catalog (verb-catalog.ts), webhook apps (webhook-app.ts)
 * and the runs on this node's calls (call-programs.ts).
 */
import type { Logger } from 'pino'
import { OutboundUrlPolicy } from '../../config/outbound-url-policy.ts'
import type { Store } from '../../store/index.ts'
import type { CallControl } from '../call-control.ts'
import type { Acd } from '../queues/acd.ts'
import { CallPrograms } from './call-programs.ts'
import { checkActions } from './verb-catalog.ts'
import { WebhookApp } from './webhook-app.ts'

export interface CreateCallProgramsOptions {
  store: Store
  control: () => CallControl | null
  logger: Logger
  nodeId: string
  appTimeoutMs: number
  /** Webhook apps may be on this host's network (the embedded mode). */
  allowPrivateUrls: boolean
  /** The queues' ACD on this node, for `queue_join`. */
  acd?: Acd | undefined
}

export function createCallPrograms(o: CreateCallProgramsOptions): CallPrograms {
  const urlPolicy = new OutboundUrlPolicy({ allowPrivate: o.allowPrivateUrls })
  const app = new WebhookApp({ urlPolicy, timeoutMs: o.appTimeoutMs, checkActions, signingSecret: (accountId) => o.store.signingSecrets.secret(accountId) })
  return new CallPrograms({ store: o.store, control: o.control, app, logger: o.logger, nodeId: o.nodeId, acd: o.acd, onClose: () => urlPolicy.close() })
}

export { CallPrograms, APP_ERROR_PROMPT } from './call-programs.ts'
export { checkActions, verbOptionSchemas, verbTypes, MAX_ACTIONS } from './verb-catalog.ts'
export type { FlowAction, FlowActionInput } from './flow-action.ts'
