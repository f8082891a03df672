/**
 * A local server speaking ElevenLabs' streaming TTS endpoint as documented:
 * POST /v1/text-to-speech/{voice_id}/stream?output_format=pcm_<rate>, auth by
 * `xi-api-key`, body `{ text, model_id, voice_settings? }`, chunked raw PCM
 * back. Errors use the documented shapes: 401
 * `{ "detail": { "status": "invalid_api_key", "message": ... } }` and 422
 * `{ "detail": [ { "loc", "msg", "type" } ] }`. Voice id `disconnect` sends
 * one chunk and then destroys the socket.
 */
import { createServer, type Server } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'

export interface ElevenLabsFake {
  baseUrl: string
  server: Server
  requests: Array<{ voice: string; query: URLSearchParams; body: Record<string, unknown> }>
  close(): Promise<void>
}

export async function startElevenLabsFake(): Promise<ElevenLabsFake> {
  const requests: ElevenLabsFake['requests'] = []
  const sockets = new Set<Socket>()
  const server = createServer((req, res) => {
    let raw = ''
    req.on('data', (d: Buffer) => (raw += d.toString()))
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://x')
      const m = /^\/v1\/text-to-speech\/([^/]+)\/stream$/.exec(url.pathname)
      if (!m || req.method !== 'POST') {
        res.writeHead(404, { 'content-type': 'application/json' })
        return res.end(JSON.stringify({ detail: 'Not Found' }))
      }
      if (req.headers['xi-api-key'] !== 'el-key') {
        res.writeHead(401, { 'content-type': 'application/json' })
        return res.end(JSON.stringify({ detail: { status: 'invalid_api_key', message: 'Invalid API key' } }))
      }
      const body = JSON.parse(raw || '{}') as Record<string, unknown>
      requests.push({ voice: m[1]!, query: url.searchParams, body })
      if (typeof body.text !== 'string' || body.text.length === 0) {
        res.writeHead(422, { 'content-type': 'application/json' })
        return res.end(JSON.stringify({ detail: [{ loc: ['body', 'text'], msg: 'field required', type: 'value_error.missing' }] }))
      }
      const fmt = /^pcm_(\d+)$/.exec(url.searchParams.get('output_format') ?? '')
      const rate = fmt ? Number(fmt[1]) : 16000
      const n = Math.min(rate * 3, body.text.length * Math.round(rate / 20))
      const pcm = Buffer.alloc(n * 2)
      for (let i = 0; i < n; i++) pcm.writeInt16LE(Math.round(7000 * Math.sin((2 * Math.PI * 330 * i) / rate)), i * 2)
      res.writeHead(200, { 'content-type': 'audio/pcm', 'transfer-encoding': 'chunked' })
      let off = 0
      // Odd-sized chunks on purpose: samples straddle chunk boundaries on the wire.
      const step = 3201
      const push = (): void => {
        if (off >= pcm.length) return void res.end()
        if (m[1] === 'disconnect' && off > 0) return void res.socket?.destroy()
        res.write(pcm.subarray(off, off + step))
        off += step
        setTimeout(push, 3)
      }
      push()
    })
  })
  server.on('connection', (s) => {
    sockets.add(s)
    s.on('close', () => sockets.delete(s))
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  return {
    baseUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    server,
    requests,
    close: async () => {
      for (const s of sockets) s.destroy()
      await new Promise<void>((r) => server.close(() => r()))
    },
  }
}
