import t from 'tap'
import { sipp, sippUas } from './sipp-util.ts'
import { startSipStack, waitFor, sleep } from './helpers.ts'
import { freePort } from '../../harness/ports.ts'
import pino from 'pino'
import { refreshDelaySec, backoffDelayMs, OutboundRegistrations } from '../../../sip/app/outbound-registration.ts'

t.test('refresh and back-off arithmetic', async (t) => {
  t.equal(refreshDelaySec(3600), 3540)
  t.equal(refreshDelaySec(60), 30)
  t.equal(refreshDelaySec(1), 1)
  t.equal(backoffDelayMs(1, 5000, 60000), 5000)
  t.equal(backoffDelayMs(3, 5000, 60000), 20000)
  t.equal(backoffDelayMs(10, 5000, 60000), 60000)
})

t.test('a trunk registers to a sipp registrar as a device', async (t) => {
  const stack = await startSipStack()
  t.teardown(() => stack.stop())
  const { store, accountId, app } = stack

  await t.test('401 challenge answered, refreshed before expiry, status exposed; inbound calls on it route', async (t) => {
    const port = await freePort('127.0.0.6')
    const reg = sippUas('registrar-uas.xml', port, { localIp: '127.0.0.6', timeoutMs: 20_000 })
    t.teardown(() => reg.kill())
    await sleep(300)
    const trunk = await store.trunks.create(accountId, {
      name: 'carrier-device', outbound: { host: '127.0.0.6', port, username: 'dev1', password: 'dev-pw', register: true, registerExpiresSec: 60 },
    })
    await app.outboundRegistrations.scan()
    const st = await waitFor(async () => {
      const s = await app.outboundRegistrations.status(trunk.id)
      return s?.status === 'registered' ? s : null
    }, 10_000, 'registered')
    t.ok(st.expiresAt && st.expiresAt.getTime() > Date.now(), 'expiry known')
    t.equal(st.lastStatus, 200)
    const r = await reg.done
    t.equal(r.code, 0, `registrar saw two authenticated REGISTERs (${r.errors.slice(0, 200)})`)
    t.match(r.log, /AUTH 1 true[\s\S]*AUTH 2 true/, 'digest verified by the registrar, twice (refresh)')
    const { rows } = await store.db.pool.query(`SELECT data FROM events WHERE type = 'registration.changed' AND data->>'trunkId' = $1`, [trunk.id])
    t.ok(rows.length >= 1, 'registration.changed event')

    const agent = await store.agents.create(accountId, { name: 'device-bot' })
    await store.numbers.create(accountId, { number: '+14155550177', trunkId: trunk.id, target: { type: 'agent', id: agent.id } })
    stack.app.directory.invalidate()
    const call = await sipp('carrier-call.xml', { remote: stack.target, service: '+14155550177', localIp: '127.0.0.6', timeoutMs: 15_000 })
    t.equal(call.code, 0, 'the carrier\'s INVITE from the registrar address is accepted and answered')
    const rec = await waitFor(async () => {
      const { rows } = await store.db.pool.query(`SELECT id FROM calls WHERE trunk_id = $1 AND status = 'completed'`, [trunk.id])
      return rows[0]
    }, 5_000, 'call record')
    t.ok(rec)
  })

  await t.test('rejected credentials: status failed with the status code, retried with back-off', async (t) => {
    const port = await freePort('127.0.0.7')
    const reg = sippUas('registrar-uas.xml', port, { localIp: '127.0.0.7', timeoutMs: 10_000 })
    t.teardown(() => reg.kill())
    await sleep(300)
    const trunk = await store.trunks.create(accountId, {
      name: 'bad-device', outbound: { host: '127.0.0.7', port, username: 'dev1', password: 'wrong', register: true, registerExpiresSec: 60 },
    })
    await app.outboundRegistrations.scan()
    const st = await waitFor(async () => {
      const s = await app.outboundRegistrations.status(trunk.id)
      return s?.status === 'failed' ? s : null
    }, 10_000, 'failed')
    t.equal(st.lastStatus, 403)
    t.equal(st.failures, 1)
    t.ok(st.nextAttemptAt && st.nextAttemptAt.getTime() - Date.now() > 2_000, 'next attempt backed off')
  })
})

t.test('across nodes: one node owns a registration; another takes it over when the owner stops or its lease lapses', async (t) => {
  const stack = await startSipStack({ outboundRegistrations: false })
  t.teardown(() => stack.stop())
  const { store, accountId } = stack
  const port = await freePort('127.0.0.8')
  const reg = sippUas('registrar-ok.xml', port, { localIp: '127.0.0.8', calls: 20, timeoutMs: 60_000 })
  t.teardown(() => reg.kill())
  await sleep(300)
  const logger = pino({ level: 'silent' })
  const node = (nodeId: string, leaseMs = 30_000) => new OutboundRegistrations({
    srf: stack.srfConnection.srf, store, logger, nodeId, localHost: () => stack.target, rescanMs: 600_000, leaseMs,
  })
  const trunk = await store.trunks.create(accountId, { name: 'shared-device', outbound: { host: '127.0.0.8', port, register: true } })
  const registeredBy = (nodeId: string) => waitFor(async () => {
    const v = await store.outboundRegistrations.view(accountId, trunk.id)
    return v?.state === 'registered' && v.node === nodeId ? v : null
  }, 10_000, `registered by ${nodeId}`)

  const a = node('node-a')
  const b = node('node-b', 1_000)
  t.teardown(async () => { await a.stop(); await b.stop() })
  await a.start()
  await registeredBy('node-a')
  await b.start()
  await sleep(500)
  t.equal((await store.outboundRegistrations.get(trunk.id))?.nodeId, 'node-a', 'a second node does not take a held trunk')

  await a.stop()
  const released = await store.outboundRegistrations.view(accountId, trunk.id)
  t.match(released, { state: 'unregistered', node: null, down: true }, 'the stopping owner unregisters and lets go')
  await b.scan()
  const taken = await registeredBy('node-b')
  t.equal(taken.down, false, 'registered again, by the other node')

  // node-b stops renewing (it "died"): its 1 s lease lapses and a new node takes over.
  await sleep(1_500)
  const c = node('node-c')
  t.teardown(() => c.stop())
  await c.start()
  await registeredBy('node-c')
  await b.scan()
  t.equal((await store.outboundRegistrations.get(trunk.id))?.nodeId, 'node-c', 'the node that lost its lease gives the trunk up')
})
