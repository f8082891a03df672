import type { FastifyPluginAsync, FastifySchema } from 'fastify'
import type { SwaggerTransform } from '@fastify/swagger'
import type { TypeBoxRequestProvider } from '../schemas.ts'
import { Type } from '@sinclair/typebox'
import { EVENT_TYPES, type CallplaneEvent, type EventType } from '../../store/outbox.ts'
import { isFinal } from '../../store/calls.ts'
import { found, type RouteOptions } from '../deps.ts'
import { ApiError } from '../errors.ts'
import { controlOrUnavailable, mapControlError } from '../call-control-access.ts'
import type { MediaStreamHandle } from '../../call/call-control.ts'

const EventsQuery = Type.Object({
  types: Type.Optional(Type.String({ maxLength: 1000, description: `Comma-separated event types (${EVENT_TYPES.join(', ')}); a trailing * matches a prefix, e.g. call.*` })),
  callId: Type.Optional(Type.String({ format: 'uuid', description: 'Only this call\'s events' })),
  token: Type.Optional(Type.String({ description: 'API key, for clients that cannot send headers' })),
}, { additionalProperties: false })

const StreamQuery = Type.Object({
  encapsulation: Type.Optional(Type.Union([Type.Literal('twilio'), Type.Literal('raw'), Type.Literal('l16'), Type.Literal('pcmu')], { default: 'twilio', description: 'twilio: Twilio Media Streams JSON; raw or l16: binary 8 kHz L16 frames (20 ms); pcmu: binary µ-law frames (160 bytes)' })),
  token: Type.Optional(Type.String({ description: 'API key, for clients that cannot send headers' })),
}, { additionalProperties: false })

/**
 * @fastify/websocket hides its routes from the OpenAPI document; this puts
 * them back (document only: nothing changes at run time), with the upgrade
 * and the close codes as responses, since OpenAPI has no WebSocket operation.
 */
function websocketDoc(statuses: Record<number, string>): { swaggerTransform: SwaggerTransform } {
  return {
    swaggerTransform: ({ schema, url }) => {
      const { hide: _hide, ...rest } = schema as FastifySchema & { hide?: boolean }
      const response = Object.fromEntries(Object.entries({
        101: 'Switching Protocols: the WebSocket is open (send `Connection: Upgrade`, `Upgrade: websocket`, RFC 6455 §4)',
        401: 'No or unknown API key (header or `token`)',
        403: 'The key lacks the scope',
        ...statuses,
      }).map(([code, description]) => [code, { description, type: 'null' }]))
      return { schema: { ...rest, 'x-websocket': true, response }, url }
    },
  }
}

const EVENTS_DESCRIPTION = [
  'WebSocket (GET with `Upgrade: websocket`). Authenticate with `Authorization: Bearer <key>`, `X-API-Key`, or `?token=<key>` for clients that cannot send headers; scope `calls:read`.',
  '',
  'Server → client, one JSON text message each:',
  '- first `{"type":"subscribed","filter":{"types":"*"|"<types>","callId":null|"<id>"}}`;',
  '- then every event of the account as it commits: `{"id","type","accountId","callId","createdAt","data"}`, the same payload webhooks get (`type` is one of the event types listed for `types`).',
  '',
  'Client → server: nothing is expected. A bad `types` value is refused with 400 before the upgrade.',
].join('\n')

const STREAM_DESCRIPTION = [
  'WebSocket (GET with `Upgrade: websocket`) carrying a live call\'s audio both ways: what the caller says comes to the client, what the client sends is played to the caller. Authenticate as for `/v1/events` (`?token=` works); scope `calls:write`. 409 if the call has ended.',
  '',
  '`encapsulation=twilio` (default): the Twilio Media Streams JSON format, so existing bot frameworks connect unchanged. Server → client: `connected`, `start` (`streamSid`, `callSid` = the call id, `mediaFormat` audio/x-mulaw 8000 Hz mono), `media` (`media.payload`: base64 µ-law, 20 ms per message), `dtmf` (`dtmf.digit`), `mark` (echo of a client mark once the audio before it has played), `stop`. Every message has a `sequenceNumber`. Client → server: `media` (`media.payload`: base64 µ-law 8 kHz, played in order), `mark` (`mark.name`: echoed when playback reaches it), `clear` (drop the audio not yet played: barge-in).',
  '',
  '`encapsulation=raw` or `l16`: binary messages of little-endian 16-bit PCM, 8 kHz mono, 20 ms (320 bytes) each, both ways. `pcmu`: binary µ-law, 160 bytes per 20 ms, both ways. Malformed messages are counted and dropped.',
  '',
  'The socket closes with 1000 when the call ends, 1011 when the call\'s media cannot be streamed.',
].join('\n')

/** Parses `types`; throws 400 naming any unknown type. */
export function parseTypeFilter(types: string | undefined): ((t: EventType) => boolean) | null {
  if (!types) return null
  const parts = types.split(',').map((s) => s.trim()).filter(Boolean)
  const exact = new Set<string>()
  const prefixes: string[] = []
  for (const p of parts) {
    if (p.endsWith('*')) prefixes.push(p.slice(0, -1))
    else if ((EVENT_TYPES as readonly string[]).includes(p)) exact.add(p)
    else throw new ApiError(400, 'validation_failed', `invalid querystring: unknown event type "${p}"`, { allowed: EVENT_TYPES })
  }
  return (t) => exact.has(t) || prefixes.some((p) => t.startsWith(p))
}

/**
 * GET /v1/events (WebSocket): the account's events as JSON messages, as they
 * commit, filtered by type and call. GET /v1/calls/:id/stream (WebSocket): the
 * call's media fork, through CallControl.openStream.
 */
export const eventRoutes: FastifyPluginAsync<RouteOptions> = async (base, { deps }) => {
  const app = base.withTypeProvider<TypeBoxRequestProvider>()
  const tags = ['events']

  app.get('/events', {
    websocket: true,
    config: { scope: 'calls:read', queryToken: true, ...websocketDoc({ 400: 'Unknown event type in `types`' }) },
    schema: { tags, summary: 'Event stream (WebSocket): {id,type,accountId,callId,createdAt,data} per message', description: EVENTS_DESCRIPTION, querystring: EventsQuery },
    preValidation: async (req) => {
      parseTypeFilter((req.query as { types?: string }).types)
    },
  }, (socket, req) => {
    const q = req.query as { types?: string; callId?: string }
    const match = parseTypeFilter(q.types)
    const accountId = req.auth.accountId
    const unsubscribe = deps.store.bus.subscribe((evt: CallplaneEvent) => {
      if (evt.accountId !== accountId) return
      if (q.callId && evt.callId !== q.callId) return
      if (match && !match(evt.type)) return
      if (socket.readyState === socket.OPEN) socket.send(JSON.stringify(evt))
    })
    socket.on('close', unsubscribe)
    socket.on('error', unsubscribe)
    socket.send(JSON.stringify({ type: 'subscribed', filter: { types: q.types ?? '*', callId: q.callId ?? null } }))
  })

  app.get('/calls/:id/stream', {
    websocket: true,
    config: { scope: 'calls:write', queryToken: true, ...websocketDoc({ 404: 'No such call in the account', 409: 'The call has ended', 503: 'Call control is not available on this engine' }) },
    schema: { tags: ['calls'], summary: 'Media stream of a live call (WebSocket, Twilio Media Streams format)', description: STREAM_DESCRIPTION, params: Type.Object({ id: Type.String({ format: 'uuid' }) }), querystring: StreamQuery },
    preHandler: async (req) => {
      const id = (req.params as { id: string }).id
      const call = found(await deps.store.calls.get(req.auth.accountId, id), 'call', id)
      if (isFinal(call.status)) throw new ApiError(409, 'call_not_active', `call ${id} has ended (${call.status})`)
      controlOrUnavailable(deps, 'openStream')
    },
  }, async (socket, req) => {
    const id = (req.params as { id: string }).id
    const encapsulation = (req.query as { encapsulation?: string }).encapsulation ?? 'twilio'
    const call = await deps.store.calls.get(req.auth.accountId, id)
    const cc = deps.callControl.current
    if (!call || !cc?.openStream) return socket.close(1011, 'call control unavailable')
    let handle: MediaStreamHandle | null = null
    const pending: Array<Buffer | string> = []
    socket.on('message', (m: Buffer, isBinary: boolean) => {
      const msg = isBinary ? m : m.toString('utf8')
      if (handle) handle.onMessage(msg)
      else pending.push(msg)
    })
    socket.on('close', () => handle?.close())
    try {
      handle = await cc.openStream(call, {
        encapsulation,
        send: (msg) => { if (socket.readyState === socket.OPEN) socket.send(msg) },
        close: () => socket.close(1000, 'stream ended'),
      }).catch(mapControlError)
      for (const m of pending.splice(0)) handle.onMessage(m)
    } catch (err) {
      socket.close(1011, (err as Error).message.slice(0, 120))
    }
  })
}
