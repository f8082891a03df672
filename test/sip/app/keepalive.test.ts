import t from 'tap'
import { runPhone } from './baresip-ua.ts'
import { startSipStack, waitFor, sleep, DOMAIN } from './helpers.ts'
import { freePort } from '../../harness/ports.ts'

t.test('OPTIONS keep-alive: a live phone keeps its binding, a dead one loses it', async (t) => {
  const stack = await startSipStack({ keepalive: { intervalMs: 1_000, probeTimeoutMs: 1_500, maxMisses: 2 } })
  t.teardown(() => stack.stop())
  const ext = await stack.store.extensions.create(stack.accountId, { extension: '401', password: 'ka-pass' })
  const phone = runPhone({ user: '401', password: 'ka-pass', domain: DOMAIN, proxy: stack.target, localPort: await freePort(), seconds: 30 })
  t.teardown(() => phone.kill())
  await waitFor(async () => (await stack.app.registrar.contactsFor(ext.id)).length > 0 || null, 10_000, 'registration')
  await sleep(4_000)
  t.equal((await stack.app.registrar.contactsFor(ext.id)).length, 1, 'answered OPTIONS for several rounds: still bound')
  phone.kill('SIGKILL') // gone without unregistering, like a phone losing power
  await phone.done
  await waitFor(async () => (await stack.app.registrar.contactsFor(ext.id)).length === 0 || null, 15_000, 'binding removed')
  t.pass('unanswered OPTIONS removed the binding')
  const { rows } = await stack.db.pool.query(`SELECT data FROM events WHERE type = 'registration.changed' AND data->>'reason' = 'unreachable'`)
  t.equal(rows.length, 1, 'registration.changed (unreachable) emitted')
})
