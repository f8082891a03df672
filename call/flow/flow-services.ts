import type { Store } from '../../store/index.ts'
import type { WebhookApp } from './webhook-app.ts'

/** What verbs reach beyond the call: the store (flows, conferences), the webhook-app client, and the node. */
export interface FlowServices {
  store: Store
  app: WebhookApp
  nodeId: string
}
