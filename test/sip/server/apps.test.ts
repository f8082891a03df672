import t from 'tap'
import Srf from 'drachtio-srf'
import { runSipp, waitListening } from '../../harness/sipp.ts'
import { freePort } from '../../harness/ports.ts'
import { startServer, SDP, requestStatus, looseDialog } from './helpers.ts'

const scenario = (name: string): string => new URL(`./scenarios/${name}`, import.meta.url).pathname

t.test('Srf#request with OPTIONS, INFO, MESSAGE, NOTIFY, REFER, SUBSCRIBE, PUBLISH', async (t) => {
  const h = await startServer()
  t.teardown(() => h.close())
  const srf = await h.connectApp()
  const port = await freePort()
  const uas = runSipp({ scenario: scenario('uas-methods.xml'), localPort: port, calls: 1, timeoutMs: 20_000 })
  await waitListening(port)
  const callId = `methods-${Date.now()}@test`
  const uri = `sip:svc@127.0.0.1:${port}`
  const headers = (extra: Record<string, string> = {}) => ({ 'Call-ID': callId, From: '<sip:app@localhost>;tag=apptag', ...extra })
  const got: Record<string, number> = {}
  got.OPTIONS = await requestStatus(srf, uri, { method: 'OPTIONS', headers: headers({ CSeq: '1 OPTIONS' }) })
  got.INFO = await requestStatus(srf, uri, { method: 'INFO', headers: headers({ CSeq: '2 INFO', 'Content-Type': 'application/dtmf-relay' }), body: 'Signal=1\r\n' })
  got.MESSAGE = await requestStatus(srf, uri, { method: 'MESSAGE', headers: headers({ CSeq: '3 MESSAGE', 'Content-Type': 'text/plain' }), body: 'hi' })
  got.NOTIFY = await requestStatus(srf, uri, { method: 'NOTIFY', headers: headers({ CSeq: '4 NOTIFY', Event: 'check-sync', 'Subscription-State': 'terminated' }) })
  got.REFER = await requestStatus(srf, uri, { method: 'REFER', headers: headers({ CSeq: '5 REFER', 'Refer-To': '<sip:x@example.com>' }) })
  got.SUBSCRIBE = await requestStatus(srf, uri, { method: 'SUBSCRIBE', headers: headers({ CSeq: '6 SUBSCRIBE', Event: 'presence', Expires: '60' }) })
  got.PUBLISH = await requestStatus(srf, uri, { method: 'PUBLISH', headers: headers({ CSeq: '7 PUBLISH', Event: 'presence', 'Content-Type': 'application/pidf+xml' }), body: '<presence/>' })
  t.same(got, { OPTIONS: 200, INFO: 200, MESSAGE: 200, NOTIFY: 200, REFER: 202, SUBSCRIBE: 202, PUBLISH: 200 })
  t.equal((await uas.done).code, 0, 'sipp saw every request')
})

t.test('several apps: calls are spread and in-dialog requests reach the owning app', async (t) => {
  const h = await startServer()
  t.teardown(() => h.close())
  const a = await h.connectApp()
  const b = await h.connectApp()
  t.equal(h.server.connectedApps, 2)
  const seen = { a: { invite: 0, bye: 0 }, b: { invite: 0, bye: 0 } }
  for (const [name, srf] of [['a', a], ['b', b]] as const) {
    srf.invite((req, res) => {
      seen[name].invite++
      // callback form: the listener is attached before the BYE frame can be processed
      srf.createUAS(req, res, { localSdp: SDP }, (err, dlg) => {
        if (!err) looseDialog(dlg).on('destroy', () => { seen[name].bye++ })
      })
    })
  }
  const r = await runSipp({ scenario: 'uac', remote: h.target, localPort: await freePort(), calls: 6, rate: 20 }).done
  t.equal(r.code, 0, `calls ok: ${r.errors}`)
  t.ok(seen.a.invite > 0 && seen.b.invite > 0, `both apps got calls (${seen.a.invite}/${seen.b.invite})`)
  t.equal(seen.a.bye, seen.a.invite, 'app a saw the BYE of each of its calls')
  t.equal(seen.b.bye, seen.b.invite, 'app b saw the BYE of each of its calls')
})

t.test('wrong secret is refused; app disconnect fails its pending INVITEs with 503', async (t) => {
  const h = await startServer()
  t.teardown(() => h.close())
  const bad = new Srf()
  const err = await new Promise<Error | null>((resolve) => {
    bad.once('connect', (e: Error | null) => resolve(e))
    bad.on('error', () => {})
    bad.connect({ host: '127.0.0.1', port: h.controlPort, secret: 'wrong' })
  })
  t.match(String(err), /failed to authenticate/)
  try { bad.disconnect() } catch { /* closed by the server */ }
  t.equal(h.server.connectedApps, 0)

  const srf = await h.connectApp()
  srf.invite(() => { srf.disconnect() }) // never answers; goes away
  const r = await runSipp({ scenario: scenario('uac-503.xml'), remote: h.target, localPort: await freePort(), calls: 1 }).done
  t.equal(r.code, 0, `caller got 503 instead of a timeout: ${r.errors}`)
})
