/**
 * HTTP tools against a local server: success, timeout, HTTP 500, malformed
 * JSON. The request is signed (Standard Webhooks) and verifiable; in every
 * failure case the LLM is told and the call goes on.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import { Webhook } from 'standardwebhooks'
import { createAgent } from '../../agent/index.ts'
import type { JsonValue } from '../../agent/adapters/json.ts'
import { clampTimeout, invokeHttpTool, ToolBox, type HttpToolConfig } from '../../agent/tools.ts'
import { TestMediaPort } from './helpers/test-port.ts'

const SECRET = 'whsec_' + Buffer.from('a-test-secret-of-32-bytes-length!').toString('base64')

interface Seen {
  path: string
  headers: IncomingMessage['headers']
  body: string
}

async function startToolServer(): Promise<{ server: Server; url: string; seen: Seen[] }> {
  const seen: Seen[] = []
  const server = createServer((req, res) => {
    let body = ''
    req.on('data', (d: Buffer) => (body += d.toString()))
    req.on('end', () => {
      const path = new URL(req.url ?? '/', 'http://x').pathname
      seen.push({ path, headers: req.headers, body })
      if (path === '/ok') {
        const args = (JSON.parse(body) as { arguments: { orderNumber?: string } }).arguments
        res.setHeader('content-type', 'application/json')
        res.end(JSON.stringify({ result: `order ${args.orderNumber} has shipped` }))
      } else if (path === '/slow') {
        setTimeout(() => res.end(JSON.stringify({ result: 'too late' })), 1500).unref()
      } else if (path === '/500') {
        res.statusCode = 500
        res.end(JSON.stringify({ error: 'boom' }))
      } else if (path === '/garbage') {
        res.setHeader('content-type', 'application/json')
        res.end('{"result": "unterminated')
      } else if (path === '/get') {
        res.end(JSON.stringify({ result: `got ${new URL(req.url ?? '/', 'http://x').searchParams.get('q')}` }))
      } else {
        res.statusCode = 404
        res.end()
      }
    })
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen }
}

t.test('timeout clamp is 1–30 s with a 5 s default', async (t) => {
  t.equal(clampTimeout(undefined), 5000)
  t.equal(clampTimeout(10), 1000)
  t.equal(clampTimeout(99999), 30000)
  t.equal(clampTimeout(2500), 2500)
})

t.test('HTTP tool outcomes: success (signed), timeout, 500, malformed JSON, unreachable', async (t) => {
  const { server, url, seen } = await startToolServer()
  t.teardown(() => server.close())
  const tool = (path: string, extra: Partial<HttpToolConfig> = {}): HttpToolConfig => ({
    name: 'lookupOrder',
    description: 'Look up an order',
    url: `${url}${path}`,
    headers: { 'x-tenant': 'acme' },
    signingSecret: SECRET,
    ...extra,
  })
  const ctx = { callId: 'call-7', from: '+15550001', to: '+15550002' }

  const ok = await invokeHttpTool(tool('/ok'), { orderNumber: 'A1' }, ctx)
  t.same(ok, { ok: true, content: 'order A1 has shipped', status: 200 })
  const req = seen.at(-1)!
  t.equal(req.headers['x-tenant'], 'acme', 'custom headers sent')
  const verified = new Webhook(SECRET).verify(req.body, {
    'webhook-id': String(req.headers['webhook-id']),
    'webhook-timestamp': String(req.headers['webhook-timestamp']),
    'webhook-signature': String(req.headers['webhook-signature']),
  })
  t.match(verified, { tool: 'lookupOrder', arguments: { orderNumber: 'A1' }, call: { id: 'call-7', from: '+15550001' } }, 'signature verifies')

  const started = performance.now()
  const slow = await invokeHttpTool(tool('/slow', { timeoutMs: 1000 }), {}, ctx)
  t.equal(slow.ok, false)
  t.match(slow.content, /timed out after 1000 ms/)
  t.ok(performance.now() - started < 1400, 'gave up at the timeout')

  t.match(await invokeHttpTool(tool('/500'), {}, ctx), { ok: false, status: 500, content: /HTTP 500/ })
  t.match(await invokeHttpTool(tool('/garbage'), {}, ctx), { ok: false, content: /malformed JSON/ })
  t.match(await invokeHttpTool(tool('/get', { method: 'GET' }), { q: 'abc' }, ctx), { ok: true, content: 'got abc' })
  t.match(await invokeHttpTool({ ...tool('/ok'), url: 'http://127.0.0.1:1/x' }, {}, ctx), { ok: false, content: /could not be reached/ })
})

t.test('built-ins validate their arguments', async (t) => {
  const box = new ToolBox([], undefined, [{ name: 'Sales', number: '+15557777' }])
  t.match(await box.execute({ id: '1', name: 'transfer_call', arguments: '{"target":"sales"}' }, { callId: 'c' }), { ok: true, action: { kind: 'transfer', target: '+15557777' } })
  t.match(await box.execute({ id: '2', name: 'send_dtmf', arguments: '{"digits":"12#"}' }, { callId: 'c' }), { ok: true, action: { kind: 'send_dtmf', digits: '12#' } })
  t.match(await box.execute({ id: '3', name: 'send_dtmf', arguments: '{"digits":"hello"}' }, { callId: 'c' }), { ok: false })
  t.match(await box.execute({ id: '4', name: 'nope', arguments: '{}' }, { callId: 'c' }), { ok: false, content: /unknown tool/ })
  t.match(await box.execute({ id: '5', name: 'end_call', arguments: 'not json' }, { callId: 'c' }), { ok: false })
})

t.test('in a call: tool results and failures reach the LLM, filler is spoken, the call goes on', async (t) => {
  const { server, url, seen } = await startToolServer()
  t.teardown(() => server.close())
  const port = new TestMediaPort(8000)
  const mkRule = (dtmf: string, path: string): JsonValue => ({
    dtmf,
    tool: { name: `tool_${path.slice(1)}`, arguments: { orderNumber: 'Z9' } },
    afterTool: 'Result: {result}.',
    onToolError: 'Sorry, that did not work.',
  })
  const agent = createAgent({
    port,
    call: { id: 'tools-1' },
    config: {
      aiSpeaksFirst: false,
      toolFillerPhrase: 'One moment.',
      tools: ['/ok', '/slow', '/500', '/garbage'].map((p) => ({ name: `tool_${p.slice(1)}`, description: p, url: `${url}${p}`, timeoutMs: 1000, signingSecret: SECRET })),
      llm: { provider: 'scripted', options: { rules: [mkRule('1', '/ok'), mkRule('2', '/slow'), mkRule('3', '/500'), mkRule('4', '/garbage'), { dtmf: '9', reply: 'Still here.' }] } },
    },
  })
  t.teardown(() => {
    port.stop()
    void agent.stop()
  })
  port.start()
  await agent.start()
  const said = (): string[] => agent.transcript.entries.filter((e) => e.role === 'assistant').map((e) => e.text)
  for (const [digit, expect] of [
    ['1', 'One moment. Result: order Z9 has shipped.'],
    ['2', 'One moment. Sorry, that did not work.'],
    ['3', 'One moment. Sorry, that did not work.'],
    ['4', 'One moment. Sorry, that did not work.'],
    ['9', 'Still here.'],
  ] as const) {
    const n = said().length
    port.pressDtmf(digit)
    await port.waitFor(() => said().length > n, 15000, `reply to ${digit}`)
    t.equal(said().at(-1), expect, `DTMF ${digit}`)
  }
  const tools = agent.transcript.entries.filter((e) => e.role === 'tool').map((e) => [e.tool?.name, e.tool?.ok])
  t.same(tools, [['tool_ok', true], ['tool_slow', false], ['tool_500', false], ['tool_garbage', false]])
  t.equal(seen.length, 4, 'each tool endpoint was called once')
  t.same(port.hangups, [], 'call still up')
})
