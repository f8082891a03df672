import t from 'tap'
import { runSipp, waitListening } from '../../harness/sipp.ts'
import { freePort } from '../../harness/ports.ts'
import { startServer, SDP, loose, rejectionStatus, requestStatus, type SentRequest } from './helpers.ts'

const scenario = (name: string): string => new URL(`./scenarios/${name}`, import.meta.url).pathname

async function sippUas(name: string, calls = 1, transport: 'u1' | 't1' = 'u1') {
  const port = await freePort()
  const run = runSipp({ scenario: name.endsWith('.xml') ? scenario(name) : name, localPort: port, calls, transport, timeoutMs: 20_000 })
  await waitListening(port, transport === 't1' ? 'tcp' : 'udp')
  return { port, run }
}

t.test('createUAC towards a sipp UAS: answered, then app hangs up', async (t) => {
  const h = await startServer()
  t.teardown(() => h.close())
  const srf = await h.connectApp()
  const uas = await sippUas('uas-answer.xml')
  const dlg = await loose(srf).createUAC(`sip:service@127.0.0.1:${uas.port}`, { localSdp: SDP })
  t.match(dlg.remote.sdp, /m=audio/, 'got answer SDP')
  await dlg.destroy()
  const r = await uas.run.done
  t.equal(r.code, 0, `sipp uas succeeded: ${r.errors}`)
})

t.test('createUAC over TCP', async (t) => {
  const h = await startServer()
  t.teardown(() => h.close())
  const srf = await h.connectApp()
  const uas = await sippUas('uas-answer.xml', 1, 't1')
  const dlg = await loose(srf).createUAC(`sip:service@127.0.0.1:${uas.port};transport=tcp`, { localSdp: SDP })
  await dlg.destroy()
  const r = await uas.run.done
  t.equal(r.code, 0, `sipp uas succeeded: ${r.errors}`)
})

t.test('createUAC answers a 407 digest challenge', async (t) => {
  const h = await startServer()
  t.teardown(() => h.close())
  const srf = await h.connectApp()
  const uas = await sippUas('uas-auth-invite.xml')
  const dlg = await loose(srf).createUAC(`sip:service@127.0.0.1:${uas.port}`, { localSdp: SDP, auth: { username: 'alice', password: 's3cret' } })
  await dlg.destroy()
  const r = await uas.run.done
  t.equal(r.code, 0, `sipp verified the digest: ${r.errors}`)
})

for (const status of [486, 503]) {
  t.test(`createUAC rejected with ${status}`, async (t) => {
    const h = await startServer()
    t.teardown(() => h.close())
    const srf = await h.connectApp()
    const uas = await sippUas(`uas-${status}.xml`)
    t.equal(await rejectionStatus(loose(srf).createUAC(`sip:service@127.0.0.1:${uas.port}`, { localSdp: SDP })), status)
    const r = await uas.run.done
    t.equal(r.code, 0, `sipp got the ACK: ${r.errors}`)
  })
}

t.test('createUAC canceled after 180', async (t) => {
  const h = await startServer()
  t.teardown(() => h.close())
  const srf = await h.connectApp()
  const uas = await sippUas('uas-ring-cancel.xml')
  let provisional = 0
  let inviteReq: SentRequest | undefined
  const p = loose(srf).createUAC(`sip:service@127.0.0.1:${uas.port}`, { localSdp: SDP }, {
    cbRequest: (_err, req) => { inviteReq = req },
    cbProvisional: (res) => {
      provisional = res.status
      if (res.status === 180) inviteReq?.cancel()
    },
  })
  t.equal(await rejectionStatus(p), 487)
  t.equal(provisional, 180)
  const r = await uas.run.done
  t.equal(r.code, 0, `sipp saw CANCEL and ACK: ${r.errors}`)
})

t.test('Srf#request REGISTER with 401 digest retry, and MESSAGE', async (t) => {
  const h = await startServer()
  t.teardown(() => h.close())
  const srf = await h.connectApp()
  const uas = await sippUas('uas-register-auth.xml')
  const status = await requestStatus(srf, `sip:bob@127.0.0.1:${uas.port}`, {
    method: 'REGISTER',
    headers: { Contact: '<sip:bob@localhost>', Expires: '60', To: '<sip:bob@127.0.0.1>', From: '<sip:bob@127.0.0.1>' },
    auth: { username: 'bob', password: 'pw' },
  })
  t.equal(status, 200)
  t.equal((await uas.run.done).code, 0, 'sipp verified the REGISTER digest')

  const uas2 = await sippUas('uas-message.xml')
  const s2 = await requestStatus(srf, `sip:carol@127.0.0.1:${uas2.port}`, { method: 'MESSAGE', headers: { 'Content-Type': 'text/plain' }, body: 'hello ✓' })
  t.equal(s2, 200)
  t.equal((await uas2.run.done).code, 0)
})

t.test('createUAC with 100rel: reliable 183 with early media is PRACKed, then answered', async (t) => {
  const h = await startServer()
  t.teardown(() => h.close())
  const srf = await h.connectApp()
  const uas = await sippUas('uas-100rel.xml')
  let early = ''
  const dlg = await loose(srf).createUAC(`sip:service@127.0.0.1:${uas.port}`, { localSdp: SDP, headers: { Supported: '100rel' } }, {
    cbProvisional: (res) => { if (res.status === 183) early = (res as unknown as { body: string }).body },
  })
  t.match(early, /m=audio/, 'early media SDP on the 183')
  await dlg.destroy()
  const r = await uas.run.done
  t.equal(r.code, 0, `sipp got PRACK, ACK and BYE: ${r.errors}`)
})
