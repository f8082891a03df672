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

t.test('SHA-256 digest (RFC 8760) end to end, when offered', async (t) => {
  const { createSocket } = await import('node:dgram')
  const { computeHa1, computeDigestResponse } = await import('../../../sip/app/digest-auth.ts')
  const stack = await startSipStack({ digestAlgorithms: ['SHA-256', 'MD5'] })
  t.teardown(() => stack.stop())
  const ext = await stack.store.extensions.create(stack.accountId, { extension: '301', password: 'sha-pass' })
  const sock = createSocket('udp4')
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()))
  t.teardown(() => sock.close())
  const lport = sock.address().port
  const recv = () => new Promise<string>((resolve) => sock.once('message', (m) => resolve(m.toString())))
  const send = (cseq: number, auth?: string) => {
    const msg = [
      `REGISTER sip:acme.test SIP/2.0`, `Via: SIP/2.0/UDP 127.0.0.1:${lport};rport;branch=z9hG4bK${cseq}x${Date.now()}`,
      `From: <sip:301@acme.test>;tag=sha1`, `To: <sip:301@acme.test>`, `Call-ID: sha-test-1`, `CSeq: ${cseq} REGISTER`,
      `Contact: <sip:301@127.0.0.1:${lport}>`, `Expires: 300`, `Max-Forwards: 70`, ...(auth ? [`Authorization: ${auth}`] : []), `Content-Length: 0`, '', '',
    ].join('\r\n')
    sock.send(msg, stack.sipPort, '127.0.0.1')
  }
  let r = recv()
  send(1)
  const challenge = await r
  t.match(challenge, /^SIP\/2\.0 401/)
  t.match(challenge, /algorithm=SHA-256/, 'SHA-256 offered')
  const nonce = /nonce="([^"]+)"[^\r\n]*algorithm=SHA-256/.exec(challenge)?.[1] ?? /nonce="([^"]+)"/.exec(challenge)![1]!
  const ha1 = computeHa1('SHA-256', '301', 'acme.test', 'sha-pass')
  const response = computeDigestResponse(ha1, 'REGISTER', { algorithm: 'SHA-256', nonce, uri: 'sip:acme.test', qop: 'auth', nc: '00000001', cnonce: 'abc' })
  r = recv()
  send(2, `Digest username="301", realm="acme.test", nonce="${nonce}", uri="sip:acme.test", response="${response}", algorithm=SHA-256, qop=auth, nc=00000001, cnonce="abc"`)
  t.match(await r, /^SIP\/2\.0 200/, 'SHA-256 response accepted')
  t.equal((await stack.app.registrar.contactsFor(ext.id)).length, 1)
})
