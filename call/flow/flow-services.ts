import type { Store } from '../../store/index.ts'
import type { Acd } from '../queues/acd.ts'
import type { FlowAction } from './flow-action.ts'
import type { FlowVariables } from './variables.ts'
import type { Logger } from 'pino'
import type { Call } from '../../store/calls.ts'
import type { CallControl } from '../call-control.ts'
import type { WebhookApp } from './webhook-app.ts'

/** What verbs reach beyond the call: the store (flows, conferences), the webhook-app client, the node, its queues. */
export interface FlowServices {
  store: Store
  app: WebhookApp
  nodeId: string
  /** The queues' ACD on this node (`queue_join`); absent where the engine runs none. */
  acd?: Acd | undefined
  /**
   * Runs actions on the verb's call beside the verb, as a run of their own
   * (a queue's wait flow while `queue_join` waits): `variables` start it,
   * `stop()` ends it (the caller of stop interrupts its media). Not stored
   * as an activeflow: the verb that forked it is the one the call shows.
   */
  fork?(parent: ForkParent, actions: FlowAction[], variables: Record<string, string>): ForkedRun
}

export interface ForkedRun {
  readonly vars: FlowVariables
  /** Resolves with why the run ended (completed, stopped, hung-up, cancelled, call-ended, error). */
  readonly done: Promise<{ reason: string; error?: string }>
  stop(): void
}

/** The verb's side of a fork: the call it runs on and how it reaches it. */
export interface ForkParent {
  readonly call: Call
  readonly control: CallControl
  readonly log: Logger
}
