import t from 'tap'
import { ScriptedLlm } from '../../agent/adapters/llm/scripted.ts'
import type { JsonValue } from '../../agent/adapters/json.ts'
import type { ChatMessage, LlmChunk, ToolDefinition } from '../../agent/adapters/llm/contract.ts'
import { ToolBox } from '../../agent/tools.ts'

const llm = new ScriptedLlm({
  rules: [
    { phrases: ['opening hours'], reply: 'We are open nine to five.' },
    { keywords: ['order', 'status'], tool: { name: 'lookupOrder', arguments: { orderNumber: '42' } }, afterTool: 'Your order is {result}.', onToolError: 'I could not look that up.' },
    { phrases: ['human'], reply: 'Transferring you now.', transferTo: 'sales' },
    { dtmf: '0', reply: 'Connecting you to the operator.', transferTo: 'operator' },
    { phrases: ['goodbye'], reply: 'Bye!', endCall: true },
  ],
  fallback: 'Sorry?',
})
const tools: ToolDefinition[] = [...new ToolBox().definitions(), { name: 'lookupOrder', description: 'd', parameters: {} }]

async function run(messages: ChatMessage[]): Promise<LlmChunk[]> {
  const out: LlmChunk[] = []
  for await (const c of llm.chat({ messages, tools, signal: new AbortController().signal })) out.push(c)
  return out
}
const text = (cs: LlmChunk[]): string => cs.map((c) => (c.type === 'text' ? c.text : '')).join('')

t.test('phrase match replies, streamed as word tokens', async (t) => {
  const cs = await run([{ role: 'user', content: 'what are your opening hours please' }])
  t.equal(text(cs), 'We are open nine to five.')
  t.ok(cs.filter((c) => c.type === 'text').length > 3)
  t.same(cs.at(-1), { type: 'done', finishReason: 'stop' })
})

t.test('keyword rule calls a tool, then speaks the result or the failure line', async (t) => {
  const first = await run([{ role: 'user', content: 'check my order status' }])
  const call = first.find((c) => c.type === 'tool_call')
  t.ok(call && call.type === 'tool_call' && call.call.name === 'lookupOrder')
  if (!call || call.type !== 'tool_call') return
  t.same(JSON.parse(call.call.arguments), { orderNumber: '42' })
  const base: ChatMessage[] = [{ role: 'user', content: 'check my order status' }, { role: 'assistant', content: '', toolCalls: [call.call] }]
  t.equal(text(await run([...base, { role: 'tool', toolCallId: call.call.id, name: 'lookupOrder', content: 'shipped' }])), 'Your order is shipped.')
  t.equal(text(await run([...base, { role: 'tool', toolCallId: call.call.id, name: 'lookupOrder', content: 'ERROR: timed out' }])), 'I could not look that up.')
})

t.test('transfer, DTMF and end call are expressed as built-in tool calls', async (t) => {
  const tr = await run([{ role: 'user', content: 'let me talk to a human' }])
  t.match(tr.find((c) => c.type === 'tool_call'), { call: { name: 'transfer_call', arguments: '{"target":"sales"}' } })
  const d = await run([{ role: 'user', content: 'DTMF: 0' }])
  t.match(d.find((c) => c.type === 'tool_call'), { call: { name: 'transfer_call', arguments: '{"target":"operator"}' } })
  const bye = await run([{ role: 'user', content: 'ok goodbye' }])
  t.equal(text(bye), 'Bye!')
  t.match(bye.find((c) => c.type === 'tool_call'), { call: { name: 'end_call' } })
})

t.test('fallback line and abort', async (t) => {
  t.equal(text(await run([{ role: 'user', content: 'blah' }])), 'Sorry?')
  const ac = new AbortController()
  ac.abort()
  await t.rejects(async () => {
    for await (const _ of llm.chat({ messages: [{ role: 'user', content: 'opening hours' }], tools, signal: ac.signal })) void _
  })
  t.ok(llm.expectedPhrases().includes('opening hours'))
})

t.test('rules in the stored agent shape ({ match, reply, tool, args, transferTo, hangup }) through the registry', async (t) => {
  const { registerBuiltinAdapters } = await import('../../agent/adapters/builtin.ts')
  const { createLlm } = await import('../../agent/adapters/registry.ts')
  const { resolveAgentConfig } = await import('../../agent/config.ts')
  registerBuiltinAdapters()
  const stored: JsonValue[] = [
    { match: 'opening hours|when are you open', reply: 'We are open nine to five.' },
    { match: '^(bye|goodbye)\\b', reply: 'Bye!', hangup: true },
    { match: 'order', tool: 'lookupOrder', args: { orderNumber: '7' } },
    { match: 'human', reply: 'One moment.', transferTo: 'sales' },
    { match: '([', reply: 'never: the pattern does not compile' },
  ]
  const cfg = resolveAgentConfig({ llm: { provider: 'scripted', options: { rules: stored } }, transferTargets: [{ name: 'sales', destination: 'sip:sales@example.com' }] })
  const model = createLlm(cfg.llm, cfg)
  const say = async (content: string): Promise<LlmChunk[]> => {
    const out: LlmChunk[] = []
    for await (const c of model.chat({ messages: [{ role: 'user', content }], tools, signal: new AbortController().signal })) out.push(c)
    return out
  }
  t.equal(text(await say('When are you OPEN today')), 'We are open nine to five.', 'regex alternative, case-insensitive')
  const bye = await say('goodbye then')
  t.equal(text(bye), 'Bye!')
  t.match(bye.find((c) => c.type === 'tool_call'), { call: { name: 'end_call' } }, 'hangup → end_call')
  t.match((await say('where is my order')).find((c) => c.type === 'tool_call'), { call: { name: 'lookupOrder', arguments: '{"orderNumber":"7"}' } }, 'tool + args')
  t.match((await say('a human please')).find((c) => c.type === 'tool_call'), { call: { name: 'transfer_call', arguments: '{"target":"sales"}' } })
  t.same(cfg.transferTargets, [{ name: 'sales', number: 'sip:sales@example.com' }], 'stored transfer target (destination) becomes a number')
  // Plain-word alternatives feed the STT grammar; regex syntax does not.
  t.same(model.expectedPhrases?.(), ['opening hours', 'when are you open', 'order', 'human'])
})
