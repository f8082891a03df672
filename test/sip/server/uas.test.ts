import t from 'tap'
import { runSipp } from '../../harness/sipp.ts'
import { freePort } from '../../harness/ports.ts'
import { startServer, SDP, looseDialog } from './helpers.ts'

t.test('srf createUAS answers a sipp uac call; caller hangs up (UDP)', async (t) => {
  const h = await startServer()
  t.teardown(() => h.close())
  const srf = await h.connectApp()
  t.equal(h.server.connectedApps, 1, 'app authenticated')
  let ended = 0
  srf.invite((req, res) => {
    // callback form: the listener is attached before the next frame (the BYE) can be processed
    srf.createUAS(req, res, { localSdp: SDP }, (err, dlg) => {
      if (!err) looseDialog(dlg).on('destroy', () => { ended++ })
    })
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

const scenario = (name: string): string => new URL(`./scenarios/${name}`, import.meta.url).pathname

t.test('app hangs up: Dialog#destroy sends BYE to the caller', async (t) => {
  const h = await startServer()
  t.teardown(() => h.close())
  const srf = await h.connectApp()
  const byeStatus: number[] = []
  srf.invite(async (req, res) => {
    const dlg = await srf.createUAS(req, res, { localSdp: SDP })
    setTimeout(() => {
      looseDialog(dlg).destroy().then((bye) => { byeStatus.push(bye ? 1 : 0) }, () => byeStatus.push(-1))
    }, 100)
  })
  const r = await runSipp({ scenario: scenario('uac-wait-bye.xml'), remote: h.target, localPort: await freePort(), calls: 2, rate: 10 }).done
  t.equal(r.code, 0, `sipp succeeded: ${r.errors}`)
  t.equal(r.successful, 2)
  t.same(byeStatus, [1, 1], 'destroy resolved for both calls')
})

for (const transport of ['u1', 't1'] as const) {
  t.test(`caller CANCELs before answer (${transport === 'u1' ? 'UDP' : 'TCP'}): app gets the cancel event, caller gets 487`, async (t) => {
    const h = await startServer()
    t.teardown(() => h.close())
    const srf = await h.connectApp()
    let canceled = 0
    srf.invite((req, res) => {
      req.on('cancel', () => { canceled++ })
      res.send(180)
    })
    const r = await runSipp({ scenario: scenario('uac-cancel.xml'), remote: h.target, localPort: await freePort(), calls: 2, rate: 10, transport }).done
    t.equal(r.code, 0, `sipp succeeded: ${r.errors}`)
    t.equal(r.successful, 2)
    t.equal(canceled, 2)
  })
}

t.test('re-INVITE hold and unhold via Dialog#modify', async (t) => {
  const h = await startServer()
  t.teardown(() => h.close())
  const srf = await h.connectApp()
  const answers: string[] = []
  let byeSeen = false
  srf.invite(async (req, res) => {
    const dlg = await srf.createUAS(req, res, { localSdp: SDP })
    dlg.on('destroy', () => { byeSeen = true })
    await new Promise((r) => setTimeout(r, 100))
    answers.push(String(await dlg.modify('hold')))
    answers.push(String(await dlg.modify('unhold')))
  })
  const r = await runSipp({ scenario: scenario('uac-reinvite.xml'), remote: h.target, localPort: await freePort(), calls: 1, rate: 10 }).done
  t.equal(r.code, 0, `sipp succeeded: ${r.errors}`)
  t.match(answers[0], /a=inactive/)
  t.match(answers[1], /a=sendrecv/)
  t.ok(byeSeen, 'caller BYE reached the dialog')
})

t.test('caller re-INVITE (hold) reaches the dialog as a modify and is answered', async (t) => {
  const h = await startServer()
  t.teardown(() => h.close())
  const srf = await h.connectApp()
  const offers: string[] = []
  srf.invite((req, res) => {
    srf.createUAS(req, res, { localSdp: SDP }, (err, dlg) => {
      if (err) return
      looseDialog(dlg).on('modify', (mreq, mres) => {
        offers.push((mreq as { body: string }).body)
        ;(mres as { send(s: number, o: object): void }).send(200, { body: SDP.replace('a=sendrecv', 'a=recvonly') })
      })
    })
  })
  const r = await runSipp({ scenario: scenario('uac-send-reinvite.xml'), remote: h.target, localPort: await freePort(), calls: 1 }).done
  t.equal(r.code, 0, `sipp: ${r.errors}`)
  t.match(offers[0], /a=sendonly/)
})
