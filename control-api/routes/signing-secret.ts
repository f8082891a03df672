import type { FastifyPluginAsync } from 'fastify'
import { Type } from '@sinclair/typebox'
import type { TypeBoxRequestProvider } from '../schemas.ts'
import { Nullable, Timestamp, errors } from '../schemas.ts'
import type { RouteOptions } from '../deps.ts'

const SIGNING = 'Standard Webhooks: `webhook-id`, `webhook-timestamp` (unix seconds) and `webhook-signature: v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">`, ' +
  'keyed with the base64 part of the secret after `whsec_` (any standardwebhooks library verifies it). A GET request has no body: the full URL it was sent to is signed instead (compare with sign(id, timestamp, url), since the libraries\' verify() parses a JSON body).'

export const SigningSecretSchema = Type.Object({
  secret: Type.String({ description: 'The account\'s application signing secret (whsec_…)' }),
  createdAt: Timestamp,
  rotatedAt: Nullable(Type.String({ format: 'date-time', description: 'The last rotation; null while the first secret is in use' })),
}, { $id: 'SigningSecret' })

/**
 * /v1/signing-secret: the secret status callbacks and webhook apps (`url`
 * programs) are signed with, one per account, created on first use. Scope
 * webhooks:manage (it verifies the same kind of request /v1/webhooks sends).
 */
export const signingSecretRoutes: FastifyPluginAsync<RouteOptions> = async (base, { deps }) => {
  const app = base.withTypeProvider<TypeBoxRequestProvider>()
  const repo = deps.store.signingSecrets
  const config = { scope: 'webhooks:manage' as const }
  const tags = ['webhooks']
  app.get('/signing-secret', {
    config, schema: {
      tags, summary: 'The account\'s signing secret for status callbacks and webhook apps',
      description: `Requests the engine makes to your status_callback and webhook-app (url) endpoints are signed with this secret. ${SIGNING}`,
      response: { 200: SigningSecretSchema, ...errors() },
    },
  }, async (req) => repo.get(req.auth.accountId))
  app.post('/signing-secret/rotate', {
    config, schema: {
      tags, summary: 'Replace the signing secret; returns the new one',
      description: 'Every request signed from now on (including retries of status callbacks queued before) verifies only with the new secret.',
      response: { 200: SigningSecretSchema, ...errors() },
    },
  }, async (req) => repo.rotate(req.auth.accountId))
}
