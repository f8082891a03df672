import t from 'tap'
import { join } from 'node:path'
import WebSocket from 'ws'
import { startStack } from '../harness/stack.ts'
import { freePort } from '../harness/ports.ts'
import { runSipp } from '../harness/sipp.ts'

const SCENARIOS = join(import.meta.dirname, '..', 'engine', 'scenarios')

/** A real SIP call to the demo number 1000, seen through GET /v1/events and the calls API. */
t.test('the events WebSocket sees a real call end to end', async (t) => {
  const stack = await startStack(process.env.DATABASE_URL ? { DATABASE_URL: process.env.DATABASE_URL } : {})
  t.teardown(() => stack.stop())
  const wsUrl = `${stack.baseUrl.replace('http', 'ws')}/v1/events?types=call.*&token=${stack.apiKey}`
  const events: Array<{ type: string; callId: string; data: any }> = []
  const ws = new WebSocket(wsUrl)
  await new Promise<void>((resolve, reject) => {
    ws.once('message', () => resolve())
    ws.once('error', reject)
  })
  ws.on('message', (m) => events.push(JSON.parse(m.toString())))
  t.teardown(() => ws.close())
  const api = (path: string, init: RequestInit = {}) => fetch(`${stack.baseUrl}${path}`, { ...init, headers: { authorization: `Bearer ${stack.apiKey}`, ...(init.headers ?? {}) } })
  const waitFor = async (what: string, fn: () => boolean, ms = 20_000) => {
    const end = Date.now() + ms
    while (!fn() && Date.now() < end) await new Promise((r) => setTimeout(r, 50))
    return fn()
  }

  t.test('caller hangs up', async (t) => {
    // The caller stays 2 s (hears the greeting), then sends BYE.
    const sipp = runSipp({ scenario: 'uac', remote: `127.0.0.1:${stack.sipPort}`, localPort: await freePort(), service: '1000', timeoutMs: 30_000, args: ['-d', '2000'] })
    const r = await sipp.done
    t.equal(r.code, 0, `sipp call to 1000 completed (${r.errors.slice(0, 300)})`)
    t.ok(await waitFor('call.ended', () => events.some((e) => e.type === 'call.ended')), 'call.ended arrived')
    const callId = events.find((e) => e.type === 'call.started')?.callId
    const mine = events.filter((e) => e.callId === callId).map((e) => e.type)
    t.match(mine, ['call.started'], 'starts with call.started')
    t.ok(mine.indexOf('call.answered') > 0, 'then call.answered')
    // The agent's reply the hangup cut short is written when the agent stops,
    // so its call.transcript (and a summary) may trail call.ended, and the end-of-call
    // report comes once they are stored; nothing else may.
    const trailing = mine.slice(mine.lastIndexOf('call.ended') + 1)
    t.ok(mine.includes('call.ended') && trailing.every((e) => ['call.transcript', 'call.summary', 'call.speech_update', 'call.report'].includes(e)), `the lifecycle ends with call.ended (after it: ${trailing.join(', ') || 'nothing'})`)
    const call = await (await api(`/v1/calls/${callId}`)).json() as any
    t.match(call, { id: callId, direction: 'inbound', to: '1000', status: 'completed', hangupBy: 'caller' })
    t.ok(call.answeredAt && call.endedAt)
  })

  t.test('the API hangs up a live call (DELETE /v1/calls/:id)', async (t) => {
    events.length = 0
    const sipp = runSipp({ scenario: join(SCENARIOS, 'uac-until-bye.xml'), remote: `127.0.0.1:${stack.sipPort}`, localPort: await freePort(), service: '1000', timeoutMs: 30_000 })
    t.ok(await waitFor('answered', () => events.some((e) => e.type === 'call.answered')), 'call answered')
    const callId = events.find((e) => e.type === 'call.answered')!.callId
    const del = await api(`/v1/calls/${callId}`, { method: 'DELETE' })
    t.equal(del.status, 204)
    const r = await sipp.done
    t.equal(r.code, 0, `the caller received BYE (${r.errors.slice(0, 300)})`)
    t.ok(await waitFor('ended', () => events.some((e) => e.type === 'call.ended' && e.callId === callId)))
    const call = await (await api(`/v1/calls/${callId}`)).json() as any
    t.match(call, { status: 'completed', hangupBy: 'api' })
    const again = await api(`/v1/calls/${callId}`, { method: 'DELETE' })
    t.equal(again.status, 409, 'an ended call cannot be hung up again')
  })
})
