import type { FastifyPluginAsync } from 'fastify'
import type { Registry } from 'prom-client'

/** GET /metrics in the Prometheus text format, for scraping on a private network. */
export const metricsRoutes: FastifyPluginAsync<{ registry: Registry }> = async (app, { registry }) => {
  app.get('/metrics', { schema: { tags: ['health'], summary: 'Prometheus metrics', hide: false } }, async (_req, reply) => {
    return reply.type(registry.contentType).send(await registry.metrics())
  })
}
