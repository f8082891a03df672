import t from 'tap'
import { sipp } from './sipp-util.ts'
import { startSipStack, waitFor } from './helpers.ts'
import type { TrunkInput } from '../../../store/trunks.ts'

t.test('inbound calls from carriers (sipp) to numbers', async (t) => {
  const stack = await startSipStack()
  t.teardown(() => stack.stop())
  const { store, accountId } = stack
  const ipTrunk = await store.trunks.create(accountId, { name: 'carrier-ip', inbound: { allowedIps: ['127.0.0.2/32'] }, country: 'US' } as TrunkInput)
  const digestTrunk = await store.trunks.create(accountId, { name: 'carrier-digest', inbound: { allowedIps: ['127.0.0.3'], username: 'carrierb', password: 'trunk-pw' } })
  const agent = await store.agents.create(accountId, { name: 'receptionist' })
  await store.numbers.create(accountId, { number: '+14155550123', trunkId: ipTrunk.id, target: { type: 'agent', id: agent.id } })
  await store.numbers.create(accountId, { number: '1000', target: { type: 'agent', id: agent.id } })

  const callFor = (trunkId: string) => waitFor(async () => {
    const { rows } = await store.db.pool.query(`SELECT id FROM calls WHERE trunk_id = $1 AND status NOT IN ('queued','ringing','in-progress') ORDER BY seq DESC LIMIT 1`, [trunkId])
    return rows[0] ? store.calls.getById(rows[0].id) : null
  }, 10_000, 'finished call record')

  await t.test('IP-authenticated trunk → number → agent answers; record completed by caller hangup', async (t) => {
    const res = await sipp('carrier-call.xml', { remote: stack.target, service: '+14155550123', localIp: '127.0.0.2', timeoutMs: 20_000 })
    t.equal(res.code, 0, `sipp call succeeded ${res.errors.slice(0, 300)}`)
    const call = (await callFor(ipTrunk.id))!
    t.match(call, { direction: 'inbound', status: 'completed', endedReason: 'caller-hangup', hangupBy: 'caller', to: '+14155550123', from: '+14155550100', agentId: agent.id })
    t.ok(call.answeredAt && call.endedAt && call.ringingAt, 'timestamps set')
    const leg = stack.media.legs.find((l) => l.ctx.callId === call.id)!
    t.ok(leg, 'a media leg was bound to the call')
    t.ok(leg.packetsIn > 10, `RTP from the carrier reached the agent's media leg (${leg.packetsIn} packets)`)
    t.equal(leg.closedReason, 'caller-hangup', 'media closed at hangup')
    const { rows } = await store.db.pool.query(`SELECT type FROM events WHERE call_id = $1 ORDER BY seq`, [call.id])
    // The end-of-call report follows once the call's data is stored (it may not be there yet).
    const types = rows.map((r: { type: string }) => r.type).filter((x: string) => x !== 'call.report')
    t.same(types, ['call.started', 'call.ringing', 'call.answered', 'call.ended'], 'outbox events in order')
  })

  await t.test('national number from a US trunk is normalised to E.164', async (t) => {
    const res = await sipp('carrier-call.xml', { remote: stack.target, service: '4155550123', localIp: '127.0.0.2', timeoutMs: 20_000 })
    t.equal(res.code, 0, 'answered')
  })

  await t.test('digest-authenticated trunk: 407, then the call goes through', async (t) => {
    const res = await sipp('carrier-call.xml', { remote: stack.target, service: '+14155550123', localIp: '127.0.0.3', args: ['-au', 'carrierb', '-ap', 'trunk-pw'], timeoutMs: 20_000 })
    t.equal(res.code, 0, `sipp call succeeded ${res.errors.slice(0, 300)}`)
    const call = (await callFor(digestTrunk.id))!
    t.match(call, { status: 'completed', trunkId: digestTrunk.id })
  })

  await t.test('digest trunk with a wrong password → 403', async (t) => {
    const res = await sipp('carrier-call.xml', { remote: stack.target, service: '+14155550123', localIp: '127.0.0.3', args: ['-au', 'carrierb', '-ap', 'nope'], timeoutMs: 10_000 })
    t.not(res.code, 0, 'call not answered')
    t.match(res.errors + res.stderr + res.stdout, /403|unexpected/i)
  })

  await t.test('unknown source → 403', async (t) => {
    const res = await sipp('invite-rejected.xml', { remote: stack.target, service: '+14155550123', localIp: '127.0.0.4', timeoutMs: 10_000 })
    t.match(res.log, /FINAL 403/)
  })

  await t.test('a public number (no trunk, agent target) answers any source: the embedded demo', async (t) => {
    const res = await sipp('carrier-call.xml', { remote: stack.target, service: '1000', localIp: '127.0.0.4', timeoutMs: 20_000 })
    t.equal(res.code, 0, 'answered')
  })

  await t.test('unknown number → 404', async (t) => {
    const res = await sipp('invite-rejected.xml', { remote: stack.target, service: '+14155559999', localIp: '127.0.0.2', timeoutMs: 10_000 })
    t.match(res.log, /FINAL 404/)
  })

  await t.test('unknown number from a source no trunk or extension knows → 404, not 403 (the embedded demo dialling the wrong number)', async (t) => {
    const res = await sipp('invite-rejected.xml', { remote: stack.target, service: '1001', localIp: '127.0.0.4', timeoutMs: 10_000 })
    t.match(res.log, /FINAL 404/)
    // The trunk's number from the same source is still refused for the source (the "unknown source → 403" case above).
    const trunkNumber = await sipp('invite-rejected.xml', { remote: stack.target, service: '+14155550123', localIp: '127.0.0.4', timeoutMs: 10_000 })
    t.match(trunkNumber.log, /FINAL 403/)
  })

  await t.test('trunk at its concurrency limit → 503', async (t) => {
    const limited = await store.trunks.create(accountId, { name: 'carrier-limited', inbound: { allowedIps: ['127.0.0.5'] }, concurrencyLimit: 0 })
    stack.app.directory.invalidate()
    const res = await sipp('invite-rejected.xml', { remote: stack.target, service: '+14155550123', localIp: '127.0.0.5', timeoutMs: 10_000 })
    t.match(res.log, /FINAL 503/)
    t.ok(limited.id)
  })
})
