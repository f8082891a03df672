/**
 * A local server speaking the OpenAI HTTP API as documented: chat completions
 * with SSE streaming (`data: {chat.completion.chunk}` … `data: [DONE]`),
 * streamed tool-call deltas, the documented error body
 * `{ "error": { "message", "type", "param", "code" } }`, and `/v1/audio/speech`
 * returning raw 24 kHz 16-bit PCM for `response_format: "pcm"`.
 *
 * Behaviour is selected by the `model` field, so one server covers all cases:
 *   gpt-test          normal replies; calls `lookupOrder` when the user mentions an order
 *   error-401 / -429 / -500   documented error bodies with that status
 *   disconnect        sends two chunks, then destroys the socket
 *   stall             accepts the request and never answers
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'

export interface OpenAiFake {
  server: Server
  baseURL: string
  requests: Array<{ path: string; body: Record<string, unknown>; auth?: string }>
  close(): Promise<void>
}

type Msg = { role: string; content?: string | null; tool_calls?: unknown[] }

const ERRORS: Record<number, { message: string; type: string; code: string | null }> = {
  401: { message: 'Incorrect API key provided: sk-bad. You can find your API key at https://platform.openai.com/account/api-keys.', type: 'invalid_request_error', code: 'invalid_api_key' },
  429: { message: 'Rate limit reached for gpt-test in organization org-x on requests per min (RPM): Limit 3, Used 3, Requested 1.', type: 'requests', code: 'rate_limit_exceeded' },
  500: { message: 'The server had an error while processing your request. Sorry about that!', type: 'server_error', code: null },
}

function sendError(res: ServerResponse, status: number): void {
  const e = ERRORS[status] ?? ERRORS[500]!
  res.writeHead(status, { 'content-type': 'application/json', ...(status === 429 ? { 'retry-after': '1' } : {}) })
  res.end(JSON.stringify({ error: { message: e.message, type: e.type, param: null, code: e.code } }))
}

function chunk(id: string, model: string, delta: Record<string, unknown>, finish: string | null = null): string {
  return `data: ${JSON.stringify({ id, object: 'chat.completion.chunk', created: Math.floor(Date.now() / 1000), model, system_fingerprint: 'fp_test', choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }] })}\n\n`
}

function tone(samples: number, rate: number): Buffer {
  const b = Buffer.alloc(samples * 2)
  for (let i = 0; i < samples; i++) b.writeInt16LE(Math.round(8000 * Math.sin((2 * Math.PI * 440 * i) / rate)), i * 2)
  return b
}

export async function startOpenAiFake(): Promise<OpenAiFake> {
  const requests: OpenAiFake['requests'] = []
  const sockets = new Set<import('node:net').Socket>()
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    let raw = ''
    req.on('data', (d: Buffer) => (raw += d.toString()))
    req.on('end', () => {
      const body = (raw ? JSON.parse(raw) : {}) as Record<string, unknown>
      const path = new URL(req.url ?? '/', 'http://x').pathname
      requests.push({ path, body, ...(req.headers.authorization ? { auth: req.headers.authorization } : {}) })
      const model = String(body.model ?? '')
      const m = /^error-(\d+)$/.exec(model)
      if (m) return sendError(res, Number(m[1]))
      if (model === 'stall') return
      if (path === '/v1/audio/speech') {
        if (body.response_format !== 'pcm') return sendError(res, 500)
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'transfer-encoding': 'chunked' })
        const total = Math.min(24000 * 3, String(body.input ?? '').length * 1200)
        const pcm = tone(total, 24000)
        let off = 0
        const push = (): void => {
          if (off >= pcm.length) return void res.end()
          if (model === 'disconnect' && off > 0) return void res.socket?.destroy()
          res.write(pcm.subarray(off, off + 9600))
          off += 9600
          setTimeout(push, 5)
        }
        return push()
      }
      if (path !== '/v1/chat/completions') return sendError(res, 500)
      const messages = (body.messages ?? []) as Msg[]
      const tools = (body.tools ?? []) as Array<{ function: { name: string } }>
      const last = messages[messages.length - 1]
      const id = `chatcmpl-${requests.length}`
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' })
      const events: string[] = [chunk(id, model, { role: 'assistant', content: '' })]
      if (last?.role === 'tool') {
        for (const w of `The tool said: ${last.content}.`.split(/(?<= )/)) events.push(chunk(id, model, { content: w }))
        events.push(chunk(id, model, {}, 'stop'))
      } else if (last?.role === 'user' && /order/i.test(String(last.content)) && tools.some((t) => t.function.name === 'lookupOrder')) {
        // Documented delta shape: first fragment carries id/type/name, later ones only argument text.
        events.push(chunk(id, model, { tool_calls: [{ index: 0, id: 'call_abc123', type: 'function', function: { name: 'lookupOrder', arguments: '' } }] }))
        for (const piece of ['{"order', 'Number"', ': "A', '1"}']) events.push(chunk(id, model, { tool_calls: [{ index: 0, function: { arguments: piece } }] }))
        events.push(chunk(id, model, {}, 'tool_calls'))
      } else {
        for (const w of `You said: ${last?.content ?? ''}. Anything else?`.split(/(?<= )/)) events.push(chunk(id, model, { content: w }))
        events.push(chunk(id, model, {}, 'stop'))
      }
      events.push('data: [DONE]\n\n')
      let i = 0
      const next = (): void => {
        if (model === 'disconnect' && i === 3) return void res.socket?.destroy()
        if (i >= events.length) return void res.end()
        res.write(events[i++])
        setTimeout(next, 2)
      }
      next()
    })
  })
  server.on('connection', (s) => {
    sockets.add(s)
    s.on('close', () => sockets.delete(s))
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  const port = (server.address() as AddressInfo).port
  return {
    server,
    baseURL: `http://127.0.0.1:${port}/v1`,
    requests,
    close: async () => {
      for (const s of sockets) s.destroy()
      await new Promise<void>((r) => server.close(() => r()))
    },
  }
}
