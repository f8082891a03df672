import t from 'tap'
import { createServer } from 'node:http'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import type { AddressInfo } from 'node:net'
import { startStack } from '../harness/stack.ts'
import { waitFor } from '../harness/wait.ts'
import { sine, tone, toneRatio, wavFile } from '../sip/app/rtp-caller.ts'
import { flowCalls, type FlowCallDetail } from './flow-calls.ts'

/**
 * The verbs one by one as flows use them, over a real SIP call: what the
 * caller hears and receives (tones, RFC 4733 digits, its own echo), what a
 * webhook receives, recordings, jumps and conditions; and every verb's
 * options checked on write.
 */
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))


t.test('flow verbs', async (t) => {
  const stack = await startStack(process.env.DATABASE_URL ? { DATABASE_URL: process.env.DATABASE_URL } : {})
  t.teardown(() => stack.stop())
  const dir = mkdtempSync(join(tmpdir(), 'flow-verbs-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const { api, post, call, detail } = flowCalls(stack, dir)

  t.test('every verb\'s options are checked on write: a 400 names the action and the field', async (t) => {
    const doc = await (await fetch(`${stack.baseUrl}/openapi.json`)).json() as { components: { schemas: Record<string, { required?: string[]; properties?: Record<string, unknown> }> } }
    const verbs = Object.keys(doc.components.schemas).filter((k) => k.startsWith('FlowVerbOption_')).map((k) => k.slice('FlowVerbOption_'.length))
    t.ok(verbs.length >= 27, `${verbs.length} verbs documented`)
    for (const verb of verbs) {
      // A field no verb has: every option schema refuses what it does not read.
      const r = await post('/v1/flows', { name: 'bad', actions: [{ id: `v_${verb}`, type: verb, option: { bogus_field: 1 } }] })
      t.equal(r.status, 400, `${verb}: refused`)
      t.match((r.body.error as { message: string }).message, new RegExp(`actions\\[0\\] \\(id v_${verb}\\) option`), `${verb}: names the action and its option`)
    }
    // A wrong value, field by field, for verbs whose fields take values.
    const wrong: Array<[string, Record<string, unknown>, RegExp]> = [
      ['talk', { text: '' }, /option\/text/],
      ['play', { stream_urls: ['ftp://x/a.wav'] }, /option\/stream_urls\/0/],
      ['digits_receive', { duration: 10 }, /option\/duration/],
      ['digits_send', { digits: 'xyz' }, /option\/digits/],
      ['gather', { finish_key: '##' }, /option\/finish_key/],
      ['recording_start', { end_of_key: 'x' }, /option\/end_of_key/],
      ['transcribe_start', { direction: 'sideways' }, /option\/direction/],
      ['external_media_start', { url: 'http://x' }, /option\/url/],
      ['hangup', { reason: 'two words' }, /option\/reason/],
      ['mute', { direction: 'up' }, /option\/direction/],
      ['echo', { duration: 0 }, /option\/duration/],
      ['variable_set', { key: 'a b', value: 'x' }, /option\/key/],
      ['webhook_send', { uri: 'file:///etc/passwd' }, /option\/uri/],
      ['fetch', { event_url: 'not a url' }, /option\/event_url/],
      ['fetch_flow', { flow_id: 'nope' }, /option\/flow_id/],
      ['conference_join', { conference_id: 'nope' }, /option\/conference_id/],
      ['condition_variable', { variable: 'x', value_type: 'number', false_target_id: 'x' }, /value_number: required/],
      ['talk', { text: 'hi', voice: 'en-us', gender: 'female' }, /gender: only without voice/],
      ['gather', { stream_urls: ['https://example.com/a.wav'], voice: 'en-us' }, /voice: only with a text prompt/],
      ['gather', { action_method: 'GET' }, /action_method: only with action_url/],
      ['webhook_send', { uri: 'https://example.com/x', method: 'GET', data: '{}' }, /data: a GET sends no body/],
    ]
    for (const [verb, option, field] of wrong) {
      const r = await post('/v1/flows', { name: 'bad', actions: [{ id: 'x', type: verb, option }] })
      t.equal(r.status, 400, `${verb} ${JSON.stringify(option)}`)
      t.match((r.body.error as { message: string }).message, field, `${verb}: the field is named`)
    }
  })

  t.test('conference_join: the flow goes on when the call is removed from the room', async (t) => {
    const room = await post('/v1/conferences', { name: 'flow room' })
    t.equal(room.status, 201)
    const flow = await post('/v1/flows', { name: 'room', actions: [
      { type: 'conference_join', option: { conference_id: room.body.id } },
      { type: 'talk', option: { text: 'You left the room.' } },
      { type: 'hangup', option: { reason: 'back-from-room' } },
    ] })
    t.equal(flow.status, 201)
    const number = '+14155550902'
    t.equal((await post('/v1/numbers', { number, target: { type: 'flow', id: flow.body.id } })).status, 201)
    const c = await call(number)
    t.teardown(c.close)
    await waitFor(async () => (await (await api(`/v1/calls/${c.callId}`)).json() as { conferenceId: string | null }).conferenceId === room.body.id, 10_000, 'the call is in the room')
    await sleep(1500)
    t.equal((await detail(c.callId)).status, 'in-progress', 'the flow waits while the call is in the room')
    const kick = await api(`/v1/conferences/${room.body.id}/participants/${c.callId}`, { method: 'DELETE' })
    t.equal(kick.status, 202, 'removed through the API')
    const d = await waitFor(async () => { const x = await detail(c.callId); return x.status !== 'in-progress' ? x : null }, 20_000, 'the flow went on')
    t.equal(d.endedReason, 'back-from-room', 'the actions after conference_join ran')
    t.equal(d.activeflows[0]!.executedActions[0]!.outcome, 'left')
  })

  t.test('one call through the verbs', async (t) => {
    // Media the flow plays lives under DATA_DIR/media (play's file:// rule).
    const mediaDir = join(stack.config.dataDir, 'media')
    mkdirSync(mediaDir, { recursive: true })
    const toneWav = join(mediaDir, 'tone-1k.wav')
    writeFileSync(toneWav, wavFile(sine(1000, 1.0)))
    // A webhook that answers the tier of the caller.
    const hooks: Array<{ body: string; signature: string | undefined }> = []
    const hook = createServer((req, res) => {
      let body = ''
      req.on('data', (c: Buffer) => { body += c.toString() })
      req.on('end', () => {
        hooks.push({ body, signature: req.headers['webhook-signature'] as string | undefined })
        res.writeHead(200, { 'content-type': 'application/json' })
        res.end(JSON.stringify({ tier: 'gold' }))
      })
    })
    await new Promise<void>((r) => hook.listen(0, '127.0.0.1', () => r()))
    t.teardown(() => { hook.closeAllConnections(); hook.close() })
    const hookUrl = `http://127.0.0.1:${(hook.address() as AddressInfo).port}/tier`

    const tail = await post('/v1/flows', { name: 'tail', actions: [{ type: 'hangup', option: { reason: 'fetched-flow-ran' } }] })
    t.equal(tail.status, 201)
    const flow = await post('/v1/flows', {
      name: 'tour', actions: [
        { id: 'play', type: 'play', option: { stream_urls: [pathToFileURL(toneWav).href] } },
        { id: 'dtmf', type: 'digits_send', option: { digits: '42', duration: 100, interval: 100 } },
        { id: 'hook', type: 'webhook_send', option: { uri: hookUrl, sync: true, data: '{"call":"${callplane.call.id}"}' } },
        { id: 'gold', type: 'condition_variable', option: { variable: 'tier', value_string: 'gold', false_target_id: 'bad' } },
        { id: 'when', type: 'condition_datetime', option: { weekdays: [0, 1, 2, 3, 4, 5, 6], timezone: 'Europe/Berlin', false_target_id: 'bad' } },
        { id: 'beep', type: 'beep' },
        { id: 'loop', type: 'goto', option: { target_id: 'beep', loop_count: 2 } },
        { id: 'echo', type: 'echo', option: { duration: 2000 } },
        { id: 'rec', type: 'recording_start', option: { end_of_key: '#', beep_start: true, duration: 20 } },
        { id: 'next', type: 'fetch_flow', option: { flow_id: tail.body.id } },
        { id: 'bad', type: 'hangup', option: { reason: 'condition-failed' } },
      ],
    })
    t.equal(flow.status, 201, JSON.stringify(flow.body))
    const number = '+14155550901'
    t.equal((await post('/v1/numbers', { number, target: { type: 'flow', id: flow.body.id } })).status, 201)

    const c = await call(number)
    t.teardown(c.close)
    const { caller, callId } = c
    const detailNow = () => detail(callId)
    const reached = async (id: string) => {
      await waitFor(async () => (await detailNow()).activeflows[0]?.executedActions.some((e) => e.id === id), 20_000, `action ${id} runs`)
      return Date.now()
    }

    const echoAt = await reached('echo')
    // The caller speaks a 600 Hz tone while the echo runs, and hears it back.
    caller.signal = tone(600)
    await sleep(1500)
    caller.signal = () => 0
    const echoed = caller.audioSince(echoAt + 300, echoAt + 1700)
    t.ok(toneRatio(echoed, 600) > 0.5, `echo: the caller hears its own 600 Hz back (ratio ${toneRatio(echoed, 600).toFixed(2)})`)

    await reached('rec')
    await sleep(1500)
    caller.sendDigits('#')
    let d: FlowCallDetail | null = null
    await waitFor(async () => { d = await detailNow(); return d.status !== 'in-progress' }, 20_000, 'the call ends')
    const run = d!.activeflows[0]!
    const byId = (id: string) => run.executedActions.filter((e) => e.id === id)
    t.equal(d!.endedReason, 'fetched-flow-ran', 'fetch_flow ran the other flow, which hung up')
    t.equal(byId('play')[0]?.outcome, 'done', 'play finished')
    const played = caller.audioSince(Date.parse(byId('play')[0]!.startedAt), Date.parse(byId('play')[0]!.endedAt!))
    t.ok(toneRatio(played, 1000) > 0.5, `play: the caller heard the 1 kHz file (ratio ${toneRatio(played, 1000).toFixed(2)})`)
    const events = caller.events.filter((e) => e.end).map((e) => e.event)
    t.ok(events.includes(4) && events.includes(2) && events.indexOf(4) < events.lastIndexOf(2), `digits_send: RFC 4733 events 4 then 2 reached the caller (${[...new Set(events)].join(',')})`)
    t.equal(hooks.length, 1, 'webhook_send sent one request')
    t.same(JSON.parse(hooks[0]!.body), { call: callId }, 'its data had the variable substituted')
    t.match(hooks[0]!.signature, /^v1,/, 'signed')
    t.equal(run.variables['callplane.webhook.status_code'], '200')
    t.equal(run.variables.tier, 'gold', 'a sync webhook\'s JSON answer sets variables')
    t.equal(byId('gold')[0]?.outcome, 'true', 'condition_variable matched')
    t.equal(byId('when')[0]?.outcome, 'true', 'condition_datetime matched every weekday')
    t.equal(byId('beep').length, 3, 'goto loop_count 2: the beep ran three times')
    t.same(byId('loop').map((e) => e.outcome), ['jumped', 'jumped', 'loops-exhausted'])
    t.equal(byId('rec')[0]?.outcome, 'finish-key', 'the recording ended on #')
    const recs = (await (await api(`/v1/recordings?callId=${callId}`)).json()) as { data: Array<{ callId: string; status: string; durationMs: number | null }> }
    const rec = recs.data.find((r) => r.callId === callId)
    t.ok(rec, 'the recording is listed')
    await waitFor(async () => {
      const again = (await (await api(`/v1/recordings?callId=${callId}`)).json()) as typeof recs
      return again.data.find((r) => r.callId === callId)?.status === 'ready'
    }, 10_000, 'the recording is ready')
  })
})
