import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { startUas, uasScenario } from '../harness/sipp-scenarios.ts'
import type { Stack } from '../harness/stack.ts'

/**
 * A new account for one suite, and the stack as its admin key sees it: a rerun
 * on a shared PostgreSQL (test/control-api/postgres.test.ts) keeps earlier
 * suites' numbers, routes and do-not-call entries in the bootstrap account.
 */
export async function freshAccount(stack: Stack, name: string): Promise<{ id: string; token: string; stack: Stack }> {
  const r = await fetch(`${stack.baseUrl}/v1/accounts`, { method: 'POST', headers: { authorization: `Bearer ${stack.apiKey}`, 'content-type': 'application/json' }, body: JSON.stringify({ name }) })
  if (r.status !== 201) throw new Error(`creating the account failed: ${r.status} ${await r.text()}`)
  const b = (await r.json()) as { account: { id: string }; apiKey: { token: string } }
  return { id: b.account.id, token: b.apiKey.token, stack: { ...stack, apiKey: b.apiKey.token } }
}

/**
 * What the outreach suites (scheduled calls, sequences) share: sipp callees
 * that answer, talk for a while and hang up (or reject busy), and a local
 * server speaking the OpenAI chat-completions protocol whose model calls a
 * named tool on the caller's first turn.
 */

/** A sipp UAS answering every INVITE (up to `calls`), hanging up itself after `byeAfterMs`; or answering 486 Busy. `dtmf`: 1.5 s after answering the callee presses it (SIP INFO): the agent gets a caller turn. */
export async function callee(dir: string, name: string, o: { byeAfterMs?: number; busy?: boolean; calls?: number; dtmf?: string } = {}) {
  const xml = o.busy
    ? uasScenario({ name: 'busy', kind: 'busy' })
    : uasScenario({ name: 'answer then hang up', kind: 'answer', telephoneEvent: true, ...(o.dtmf ? { infoDigit: o.dtmf } : {}), end: { by: 'callee', afterMs: o.byeAfterMs ?? 2000 } })
  return startUas(dir, name, xml, { timeoutMs: 300_000, calls: o.calls ?? 10 })
}

/**
 * An OpenAI-compatible chat server: on a user turn with `tool` offered and
 * not yet called, it streams a call of `tool` with `args`; after the tool's
 * result it says `Done: <result>`; otherwise it echoes. Records requests.
 * With a list of `args`, it calls the tool once with each, one after the
 * other (a model calling a tool again and again in one turn).
 */
export async function toolCallingLlm(tool: string, args: Record<string, unknown> | Array<Record<string, unknown>>): Promise<{ baseURL: string; requests: Array<Record<string, unknown>>; close(): Promise<void> }> {
  const calls = Array.isArray(args) ? args : [args]
  const requests: Array<Record<string, unknown>> = []
  const server: Server = createServer((req, res) => {
    let raw = ''
    req.on('data', (d: Buffer) => { raw += d.toString() })
    req.on('end', () => {
      const body = (raw ? JSON.parse(raw) : {}) as { model?: string; messages?: Array<{ role: string; content?: string | null; tool_calls?: unknown[] }>; tools?: Array<{ function: { name: string } }> }
      requests.push(body as Record<string, unknown>)
      const messages = body.messages ?? []
      const last = messages[messages.length - 1]
      const model = body.model ?? 'gpt-test'
      const chunk = (delta: Record<string, unknown>, finish: string | null = null) =>
        `data: ${JSON.stringify({ id: 'chatcmpl-1', object: 'chat.completion.chunk', created: Math.floor(Date.now() / 1000), model, choices: [{ index: 0, delta, finish_reason: finish }] })}\n\n`
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' })
      const called = messages.filter((m) => m.role === 'tool').length
      if ((last?.role === 'user' || last?.role === 'tool') && called < calls.length && (body.tools ?? []).some((t) => t.function.name === tool)) {
        res.write(chunk({ role: 'assistant', content: null, tool_calls: [{ index: 0, id: `call_${called + 1}`, type: 'function', function: { name: tool, arguments: '' } }] }))
        res.write(chunk({ tool_calls: [{ index: 0, function: { arguments: JSON.stringify(calls[called]) } }] }))
        res.write(chunk({}, 'tool_calls'))
      } else {
        const text = last?.role === 'tool' ? `Done: ${String(last.content)}` : 'Okay.'
        res.write(chunk({ role: 'assistant', content: text }))
        res.write(chunk({}, 'stop'))
      }
      res.end('data: [DONE]\n\n')
    })
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  return {
    baseURL: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`,
    requests,
    close: () => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()) }),
  }
}
