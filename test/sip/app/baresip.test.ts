import t from 'tap'
import { runPhone } from './baresip-ua.ts'
import { sipp, sippUas } from './sipp-util.ts'
import { startSipStack, waitFor, sleep, DOMAIN } from './helpers.ts'
import { freePort } from '../../harness/ports.ts'

t.test('baresip as an extension', async (t) => {
  const stack = await startSipStack()
  t.teardown(() => stack.stop())
  const { store, accountId, app } = stack
  const ext = await store.extensions.create(accountId, { extension: '201', password: 'phone-secret', callerId: '+14155550123' })
  await store.numbers.create(accountId, { number: '+14155550123' })
  const agent = await store.agents.create(accountId, { name: 'bot' })

  await t.test('registers with digest, is called through the API, answers, hears and sends RTP', async (t) => {
    const phone = runPhone({ user: '201', password: 'phone-secret', domain: DOMAIN, proxy: stack.target, localPort: await freePort(), seconds: 20 })
    t.teardown(() => phone.kill())
    const contacts = await waitFor(async () => { const c = await app.registrar.contactsFor(ext.id); return c.length ? c : null }, 10_000, 'baresip registration')
      .catch((err: Error) => { throw new Error(`${err.message}: ${phone.log().slice(-600)}`) })
    t.match(contacts[0]!.contact, /^sip:201[^@]*@127\.0\.0\.1/, 'baresip\'s contact bound')
    const call = await app.calls.originate({ accountId, to: '201', from: '+14155550123', agentId: agent.id })
    await waitFor(async () => (await store.calls.getById(call.id))?.status === 'in-progress', 10_000, 'baresip answers')
      .catch(async (err: Error) => { throw new Error(`${err.message}: ${JSON.stringify(await store.calls.getById(call.id))} ${phone.log().slice(-800)}`) })
    const leg = stack.media.legs.find((l) => l.ctx.callId === call.id)!
    await waitFor(() => leg.packetsIn > 20, 5_000, 'RTP from baresip')
    t.ok(leg.packetsIn > 20, `baresip's audio reached us (${leg.packetsIn} packets)`)
    await app.calls.hangup(call.id)
    const done = await waitFor(async () => { const c = await store.calls.getById(call.id); return c?.status === 'completed' ? c : null }, 5_000, 'end')
    t.match(done, { endedReason: 'api-hangup', hangupBy: 'api', direction: 'outbound', to: '201' })
    phone.kill()
    await phone.done
  })

  await t.test('baresip calls a number: digest 407, routed over the account route to a carrier (sipp)', async (t) => {
    const port = await freePort()
    const carrier = sippUas('uas-answer.xml', port, { timeoutMs: 25_000 })
    t.teardown(() => carrier.kill())
    await sleep(300)
    const trunk = await store.trunks.create(accountId, { name: 'pstn', outbound: { host: '127.0.0.1', port } })
    await store.carrierRoutes.create(accountId, { name: 'all', prefix: '*', trunkId: trunk.id, priority: 1 })
    const phone = runPhone({ user: '201', password: 'phone-secret', domain: DOMAIN, proxy: stack.target, localPort: await freePort(), seconds: 6, dial: '+12125550100' })
    const r = await phone.done
    const c = await carrier.done
    t.equal(c.code, 0, `carrier answered and got the BYE relayed from baresip (${c.errors.slice(0, 200)})`)
    t.match(c.log, /From: <sip:\+14155550123@/, 'the extension\'s caller ID is presented')
    // The record ends right behind the BYE: wait for it rather than race it.
    const row = await waitFor(async () => {
      const { rows } = await store.db.pool.query(`SELECT * FROM calls WHERE extension_id = $1 AND direction = 'inbound' AND status <> 'in-progress' ORDER BY seq DESC LIMIT 1`, [ext.id])
      return rows[0]
    }, 5_000, 'record ended')
    t.match(row, { status: 'completed', to_number: '+12125550100', from_number: '201', trunk_id: trunk.id, hangup_by: 'caller' })
    t.ok(r.log.length > 0)
  })

  await t.test('a carrier calls a number whose target is the extension: bridged to baresip (B2BUA), BYE relayed', async (t) => {
    const carrierTrunk = await store.trunks.create(accountId, { name: 'in-carrier', inbound: { allowedIps: ['127.0.0.2'] } })
    await store.numbers.create(accountId, { number: '+14155550188', trunkId: carrierTrunk.id, target: { type: 'extension', id: ext.id } })
    const phone = runPhone({ user: '201', password: 'phone-secret', domain: DOMAIN, proxy: stack.target, localPort: await freePort(), seconds: 15 })
    t.teardown(() => phone.kill())
    await waitFor(async () => (await app.registrar.contactsFor(ext.id)).length > 0 || null, 10_000, 'registration')
    const res = await sipp('carrier-call.xml', { remote: stack.target, service: '+14155550188', localIp: '127.0.0.2', timeoutMs: 20_000 })
    t.equal(res.code, 0, `carrier's call answered by baresip through us, BYE relayed (${res.errors.slice(0, 200)})`)
    const row = await waitFor(async () => {
      const { rows } = await store.db.pool.query(`SELECT * FROM calls WHERE to_number = '+14155550188' AND status <> 'in-progress' ORDER BY seq DESC LIMIT 1`)
      return rows[0]
    }, 5_000, 'record ended')
    t.match(row, { status: 'completed', hangup_by: 'caller', trunk_id: carrierTrunk.id, direction: 'inbound' })
    phone.kill()
    await phone.done
  })

  await t.test('wrong password: no binding', async (t) => {
    const other = await store.extensions.create(accountId, { extension: '202', password: 'right-one' })
    const phone = runPhone({ user: '202', password: 'wrong-one', domain: DOMAIN, proxy: stack.target, localPort: await freePort(), seconds: 3 })
    const r = await phone.done
    t.equal((await app.registrar.contactsFor(other.id)).length, 0, 'not registered')
    t.match(r.log, /401|403|Unauthorized|Forbidden|failed/i, 'baresip reports the refusal')
  })
})
