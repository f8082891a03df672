/**
 * One engine for the table-driven agent-field tests (agent-fields*.test.ts):
 * the whole stack in-process (startStack), agents and the number created
 * through the REST API, calls placed by sipp with the test's own RTP socket
 * (RtpCaller), so a test says things to the agent and hears what it says back,
 * and reads the outcome through the API (call record, recordings, events).
 */
import { sleep, waitFor } from '../../harness/wait.ts'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import WebSocket from 'ws'
import { startStack, type Stack } from '../../harness/stack.ts'
import { writeFileSync } from 'node:fs'
import { callerSdp, frames, placeCall, placeTrackedCall, RtpCaller, voiced } from '../../sip/app/rtp-caller.ts'
import { runSipp, waitListening } from '../../harness/sipp.ts'
import { reply, scenario } from '../../harness/sipp-scenarios.ts'
import { freePort } from '../../harness/ports.ts'

export { frames, sleep, voiced }

export interface TranscriptEntry { role: string; text: string; startMs: number; endMs: number; interrupted: boolean; source?: string }
export interface CallDetail {
  id: string; status: string; endedReason: string | null; summary: string | null
  startedAt: string | null; answeredAt: string | null; endedAt: string | null
  transcript: TranscriptEntry[]
  recordings: Array<{ id: string; status: string; durationMs: number | null }>
}
export interface ApiEvent { type: string; callId?: string; data: Record<string, unknown> }

export interface FieldLab {
  stack: Stack
  number: string
  events: ApiEvent[]
  api(path: string, init?: RequestInit): Promise<Response>
  json<T = Record<string, unknown>>(method: string, path: string, body?: unknown): Promise<{ status: number; body: T }>
  /** POST an agent with `base`, PATCH it with the row's `fields`, and point the number at it. */
  agent(base: Record<string, unknown>, fields?: Record<string, unknown>): Promise<string>
  /** A call from sipp to the number; `reinvites`: re-INVITEs the caller's side answers (a transfer moving its media). */
  call(teardown: (fn: () => unknown) => void, reinvites?: number): Promise<LiveCall>
  /** POST /v1/calls to a sipp callee whose RTP is the returned caller; `body` adds agentId, metadata... */
  dial(teardown: (fn: () => unknown) => void, body: Record<string, unknown>, reinvites?: number): Promise<LiveCall>
  dir: string
  close(): Promise<void>
}

export interface LiveCall {
  id: string
  caller: RtpCaller
  /** Sends `pcm` from now on (then silence); resolves when it has been sent. */
  say(pcm: Int16Array): Promise<void>
  /** Wall time when the caller starts hearing speech-level audio after `since` (null: not within ms). */
  heardAt(since: number, ms: number): Promise<number | null>
  record(): Promise<CallDetail>
  /** The call's transcript entries as the call.transcript events carried them (with start, end, interrupted). */
  said(): TranscriptEntry[]
  /** Waits until the call record has ended. */
  ended(ms?: number): Promise<CallDetail>
  hangup(): Promise<CallDetail>
}

/**
 * A callee for outbound calls: sipp answers the INVITE with SDP pointing at
 * `caller`'s RTP socket, answers re-INVITEs (a transfer moving its media) and
 * the BYE. Returns the SIP URI to call.
 */
export async function answeringParty(dir: string, caller: RtpCaller, teardown: (fn: () => unknown) => void, reinvites = 0): Promise<{ uri: string; done: Promise<unknown> }> {
  const port = await freePort()
  const ok = (n: number, body: boolean) => reply('200 OK', { retrans: n === 0, ...(body ? { sdp: callerSdp(caller, n + 1, 'sendrecv', true) } : {}) })
  const xml = scenario('answering party', `
  <recv request="INVITE" crlf="true"/>${ok(0, true)}
  <recv request="ACK" crlf="true"/>
${Array.from({ length: reinvites }, (_, i) => `  <recv request="INVITE" timeout="120000"/>${ok(i + 1, true)}\n  <recv request="ACK"/>`).join('\n')}
  <recv request="BYE" timeout="120000"/>${ok(9, false)}`)
  const file = join(dir, `callee-${port}.xml`)
  writeFileSync(file, xml)
  const run = runSipp({ scenario: file, localPort: port, timeoutMs: 150_000 })
  teardown(() => run.kill())
  await waitListening(port)
  return { uri: `sip:callee@127.0.0.1:${port}`, done: run.done }
}

export const waitUntil = waitFor


export async function fieldLab(number: string): Promise<FieldLab> {
  const stack = await startStack(process.env.DATABASE_URL ? { DATABASE_URL: process.env.DATABASE_URL } : {})
  const dir = mkdtempSync(join(tmpdir(), 'agent-fields-'))
  const api = (path: string, init: RequestInit = {}) => fetch(`${stack.baseUrl}${path}`, {
    ...init, headers: { authorization: `Bearer ${stack.apiKey}`, ...(init.body ? { 'content-type': 'application/json' } : {}), ...(init.headers ?? {}) },
  })
  const json = async <T>(method: string, path: string, body?: unknown) => {
    const r = await api(path, { method, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) })
    const text = await r.text()
    return { status: r.status, body: (text ? JSON.parse(text) : null) as T }
  }
  const events: ApiEvent[] = []
  const ws = new WebSocket(`${stack.baseUrl.replace('http', 'ws')}/v1/events?types=call.*&token=${stack.apiKey}`)
  ws.on('message', (m) => events.push(JSON.parse(m.toString()) as ApiEvent))
  await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject) })
  const first = await json<{ id: string }>('POST', '/v1/agents', { name: 'placeholder' })
  const num = await json<{ id: string }>('POST', '/v1/numbers', { number, target: { type: 'agent', id: first.body.id } })
  if (num.status !== 201) throw new Error(`number: ${num.status} ${JSON.stringify(num.body)}`)
  const known = new Set<string>()

  const live = (id: string, c: RtpCaller): LiveCall => {
      const record = async () => (await json<CallDetail>('GET', `/v1/calls/${id}`)).body
      const ended = (ms = 30_000) => waitUntil(async () => { const r = await record(); return r.endedAt ? r : null }, ms, `call ${id} to end`)
      return {
        id, caller: c, record, ended,
        said: () => events.filter((e) => e.type === 'call.transcript' && e.callId === id).map((e) => e.data as unknown as TranscriptEntry),
        async say(pcm) {
          const start = c.sent
          c.signal = (n) => (n >= start && n < start + pcm.length ? pcm[n - start]! : 0)
          await waitUntil(() => c.sent >= start + pcm.length, 60_000, 'speech sent')
        },
        async heardAt(since, ms) {
          const end = Date.now() + ms
          while (Date.now() < end) {
            const idx = c.audioAt.findIndex((at, i) => at >= since && voiced(c.audio[i]!))
            if (idx >= 0) return c.audioAt[idx]!
            await sleep(50)
          }
          return null
        },
        async hangup() {
          const r = await json('DELETE', `/v1/calls/${id}`)
          if (r.status !== 204 && r.status !== 409 && r.status !== 404) throw new Error(`hangup: ${r.status} ${JSON.stringify(r.body)}`)
          // The transcript is stored when the agent ends, right after the BYE.
          const done = await ended()
          await sleep(500)
          return { ...done, ...(await record()) }
        },
      }
    }

  const lab: FieldLab = {
    stack, number, events, api, json,
    async agent(base, fields) {
      const created = await json<{ id: string }>('POST', '/v1/agents', { name: 'fields', ...base })
      if (created.status !== 201) throw new Error(`agent POST: ${created.status} ${JSON.stringify(created.body)}`)
      if (fields && Object.keys(fields).length) {
        // The row's fields go through PATCH, as a user tunes an existing agent.
        const p = await json('PATCH', `/v1/agents/${created.body.id}`, fields)
        if (p.status !== 200) throw new Error(`agent PATCH: ${p.status} ${JSON.stringify(p.body)}`)
      }
      const n = await json('PATCH', `/v1/numbers/${num.body.id}`, { target: { type: 'agent', id: created.body.id } })
      if (n.status !== 200) throw new Error(`number PATCH: ${n.status} ${JSON.stringify(n.body)}`)
      return created.body.id
    },
    dir,
    async dial(teardown, body, reinvites = 0) {
      const c = new RtpCaller()
      await c.start()
      teardown(() => c.close())
      const party = await answeringParty(dir, c, teardown, reinvites)
      const r = await json<{ id: string }>('POST', '/v1/calls', { from: number, to: party.uri, ...body })
      if (r.status !== 201) throw new Error(`POST /v1/calls: ${r.status} ${JSON.stringify(r.body)}`)
      await waitUntil(async () => (await json<{ status: string }>('GET', `/v1/calls/${r.body.id}`)).body.status === 'in-progress', 30_000, 'outbound call answered')
      return live(r.body.id, c)
    },
    async call(teardown, reinvites = 0) {
      if (!reinvites) {
        const { c, id } = await placeTrackedCall({ dir, sipPort: stack.sipPort, service: number, known, api, teardown })
        if (!id) throw new Error('the call was not answered')
        return live(id, c)
      }
      const c = new RtpCaller()
      await c.start()
      teardown(() => c.close())
      const run = await placeCall({ dir, sipPort: stack.sipPort, service: number, caller: c, reinvites })
      teardown(() => run.kill())
      const id = await waitUntil(async () => (await json<{ data: Array<{ id: string }> }>('GET', '/v1/calls?status=in-progress')).body.data.find((x) => !known.has(x.id))?.id, 20_000, 'answered call')
      known.add(id)
      return live(id, c)
    },
    async close() {
      ws.close()
      await stack.stop()
      rmSync(dir, { recursive: true, force: true })
    },
  }
  return lab
}
