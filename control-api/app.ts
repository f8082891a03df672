import Fastify, { LogController, type FastifyInstance, type FastifyError, type FastifyBaseLogger } from 'fastify'
import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import { verbOptionSchemas } from '../call/flow/index.ts'
import AjvCompiler from '@fastify/ajv-compiler'
import type { Options } from 'ajv'
import type { Logger } from 'pino'
import type { Registry } from 'prom-client'
import { ApiError, type ErrorBody } from './errors.ts'
import { StoreError } from '../store/errors.ts'
import { phoneFormatMessage, phoneNumberFormats } from './phone-number.ts'
import { MAX_JSON_DEPTH, badTextError, findBadText, jsonDepthExceeds, tooDeepError } from './request-text.ts'
import type { HealthRegistry } from './health.ts'
import { healthRoutes } from './routes/health.ts'
import { metricsRoutes } from './routes/metrics.ts'
import { homeRoutes } from './routes/home.ts'

export interface ApiServerOptions {
  logger: Logger
  registry: Registry
  health: HealthRegistry
  isDraining: () => boolean
  /** The demo agent's SIP URI for the `/` page (null when there is no demo number). */
  demoSipUri?: () => Promise<string | null>
  /** Registers the /v1 resource plugins; kept outside so the app stays a thin shell. */
  registerRoutes?: (app: FastifyInstance) => Promise<void>
}

/**
 * Validators by HTTP part: query strings and path parameters arrive as text,
 * so their values are coerced to the schema's types (`?limit=5`); bodies are
 * JSON and keep their types, so `"name": 123` is a 400, never stored as "123".
 */
function validatorPerPart(): AjvCompiler.BuildCompilerFromPool {
  const pool = AjvCompiler()
  return (externalSchemas, options) => {
    const coercing = pool(externalSchemas, options)
    const exact = pool(externalSchemas, { ...options, mode: undefined, customOptions: { ...options?.customOptions as Options, coerceTypes: false } })
    return (route) => (route.httpPart === 'body' ? exact : coercing)(route)
  }
}

/**
 * The Fastify app: error shape, OpenAPI, health and metrics. Resource routes
 * are plugins (one per route group, schemas beside handlers) registered under /v1.
 */
export async function buildApiServer(opts: ApiServerOptions): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: opts.logger as FastifyBaseLogger,
    // Per-request access logs would dominate the log at API load; errors still log.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: 1024 * 1024,
    ajv: { customOptions: { removeAdditional: false, coerceTypes: 'array', allErrors: true }, plugins: [phoneNumberFormats] },
    schemaController: { compilersFactory: { buildValidator: validatorPerPart() } },
    // Responses are only serialized, never checked against formats; declaring ours keeps the serializer's ajv quiet about them.
    serializerOpts: { ajv: { formats: { 'phone-number': true, 'phone-number-or-sip-uri': true } } },
  })

  // JSON bodies: nesting is bounded before parsing (a linear scan, no
  // recursion), then Fastify's own parser (prototype-poisoning checks), then
  // every string and key is checked for NUL and lone surrogates.
  const parseJson = app.getDefaultJsonParser('error', 'error')
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (req, body, done) => {
    const text = body as string
    if (jsonDepthExceeds(text, MAX_JSON_DEPTH)) return done(tooDeepError(), undefined)
    parseJson(req, text, (err: Error | null, value?: unknown) => {
      if (err) return done(err, undefined)
      const bad = findBadText(value)
      return bad ? done(badTextError('body', bad), undefined) : done(null, value)
    })
  })
  // Query strings and path parameters are decoded by Fastify (%00 becomes NUL).
  app.addHook('preValidation', async (req) => {
    for (const [where, value] of [['path', req.params], ['querystring', req.query]] as const) {
      const bad = findBadText(value)
      if (bad) throw badTextError(where, bad)
    }
  })

  app.setErrorHandler((err: FastifyError | ApiError | StoreError, req, reply) => {
    let body: ErrorBody
    let status: number
    // Store errors carry the same status/code/details as API errors; rendering
    // them here keeps their details instead of the generic 4xx branch dropping them.
    if (err instanceof ApiError || err instanceof StoreError) {
      status = err.statusCode
      body = { error: { code: err.code, message: err.message, ...(err.details !== undefined ? { details: err.details } : {}) } }
    } else if (err.validation) {
      status = 400
      const where = err.validationContext ?? 'request'
      for (const v of err.validation) {
        const readable = v.keyword === 'format' ? phoneFormatMessage(v.params.format) : null
        if (readable) v.message = readable
      }
      body = {
        error: {
          code: 'validation_failed',
          message: `invalid ${where}: ${err.validation.map((v) => `${v.instancePath || '/'} ${v.message}`).join('; ')}`,
          details: err.validation.map((v) => ({ path: v.instancePath, message: v.message, params: v.params })),
        },
      }
    } else if (typeof err.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 500) {
      // Fastify's own client errors (bad JSON, body too large, wrong content type).
      status = err.statusCode
      body = { error: { code: (err.code ?? 'bad_request').toLowerCase(), message: err.message } }
    } else {
      status = 500
      req.log.error({ err }, 'unhandled error')
      body = { error: { code: 'internal', message: 'internal error' } }
    }
    return reply.code(status).send(body)
  })
  app.setNotFoundHandler((req, reply) => {
    reply.code(404).send({ error: { code: 'not_found', message: `no route ${req.method} ${req.url.split('?')[0]}` } } satisfies ErrorBody)
  })

  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: { title: 'Callplane API', version: '1', description: 'Calls, numbers, agents, trunks, extensions, webhooks and events.' },
      components: {
        // Each flow verb's options (FlowVerbOption_<type>): flows accept actions loosely and check them
        // verb by verb (call/flow checkActions), so the verb schemas are documented here rather than inlined.
        schemas: Object.fromEntries(Object.entries(verbOptionSchemas()).map(([type, schema]) => [`FlowVerbOption_${type}`, schema])),
        securitySchemes: {
          bearer: { type: 'http', scheme: 'bearer' },
          apiKey: { type: 'apiKey', in: 'header', name: 'X-API-Key' },
        },
      },
      security: [{ bearer: [] }, { apiKey: [] }],
    },
  })
  await app.register(swaggerUi, { routePrefix: '/docs' })
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger())

  await app.register(healthRoutes, { health: opts.health, isDraining: opts.isDraining })
  await app.register(metricsRoutes, { registry: opts.registry })
  await app.register(homeRoutes, { demoSipUri: opts.demoSipUri ?? (async () => null) })
  if (opts.registerRoutes) await opts.registerRoutes(app)
  return app
}
