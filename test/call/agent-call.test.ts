import t from 'tap'
import { sipp } from '../sip/app/sipp-util.ts'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { startSipStack, waitFor, scenarioFile } from '../sip/app/helpers.ts'
import { SCN } from '../sip/app/sipp-util.ts'

t.test('a carrier call answered by a real agent (MediaEngine + agent runtime, offline adapters)', async (t) => {
  const stack = await startSipStack({ realMedia: true })
  t.teardown(() => stack.stop())
  const { store, accountId } = stack
  const trunk = await store.trunks.create(accountId, { name: 'carrier', inbound: { allowedIps: ['127.0.0.2'] } })
  const agent = await store.agents.create(accountId, { name: 'greeter', greeting: 'Hello from callplane.' })
  await store.numbers.create(accountId, { number: '+14155550123', target: { type: 'agent', id: agent.id } })
  // Long enough for the greeting to be synthesised and played out in full, even on a loaded box.
  const call8s = scenarioFile('carrier-8s', readFileSync(join(SCN, 'carrier-call.xml'), 'utf8').replace('<pause milliseconds="1500"/>', '<pause milliseconds="8000"/>'))
  const res = await sipp(call8s, { remote: stack.target, service: '+14155550123', localIp: '127.0.0.2', timeoutMs: 40_000 })
  t.equal(res.code, 0, `answered and hung up (${res.errors.slice(0, 200)})`)
  const call = await waitFor(async () => {
    const { rows } = await store.db.pool.query(`SELECT id FROM calls WHERE trunk_id = $1 AND status = 'completed'`, [trunk.id])
    return rows[0] ? store.calls.getById(rows[0].id) : null
  }, 10_000, 'completed call')
  t.match(call, { status: 'completed', endedReason: 'caller-hangup', agentId: agent.id })
  const said = await waitFor(async () => {
    const c = await store.calls.getById(call!.id)
    return c?.transcript.find((e) => e.role === 'assistant') ?? null
  }, 20_000, 'assistant transcript').catch(() => null)
  t.match(said, { role: 'assistant', text: /Hello from callplane/ }, 'the agent greeted the caller (transcript persisted)')
})
