import t from 'tap'
import { runSipp } from '../../harness/sipp.ts'
import { freePort } from '../../harness/ports.ts'
import { startServer, SDP } from './helpers.ts'

t.test('srf createUAS answers a sipp uac call; caller hangs up (UDP)', async (t) => {
  const h = await startServer()
  t.teardown(() => h.close())
  const srf = await h.connectApp()
  t.equal(h.server.connectedApps, 1, 'app authenticated')
  let ended = 0
  srf.invite(async (req, res) => {
    const dlg = await srf.createUAS(req, res, { localSdp: SDP })
    dlg.on('destroy', () => { ended++ })
  })
  const r = await runSipp({ scenario: 'uac', remote: h.target, localPort: await freePort(), calls: 3, rate: 10 }).done
  t.equal(r.code, 0, `sipp succeeded: ${r.errors}`)
  t.equal(r.successful, 3)
  t.equal(ended, 3, 'app saw each BYE')
})

t.test('same over TCP', async (t) => {
  const h = await startServer()
  t.teardown(() => h.close())
  const srf = await h.connectApp()
  srf.invite((req, res) => { void srf.createUAS(req, res, { localSdp: SDP }) })
  const r = await runSipp({ scenario: 'uac', remote: h.target, localPort: await freePort(), calls: 2, rate: 10, transport: 't1' }).done
  t.equal(r.code, 0, `sipp succeeded: ${r.errors}`)
  t.equal(r.successful, 2)
})
