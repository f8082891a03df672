import t from 'tap'
import WebSocket from 'ws'
import type { Call } from '../../store/calls.ts'
import type { CallControl } from '../../call/call-control.ts'
import { CallControlError } from '../../call/call-control.ts'
import { buildTestApp, call, type TestApp } from './helpers.ts'

/** A CallControl that records what the API asked for and drives the call record like sip/app would. */
function fakeControl(h: TestApp, log: Array<{ method: string; callId: string; args: unknown }>): CallControl {
  const rec = (method: string) => async (c: Call, args?: unknown) => {
    log.push({ method, callId: c.id, args })
    return { actionId: `${method}-1` }
  }
  return {
    originate: async (req) => {
      log.push({ method: 'originate', callId: '', args: req })
      if (req.to === '+12025550000') throw new CallControlError('rejected', 'no route to +12025550000')
      return h.store.calls.create({ accountId: req.accountId, direction: 'outbound', from: req.from, to: req.to, agentId: req.agentId ?? null, metadata: req.metadata ?? {} })
    },
    hangup: async (c, args) => {
      log.push({ method: 'hangup', callId: c.id, args })
      await h.store.calls.end(c.id, { status: 'completed', endedReason: 'api-hangup', hangupBy: 'api' })
    },
    say: rec('say'), play: rec('play'), sendDtmf: rec('sendDtmf'),
    startRecording: async (c, args) => {
      log.push({ method: 'startRecording', callId: c.id, args })
      return { recordingId: '11111111-1111-4111-8111-111111111111' }
    },
    stopRecording: rec('stopRecording'), hold: rec('hold'), unhold: rec('unhold'), mute: rec('mute'), unmute: rec('unmute'),
    transfer: rec('transfer'),
    bridge: async (c, other) => {
      log.push({ method: 'bridge', callId: c.id, args: other.id })
      return {}
    },
  }
}

async function liveCall(h: TestApp, accountId = h.accountId, extra: Partial<Parameters<TestApp['store']['calls']['create']>[0]> = {}): Promise<Call> {
  const c = await h.store.calls.create({ accountId, direction: 'inbound', from: '+4915112345678', to: '+4930123456', status: 'ringing', ...extra })
  return h.store.calls.markAnswered(c.id)
}

function wsOpen(url: string, headers: Record<string, string> = {}): Promise<{ ws: WebSocket; messages: any[]; next: (n?: number) => Promise<any[]> }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers })
    const messages: any[] = []
    const waiters: Array<() => void> = []
    ws.on('message', (m) => {
      messages.push(JSON.parse(m.toString()))
      for (const w of waiters.splice(0)) w()
    })
    ws.once('unexpected-response', (_req, res) => reject(Object.assign(new Error(`HTTP ${res.statusCode}`), { statusCode: res.statusCode })))
    ws.once('error', reject)
    ws.once('open', () => resolve({
      ws, messages,
      next: (n = 1) => new Promise((res, rej) => {
        const deadline = setTimeout(() => rej(new Error(`waited for ${n} messages, have ${messages.length}: ${JSON.stringify(messages.map((m) => m.type))}`)), 10_000)
        const check = () => {
          if (messages.length >= n) {
            clearTimeout(deadline)
            res(messages.slice(0, n))
          } else waiters.push(check)
        }
        check()
      }),
    }))
  })
}

t.test('calls', async (t) => {
  const h = await buildTestApp()
  t.teardown(() => h.close())
  const log: Array<{ method: string; callId: string; args: unknown }> = []

  t.test('CallRepository lifecycle is recorded with its outbox events', async (t) => {
    const c = await h.store.calls.create({ accountId: h.accountId, direction: 'inbound', from: '+4915112345678', to: '1000', status: 'ringing', sipCallId: 'abc@host' })
    t.equal(c.status, 'ringing')
    const a = await h.store.calls.markAnswered(c.id)
    t.equal(a.status, 'in-progress')
    t.ok(a.answeredAt)
    await h.store.calls.appendTranscript(c.id, { role: 'assistant', text: 'Hello', offsetMs: 10 })
    await h.store.calls.appendTranscript(c.id, { role: 'user', text: 'Hi there', offsetMs: 900, final: true })
    await h.store.calls.addTiming(c.id, { turn: 1, sttFinalMs: 120, llmFirstTokenMs: 80, ttsFirstAudioMs: 60, firstRtpOutMs: 20, totalMs: 280 })
    await h.store.calls.setQuality(c.id, { jitterMs: 3.2, lossPct: 0.1, mos: 4.3 })
    await h.store.calls.emit(c.id, 'call.dtmf', { digit: '5' })
    await h.store.calls.setSummary(c.id, 'Caller said hi.')
    const e = await h.store.calls.end(c.id, { status: 'completed', endedReason: 'customer-ended', hangupBy: 'caller' })
    t.equal(e.status, 'completed')
    t.equal(e.hangupBy, 'caller')
    t.type(e.duration, 'number')
    const again = await h.store.calls.end(c.id, { status: 'failed', endedReason: 'late', hangupBy: 'system' })
    t.equal(again.status, 'completed', 'ending twice changes nothing')
    t.equal((await h.store.calls.markAnswered(c.id)).status, 'completed', 'no transition out of a final status')
    const { rows } = await h.db.pool.query<{ type: string }>('SELECT type FROM events WHERE call_id = $1 ORDER BY seq', [c.id])
    t.same(rows.map((r) => r.type), ['call.started', 'call.ringing', 'call.answered', 'call.transcript', 'call.transcript', 'call.dtmf', 'call.summary', 'call.ended'])
    t.same((await h.store.calls.findBySipCallId('abc@host'))?.id, c.id)

    const r = await call(h.app, h.adminKey, 'GET', `/v1/calls/${c.id}`)
    t.equal(r.statusCode, 200)
    t.match(r.json(), {
      id: c.id, status: 'completed', direction: 'inbound', from: '+4915112345678', to: '1000', endedReason: 'customer-ended', hangupBy: 'caller',
      summary: 'Caller said hi.', transcript: [{ role: 'assistant', text: 'Hello' }, { role: 'user', text: 'Hi there', final: true }],
      timings: [{ turn: 1, totalMs: 280 }], quality: { mos: 4.3 }, recordings: [],
    })
  })

  t.test('read cache: finished calls and list pages are dropped on their events', async (t) => {
    const acct = (await call(h.app, h.adminKey, 'POST', '/v1/accounts', { name: 'cache' })).json()
    const key = acct.apiKey.token as string
    const c = await h.store.calls.create({ accountId: acct.account.id, direction: 'inbound', from: '+4915112345678', to: '1000' })
    await h.store.calls.end(c.id, { status: 'completed', endedReason: 'customer-ended', hangupBy: 'caller' })
    const eventually = async (what: string, fn: () => Promise<boolean>) => {
      const end = Date.now() + 5000
      while (Date.now() < end) {
        if (await fn()) return true
        await new Promise((r) => setTimeout(r, 25))
      }
      return false
    }
    t.ok(await eventually('ended call visible', async () => (await call(h.app, key, 'GET', `/v1/calls/${c.id}`)).json().status === 'completed'))
    t.equal((await call(h.app, key, 'GET', '/v1/calls')).json().data.length, 1)
    await h.store.calls.setSummary(c.id, 'late summary')
    t.ok(await eventually('summary', async () => (await call(h.app, key, 'GET', `/v1/calls/${c.id}`)).json().summary === 'late summary'), 'detail refreshed by call.summary')
    await h.store.calls.create({ accountId: acct.account.id, direction: 'outbound', from: '1', to: '+4915112345670' })
    t.ok(await eventually('new call listed', async () => (await call(h.app, key, 'GET', '/v1/calls')).json().data.length === 2), 'list refreshed by call.started')
  })

  t.test('failed calls emit call.failed', async (t) => {
    const c = await h.store.calls.create({ accountId: h.accountId, direction: 'outbound', from: '+4930123456', to: '+4915100000000' })
    await h.store.calls.end(c.id, { status: 'failed', endedReason: 'sip-503', hangupBy: 'system' })
    const { rows } = await h.db.pool.query<{ type: string }>('SELECT type FROM events WHERE call_id = $1 ORDER BY seq', [c.id])
    t.same(rows.map((r) => r.type), ['call.started', 'call.failed'])
  })

  t.test('GET /v1/calls: filters, newest first, cursor, validation, auth, scope, isolation', async (t) => {
    const acct = (await call(h.app, h.adminKey, 'POST', '/v1/accounts', { name: 'call list' })).json()
    const key = acct.apiKey.token as string
    const ids: string[] = []
    for (let i = 0; i < 5; i++) {
      const c = await h.store.calls.create({ accountId: acct.account.id, direction: i % 2 ? 'outbound' : 'inbound', from: `+49151000000${i}`, to: '+4930999999' })
      if (i === 4) await h.store.calls.end(c.id, { status: 'no-answer', endedReason: 'timeout', hangupBy: 'system' })
      ids.push(c.id)
    }
    const all = await call(h.app, key, 'GET', '/v1/calls?limit=2')
    t.equal(all.statusCode, 200)
    t.same(all.json().data.map((c: Call) => c.id), [ids[4], ids[3]], 'newest first')
    const seen: string[] = []
    let cursor: string | null = null
    do {
      const page: any = (await call(h.app, key, 'GET', `/v1/calls?limit=2${cursor ? `&cursor=${cursor}` : ''}`)).json()
      seen.push(...page.data.map((c: Call) => c.id))
      cursor = page.nextCursor
    } while (cursor)
    t.same(seen, [...ids].reverse(), 'every call once, in order')
    t.same((await call(h.app, key, 'GET', '/v1/calls?direction=outbound')).json().data.map((c: Call) => c.id), [ids[3], ids[1]])
    t.same((await call(h.app, key, 'GET', '/v1/calls?status=no-answer')).json().data.map((c: Call) => c.id), [ids[4]])
    t.same((await call(h.app, key, 'GET', '/v1/calls?number=%2B491510000002')).json().data.map((c: Call) => c.id), [ids[2]])
    t.equal((await call(h.app, key, 'GET', `/v1/calls?after=${encodeURIComponent(new Date(Date.now() + 60_000).toISOString())}`)).json().data.length, 0)
    const bad = await call(h.app, key, 'GET', '/v1/calls?status=exploded')
    t.equal(bad.statusCode, 400)
    t.match(bad.json().error.message, '/status')
    t.equal((await call(h.app, key, 'GET', '/v1/calls?after=yesterday')).statusCode, 400)
    t.equal((await call(h.app, null, 'GET', '/v1/calls')).statusCode, 401)
    t.equal((await call(h.app, await h.keyWith(['agents:manage']), 'GET', '/v1/calls')).statusCode, 403)
    t.notOk((await call(h.app, h.other.key, 'GET', '/v1/calls?limit=100')).json().data.some((c: Call) => ids.includes(c.id)), 'isolated')
    t.equal((await call(h.app, h.other.key, 'GET', `/v1/calls/${ids[0]}`)).statusCode, 404)
  })

  t.test('call control without an implementation answers 503 unavailable', async (t) => {
    const c = await liveCall(h)
    for (const [m, u, b] of [['DELETE', `/v1/calls/${c.id}`, undefined], ['POST', `/v1/calls/${c.id}/say`, { text: 'hi' }], ['POST', '/v1/calls', { to: '+4915112345678', from: '+4930123456' }]] as const) {
      const r = await call(h.app, h.adminKey, m, u, b)
      t.equal(r.statusCode, 503, `${m} ${u}`)
      t.equal(r.json().error.code, 'unavailable')
    }
  })

  t.test('call actions reach CallControl', async (t) => {
    h.callControl.install(fakeControl(h, log))
    t.teardown(() => h.callControl.install(null))
    const c = await liveCall(h)
    const other = await liveCall(h)
    const cases: Array<[string, unknown, string, unknown]> = [
      ['say', { text: 'Hello there', voice: 'en-us' }, 'say', { text: 'Hello there', voice: 'en-us' }],
      ['play', { url: 'https://cdn.example/a.wav' }, 'play', { url: 'https://cdn.example/a.wav' }],
      ['dtmf', { digits: '12#' }, 'sendDtmf', { digits: '12#' }],
      ['record/start', undefined, 'startRecording', {}],
      ['record/stop', undefined, 'stopRecording', undefined],
      ['hold', undefined, 'hold', undefined],
      ['unhold', undefined, 'unhold', undefined],
      ['mute', { direction: 'in' }, 'mute', { direction: 'in' }],
      ['unmute', undefined, 'unmute', { direction: 'both' }],
      ['transfer', { to: 'sip:desk@pbx.example' }, 'transfer', { to: 'sip:desk@pbx.example' }],
      ['bridge', { callId: other.id }, 'bridge', other.id],
    ]
    for (const [path, body, method, args] of cases) {
      log.length = 0
      const r = await call(h.app, h.adminKey, 'POST', `/v1/calls/${c.id}/${path}`, body)
      t.equal(r.statusCode, 202, `${path}: ${r.body}`)
      t.match(r.json(), { callId: c.id, action: path, status: 'accepted' })
      t.same(log, [{ method, callId: c.id, args }], `${path} → ${method}`)
    }
    const recStart = await call(h.app, h.adminKey, 'POST', `/v1/calls/${c.id}/record/start`, { channels: 'dual' })
    t.equal(recStart.json().recordingId, '11111111-1111-4111-8111-111111111111')

    // validation, scope, isolation
    const bad = await call(h.app, h.adminKey, 'POST', `/v1/calls/${c.id}/dtmf`, { digits: 'xyz' })
    t.equal(bad.statusCode, 400)
    t.match(bad.json().error.message, '/digits')
    t.equal((await call(h.app, h.adminKey, 'POST', `/v1/calls/${c.id}/say`, {})).statusCode, 400)
    t.equal((await call(h.app, h.adminKey, 'POST', `/v1/calls/${c.id}/bridge`, { callId: c.id })).statusCode, 400)
    t.equal((await call(h.app, null, 'POST', `/v1/calls/${c.id}/hold`)).statusCode, 401)
    t.equal((await call(h.app, await h.keyWith(['calls:read']), 'POST', `/v1/calls/${c.id}/hold`)).statusCode, 403)
    t.equal((await call(h.app, h.other.key, 'POST', `/v1/calls/${c.id}/hold`)).statusCode, 404)
    t.equal((await call(h.app, h.other.key, 'DELETE', `/v1/calls/${c.id}`)).statusCode, 404)

    // DELETE hangs up; afterwards the call is not live
    log.length = 0
    t.equal((await call(h.app, h.adminKey, 'DELETE', `/v1/calls/${c.id}`)).statusCode, 204)
    t.same(log.map((l) => l.method), ['hangup'])
    const ended = (await call(h.app, h.adminKey, 'GET', `/v1/calls/${c.id}`)).json()
    t.match(ended, { status: 'completed', hangupBy: 'api' })
    const late = await call(h.app, h.adminKey, 'POST', `/v1/calls/${c.id}/say`, { text: 'too late' })
    t.equal(late.statusCode, 409)
    t.equal(late.json().error.code, 'call_not_active')

    // a method the implementation lacks
    h.callControl.install({ ...fakeControl(h, log), hold: undefined })
    t.equal((await call(h.app, h.adminKey, 'POST', `/v1/calls/${other.id}/hold`)).statusCode, 503)
  })

  t.test('POST /v1/calls originates through CallControl', async (t) => {
    h.callControl.install(fakeControl(h, log))
    t.teardown(() => h.callControl.install(null))
    const agent = await h.store.agents.create(h.accountId, { name: 'caller' })
    const r = await call(h.app, h.adminKey, 'POST', '/v1/calls', { to: '+4915112345678', from: '+4930123456', agentId: agent.id, timeout: 20, metadata: { lead: '42' } })
    t.equal(r.statusCode, 201, r.body)
    t.match(r.json(), { direction: 'outbound', status: 'queued', to: '+4915112345678', agentId: agent.id, metadata: { lead: '42' } })
    t.match(log.at(-1), { method: 'originate', args: { accountId: h.accountId, timeoutSec: 20, record: false } })
    const badAgent = await call(h.app, h.other.key, 'POST', '/v1/calls', { to: '+4915112345678', from: '+4930123456', agentId: agent.id })
    t.equal(badAgent.statusCode, 400, "another account's agent is not a valid reference")
    t.equal(badAgent.json().error.code, 'invalid_reference')
    const badTo = await call(h.app, h.adminKey, 'POST', '/v1/calls', { to: 'my friend', from: '+4930123456' })
    t.equal(badTo.statusCode, 400)
    t.match(badTo.json().error.message, '/to')
    const rejected = await call(h.app, h.adminKey, 'POST', '/v1/calls', { to: '+12025550000', from: '+4930123456' })
    t.equal(rejected.statusCode, 422)
    t.equal(rejected.json().error.code, 'rejected')
    t.equal((await call(h.app, await h.keyWith(['calls:read']), 'POST', '/v1/calls', { to: '+4915112345678', from: '+4930123456' })).statusCode, 403)
  })

  t.test('recordings: listed on the call, downloadable, deletable, isolated', async (t) => {
    const { writeFileSync } = await import('node:fs')
    const { join } = await import('node:path')
    const c = await liveCall(h)
    const path = join((await import('node:os')).tmpdir(), `cp-rec-${c.id}.wav`)
    writeFileSync(path, Buffer.from('RIFF....WAVEfmt fake'))
    const rec = await h.store.recordings.start({ accountId: h.accountId, callId: c.id, path })
    const notReady = await call(h.app, h.adminKey, 'GET', `/v1/recordings/${rec.id}/download`)
    t.equal(notReady.statusCode, 409)
    await h.store.recordings.markReady(rec.id, { durationMs: 1234, sizeBytes: 20 })
    const got = await call(h.app, h.adminKey, 'GET', `/v1/calls/${c.id}`)
    t.match(got.json().recordings, [{ id: rec.id, status: 'ready', durationMs: 1234 }])
    const dl = await call(h.app, h.adminKey, 'GET', `/v1/recordings/${rec.id}/download`)
    t.equal(dl.statusCode, 200)
    t.equal(dl.headers['content-type'], 'audio/wav')
    t.equal(dl.body, 'RIFF....WAVEfmt fake')
    t.equal((await call(h.app, h.other.key, 'GET', `/v1/recordings/${rec.id}/download`)).statusCode, 404)
    t.equal((await call(h.app, h.adminKey, 'GET', `/v1/recordings?callId=${c.id}`)).json().data.length, 1)
    t.equal((await call(h.app, await h.keyWith(['calls:read']), 'DELETE', `/v1/recordings/${rec.id}`)).statusCode, 403)
    t.equal((await call(h.app, h.adminKey, 'DELETE', `/v1/recordings/${rec.id}`)).statusCode, 204)
    t.equal((await import('node:fs')).existsSync(path), false, 'file removed')
    const { rows } = await h.db.pool.query<{ type: string }>(`SELECT type FROM events WHERE call_id = $1 AND type = 'call.recording.ready'`, [c.id])
    t.equal(rows.length, 1)
  })

  t.test('conferences: CRUD, validation, join needs CallControl', async (t) => {
    const r = await call(h.app, h.adminKey, 'POST', '/v1/conferences', { name: 'standup', maxParticipants: 10 })
    t.equal(r.statusCode, 201)
    t.match(r.json(), { name: 'standup', status: 'init', participantCount: 0, maxParticipants: 10 })
    t.equal((await call(h.app, h.adminKey, 'POST', '/v1/conferences', { name: 'x', maxParticipants: 1 })).statusCode, 400)
    t.equal((await call(h.app, h.other.key, 'GET', `/v1/conferences/${r.json().id}`)).statusCode, 404)
    const c = await liveCall(h)
    const join = await call(h.app, h.adminKey, 'POST', `/v1/conferences/${r.json().id}/participants`, { callId: c.id })
    t.equal(join.statusCode, 503)
    t.equal((await call(h.app, h.adminKey, 'GET', '/v1/conferences')).json().data.length, 1)
    t.equal((await call(h.app, h.adminKey, 'DELETE', `/v1/conferences/${r.json().id}`)).statusCode, 204)
  })

  t.test('GET /v1/events WebSocket: lifecycle, filters, isolation, auth', async (t) => {
    await h.app.listen({ port: 0, host: '127.0.0.1' })
    const port = (h.app.server.address() as { port: number }).port
    const base = `ws://127.0.0.1:${port}/v1/events`
    const everything = await wsOpen(`${base}?token=${h.adminKey}`)
    const endedOnly = await wsOpen(`${base}?types=call.ended,call.failed`, { authorization: `Bearer ${h.adminKey}` })
    const otherAcct = await wsOpen(base, { 'x-api-key': h.other.key })
    t.teardown(() => {
      everything.ws.close()
      endedOnly.ws.close()
      otherAcct.ws.close()
    })
    await everything.next(1)
    await endedOnly.next(1)
    await otherAcct.next(1)
    t.match(everything.messages[0], { type: 'subscribed' })

    const c = await h.store.calls.create({ accountId: h.accountId, direction: 'inbound', from: '+4915112345678', to: '1000', status: 'ringing' })
    await everything.next(3) // started + ringing fanned out (asynchronous through NOTIFY on PostgreSQL)
    const byCall = await wsOpen(`${base}?callId=${c.id}&types=call.*`, { authorization: `Bearer ${h.adminKey}` })
    t.teardown(() => byCall.ws.close())
    await byCall.next(1)
    await h.store.calls.markAnswered(c.id)
    await h.store.calls.appendTranscript(c.id, { role: 'user', text: 'hello' })
    const noise = await h.store.calls.create({ accountId: h.accountId, direction: 'outbound', from: '1', to: '+4915112345670' })
    await h.store.calls.end(c.id, { status: 'completed', endedReason: 'customer-ended', hangupBy: 'caller' })

    const all = (await everything.next(7)).slice(1)
    t.same(all.map((e) => e.type), ['call.started', 'call.ringing', 'call.answered', 'call.transcript', 'call.started', 'call.ended'])
    t.match(all[0], { id: String, accountId: h.accountId, callId: c.id, createdAt: String, data: { call: { id: c.id, status: 'ringing' } } })
    t.match(all[3].data, { text: 'hello', role: 'user' })
    const ended = await endedOnly.next(2)
    t.same(ended.slice(1).map((e) => [e.type, e.callId]), [['call.ended', c.id]])
    const mine = await byCall.next(4)
    t.same(mine.slice(1).map((e) => e.type), ['call.answered', 'call.transcript', 'call.ended'])
    t.notOk(mine.some((e) => e.callId === noise.id))
    t.equal(otherAcct.messages.length, 1, 'another account sees nothing')

    const refused = (p: Promise<unknown>) => p.then(() => 0, (e: { statusCode?: number }) => e.statusCode)
    const live = await liveCall(h)
    const streamUrl = `ws://127.0.0.1:${port}/v1/calls/${live.id}/stream?encapsulation=twilio&token=${h.adminKey}`
    t.equal(await refused(wsOpen(streamUrl)), 503, 'media stream without a CallControl: 503 before upgrade')
    t.equal(await refused(wsOpen(`ws://127.0.0.1:${port}/v1/calls/${live.id}/stream?token=${h.other.key}`)), 404, "another account's call")
    t.equal(await refused(wsOpen(`ws://127.0.0.1:${port}/v1/calls/${live.id}/stream?encapsulation=mp3&token=${h.adminKey}`)), 400)
    h.callControl.install({
      openStream: async (_call, o) => {
        o.send(JSON.stringify({ event: 'connected', protocol: 'Call', version: '1.0.0' }))
        return { onMessage: (m) => o.send(typeof m === 'string' ? `echo:${m}` : m), close: () => {} }
      },
    })
    const stream = await wsOpen(streamUrl)
    await stream.next(1)
    t.match(stream.messages[0], { event: 'connected' })
    stream.ws.close()
    h.callControl.install(null)
    t.equal(await refused(wsOpen(base)), 401, 'no key → 401 before upgrade')
    t.equal(await refused(wsOpen(`${base}?token=${await h.keyWith(['agents:manage'])}`)), 403)
    t.equal(await refused(wsOpen(`${base}?token=${h.adminKey}&types=call.nope`)), 400)
  })
})
