import t from 'tap'
import { buildTestApp, call } from '../control-api/helpers.ts'
import { agentConfigFrom } from '../../call/agent-binder.ts'
import { resolveAgentConfig } from '../../agent/index.ts'
import { registerBuiltinAdapters } from '../../agent/adapters/builtin.ts'
import { createLlm } from '../../agent/adapters/registry.ts'
import type { LlmChunk } from '../../agent/adapters/llm/contract.ts'

/**
 * Agent rule patterns cannot hang the call path: they are matched by RE2
 * (linear time), and patterns RE2 cannot run (backreferences, lookaround)
 * are refused when the agent is written, naming the rule and why.
 */

t.test('a catastrophic pattern from the API answers promptly through the call path', async (t) => {
  const h = await buildTestApp()
  t.teardown(() => h.close())
  const created = await call(h.app, h.adminKey, 'POST', '/v1/agents', {
    name: 'backtracker',
    rules: [{ match: '(a+)+$', reply: 'never' }, { match: '(x+x+)+y', reply: 'nor this' }, { match: 'opening hours', reply: 'Nine to five.' }],
  })
  t.equal(created.statusCode, 201, 'the pattern is accepted: RE2 runs it in linear time')
  const stored = await h.store.agents.get(h.accountId, (created.json() as { id: string }).id)
  // The same conversion and adapter construction a call makes.
  registerBuiltinAdapters()
  const config = resolveAgentConfig(agentConfigFrom(stored!))
  const llm = createLlm(config.llm, config)
  const say = async (utterance: string) => {
    let text = ''
    for await (const c of llm.chat({ messages: [{ role: 'user', content: utterance }], tools: [], signal: AbortSignal.timeout(20_000) }) as AsyncIterable<LlmChunk>) {
      if (c.type === 'text') text += c.text
    }
    return text
  }
  // With a backtracking engine `(a+)+$` against 'aaaa…b' takes 2^n steps: n = 40 would run for days.
  const started = Date.now()
  const reply = await say(`${'a'.repeat(40)}b ${'x'.repeat(5000)}`)
  t.not(reply, 'never', 'the catastrophic rule does not match')
  t.not(reply, 'nor this')
  t.equal(await say('what are your opening hours'), 'Nine to five.', 'later rules still match')
  t.comment(`two utterances answered in ${Date.now() - started} ms`)
})

t.test('patterns RE2 cannot run are refused with the rule and the reason', async (t) => {
  const h = await buildTestApp()
  t.teardown(() => h.close())
  const cases: Array<[string, RegExp]> = [
    ['(\\w+) \\1', /backreferences/],
    ['hello(?= world)', /lookahead and lookbehind/],
    ['(?<!no )thanks', /lookahead and lookbehind|named capture/],
    ['[unclosed', /missing closing ]/],
  ]
  for (const [match, why] of cases) {
    const r = await call(h.app, h.adminKey, 'POST', '/v1/agents', { name: 'x', rules: [{ match: 'fine', reply: 'ok' }, { match, reply: 'r' }] })
    t.equal(r.statusCode, 400, `${match}: 400`)
    const msg = (r.json() as { error: { message: string } }).error.message
    t.match(msg, /\/rules\/1\/match \(rule 2/, `names the rule: ${msg}`)
    t.match(msg, why, 'says why')
  }
  const agent = (await call(h.app, h.adminKey, 'POST', '/v1/agents', { name: 'y' })).json() as { id: string }
  const p = await call(h.app, h.adminKey, 'PATCH', `/v1/agents/${agent.id}`, { rules: [{ match: '(a)\\1', reply: 'r' }] })
  t.equal(p.statusCode, 400, 'PATCH is checked too')
  t.equal(((await call(h.app, h.adminKey, 'GET', `/v1/agents/${agent.id}`)).json() as { rules?: unknown }).rules, undefined, 'nothing stored')
})
