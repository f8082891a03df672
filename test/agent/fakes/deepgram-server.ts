/**
 * A local server speaking Deepgram's live-transcription WebSocket protocol
 * (`/v1/listen`): `Authorization: Token <key>` on the handshake (401 with a
 * JSON body and `dg-error` header otherwise), binary linear16 audio in,
 * `Metadata`, `SpeechStarted`, interim and final `Results` (with
 * `speech_final` after `endpointing` ms of silence, `from_finalize` after a
 * `Finalize`), `UtteranceEnd`, and `CloseStream` → Metadata + close 1000.
 *
 * It cannot really transcribe, so utterances are detected by energy on the
 * received audio and answered from a script of transcripts, in order.
 * Key `drop-after-first` destroys the socket right after the first final
 * (mid-stream disconnect); key `net-error` closes with 1011 NET-0001.
 */
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { WebSocketServer, type WebSocket } from 'ws'

export interface DeepgramFake {
  url: string
  server: Server
  /** Query strings of accepted connections. */
  connections: URLSearchParams[]
  controlMessages: string[]
  close(): Promise<void>
}

export async function startDeepgramFake(script: string[]): Promise<DeepgramFake> {
  const connections: URLSearchParams[] = []
  const controlMessages: string[] = []
  const server = createServer((_req, res) => {
    res.statusCode = 404
    res.end()
  })
  const wss = new WebSocketServer({ noServer: true })
  let scriptIndex = 0
  server.on('upgrade', (req, socket, head) => {
    const url = new URL(req.url ?? '/', 'http://x')
    const auth = req.headers.authorization ?? ''
    if (url.pathname !== '/v1/listen' || !/^Token (good-key|drop-after-first|net-error)$/.test(auth)) {
      const body = JSON.stringify({ err_code: 'INVALID_AUTH', err_msg: 'Invalid credentials.', request_id: 'test-req' })
      socket.end(`HTTP/1.1 401 Unauthorized\r\ncontent-type: application/json\r\ndg-error: Invalid credentials.\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`)
      return
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      connections.push(url.searchParams)
      serve(ws, url.searchParams, auth.slice('Token '.length))
    })
  })

  function serve(ws: WebSocket, q: URLSearchParams, key: string): void {
    const rate = Number(q.get('sample_rate') ?? 16000)
    const endpointing = Number(q.get('endpointing') ?? 10)
    let audioSec = 0
    let inSpeech = false
    let speechStart = 0
    let silenceMs = 0
    let interimSent = false
    let finals = 0
    const send = (o: object): void => {
      if (ws.readyState === ws.OPEN) ws.send(JSON.stringify(o))
    }
    send({ type: 'Metadata', request_id: 'test-req', created: new Date().toISOString(), channels: 1, models: [q.get('model')] })
    const result = (text: string, isFinal: boolean, speechFinal: boolean, fromFinalize = false): void =>
      send({
        type: 'Results',
        channel_index: [0, 1],
        duration: audioSec - speechStart,
        start: speechStart,
        is_final: isFinal,
        speech_final: speechFinal,
        from_finalize: fromFinalize,
        channel: { alternatives: [{ transcript: text, confidence: 0.97, words: text.split(' ').map((w) => ({ word: w, start: speechStart, end: audioSec, confidence: 0.97 })) }] },
        metadata: { request_id: 'test-req', model_info: { name: q.get('model') } },
      })
    const finish = (fromFinalize: boolean): void => {
      if (!inSpeech) {
        if (fromFinalize) result('', true, false, true)
        return
      }
      inSpeech = false
      const text = script[scriptIndex++ % script.length] ?? ''
      result(text, true, !fromFinalize, fromFinalize)
      send({ type: 'UtteranceEnd', channel: [0, 1], last_word_end: audioSec })
      finals++
      if (key === 'drop-after-first' && finals === 1) setTimeout(() => ws.terminate(), 5)
    }
    ws.on('message', (data, isBinary) => {
      if (!isBinary) {
        const msg = JSON.parse(data.toString()) as { type: string }
        controlMessages.push(msg.type)
        if (msg.type === 'Finalize') finish(true)
        if (msg.type === 'CloseStream') {
          send({ type: 'Metadata', request_id: 'test-req', duration: audioSec, channels: 1 })
          ws.close(1000)
        }
        return
      }
      const buf = data as Buffer
      const n = buf.length / 2
      let sum = 0
      for (let i = 0; i < n; i++) {
        const v = buf.readInt16LE(i * 2)
        sum += v * v
      }
      const loud = Math.sqrt(sum / Math.max(1, n)) > 300
      audioSec += n / rate
      if (key === 'net-error' && audioSec > 0.5) {
        ws.close(1011, 'NET-0001')
        return
      }
      if (loud) {
        if (!inSpeech) {
          inSpeech = true
          interimSent = false
          speechStart = audioSec
          send({ type: 'SpeechStarted', channel: [0], timestamp: audioSec })
        }
        silenceMs = 0
        if (!interimSent && audioSec - speechStart > 0.3) {
          interimSent = true
          result((script[scriptIndex % script.length] ?? '').split(' ')[0] ?? '', false, false)
        }
      } else if (inSpeech) {
        silenceMs += (n / rate) * 1000
        if (silenceMs >= endpointing) finish(false)
      }
    })
  }

  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  return {
    url: `ws://127.0.0.1:${(server.address() as AddressInfo).port}`,
    server,
    connections,
    controlMessages,
    close: async () => {
      for (const c of wss.clients) c.terminate()
      wss.close()
      await new Promise<void>((r) => server.close(() => r()))
    },
  }
}
