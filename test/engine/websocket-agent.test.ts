/**
 * Bring-your-own-bot agents (`type: websocket`) created through the API, as
 * a user runs them: the agent and a number are POSTed, baresip calls the
 * number over SIP/RTP, and a local WebSocket server plays the bot.
 *
 * - `encapsulation: twilio` (default): the bot speaks Twilio Media Streams; it
 *   gets `connected`/`start` (with the call's id) and the caller's audio as
 *   `media`, and plays an espeak-ng line back as `media` + `mark`: the caller
 *   must hear that line, and the mark comes back once it has played.
 * - `encapsulation: raw`: binary 8 kHz PCM16 both ways; the bot echoes what it
 *   gets, so the caller hears their own words back.
 */
import t, { type Test } from 'tap'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { WebSocketServer, type WebSocket } from 'ws'
import { encodeUlaw } from '../../codecs/g711.ts'
import { encodeWav, parseWav } from '../../media/wav.ts'
import { runBaresip } from '../harness/baresip.ts'
import { freePort } from '../harness/ports.ts'
import { startStack, type Stack } from '../harness/stack.ts'
import { waitFor } from '../sip/app/helpers.ts'
import { recognize } from '../agent/helpers/recognize.ts'
import { concatPcm, silencePcm, speechPcm } from '../agent/helpers/audio.ts'

const words = (s: string): string => s.toLowerCase().replace(/[^a-z ]/g, ' ').replace(/\s+/g, ' ').trim()

async function api<T>(stack: Stack, method: string, path: string, body?: unknown): Promise<{ status: number; body: T }> {
  const res = await fetch(`${stack.baseUrl}${path}`, {
    method, headers: { authorization: `Bearer ${stack.apiKey}`, ...(body ? { 'content-type': 'application/json' } : {}) }, ...(body ? { body: JSON.stringify(body) } : {}),
  })
  return { status: res.status, body: (await res.json().catch(() => null)) as T }
}

async function botServer(t: Test, onConnection: (ws: WebSocket) => void): Promise<string> {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 })
  await new Promise<void>((r) => wss.once('listening', () => r()))
  wss.on('connection', onConnection)
  t.teardown(() => new Promise<void>((r) => { for (const c of wss.clients) c.terminate(); wss.close(() => r()) }))
  return `ws://127.0.0.1:${(wss.address() as AddressInfo).port}/bot`
}

/** Creates the agent and a number through the API, calls it with baresip, returns what the caller heard and the call id. */
async function callBot(t: Test, stack: Stack, number: string, websocket: Record<string, string>, caller: Int16Array): Promise<{ heard: Int16Array; callId: string }> {
  const agent = await api<{ id: string }>(stack, 'POST', '/v1/agents', { name: `bot-${number}`, type: 'websocket', websocket })
  t.equal(agent.status, 201, 'websocket agent created through the API')
  t.equal((await api(stack, 'POST', '/v1/numbers', { number, target: { type: 'agent', id: agent.body.id } })).status, 201)
  const dir = mkdtempSync(join(tmpdir(), 'ws-agent-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const source = join(dir, 'caller.wav')
  writeFileSync(source, encodeWav(caller, 8000))
  const run = runBaresip({ source, dial: `sip:${number}@127.0.0.1:${stack.sipPort}`, seconds: Math.ceil(caller.length / 8000), sipPort: await freePort() })
  t.teardown(() => run.kill())
  const res = await run.done
  const call = await waitFor(async () => (await api<{ data: Array<{ id: string; status: string }> }>(stack, 'GET', `/v1/calls?number=${encodeURIComponent(number)}`)).body.data[0], 10_000, 'the call record')
  t.ok(res.heardWav, 'baresip dumped what it heard')
  return { heard: parseWav(readFileSync(res.heardWav!)).pcm, callId: call.id }
}

t.test('websocket agents from the API reach their bot: Twilio Media Streams and raw PCM', async (t) => {
  const stack = await startStack()
  t.teardown(() => stack.stop())

  await t.test('twilio: the bot gets the call and the caller\'s audio; what it plays is heard; its mark comes back', async (t) => {
    const LINE = 'Your bot is connected and speaking.'
    const got: { events: string[]; start?: { callSid?: string; mediaFormat?: { encoding?: string } }; inboundBytes: number; marks: string[] } = { events: [], inboundBytes: 0, marks: [] }
    const url = await botServer(t, (ws) => {
      ws.on('message', (data) => {
        const m = JSON.parse(data.toString()) as { event: string; streamSid?: string; start?: typeof got.start; media?: { payload: string }; mark?: { name: string } }
        got.events.push(m.event)
        if (m.event === 'media') got.inboundBytes += Buffer.from(m.media!.payload, 'base64').length
        if (m.event === 'mark') got.marks.push(m.mark!.name)
        if (m.event === 'start') {
          got.start = m.start
          // After a second of the caller's audio, say the line (µ-law 8 kHz, 20 ms per message, as Twilio bots do), then a mark.
          setTimeout(() => {
            const line = concatPcm(speechPcm(LINE), silencePcm(300))
            const ulaw = new Uint8Array(line.length)
            encodeUlaw(line, ulaw)
            for (let i = 0; i < ulaw.length; i += 160) ws.send(JSON.stringify({ event: 'media', streamSid: m.streamSid, media: { payload: Buffer.from(ulaw.subarray(i, i + 160)).toString('base64') } }))
            ws.send(JSON.stringify({ event: 'mark', streamSid: m.streamSid, mark: { name: 'line-done' } }))
          }, 4000)
        }
      })
    })
    const { heard, callId } = await callBot(t, stack, '+14155550131', { url }, silencePcm(14_000))
    t.same(got.events.slice(0, 2), ['connected', 'start'], 'connected, then start')
    t.match(got.start, { callSid: callId, mediaFormat: { encoding: 'audio/x-mulaw' } }, 'start names the call')
    t.ok(got.inboundBytes > 8000 * 3, `the caller's audio streamed to the bot (${got.inboundBytes} bytes)`)
    t.same(got.marks, ['line-done'], 'the mark is echoed once the line has played')
    const recognised = (await recognize(heard, [LINE, 'Your bot is not connected.'])).map(words)
    t.ok(recognised.includes(words(LINE)), `the caller heard the bot (heard ${JSON.stringify(recognised)})`)
  })

  await t.test('raw: binary PCM both ways; an echo bot sends the caller\'s own words back', async (t) => {
    const PHRASE = 'what are your opening hours'
    let frames = 0
    let oddSized = 0
    const url = await botServer(t, (ws) => {
      ws.on('message', (data, isBinary) => {
        if (!isBinary) return void oddSized++
        const b = data as Buffer
        if (b.length !== 320) oddSized++
        frames++
        ws.send(b)
      })
    })
    const { heard } = await callBot(t, stack, '+14155550132', { url, encapsulation: 'raw' }, concatPcm(silencePcm(4000), speechPcm(PHRASE), silencePcm(6000)))
    t.ok(frames > 50 * 5, `the bot got 20 ms binary frames (${frames})`)
    t.equal(oddSized, 0, 'every message was 320 bytes of PCM16 and none was JSON')
    const recognised = (await recognize(heard, [PHRASE, 'what can you do'])).map(words)
    t.ok(recognised.includes(PHRASE), `the caller heard their own words back (heard ${JSON.stringify(recognised)})`)
  })
})
