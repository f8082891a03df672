import type { FastifyPluginAsync } from 'fastify'
import { Type } from '@sinclair/typebox'

export interface HomeRouteOptions {
  /** `sip:1000@host:port` while the demo number answers with an agent; null otherwise. */
  demoSipUri: () => Promise<string | null>
}

const HomeSchema = Type.Object({
  service: Type.Literal('callplane'),
  description: Type.String(),
  links: Type.Object({ docs: Type.String(), openapi: Type.String(), health: Type.String(), metrics: Type.String(), events: Type.String() }),
  demo: Type.Union([Type.Object({ sipUri: Type.String(), note: Type.String() }), Type.Null()]),
})

const DESCRIPTION = 'A SIP/RTP media engine with a REST and WebSocket control API for AI voice agents and voice apps.'

/**
 * Whether the client prefers HTML: text/html named explicitly with a q-value
 * at least that of application/json (RFC 9110 §12.5.1). Browsers name it;
 * curl's and most API clients' wildcard does not, so they get JSON.
 */
export function prefersHtml(accept: string | undefined): boolean {
  if (!accept) return false
  const q = (type: string): number => {
    for (const part of accept.split(',')) {
      const [media, ...params] = part.trim().split(';')
      if (media?.trim().toLowerCase() !== type) continue
      const qp = params.map((p) => p.trim()).find((p) => p.startsWith('q='))
      const v = qp ? Number(qp.slice(2)) : 1
      return Number.isFinite(v) ? v : 0
    }
    return 0
  }
  const html = q('text/html')
  return html > 0 && html >= q('application/json')
}

/** Text for an HTML text node or attribute. */
function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!)
}

function page(demo: string | null): string {
  const demoPart = demo
    ? `<p>Try the demo agent: call <code>${escapeHtml(demo)}</code> from any softphone (UDP or TCP, no account needed).
  It greets you and answers "hello" and "goodbye".</p>`
    : '<p>The demo number 1000 is not set up on this engine.</p>'
  return `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>Callplane</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:44rem;margin:3rem auto;padding:0 1rem;color:#222}code{background:#f3f3f3;padding:.1rem .3rem;border-radius:3px}li{margin:.3rem 0}</style>
</head>
<body>
<h1>Callplane</h1>
<p>${escapeHtml(DESCRIPTION)} Carriers and phones reach it over SIP; apps drive it over <code>/v1</code>
with an API key (<code>Authorization: Bearer &lt;key&gt;</code>).</p>
${demoPart}
<ul>
<li><a href="/docs">API documentation</a> (interactive)</li>
<li><a href="/openapi.json">OpenAPI document</a> (<code>/openapi.json</code>)</li>
<li><a href="/health">Health</a> (200 when every component is up, 503 otherwise)</li>
<li><a href="/metrics">Metrics</a> (Prometheus)</li>
<li>Events: <code>GET /v1/events</code> (WebSocket)</li>
</ul>
</body>
</html>
`
}

/**
 * GET /: what a person opening the engine's address in a browser needs (what
 * this is, where the docs are, the demo SIP URI); JSON for API clients.
 * Unauthenticated: it says nothing the start-up banner does not.
 */
export const homeRoutes: FastifyPluginAsync<HomeRouteOptions> = async (app, opts) => {
  app.get('/', {
    schema: {
      tags: ['health'], summary: 'What this is and where to go next: HTML for browsers, JSON otherwise',
      response: { 200: { content: { 'application/json': { schema: HomeSchema }, 'text/html': { schema: Type.String() } } } },
    },
  }, async (req, reply) => {
    const demo = await opts.demoSipUri().catch(() => null)
    reply.header('Vary', 'Accept')
    if (prefersHtml(req.headers.accept)) return reply.type('text/html; charset=utf-8').send(page(demo))
    return reply.type('application/json').send({
      service: 'callplane',
      description: DESCRIPTION,
      links: { docs: '/docs', openapi: '/openapi.json', health: '/health', metrics: '/metrics', events: '/v1/events' },
      demo: demo ? { sipUri: demo, note: 'call it from any softphone: the demo agent answers' } : null,
    })
  })
}
