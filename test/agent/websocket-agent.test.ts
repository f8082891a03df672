/**
 * Agent type `websocket`: a bot that speaks the Twilio Media Streams format
 * receives the call audio and DTMF, plays audio back with marks, and barges in
 * with `clear`.
 */
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import { WebSocketServer, type WebSocket } from 'ws'
import { createCallAgent, WebsocketAgent } from '../../agent/index.ts'
import { decodeUlaw, encodeUlaw } from '../../codecs/g711.ts'
import { rms, speechPcm } from './helpers/audio.ts'
import { TestMediaPort } from './helpers/test-port.ts'

// (The µ-law round trip itself is tested with the codec: test/codecs/codecs.test.ts.)
const ulawEncode = (pcm: Int16Array): Uint8Array => { const u = new Uint8Array(pcm.length); encodeUlaw(pcm, u); return u }
const ulawDecode = (u: Uint8Array): Int16Array => { const pcm = new Int16Array(u.length); decodeUlaw(u, pcm); return pcm }

interface BotMsg {
  event: string
  [k: string]: unknown
}

t.test('Twilio Media Streams bot: start/media/dtmf in, media+mark out, clear, stop', async (t) => {
  const received: BotMsg[] = []
  let bot: WebSocket | undefined
  const http = createServer()
  const wss = new WebSocketServer({ server: http, path: '/bot' })
  let headers: Record<string, string | string[] | undefined> = {}
  wss.on('connection', (ws, req) => {
    bot = ws
    headers = req.headers
    ws.on('message', (d) => received.push(JSON.parse(d.toString()) as BotMsg))
  })
  await new Promise<void>((r) => http.listen(0, '127.0.0.1', r))
  t.teardown(() => {
    for (const c of wss.clients) c.terminate()
    wss.close()
    http.close()
  })
  const url = `ws://127.0.0.1:${(http.address() as AddressInfo).port}/bot`

  const port = new TestMediaPort(8000)
  const agent = createCallAgent({ port, call: { id: 'CA123', from: '+15550001', to: '+15550002' }, config: { type: 'websocket', websocket: { url, headers: { 'x-bot-token': 'tok' }, customParameters: { agent: 'acme' } } } })
  t.ok(agent instanceof WebsocketAgent)
  const wsAgent = agent as WebsocketAgent
  t.teardown(() => port.stop())
  port.start()
  await agent.start()
  await port.waitFor(() => received.length >= 3, 3000, 'first messages')
  t.equal(headers['x-bot-token'], 'tok')
  t.match(received[0], { event: 'connected', protocol: 'Call', version: '1.0.0' })
  t.match(received[1], { event: 'start', streamSid: /^MZ[0-9a-f]{32}$/, start: { callSid: 'CA123', tracks: ['inbound'], mediaFormat: { encoding: 'audio/x-mulaw', sampleRate: 8000, channels: 1 }, customParameters: { agent: 'acme', from: '+15550001' } } })

  // Caller audio reaches the bot as 20 ms μ-law frames, level preserved.
  const said = speechPcm('hello bot')
  port.say(said)
  await port.waitFor(() => port.callerQueued === 0, 5000, 'caller audio sent')
  await new Promise((r) => setTimeout(r, 100))
  const media = received.filter((m) => m.event === 'media') as Array<BotMsg & { media: { payload: string; track: string; chunk: string } }>
  t.ok(media.length > 50)
  t.ok(media.every((m) => Buffer.from(m.media.payload, 'base64').length === 160 && m.media.track === 'inbound'), '160-byte μ-law payloads')
  const botHeard = new Int16Array(media.flatMap((m) => [...ulawDecode(Buffer.from(m.media.payload, 'base64'))]))
  t.ok(Math.abs(rms(botHeard) - rms(said)) / rms(said) < 0.5, 'audio level survives the round trip')
  const seqs = received.filter((m) => m.sequenceNumber).map((m) => Number(m.sequenceNumber))
  t.same(seqs, [...seqs].sort((a, b) => a - b), 'sequence numbers increase')

  port.pressDtmf('5')
  await port.waitFor(() => received.some((m) => m.event === 'dtmf'), 2000, 'dtmf')
  t.match(received.find((m) => m.event === 'dtmf'), { dtmf: { digit: '5', track: 'inbound_track' } })

  // Bot speaks 1 s of audio then a mark; the mark comes back after it played.
  const streamSid = wsAgent.streamSid
  const tone = new Int16Array(8000).map((_, i) => Math.round(8000 * Math.sin((2 * Math.PI * 400 * i) / 8000)))
  const outStart = port.out.length
  bot!.send(JSON.stringify({ event: 'media', streamSid, media: { payload: Buffer.from(ulawEncode(tone)).toString('base64') } }))
  bot!.send(JSON.stringify({ event: 'mark', streamSid, mark: { name: 'greeting-done' } }))
  const sentAt = performance.now()
  await port.waitFor(() => received.some((m) => m.event === 'mark'), 3000, 'mark echo')
  t.ok(performance.now() - sentAt >= 900, 'mark echoed only after the audio played')
  t.match(received.find((m) => m.event === 'mark'), { streamSid, mark: { name: 'greeting-done' } })
  t.ok(port.out.slice(outStart).filter((f) => f.samples).length >= 49, 'bot audio went out to the caller')

  // clear = barge-in from the bot: queued audio stops on the next tick.
  const long = new Int16Array(8000 * 5).map((_, i) => Math.round(8000 * Math.sin((2 * Math.PI * 400 * i) / 8000)))
  bot!.send(JSON.stringify({ event: 'media', streamSid, media: { payload: Buffer.from(ulawEncode(long)).toString('base64') } }))
  bot!.send(JSON.stringify({ event: 'mark', streamSid, mark: { name: 'long' } }))
  await port.waitFor(() => port.out.at(-1)?.samples != null, 2000, 'long audio playing')
  bot!.send(JSON.stringify({ event: 'clear', streamSid }))
  const clearAt = performance.now()
  await port.waitFor(() => received.some((m) => m.event === 'mark' && (m.mark as { name: string }).name === 'long'), 2000, 'mark of cleared audio')
  await new Promise((r) => setTimeout(r, 100))
  const after = port.out.filter((f) => f.at > clearAt + 25)
  t.ok(after.length > 0 && after.every((f) => !f.samples), 'no bot audio after clear')

  // Caller hangs up → stop is sent, agent ends.
  port.remoteHangup()
  const res = await agent.done
  t.equal(res.reason, 'remote-hangup')
  await port.waitFor(() => received.some((m) => m.event === 'stop'), 2000, 'stop')
  t.match(received.find((m) => m.event === 'stop'), { streamSid, stop: { callSid: 'CA123' } })
})
