import t from 'tap'
import { readdirSync, readFileSync } from 'node:fs'
import { join, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { runSipp } from '../../harness/sipp.ts'
import { startSipStack, type SipStack } from './helpers.ts'

const SCN = join(dirname(fileURLToPath(import.meta.url)), 'scenarios')

function sippLog(dir: string): string {
  const f = readdirSync(dir).find((n) => n.endsWith('_logs.log'))
  return f ? readFileSync(join(dir, f), 'utf8') : ''
}

async function register(stack: SipStack, user: string, password: string, scenario = 'register-auth.xml', localIp = '127.0.0.1') {
  const r = runSipp({ scenario: join(SCN, scenario), remote: stack.target, service: user, localIp, args: ['-au', user, '-ap', password, '-trace_logs'], timeoutMs: 15_000 })
  const res = await r.done
  return { ...res, log: sippLog(res.dir) }
}

t.test('registrar with digest (sipp -au/-ap)', async (t) => {
  const stack = await startSipStack({ lockout: { maxFailuresPerUser: 3, maxFailuresPerSource: 50, lockMs: 60_000, windowMs: 60_000 } })
  t.teardown(() => stack.stop())
  const ext = await stack.store.extensions.create(stack.accountId, { extension: '101', password: 'correct-horse' })

  await t.test('REGISTER → 401 → REGISTER with MD5 digest → 200 with the binding', async (t) => {
    const res = await register(stack, '101', 'correct-horse')
    t.equal(res.code, 0, `sipp exit 0 (${res.errors.slice(0, 300)})`)
    t.match(res.log, /BOUND expires=1[12][0-9]/, '200 lists our contact with its expiry')
    const contacts = await stack.app.registrar.contactsFor(ext.id)
    t.equal(contacts.length, 1, 'binding stored in PostgreSQL')
    t.match(contacts[0]!.contact, /^sip:101@127\.0\.0\.1:\d+/)
    t.match(contacts[0]!.received, /^udp:127\.0\.0\.1:\d+$/, 'source address kept for NAT')
    const { rows } = await stack.db.pool.query(`SELECT count(*)::int AS n FROM events WHERE type = 'registration.changed'`)
    t.ok(rows[0].n >= 1, 'registration.changed written to the outbox')
  })

  await t.test('a second device adds a second contact', async (t) => {
    const res = await register(stack, '101', 'correct-horse', 'register-auth.xml', '127.0.0.2')
    t.equal(res.code, 0)
    t.equal((await stack.app.registrar.contactsFor(ext.id)).length, 2)
  })

  await t.test('Contact: * with Expires: 0 removes every binding', async (t) => {
    const res = await register(stack, '101', 'correct-horse', 'unregister.xml')
    t.equal(res.code, 0)
    t.equal((await stack.app.registrar.contactsFor(ext.id)).length, 0)
  })

  await t.test('wrong password → 401; repeated failures lock the user out (403), even with the right password', async (t) => {
    await stack.store.extensions.create(stack.accountId, { extension: '102', password: 'right' })
    const first = await register(stack, '102', 'wrong', 'register-bad.xml')
    t.match(first.log, /RESULT rejected/, 'wrong password re-challenged with 401')
    await register(stack, '102', 'wrong2', 'register-bad.xml')
    await register(stack, '102', 'wrong3', 'register-bad.xml')
    const locked = await register(stack, '102', 'right', 'register-bad.xml')
    t.match(locked.log, /RESULT locked/, 'locked out: 403')
    const other = await register(stack, '101', 'correct-horse')
    t.equal(other.code, 0, 'another user from the same source still registers')
  })

  await t.test('unknown user gets a challenge and then a 401, like a wrong password', async (t) => {
    const res = await register(stack, '999', 'x', 'register-bad.xml', '127.0.0.3')
    t.match(res.log, /RESULT rejected/)
  })
})
