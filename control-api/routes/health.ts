import type { FastifyPluginAsync } from 'fastify'
import { Type } from '@sinclair/typebox'
import type { HealthRegistry } from '../health.ts'

const ComponentSchema = Type.Object({
  status: Type.Union([Type.Literal('up'), Type.Literal('down')]),
  detail: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
})
const HealthSchema = Type.Object({
  status: Type.Union([Type.Literal('ok'), Type.Literal('degraded')]),
  service: Type.String(),
  timestamp: Type.String({ format: 'date-time' }),
  draining: Type.Boolean(),
  components: Type.Record(Type.String(), ComponentSchema),
})

export interface HealthRouteOptions {
  health: HealthRegistry
  isDraining: () => boolean
}

/** GET /health: unauthenticated, for load balancers and uptime monitors. */
export const healthRoutes: FastifyPluginAsync<HealthRouteOptions> = async (app, opts) => {
  app.get('/health', {
    schema: { tags: ['health'], summary: 'Component health', response: { 200: HealthSchema, 503: HealthSchema } },
  }, async (_req, reply) => {
    const { healthy, components } = await opts.health.check()
    const draining = opts.isDraining()
    const ok = healthy && !draining
    return reply.code(ok ? 200 : 503).send({
      status: ok ? 'ok' : 'degraded',
      service: 'callplane',
      timestamp: new Date().toISOString(),
      draining,
      components,
    })
  })
}
