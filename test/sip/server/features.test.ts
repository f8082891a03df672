import t from 'tap'
import { runSipp, waitListening } from '../../harness/sipp.ts'
import { freePort } from '../../harness/ports.ts'
import { startServer, SDP, looseDialog } from './helpers.ts'

const scenario = (name: string): string => new URL(`./scenarios/${name}`, import.meta.url).pathname

async function sippUas(name: string, calls = 1) {
  // A port free when picked may be taken before sipp binds it (another file's socket under the
  // parallel suite: "Unable to bind main socket, errno = 98"): pick another and start again.
  for (let attempt = 1; ; attempt++) {
    const port = await freePort()
    const run = runSipp({ scenario: scenario(name), localPort: port, calls, timeoutMs: 20_000 })
    // sipp can take seconds to start on a loaded box; if it exits instead (port
    // taken), say so rather than waiting for a socket that never comes.
    const exited = run.done.then((r) => { throw new Error(`sipp UAS exited before listening on ${port}: ${r.errors.slice(0, 200)}`) })
    exited.catch(() => {})
    try {
      await Promise.race([waitListening(port, 'udp', '127.0.0.1', 15_000), exited])
      return { port, run }
    } catch (err) {
      if (attempt >= 3 || !/errno = 98|Address already in use/.test((err as Error).message)) throw err
    }
  }
}

t.test('OPTIONS is answered 200 with no application; unrouted INVITE gets 503', async (t) => {
  const h = await startServer()
  t.teardown(() => h.close())
  const r = await runSipp({ scenario: scenario('uac-options.xml'), remote: h.target, localPort: await freePort(), calls: 3, rate: 20 }).done
  t.equal(r.code, 0, `OPTIONS answered: ${r.errors}`)
  t.equal(r.successful, 3)
  const srf = await h.connectApp()
  srf.use('register', (_req: unknown, res: { send(s: number): void }) => res.send(200)) // routes REGISTER only
  const r2 = await runSipp({ scenario: scenario('uac-503.xml'), remote: h.target, localPort: await freePort(), calls: 2, rate: 20 }).done
  t.equal(r2.code, 0, `INVITE got 503: ${r2.errors}`)
})

t.test('PRACK / 100rel: reliable 183 with early media, then 200', async (t) => {
  const h = await startServer()
  t.teardown(() => h.close())
  const srf = await h.connectApp()
  let pracks = 0
  srf.invite((req, res) => {
    // Response#send(status, opts, callback, fnPrack): typings only know (status, reason)
    const send = res.send.bind(res) as unknown as (s: number, o: object, cb: undefined, fnPrack: () => void) => void
    send(183, { headers: { Require: '100rel', 'Content-Type': 'application/sdp' }, body: SDP }, undefined, () => {
      pracks++
      void srf.createUAS(req, res, { localSdp: SDP })
    })
  })
  const r = await runSipp({ scenario: scenario('uac-prack.xml'), remote: h.target, localPort: await freePort(), calls: 1 }).done
  t.equal(r.code, 0, `sipp PRACK flow: ${r.errors}`)
  t.equal(pracks, 1, 'app notified of the PRACK')
})

t.test('Dialog#request INFO and REFER towards the caller', async (t) => {
  const h = await startServer()
  t.teardown(() => h.close())
  const srf = await h.connectApp()
  const statuses: number[] = []
  srf.invite(async (req, res) => {
    const dlg = looseDialog(await srf.createUAS(req, res, { localSdp: SDP }))
    statuses.push((await dlg.request({ method: 'INFO', headers: { 'Content-Type': 'application/dtmf-relay' }, body: 'Signal=5\r\nDuration=160\r\n' })).status)
    statuses.push((await dlg.request({ method: 'REFER', headers: { 'Refer-To': '<sip:transfer@example.com>' } })).status)
  })
  const r = await runSipp({ scenario: scenario('uac-info-refer.xml'), remote: h.target, localPort: await freePort(), calls: 1 }).done
  t.equal(r.code, 0, `sipp: ${r.errors}`)
  t.same(statuses, [200, 202])
})

t.test('B2BUA between two sipp instances', async (t) => {
  const h = await startServer()
  t.teardown(() => h.close())
  const srf = await h.connectApp()
  const uas = await sippUas('uas-answer.xml', 2)
  let bridged = 0
  srf.invite(async (req, res) => {
    const { uas: a, uac: b } = await srf.createB2BUA(req, res, `sip:service@127.0.0.1:${uas.port}`, { localSdpB: req.body })
    bridged++
    // drachtio-srf leaves BYE propagation to the application
    a.on('destroy', () => { void b.destroy() })
    b.on('destroy', () => { void a.destroy() })
  })
  // -d: the caller holds 200 ms, so the app has attached its destroy listeners before the BYE
  const r = await runSipp({ scenario: 'uac', remote: h.target, localPort: await freePort(), calls: 2, rate: 10, args: ['-d', '200'] }).done
  t.equal(r.code, 0, `caller side: ${r.errors}`)
  const ru = await uas.run.done
  t.equal(ru.code, 0, `callee side got the propagated BYE: ${ru.errors}`)
  t.equal(bridged, 2)
})

t.test('proxyRequest with record-route between two sipp instances', async (t) => {
  const h = await startServer()
  t.teardown(() => h.close())
  const srf = await h.connectApp()
  const uas = await sippUas('uas-answer.xml', 1)
  const results: { finalStatus?: number; connected?: boolean }[] = []
  srf.invite((req) => {
    void (srf.proxyRequest(req, [`sip:service@127.0.0.1:${uas.port}`], { recordRoute: true }) as unknown as Promise<{ finalStatus: number; connected: boolean }>).then((r) => results.push(r))
  })
  const r = await runSipp({ scenario: scenario('uac-rr.xml'), remote: h.target, localPort: await freePort(), calls: 1 }).done
  t.equal(r.code, 0, `caller: ${r.errors}`)
  const ru = await uas.run.done
  t.equal(ru.code, 0, `callee: ${ru.errors}`)
  t.equal(results[0]?.finalStatus, 200)
  t.equal(results[0]?.connected, true)
})

t.test('proxyRequest serial failover: first target busy, second answers', async (t) => {
  const h = await startServer()
  t.teardown(() => h.close())
  const srf = await h.connectApp()
  const busy = await sippUas('uas-486.xml', 1)
  const uas = await sippUas('uas-answer.xml', 1)
  srf.invite((req) => {
    void srf.proxyRequest(req, [`sip:a@127.0.0.1:${busy.port}`, `sip:b@127.0.0.1:${uas.port}`], { recordRoute: true })
  })
  const r = await runSipp({ scenario: scenario('uac-rr.xml'), remote: h.target, localPort: await freePort(), calls: 1 }).done
  t.equal(r.code, 0, `caller: ${r.errors}`)
  t.equal((await busy.run.done).code, 0, 'busy target got its ACK')
  t.equal((await uas.run.done).code, 0, 'second target answered and got BYE')
})

t.test('proxyRequest: caller CANCEL is propagated to the ringing target', async (t) => {
  const h = await startServer()
  t.teardown(() => h.close())
  const srf = await h.connectApp()
  const uas = await sippUas('uas-ring-cancel.xml', 1)
  const results: { finalStatus?: number }[] = []
  srf.invite((req) => {
    void (srf.proxyRequest(req, [`sip:service@127.0.0.1:${uas.port}`]) as unknown as Promise<{ finalStatus: number }>).then((r) => results.push(r))
  })
  const r = await runSipp({ scenario: scenario('uac-cancel.xml'), remote: h.target, localPort: await freePort(), calls: 1 }).done
  t.equal(r.code, 0, `caller got 200 for CANCEL and 487: ${r.errors}`)
  t.equal((await uas.run.done).code, 0, 'target saw the CANCEL and got its ACK')
  t.equal(results[0]?.finalStatus, 487)
})

t.test('proxyRequest simultaneous forking: busy branch and answering branch', async (t) => {
  const h = await startServer()
  t.teardown(() => h.close())
  const srf = await h.connectApp()
  const busy = await sippUas('uas-486.xml', 1)
  const uas = await sippUas('uas-answer.xml', 1)
  const results: { finalStatus?: number }[] = []
  srf.invite((req) => {
    void (srf.proxyRequest(req, [`sip:a@127.0.0.1:${busy.port}`, `sip:b@127.0.0.1:${uas.port}`], { recordRoute: true, forking: 'simultaneous' }) as unknown as Promise<{ finalStatus: number }>)
      .then((r) => results.push(r))
  })
  const r = await runSipp({ scenario: scenario('uac-rr.xml'), remote: h.target, localPort: await freePort(), calls: 1 }).done
  t.equal(r.code, 0, `caller connected: ${r.errors}`)
  t.equal((await busy.run.done).code, 0, 'busy branch ACKed')
  t.equal((await uas.run.done).code, 0, 'answering branch got ACK and BYE')
  t.equal(results[0]?.finalStatus, 200)
})
