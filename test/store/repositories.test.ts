import t from 'tap'
import { createHash } from 'node:crypto'
import { migrate } from '../../store/migrator.ts'
import { bootstrap, DEMO_NUMBER } from '../../store/bootstrap.ts'
import { createStore } from '../../store/index.ts'
import { SecretBox, digestHa1 } from '../../store/secrets.ts'
import { openTestDatabase, silent } from '../control-api/helpers.ts'

t.test('store repositories', async (t) => {
  const tdb = await openTestDatabase()
  const db = tdb.db
  t.teardown(async () => {
    await db.close()
    await tdb.cleanup()
  })
  await migrate(db, silent)
  t.same(await migrate(db, silent), [], 'migrations are applied once')
  const boot = await bootstrap(db, 'cp_store_test_key', silent)
  const store = createStore(db, new SecretBox('store-test'), silent)
  await store.outbox.start()
  t.teardown(() => store.outbox.stop())
  const acct = boot.account.id

  t.test('bootstrap: operator account, admin key, demo agent on 1000 once', async (t) => {
    t.equal(boot.account.operator, true)
    t.ok(await store.apiKeys.findActiveByToken('cp_store_test_key'))
    t.ok(boot.demo, 'demo created on first start')
    const num = await store.numbers.findByNumber(DEMO_NUMBER)
    t.match(num, { accountId: acct, target: { type: 'agent', id: boot.demo!.agentId } })
    const agent = await store.agents.getById(boot.demo!.agentId)
    t.match(agent, { stt: { provider: 'pocketsphinx' }, llm: { provider: 'scripted' }, tts: { provider: 'espeak' }, greeting: String })
    await store.numbers.delete(acct, num!.id)
    const again = await bootstrap(db, 'cp_store_test_key', silent)
    t.equal(again.account.id, acct, 'same default account')
    t.notOk(again.demo, 'not recreated')
    t.equal(await store.numbers.findByNumber(DEMO_NUMBER), null, 'a deleted demo number stays deleted')
  })

  t.test('trunks: passwords sealed or hashed at rest, opened only for dialing', async (t) => {
    const tr = await store.trunks.create(acct, {
      name: 'carrier', inbound: { allowedIps: ['203.0.113.0/24'], username: 'carrier-in', password: 'in-pass-123' },
      outbound: { host: 'sip.carrier.example', username: 'acct1', password: 'out-pass-456', register: true },
    })
    t.equal(JSON.stringify(tr).includes('pass-'), false, 'no password in the returned trunk')
    t.match(tr, { inbound: { hasPassword: true, username: 'carrier-in', realm: 'default.callplane.local' }, outbound: { hasPassword: true } })
    const { rows } = await db.pool.query('SELECT * FROM trunks WHERE id = $1', [tr.id])
    t.equal(JSON.stringify(rows[0]).includes('pass-'), false, 'no plaintext password in the row')
    t.equal(rows[0].inbound_ha1_md5, createHash('md5').update('carrier-in:default.callplane.local:in-pass-123').digest('hex'))
    t.equal(rows[0].inbound_ha1_sha256, digestHa1('carrier-in', 'default.callplane.local', 'in-pass-123').sha256)
    const dial = await store.trunks.dialTarget(tr.id)
    t.equal(dial?.outbound.password, 'out-pass-456')
    t.same((await store.trunks.listRegistering()).map((x) => x.trunk.id), [tr.id])
    t.same((await store.trunks.findByInboundIp('203.0.113.77')).map((x) => x.id), [tr.id])
    t.same(await store.trunks.findByInboundIp('198.51.100.1'), [])
    const auth = await store.trunks.findInboundAuth('carrier-in')
    t.equal(auth[0]?.ha1Md5, rows[0].inbound_ha1_md5)
    const kept = await store.trunks.update(acct, tr.id, { concurrencyLimit: 5 })
    t.equal((await store.trunks.dialTarget(tr.id))?.outbound.password, 'out-pass-456', 'an update without password keeps it')
    t.equal(kept?.concurrencyLimit, 5)
  })

  t.test('extensions: HA1 only, registrar lookup by domain', async (t) => {
    const e = await store.extensions.create(acct, { extension: '201', password: 'desk-phone-pw' })
    const { rows } = await db.pool.query('SELECT * FROM extensions WHERE id = $1', [e.id])
    t.equal(JSON.stringify(rows[0]).includes('desk-phone-pw'), false)
    const cred = await store.extensions.findCredentials('201', 'default.callplane.local')
    t.equal(cred?.ha1Md5, digestHa1('201', 'default.callplane.local', 'desk-phone-pw').md5)
    t.equal(cred?.ha1Sha256, digestHa1('201', 'default.callplane.local', 'desk-phone-pw').sha256)
    t.equal(await store.extensions.findCredentials('201', 'elsewhere.example'), null)
    const dup = await store.extensions.create(acct, { extension: '201', password: 'another-pw' }).then(() => null, (e: { statusCode?: number }) => e.statusCode)
    t.equal(dup, 409, 'duplicate extension is a conflict')
    t.ok(await store.extensions.get(acct, e.id), 'the connection survives a failed statement')
  })

  t.test('webhooks: the secret is sealed at rest and opened for signing', async (t) => {
    const { webhook, secret } = await store.webhooks.create(acct, { url: 'https://x.example/h', events: ['call.ended'] })
    const { rows } = await db.pool.query('SELECT * FROM webhooks WHERE id = $1', [webhook.id])
    t.equal(JSON.stringify(rows[0]).includes(secret.slice(6)), false)
    t.notOk('secret' in webhook)
  })

  t.test('outbox.emit: a standalone event reaches the bus and the outbox', async (t) => {
    const seen: string[] = []
    const off = store.bus.subscribe((e) => seen.push(e.type))
    const evt = await store.outbox.emit(acct, 'registration.changed', { aor: 'sip:201@default.callplane.local', registered: true })
    const { rows } = await db.pool.query('SELECT type, data FROM events WHERE id = $1', [evt.id])
    t.match(rows[0], { type: 'registration.changed', data: { registered: true } })
    const end = Date.now() + 5000
    while (!seen.includes('registration.changed') && Date.now() < end) await new Promise((r) => setTimeout(r, 20))
    off()
    t.ok(seen.includes('registration.changed'), 'published on the bus (directly, or through NOTIFY on PostgreSQL)')
  })

  t.test('carrier routes: failover candidates, longest prefix then priority', async (t) => {
    const a = await store.trunks.create(acct, { name: 'a', outbound: { host: 'a.example' } })
    const b = await store.trunks.create(acct, { name: 'b', outbound: { host: 'b.example' } })
    const r1 = await store.carrierRoutes.create(acct, { name: 'de backup', prefix: '+49', trunkId: b.id, priority: 20 })
    const r2 = await store.carrierRoutes.create(acct, { name: 'de primary', prefix: '+49', trunkId: a.id, priority: 10 })
    const r3 = await store.carrierRoutes.create(acct, { name: 'berlin', prefix: '+4930', trunkId: b.id, priority: 50 })
    const r4 = await store.carrierRoutes.create(acct, { name: 'all', prefix: '*', trunkId: a.id, priority: 1 })
    await store.carrierRoutes.create(acct, { name: 'off', prefix: '+49', trunkId: a.id, priority: 0, enabled: false })
    t.same((await store.carrierRoutes.candidates(acct, '+4930123456')).map((r) => r.id), [r3.id, r2.id, r1.id, r4.id])
    t.same((await store.carrierRoutes.candidates(acct, '+14155550100')).map((r) => r.id), [r4.id])
    const bad = await store.carrierRoutes.create(acct, { name: 'x', prefix: '+1', trunkId: '00000000-0000-4000-8000-000000000000' }).then(() => null, (e: { code?: string }) => e.code)
    t.equal(bad, 'invalid_reference')
  })

  t.test('registrar bindings: one row per (AOR, contact), refreshed in place, best q first, expired ones ignored and swept', async (t) => {
    const aor = 'sip:301@store-test.example'
    const base = { accountId: acct, extensionId: null, aor, username: '301', received: 'udp:192.0.2.1:5060', transport: 'udp', callId: 'c1', nodeId: 'n1' }
    const a = await store.registrarBindings.upsert({ ...base, contact: 'sip:301@192.0.2.1:5060', cseq: 1, q: 0.5, expiresSec: 600 })
    const again = await store.registrarBindings.upsert({ ...base, contact: 'sip:301@192.0.2.1:5060', cseq: 2, q: 0.5, expiresSec: 600 })
    t.equal(again.id, a.id, 'a refresh keeps the row')
    t.equal(again.cseq, 2)
    await store.registrarBindings.upsert({ ...base, contact: 'sip:301@192.0.2.2:5060', cseq: 1, q: 1, expiresSec: 600 })
    await store.registrarBindings.upsert({ ...base, contact: 'sip:301@192.0.2.3:5060', cseq: 1, expiresSec: -5 })
    t.same((await store.registrarBindings.list(aor)).map((b) => b.contact), ['sip:301@192.0.2.2:5060', 'sip:301@192.0.2.1:5060'], 'q descending, expired left out')
    t.equal(await store.registrarBindings.get(aor, 'sip:301@192.0.2.3:5060'), null)
    t.equal((await store.registrarBindings.listByNode('n1')).length, 2)
    t.match(await store.registrarBindings.sweep(), [{ aor, accountId: acct, extensionId: null }], 'the expired binding is swept')
    await store.registrarBindings.transaction(async (bindings, emit) => {
      t.ok(await bindings.remove(aor, 'sip:301@192.0.2.1:5060'))
      await emit(acct, 'registration.changed', { aor, contacts: (await bindings.list(aor)).map((b) => b.contact) })
    })
    t.equal((await store.registrarBindings.list(aor)).length, 1, 'the removal committed with its event')
    t.equal(await store.registrarBindings.removeAll(aor), 1)
    const key = await store.registrarBindings.nonceSecret()
    t.equal(key.length, 32)
    t.same(await store.registrarBindings.nonceSecret(), key, 'the nonce key is created once')
  })

  t.test('sip directory: extensions by digest realm and username, caller IDs, trunk allow-lists', async (t) => {
    const ext = await store.extensions.create(acct, { extension: '401', password: 'pw-401', callerId: '+14155550401' })
    const realm = ext.realm
    t.ok((await store.sipDirectory.extensionRealms()).includes(realm))
    t.match(await store.sipDirectory.extensionDigest('401', realm), { id: ext.id, accountId: acct, username: '401', realm, ha1Md5: String })
    t.equal(await store.sipDirectory.extensionDigest('401', 'elsewhere.example'), null)
    t.same(await store.sipDirectory.extensionByUsername(acct, '401'), { id: ext.id, username: '401' })
    t.equal(await store.sipDirectory.extensionUsername(ext.id), '401')
    t.equal(await store.sipDirectory.extensionCallerId(ext.id), '+14155550401')
    t.ok(await store.sipDirectory.extensionOwnsCallerId(acct, '+14155550401', '+14155550401'))
    t.ok(await store.sipDirectory.extensionOwnsCallerId(acct, '401', '401'))
    t.notOk(await store.sipDirectory.extensionOwnsCallerId(acct, '+14155550999', '+14155550999'))
    const tr = await store.trunks.create(acct, { name: 'dir', inbound: { allowedIps: ['198.51.100.7'] } })
    t.match((await store.sipDirectory.inboundTrunks()).find((x) => x.id === tr.id), { accountId: acct, name: 'dir', inboundIps: ['198.51.100.7'] })
  })

  t.test('groupcalls: progress, outcome, hangingup → hangup once, stale ones ended', async (t) => {
    const gc = await store.groupcalls.create({
      accountId: acct, source: { type: 'tel', target: '+14155550100' }, destinations: [{ type: 'sip', target: 'sip:a@example.com' }, { type: 'tel', target: '+12125550100' }],
      actions: [{ id: 'a', type: 'hangup' }], ringMethod: 'linear', answerMethod: 'hangup_others', timeoutMs: 5000, nodeId: null,
    })
    t.match(gc, { status: 'progressing', callIds: [], dialIndex: 0, callCount: 0, answerCallId: null, outcome: null, flowId: null, actions: [{ id: 'a', type: 'hangup' }] })
    const c1 = '11111111-1111-4111-8111-111111111111'
    await store.groupcalls.progress(gc.id, { callIds: [c1], dialIndex: 1, callCount: 1, answerCallId: null, nodeId: 'n1' })
    await store.groupcalls.progress(gc.id, { callIds: [c1], dialIndex: 1, callCount: 0, answerCallId: c1, nodeId: 'n2' })
    t.match(await store.groupcalls.get(acct, gc.id), { callIds: [c1], dialIndex: 1, callCount: 0, answerCallId: c1, nodeId: 'n1' }, 'the first node to place a leg stays')
    t.notOk(await store.groupcalls.hangupRequested(gc.id))
    await store.groupcalls.settle(gc.id, 'answered')
    t.match(await store.groupcalls.setStatus(gc.id, 'hangingup'), { status: 'hangingup', endedAt: null, outcome: 'answered' })
    t.ok(await store.groupcalls.hangupRequested(gc.id))
    const done = await store.groupcalls.setStatus(gc.id, 'hangup')
    t.match(done, { status: 'hangup', endedAt: String })
    t.match(await store.groupcalls.setStatus(gc.id, 'hangingup'), { status: 'hangup' }, 'never back from hangup')
    const master = '22222222-2222-4222-8222-222222222222'
    const live = await store.groupcalls.create({ accountId: acct, source: { type: 'tel', target: '+14155550100' }, destinations: [], ringMethod: 'ring_all', answerMethod: 'hangup_others', timeoutMs: 5000, masterCallId: master, nodeId: 'dead-node' })
    t.same((await store.groupcalls.list(acct, { masterCallId: master }, {})).data.map((g) => g.id), [live.id], 'a call\'s connects')
    t.same((await store.groupcalls.list(acct, { status: 'hangup' }, {})).data.map((g) => g.id), [gc.id])
    t.equal(await store.groupcalls.endStale('dead-node'), 1)
    t.match(await store.groupcalls.get(acct, live.id), { status: 'hangup', outcome: 'failed' })
    t.equal(await store.groupcalls.get('00000000-0000-4000-8000-000000000000', gc.id), null, 'scoped by account')
  })
})
