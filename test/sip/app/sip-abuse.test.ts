/**
 * SIP abuse and conformance through the whole engine (issue 14), as a user meets it:
 * extensions created with the REST API, real sipp peers, /metrics read over HTTP.
 * - digest brute force locks out the attacking source, not the user everywhere;
 * - REGISTERs with unusual Contact parameters or escaped URI headers are answered;
 *   unsupported URI schemes get 416 (RFC 3261 §8.2.2.1);
 * - a 500 calls/s INVITE flood from 127.0.0.1 does not fail calls placed from 127.0.0.2.
 */
import t from 'tap'
import { createSocket } from 'node:dgram'
import { readdirSync, readFileSync } from 'node:fs'
import { join, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { runSipp } from '../../harness/sipp.ts'
import { startStack } from '../../harness/stack.ts'

const SCN = join(dirname(fileURLToPath(import.meta.url)), 'scenarios')
const sippLog = (dir: string): string => {
  const f = readdirSync(dir).find((n) => n.endsWith('_logs.log'))
  return f ? readFileSync(join(dir, f), 'utf8') : ''
}

const stack = await startStack(process.env.DATABASE_URL ? { DATABASE_URL: process.env.DATABASE_URL } : {})
t.teardown(() => stack.stop())
const target = `127.0.0.1:${stack.sipPort}`
const api = (path: string, init: RequestInit = {}) => fetch(`${stack.baseUrl}${path}`, {
  ...init, headers: { authorization: `Bearer ${stack.apiKey}`, 'content-type': 'application/json', ...(init.headers ?? {}) },
})
async function createExtension(extension: string, password: string): Promise<void> {
  const r = await api('/v1/extensions', { method: 'POST', body: JSON.stringify({ extension, password }) })
  if (r.status !== 201) throw new Error(`extension ${extension}: ${r.status} ${await r.text()}`)
}
async function register(user: string, password: string, scenario: string, localIp: string, extra: string[] = []) {
  const res = await runSipp({ scenario: join(SCN, scenario), remote: target, service: user, localIp, args: ['-au', user, '-ap', password, '-trace_logs', ...extra], timeoutMs: 20_000 }).done
  return { ...res, log: sippLog(res.dir) }
}

t.test('digest brute force from one source locks out that source, not the user: the right password from another source registers', async (t) => {
  await createExtension('201', 'correct-horse-battery')
  // DEFAULT_LOCKOUT: 5 failures for one user from one source
  for (let i = 0; i < 5; i++) {
    const r = await register('201', `wrong-${i}`, 'register-bad.xml', '127.0.0.1')
    t.match(r.log, /RESULT rejected/, `wrong password ${i + 1} re-challenged (401)`)
  }
  const locked = await register('201', 'correct-horse-battery', 'register-bad.xml', '127.0.0.1')
  t.match(locked.log, /RESULT locked/, 'the attacking source is locked out (403), even with the right password')
  const real = await register('201', 'correct-horse-battery', 'register-auth.xml', '127.0.0.2')
  t.equal(real.code, 0, `the real user registers from 127.0.0.2 (200) (${real.errors.slice(0, 300)})`)
  t.match(real.log, /BOUND .* expires=\d+/)
})

t.test('REGISTER with unknown Contact parameters and an escaped header in the Contact URI is answered (401, then 200)', async (t) => {
  await createExtension('202', 'correct-horse-battery')
  const contact = '<sip:202@127.0.0.3:5099;foo=bar?X-Hdr=a%20b>;+sip.instance="<urn:uuid:00000000-0000-1000-8000-AABBCCDDEEFF>";reg-id=1;unknownparam'
  const r = await register('202', 'correct-horse-battery', 'register-contact.xml', '127.0.0.3', ['-key', 'contact', contact])
  t.equal(r.code, 0, `answered (${r.errors.slice(0, 300)})`)
  t.match(r.log, /RESULT 200/, 'registered')
})

t.test('a Contact with a scheme the registrar cannot reach gets 416 after authentication', async (t) => {
  await createExtension('203', 'correct-horse-battery')
  for (const contact of ['<tel:+15551234567>', '<http://example.com/phone>']) {
    const r = await register('203', 'correct-horse-battery', 'register-contact.xml', '127.0.0.3', ['-key', 'contact', contact])
    t.match(r.log, /RESULT 416/, `${contact}: 416 Unsupported URI Scheme`)
  }
})

t.test('an unsupported Request-URI scheme gets 416 (RFC 3261 §8.2.2.1)', async (t) => {
  const sock = createSocket('udp4')
  await new Promise<void>((r) => sock.bind(0, '127.0.0.4', () => r()))
  t.teardown(() => sock.close())
  const port = sock.address().port
  const got = new Map<string, string>()
  sock.on('message', (m) => {
    const s = m.toString()
    const callId = /^Call-ID:\s*(\S+)/im.exec(s)?.[1]
    if (callId && !s.startsWith('SIP/2.0 100')) got.set(callId, s.split('\r\n')[0]!)
  })
  const cases: Array<[string, string]> = [
    ['REGISTER', 'tel:+15551234567'],
    ['REGISTER', 'http://example.com'],
    ['OPTIONS', 'http://example.com'],
    ['INVITE', 'mailto:bob@example.com'],
  ]
  cases.forEach(([method, uri], i) => {
    sock.send([
      `${method} ${uri} SIP/2.0`, `Via: SIP/2.0/UDP 127.0.0.4:${port};branch=z9hG4bK416-${i}-${Date.now()};rport`, 'Max-Forwards: 70',
      `From: <sip:204@acme.test>;tag=t${i}`, '<sip:204@acme.test>'.replace(/^/, 'To: '), `Call-ID: scheme-${i}`, `CSeq: 1 ${method}`,
      `Contact: <sip:204@127.0.0.4:${port}>`, 'Content-Length: 0', '', '',
    ].join('\r\n'), stack.sipPort, '127.0.0.1')
  })
  const end = Date.now() + 5000
  while (got.size < cases.length && Date.now() < end) await new Promise((r) => setTimeout(r, 50))
  cases.forEach(([method, uri], i) => t.equal(got.get(`scheme-${i}`), 'SIP/2.0 416 Unsupported URI Scheme', `${method} ${uri}`))
})

t.test('a 500 calls/s INVITE flood from 127.0.0.1 does not fail the calls 127.0.0.2 places at 5/s', async (t) => {
  const floodSec = 10
  const flood = runSipp({
    scenario: join(SCN, 'invite-flood.xml'), remote: target, service: '99999', localIp: '127.0.0.1',
    calls: 500 * floodSec, rate: 500, args: ['-recv_timeout', '2000', '-l', '3000'], timeoutMs: (floodSec + 30) * 1000,
  })
  await new Promise((r) => setTimeout(r, 1000)) // the flood is under way
  const legit = await runSipp({
    scenario: 'uac', remote: target, service: '1000', localIp: '127.0.0.2',
    calls: 5 * (floodSec - 2), rate: 5, args: ['-d', '500', '-recv_timeout', '10000'], timeoutMs: (floodSec + 30) * 1000,
  }).done
  const fl = await flood.done
  t.equal(legit.failed, 0, `no legitimate call failed (${legit.errors.slice(0, 300)})`)
  t.equal(legit.successful, 5 * (floodSec - 2), 'every legitimate call completed')
  const metrics = await (await fetch(`${stack.baseUrl}/metrics`)).text()
  const limited = Number(/sip_server_rate_limited_total\{method="INVITE"\} (\d+)/.exec(metrics)?.[1] ?? 0)
  t.ok(limited > 1000, `the flood's excess INVITEs were dropped and counted in /metrics (${limited}; flood: ${fl.successful} answered, ${fl.failed} unanswered)`)
})
