/**
 * Custom HTTP tools as a user sets them up: a tool, an agent that uses it and
 * a number, all created through the REST API; a softphone (baresip, speaking
 * espeak-ng audio) calls the number over SIP/RTP. The tool's endpoint is a
 * local HTTP server that checks the Standard Webhooks signature with the
 * secret the API returned, and its answer is spoken to the caller (stored
 * transcript, and the caller's own decode of the RTP it received).
 *
 * - scripted model: a rule calls the tool; the tool's `speakDuringExecution`
 *   line covers the wait; the rule's reply says the result. A second tool
 *   whose endpoint never answers within its `timeoutMs` gives an apology.
 *   Each call of a tool is announced as `call.tool_call` on `GET /v1/events`.
 * - OpenAI-compatible model (a local server speaking its documented protocol):
 *   the request carries the tool's JSON schema, the model calls it, the
 *   result goes back to the model and its answer is spoken.
 */
import t, { type Test } from 'tap'
import { createServer, type IncomingMessage, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Webhook } from 'standardwebhooks'
import WebSocket from 'ws'
import { encodeWav, parseWav } from '../../media/wav.ts'
import { runBaresip } from '../harness/baresip.ts'
import { freePort } from '../harness/ports.ts'
import { startStack, type Stack } from '../harness/stack.ts'
import { waitFor } from '../sip/app/helpers.ts'
import { recognize, talkSpurts } from '../agent/helpers/recognize.ts'
import { concatPcm, silencePcm, speechPcm } from '../agent/helpers/audio.ts'
import { startOpenAiFake } from '../agent/fakes/openai-server.ts'

const words = (s: string): string => s.toLowerCase().replace(/[^a-z ]/g, ' ').replace(/\s+/g, ' ').trim()

interface ToolRequest { path: string; headers: IncomingMessage['headers']; body: string; verified?: { tool: string; arguments: Record<string, unknown>; call: { id: string } }; verifyError?: string; callStatus?: string }

/** The tenant's tool endpoint: records every request, checks its signature, answers per path. */
async function toolServer(stack: Stack, secrets: Map<string, string>): Promise<{ server: Server; url: string; requests: ToolRequest[] }> {
  const requests: ToolRequest[] = []
  const server = createServer((req, res) => {
    let body = ''
    req.on('data', (d: Buffer) => (body += d.toString()))
    req.on('end', () => {
      void (async () => {
        const path = new URL(req.url ?? '/', 'http://x').pathname
        const r: ToolRequest = { path, headers: req.headers, body }
        requests.push(r)
        try {
          r.verified = new Webhook(secrets.get(path) ?? '').verify(body, req.headers as Record<string, string>) as ToolRequest['verified']
        } catch (err) {
          r.verifyError = (err as Error).message
        }
        // The request arrives while the call is live.
        const call = await fetch(`${stack.baseUrl}/v1/calls/${r.verified?.call.id}`, { headers: { authorization: `Bearer ${stack.apiKey}` } })
        r.callStatus = ((await call.json()) as { status?: string }).status
        if (path === '/never') return // no answer: the tool's timeout fires
        await new Promise((ok) => setTimeout(ok, 1500)) // a real lookup takes a moment: the filler line covers it
        res.writeHead(200, { 'content-type': 'application/json' })
        res.end(JSON.stringify({ result: 'has shipped and arrives on Friday' }))
      })()
    })
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, requests }
}

async function api<T>(stack: Stack, method: string, path: string, body?: unknown): Promise<{ status: number; body: T }> {
  const res = await fetch(`${stack.baseUrl}${path}`, {
    method, headers: { authorization: `Bearer ${stack.apiKey}`, ...(body ? { 'content-type': 'application/json' } : {}) }, ...(body ? { body: JSON.stringify(body) } : {}),
  })
  return { status: res.status, body: (await res.json().catch(() => null)) as T }
}

interface CallRecord { id: string; status: string; transcript: Array<{ role: string; text: string }> }

/** Dials `number` with `caller` as the microphone; returns the finished call's record and what the caller heard. */
async function callAndListen(t: Test, stack: Stack, number: string, caller: Int16Array): Promise<{ rec: CallRecord; heard: Int16Array }> {
  const dir = mkdtempSync(join(tmpdir(), 'agent-tools-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const source = join(dir, 'caller.wav')
  writeFileSync(source, encodeWav(caller, 8000))
  const seconds = Math.ceil(caller.length / 8000)
  const run = runBaresip({ source, dial: `sip:${number}@127.0.0.1:${stack.sipPort}`, seconds, sipPort: await freePort() })
  t.teardown(() => run.kill())
  const res = await run.done
  const rec = await waitFor(async () => {
    const page = await api<{ data: CallRecord[] }>(stack, 'GET', `/v1/calls?number=${encodeURIComponent(number)}`)
    const c = page.body.data[0]
    return c && c.status === 'completed' && c.transcript.some((e) => e.role === 'tool') ? c : null
  }, 20_000, 'the completed call with its tool turn').catch((err: Error) => { throw new Error(`${err.message}; baresip: ${res.log.slice(-800)}`) })
  t.comment(`transcript: ${JSON.stringify(rec.transcript)}`)
  t.ok(res.heardWav, 'baresip dumped what it heard')
  return { rec, heard: parseWav(readFileSync(res.heardWav!)).pcm }
}

t.test('a scripted rule calls a tool created through the API: signed request during the call, filler while it runs, result spoken; a timed-out tool is apologised for', async (t) => {
  const stack = await startStack()
  t.teardown(() => stack.stop())
  const secrets = new Map<string, string>()
  const srv = await toolServer(stack, secrets)
  t.teardown(() => new Promise<void>((r) => { srv.server.closeAllConnections(); srv.server.close(() => r()) }))

  const order = await api<{ id: string; secret: string; timeoutMs: number; speakDuringExecution: boolean | string }>(stack, 'POST', '/v1/tools', {
    name: 'lookupOrder', description: 'Look up the status of an order', url: `${srv.url}/order`,
    inputSchema: { type: 'object', properties: { orderNumber: { type: 'string' } }, required: ['orderNumber'] },
    speakDuringExecution: 'Let me check that for you.',
  })
  t.equal(order.status, 201)
  t.match(order.body, { secret: /^whsec_/, timeoutMs: 5000 }, 'a signing secret, and the default timeout')
  secrets.set('/order', order.body.secret)
  const weather = await api<{ id: string; secret: string }>(stack, 'POST', '/v1/tools', {
    name: 'weather', description: 'Today\'s weather', url: `${srv.url}/never`, timeoutMs: 1000,
  })
  t.equal(weather.status, 201)
  secrets.set('/never', weather.body.secret)
  t.equal((await api(stack, 'POST', '/v1/tools', { name: 'tooFast', description: 'x', url: `${srv.url}/x`, timeoutMs: 500 })).status, 400, 'a timeout under 1 s is refused')
  t.notOk('secret' in (await api<Record<string, unknown>>(stack, 'GET', `/v1/tools/${order.body.id}`)).body, 'the secret is shown only at creation')

  const agent = await api<{ id: string }>(stack, 'POST', '/v1/agents', {
    name: 'orders', greeting: 'Hello.', tools: [order.body.id, weather.body.id],
    rules: [
      { match: 'check my order status', tool: 'lookupOrder', args: { orderNumber: '42' }, reply: 'Your order {result}.' },
      { match: 'what is the weather forecast', tool: 'weather' },
    ],
  })
  t.equal(agent.status, 201)
  const num = await api(stack, 'POST', '/v1/numbers', { number: '+14155550123', target: { type: 'agent', id: agent.body.id } })
  t.equal(num.status, 201)

  const events: Array<{ type: string; callId?: string; data: Record<string, unknown> }> = []
  const ws = new WebSocket(`${stack.baseUrl.replace('http', 'ws')}/v1/events?types=call.*&token=${stack.apiKey}`)
  await new Promise<void>((resolve, reject) => { ws.once('message', () => resolve()); ws.once('error', reject) })
  ws.on('message', (m) => events.push(JSON.parse(m.toString()) as (typeof events)[number]))
  t.teardown(() => ws.close())

  const { rec, heard } = await callAndListen(t, stack, '+14155550123', concatPcm(
    // Each phrase said twice: offline recognition over a phone line misses one now and then, and one hit is what matters here.
    silencePcm(8000), speechPcm('check my order status'),
    silencePcm(12_000), speechPcm('check my order status'),
    silencePcm(12_000), speechPcm('what is the weather forecast'),
    silencePcm(10_000), speechPcm('what is the weather forecast'),
    // No "goodbye" rule: a misheard phrase must not end the call early; the caller hangs up.
    silencePcm(12_000),
  ))

  const got = srv.requests.find((r) => r.path === '/order')
  t.ok(got, 'the tool endpoint was called')
  t.equal(got?.verifyError, undefined, 'its Standard Webhooks signature verifies with the tool\'s secret')
  t.match(got?.headers, { 'webhook-id': String, 'webhook-timestamp': String, 'webhook-signature': /^v1,/ })
  t.match(got?.verified, { tool: 'lookupOrder', arguments: { orderNumber: '42' }, call: { id: rec.id } }, 'the rule\'s arguments and the call')
  t.equal(got?.callStatus, 'in-progress', 'during the call')
  t.ok(srv.requests.some((r) => r.path === '/never' && !r.verifyError), 'the slow tool was called too')

  const toolEvents = events.filter((e) => e.type === 'call.tool_call' && e.callId === rec.id).map((e) => e.data)
  t.match(toolEvents.find((d) => d.name === 'lookupOrder'), { name: 'lookupOrder', arguments: { orderNumber: '42' }, ok: true, result: 'has shipped and arrives on Friday', status: 200, durationMs: Number }, 'call.tool_call for the tool that answered')
  t.match(toolEvents.find((d) => d.name === 'weather'), { name: 'weather', ok: false, error: /timed out/ }, 'and for the one that timed out')

  const said = rec.transcript.filter((e) => e.role === 'assistant').map((e) => e.text)
  const ORDER_LINE = 'Let me check that for you. Your order has shipped and arrives on Friday.'
  const APOLOGY_LINE = 'One moment please. Sorry, I couldn\'t get that information right now.'
  t.ok(said.includes(ORDER_LINE), 'the tool\'s own filler line, then the rule\'s reply with the result')
  t.ok(said.includes(APOLOGY_LINE), 'the default filler, then an apology for the timed-out tool')
  t.same(said.filter((l) => ![ORDER_LINE, APOLOGY_LINE].includes(l)).filter((l) => l !== 'Hello.'), [], 'nothing else was said')
  t.ok(rec.transcript.some((e) => e.role === 'tool' && /lookupOrder/.test(e.text) && /shipped/.test(e.text)), 'the tool call is in the transcript')
  t.ok(rec.transcript.some((e) => e.role === 'tool' && /weather/.test(e.text) && /timed out/.test(e.text)), 'and the timed-out one')

  const expected = ['Let me check that for you.', 'Your order has shipped and arrives on Friday.', 'Sorry, I couldn\'t get that information right now.']
  // Sentence by sentence: the agent speaks one at a time, with a pause between (as in journey.test.ts).
  const recognised: string[] = []
  for (const spurt of talkSpurts(heard, 8000, 240)) recognised.push(...(await recognize(spurt, [...expected, 'Your order has been cancelled.'])).map(words))
  t.comment(`heard: ${JSON.stringify(recognised)}`)
  for (const s of expected) t.ok(recognised.includes(words(s)), `the caller heard: "${s}"`)
  t.notOk(recognised.includes(words('Your order has been cancelled.')), 'and not a line never spoken')
})

t.test('an OpenAI-compatible model gets the tool\'s schema, calls it, and its answer with the result is spoken', async (t) => {
  const stack = await startStack()
  t.teardown(() => stack.stop())
  const secrets = new Map<string, string>()
  const srv = await toolServer(stack, secrets)
  t.teardown(() => new Promise<void>((r) => { srv.server.closeAllConnections(); srv.server.close(() => r()) }))
  const llm = await startOpenAiFake()
  t.teardown(() => llm.close())

  const schema = { type: 'object', properties: { orderNumber: { type: 'string', description: 'The order number' } }, required: ['orderNumber'] }
  const tool = await api<{ id: string; secret: string }>(stack, 'POST', '/v1/tools', { name: 'lookupOrder', description: 'Look up an order', url: `${srv.url}/order`, inputSchema: schema, speakDuringExecution: false })
  t.equal(tool.status, 201)
  secrets.set('/order', tool.body.secret)
  const agent = await api<{ id: string }>(stack, 'POST', '/v1/agents', {
    name: 'llm-orders', greeting: 'Hello.', tools: [tool.body.id], expectedPhrases: ['check my order status'],
    llm: { provider: 'openai', model: 'gpt-test', options: { baseURL: llm.baseURL, apiKey: 'sk-test' } },
  })
  t.equal(agent.status, 201, JSON.stringify(agent.body))
  t.equal((await api(stack, 'POST', '/v1/numbers', { number: '+14155550124', target: { type: 'agent', id: agent.body.id } })).status, 201)

  const { rec, heard } = await callAndListen(t, stack, '+14155550124', concatPcm(silencePcm(7000), speechPcm('check my order status'), silencePcm(16_000)))

  const first = llm.requests.find((r) => r.path === '/v1/chat/completions')
  t.match((first?.body.tools as unknown[] | undefined)?.find((x) => (x as { function: { name: string } }).function.name === 'lookupOrder'), { type: 'function', function: { name: 'lookupOrder', description: 'Look up an order', parameters: schema } }, 'the model got the tool\'s JSON schema')
  const got = srv.requests.find((r) => r.path === '/order')
  t.equal(got?.verifyError, undefined, 'signed request verifies')
  t.match(got?.verified, { tool: 'lookupOrder', arguments: { orderNumber: 'A1' }, call: { id: rec.id } }, 'with the arguments the model chose')
  const line = 'The tool said: has shipped and arrives on Friday.'
  t.ok(rec.transcript.some((e) => e.role === 'assistant' && e.text === line), 'the model\'s answer with the result is in the transcript')
  const recognised = (await recognize(heard, [line])).map(words)
  t.ok(recognised.includes(words(line)), `the caller heard it (heard ${JSON.stringify(recognised)})`)
})
