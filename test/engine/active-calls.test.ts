/**
 * The SIP side's active-call count (/health sip-app activeCalls, the
 * callplane_active_calls gauge) returns to zero however a call ends: hung up
 * through the API, by the agent, by the caller, or failed; and a drain with
 * no calls left finishes without waiting for calls that do not exist.
 * Everything goes through the public surface: resources via REST, calls over
 * real SIP (sipp) and RTP.
 */
import { waitFor } from '../harness/wait.ts'
import t, { type Test } from 'tap'
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startStack, type Stack } from '../harness/stack.ts'
import { freePort } from '../harness/ports.ts'
import { runSipp } from '../harness/sipp.ts'
import { parseWav } from '../../media/wav.ts'
import { RtpCaller, placeCall, awaitAnsweredCall } from '../sip/app/rtp-caller.ts'
import { SCN } from '../sip/app/sipp-util.ts'

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms))

const waitUntil = <T>(what: string, fn: () => Promise<T | null | undefined | false>, ms = 20_000): Promise<T> => waitFor(fn, ms, what)

/** What an operator sees: the count in /health and in /metrics. */
async function activeCalls(stack: Stack): Promise<{ health: number; metric: number }> {
  const health = await (await fetch(`${stack.baseUrl}/health`)).json() as { components: Record<string, { detail?: { activeCalls?: number } }> }
  const metrics = await (await fetch(`${stack.baseUrl}/metrics`)).text()
  return {
    health: health.components['sip-app']?.detail?.activeCalls ?? -1,
    metric: Number(/^callplane_active_calls (\d+)/m.exec(metrics)?.[1] ?? -1),
  }
}

async function backToZero(t: Test, stack: Stack, what: string): Promise<void> {
  let last = { health: -1, metric: -1 }
  await waitUntil(`${what}: active calls back to 0`, async () => {
    last = await activeCalls(stack)
    return last.health === 0 && last.metric === 0
  }, 15_000).catch(() => {})
  t.same(last, { health: 0, metric: 0 }, `${what}: /health and /metrics count 0 active calls`)
}

t.test('the active-call count returns to 0 however a call ends; drain then has nothing to wait for', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'active-calls-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const stack = await startStack()
  let stopped = false
  t.teardown(async () => { if (!stopped) await stack.stop() })
  const api = (path: string, init: RequestInit = {}) => fetch(`${stack.baseUrl}${path}`, {
    ...init, headers: { authorization: `Bearer ${stack.apiKey}`, ...(init.body ? { 'content-type': 'application/json' } : {}), ...init.headers },
  })
  const post = async (path: string, body: unknown) => {
    const res = await api(path, { method: 'POST', body: JSON.stringify(body) })
    const json = await res.json() as { id: string }
    if (res.status !== 201) throw new Error(`POST ${path}: ${res.status} ${JSON.stringify(json)}`)
    return json
  }
  const callStatus = async (id: string) => (await (await api(`/v1/calls/${id}`)).json()) as { status: string; hangupBy: string | null; endedReason: string | null }
  const ended = (id: string) => waitUntil(`call ${id} ended`, async () => {
    const c = await callStatus(id)
    return ['completed', 'failed', 'busy', 'no-answer', 'canceled'].includes(c.status) ? c : null
  })

  const listener = await post('/v1/agents', {
    name: 'listener', greeting: 'Hello.', expectedPhrases: ['goodbye'],
    rules: [{ match: '\\bgoodbye\\b', reply: 'Bye.', hangup: true }],
  })
  await post('/v1/numbers', { number: '2001', target: { type: 'agent', id: listener.id } })

  await t.test('hung up through DELETE /v1/calls/:id', async (t) => {
    const caller = new RtpCaller()
    await caller.start()
    t.teardown(() => caller.close())
    const sipp = await placeCall({ dir, sipPort: stack.sipPort, service: '2001', caller, timeoutMs: 30_000 })
    t.teardown(() => sipp.kill())
    const { callId } = await awaitAnsweredCall((p) => api(p), caller)
    t.ok(callId, 'the call is in progress')
    t.equal((await activeCalls(stack)).health, 1, 'one active call while it runs')
    t.equal((await api(`/v1/calls/${callId}`, { method: 'DELETE' })).status, 204)
    const res = await sipp.done
    t.equal(res.code, 0, `the caller got our BYE (${res.errors.slice(0, 200)})`)
    t.match(await ended(callId), { status: 'completed', hangupBy: 'api' })
    await backToZero(t, stack, 'API hangup')
  })

  await t.test('hung up by the agent (a rule with hangup)', async (t) => {
    // The caller says "goodbye" (espeak-ng, 8 kHz) a few seconds in; the offline STT hears it, the rule hangs up.
    const raw = join(dir, 'bye-raw.wav')
    const wav = join(dir, 'bye.wav')
    execFileSync('espeak-ng', ['-v', 'en-us', '-w', raw, '--', 'goodbye'])
    execFileSync('sox', [raw, '-r', '8000', '-c', '1', '-b', '16', '-e', 'signed-integer', wav])
    const speech = parseWav(readFileSync(wav)).pcm
    const caller = new RtpCaller()
    await caller.start()
    t.teardown(() => caller.close())
    const sipp = await placeCall({ dir, sipPort: stack.sipPort, service: '2001', caller, timeoutMs: 45_000 })
    t.teardown(() => sipp.kill())
    const { callId } = await awaitAnsweredCall((p) => api(p), caller)
    t.ok(callId, 'the call is in progress')
    // Say it 3 s after the call is answered (after the short greeting), and again every 6 s until the agent hangs up.
    const start = caller.sent + 3 * 8000
    caller.signal = (n) => {
      const i = (n - start) % (6 * 8000)
      return n >= start && i < speech.length ? speech[i]! : 0
    }
    const res = await sipp.done
    t.equal(res.code, 0, `the caller got the agent's BYE (${res.errors.slice(0, 200)})`)
    t.match(await ended(callId), { status: 'completed', hangupBy: 'agent' })
    await backToZero(t, stack, 'agent hangup')
  })

  await t.test('hung up by the caller', async (t) => {
    const res = await runSipp({ scenario: join(SCN, 'carrier-call.xml'), remote: `127.0.0.1:${stack.sipPort}`, localPort: await freePort(), service: '2001', timeoutMs: 20_000 }).done
    t.equal(res.code, 0, `the caller's call was answered and ended by its BYE (${res.errors.slice(0, 200)})`)
    await backToZero(t, stack, 'caller hangup')
  })

  await t.test('outbound call through the API, answered, then hung up through the API', async (t) => {
    const port = await freePort()
    const uas = runSipp({ scenario: join(SCN, 'uas-answer.xml'), localPort: port, timeoutMs: 30_000 })
    t.teardown(() => uas.kill())
    await pause(300)
    const call = await post('/v1/calls', { to: `sip:bob@127.0.0.1:${port}`, from: '2001', agentId: listener.id })
    await waitUntil('outbound call answered', async () => (await callStatus(call.id)).status === 'in-progress')
    t.equal((await activeCalls(stack)).health, 1, 'one active call while it runs')
    t.equal((await api(`/v1/calls/${call.id}`, { method: 'DELETE' })).status, 204)
    t.match(await ended(call.id), { status: 'completed', hangupBy: 'api' })
    t.equal((await uas.done).code, 0, 'the callee got our BYE')
    await backToZero(t, stack, 'outbound API hangup')
  })

  await t.test('a failed outbound call (486 Busy Here)', async (t) => {
    const port = await freePort()
    const uas = runSipp({ scenario: join(SCN, 'uas-486.xml'), localPort: port, timeoutMs: 20_000 })
    t.teardown(() => uas.kill())
    await pause(300)
    const call = await post('/v1/calls', { to: `sip:busy@127.0.0.1:${port}`, from: '2001', agentId: listener.id })
    const c = await ended(call.id)
    t.not(c.status, 'completed', `the call did not complete (${c.status}, ${c.endedReason})`)
    await backToZero(t, stack, 'failed call')
  })

  await t.test('SIGTERM-style drain with no calls left: nothing to end, the engine stops', async (t) => {
    const ended: string[] = []
    t.equal(stack.engine.srfConnection.activeCalls, 0, 'no live dialogs are left over')
    // Before the mend the drain sent BYE on every leftover dialog and waited for
    // answers that never came; now there is nothing to end.
    const drained = stack.engine.srfConnection.drain().then(() => ended.push('drained'))
    const guard = pause(30_000).then(() => ended.push('guard'))
    await Promise.race([drained, guard])
    t.same(ended, ['drained'], 'the drain finished (with no leftover dialogs to BYE)')
    await stack.stop()
    stopped = true
  })
})
