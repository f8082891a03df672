/**
 * sipp as the caller, a drachtio-srf app challenging it: 401 on REGISTER, 407
 * on INVITE. The app verifies the digest (RFC 2617 / RFC 8760 MD5), so the
 * credentials must cross the server intact, and the ACK for the 407 must be
 * absorbed by the server's INVITE transaction.
 */
import t from 'tap'
import { createHash } from 'node:crypto'
import { runSipp } from '../../harness/sipp.ts'
import { freePort } from '../../harness/ports.ts'
import { startServer, SDP } from './helpers.ts'

const scenario = (name: string): string => new URL(`./scenarios/${name}`, import.meta.url).pathname
const md5 = (s: string): string => createHash('md5').update(s).digest('hex')
const REALM = 'callplane.test'
const PASSWORD = 'wonderland'

function digestOk(header: string | undefined, method: string): boolean {
  if (!header || !/^Digest /i.test(header)) return false
  const p: Record<string, string> = {}
  for (const m of header.slice(7).matchAll(/(\w+)=(?:"([^"]*)"|([^,\s]+))/g)) p[m[1]!.toLowerCase()] = m[2] ?? m[3] ?? ''
  const ha1 = md5(`${p.username}:${p.realm}:${PASSWORD}`)
  const ha2 = md5(`${method}:${p.uri}`)
  const want = p.qop ? md5(`${ha1}:${p.nonce}:${p.nc}:${p.cnonce}:${p.qop}:${ha2}`) : md5(`${ha1}:${p.nonce}:${ha2}`)
  return p.username === 'alice' && p.realm === REALM && p.response === want
}

t.test('REGISTER: 401 challenge from the app, sipp retries with credentials', async (t) => {
  const h = await startServer()
  t.teardown(() => h.close())
  const srf = await h.connectApp()
  const outcomes: string[] = []
  type Req = { get(h: string): string | undefined }
  type Res = { send(status: number, opts?: object): void }
  // Srf#register exists at runtime; the bundled typings omit it
  ;(srf as unknown as { register(fn: (req: Req, res: Res) => void): void }).register((req, res) => {
    const auth = req.get('Authorization')
    if (!auth) {
      outcomes.push('challenged')
      return res.send(401, { headers: { 'WWW-Authenticate': `Digest realm="${REALM}", nonce="${Date.now()}", algorithm=MD5` } })
    }
    const ok = digestOk(auth, 'REGISTER')
    outcomes.push(ok ? 'verified' : 'bad')
    res.send(ok ? 200 : 403, { headers: { Contact: req.get('Contact') ?? '', Expires: '60' } })
  })
  const r = await runSipp({ scenario: scenario('uac-register-auth.xml'), remote: h.target, localPort: await freePort(), calls: 2 }).done
  t.equal(r.code, 0, `sipp registered: ${r.errors}`)
  t.same(outcomes, ['challenged', 'verified', 'challenged', 'verified'])
})

t.test('INVITE: 407 challenge from the app, ACK absorbed, authenticated INVITE answered', async (t) => {
  const h = await startServer()
  t.teardown(() => h.close())
  const srf = await h.connectApp()
  const outcomes: string[] = []
  srf.invite((req, res) => {
    const auth = req.get('Proxy-Authorization')
    if (!auth) {
      outcomes.push('challenged')
      return res.send(407, { headers: { 'Proxy-Authenticate': `Digest realm="${REALM}", nonce="${Date.now()}", qop="auth", algorithm=MD5` } } as never)
    }
    const ok = digestOk(auth, 'INVITE')
    outcomes.push(ok ? 'verified' : 'bad')
    if (!ok) return res.send(403)
    void srf.createUAS(req, res, { localSdp: SDP })
  })
  const r = await runSipp({ scenario: scenario('uac-invite-auth.xml'), remote: h.target, localPort: await freePort(), calls: 1 }).done
  t.equal(r.code, 0, `sipp call after 407: ${r.errors}`)
  t.same(outcomes, ['challenged', 'verified'])
})
