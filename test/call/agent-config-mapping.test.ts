/**
 * A stored agent (API shape, store/agents.ts) becomes the runtime's config
 * (agent/config.ts): every field the API accepts must reach the runtime, or
 * setting it through the API would silently do nothing.
 */
import t from 'tap'
import { agentConfigFrom } from '../../call/agent-binder.ts'
import { resolveAgentConfig } from '../../agent/config.ts'
import type { Agent } from '../../store/agents.ts'

const base: Agent = {
  id: '00000000-0000-4000-8000-000000000001', accountId: '00000000-0000-4000-8000-000000000002', name: 'support', type: 'pipeline',
  createdAt: '2026-11-26T00:00:00.000Z', updatedAt: '2026-11-26T00:00:00.000Z',
}

t.test('API agent fields reach the runtime config', async (t) => {
  const cfg = resolveAgentConfig(agentConfigFrom({
    ...base,
    prompt: 'Be brief.', greeting: 'Hello.', vad: 'silero', aiSpeaksFirst: false, greetingInterruptible: false,
    expectedPhrases: ['billing', 'sales'], amd: { onMachine: 'leave_message', message: 'Call us back.', maxWaitMs: 20_000 },
    summary: { enabled: true, prompt: 'One line.' }, silenceTimeoutSec: 30, maxDurationSec: 600,
    transferTargets: [{ name: 'sales', destination: '+14155550100' }],
  }))
  t.equal(cfg.systemPrompt, 'Be brief.')
  t.equal(cfg.vad, 'silero')
  t.equal(cfg.aiSpeaksFirst, false)
  t.equal(cfg.greetingInterruptible, false)
  t.same(cfg.expectedPhrases, ['billing', 'sales'])
  t.match(cfg.amd, { onMachine: 'leave_message', message: 'Call us back.', maxWaitMs: 20_000 })
  t.equal(cfg.summary, true)
  t.equal(cfg.summaryPrompt, 'One line.')
  t.equal(cfg.maxSilenceSeconds, 30)
  t.equal(cfg.maxCallDurationMinutes, 10)
})

t.test('unset API fields keep the runtime defaults', async (t) => {
  const cfg = resolveAgentConfig(agentConfigFrom(base))
  t.equal(cfg.vad, undefined, 'the runtime picks its default VAD')
  t.equal(cfg.aiSpeaksFirst, true)
  t.same(cfg.expectedPhrases, [])
  t.equal(cfg.amd, undefined)
  t.equal(cfg.summary, false)
})

t.test('rules drive the scripted model even when llm names it, and feed the STT grammar', async (t) => {
  const rules = [{ match: 'what can you do', reply: 'Lots.' }, { match: 'goodbye', reply: 'Bye.', hangup: true }, { match: '.*', reply: 'Fallback.' }]
  for (const llm of [undefined, { provider: 'scripted' }]) {
    const cfg = resolveAgentConfig(agentConfigFrom({ ...base, ...(llm ? { llm } : {}), rules, expectedPhrases: ['billing'] }))
    t.match(cfg.llm, { provider: 'scripted', options: { rules } }, `rules reach the scripted model (llm ${llm ? 'set' : 'unset'})`)
    t.same(cfg.expectedPhrases, ['billing', 'what can you do', 'goodbye'], 'plain-word patterns join the grammar; ".*" does not')
  }
  const cloud = resolveAgentConfig(agentConfigFrom({ ...base, llm: { provider: 'openai', model: 'gpt-4o-mini' }, rules }))
  t.same(cloud.llm, { provider: 'openai', options: { model: 'gpt-4o-mini' } }, 'another model keeps its own options')
  t.same(cloud.expectedPhrases, ['what can you do', 'goodbye'], 'its STT still hears the rule phrases')
})

t.test('the agent\'s tools and websocket target reach the runtime', async (t) => {
  const tool = {
    id: '00000000-0000-4000-8000-000000000003', accountId: base.accountId, name: 'lookupOrder', description: 'Order status', url: 'https://example.com/t',
    method: 'POST' as const, timeoutMs: 7000, speakDuringExecution: 'Let me check.', enabled: true, inputSchema: { type: 'object' },
    secret: 'whsec_c2VjcmV0', createdAt: base.createdAt, updatedAt: base.updatedAt,
  }
  const cfg = resolveAgentConfig(agentConfigFrom({ ...base, tools: [tool.id] }, [tool]))
  t.same(cfg.tools, [{ name: 'lookupOrder', description: 'Order status', url: 'https://example.com/t', method: 'POST', timeoutMs: 7000, speakDuringExecution: 'Let me check.', inputSchema: { type: 'object' }, signingSecret: 'whsec_c2VjcmV0' }])
  const ws = resolveAgentConfig(agentConfigFrom({ ...base, type: 'websocket', websocket: { url: 'wss://bot.example.com/s', encapsulation: 'raw' } }))
  t.equal(ws.type, 'websocket')
  t.same(ws.websocket, { url: 'wss://bot.example.com/s', encapsulation: 'raw' })
})
