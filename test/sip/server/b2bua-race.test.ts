/**
 * The B2BUA race of issue 14: the B leg sends a re-INVITE right after its 200 OK while the
 * A leg holds its ACK back for a second. Both legs must complete normally (no 481/491, no
 * ACK-timeout teardown), with drachtio-srf's createB2BUA unmodified on the embedded server.
 */
import t from 'tap'
import { runSipp, waitListening } from '../../harness/sipp.ts'
import { freePort } from '../../harness/ports.ts'
import { startServer, waitFor } from './helpers.ts'

const scenario = (name: string): string => new URL(`./scenarios/${name}`, import.meta.url).pathname

t.test('B re-INVITEs right after its 200 while A delays its ACK by 1 s: both legs complete', async (t) => {
  const h = await startServer()
  t.teardown(() => h.close())
  const srf = await h.connectApp()
  const bPort = await freePort()
  const ended: string[] = []
  const modified: string[] = []
  srf.invite((req, res) => {
    srf.createB2BUA(req, res, `sip:b@127.0.0.1:${bPort}`, { localSdpB: req.body }).then(({ uas, uac }) => {
      uac.on('modify', (r: { body: string }, rs: { send(status: number, opts: object): void }) => {
        modified.push(r.body.includes('sendonly') ? 'sendonly' : 'other')
        rs.send(200, { body: uac.local.sdp, headers: { 'Content-Type': 'application/sdp' } })
      })
      uas.on('destroy', (_m: unknown, reason?: string) => { ended.push(`A:${reason ?? ''}`); Promise.resolve(uac.destroy()).catch(() => {}) })
      uac.on('destroy', (_m: unknown, reason?: string) => { ended.push(`B:${reason ?? ''}`); Promise.resolve(uas.destroy()).catch(() => {}) })
    }, (err: unknown) => ended.push(`failed:${String(err)}`))
  })
  const b = runSipp({ scenario: scenario('uas-reinvite-after-200.xml'), localPort: bPort, calls: 1, timeoutMs: 30_000 })
  await waitListening(bPort)
  const a = await runSipp({ scenario: scenario('uac-late-ack.xml'), remote: h.target, localPort: await freePort(), service: 'b2bua', calls: 1, timeoutMs: 30_000 }).done
  const bRes = await b.done
  t.equal(a.code, 0, `A leg: INVITE, 200, ACK 1 s late, BYE → 200 (${a.errors.slice(0, 400)})`)
  t.equal(bRes.code, 0, `B leg: 200, immediate re-INVITE answered 200, BYE (${bRes.errors.slice(0, 400)})`)
  // The re-INVITE may reach srf before createB2BUA resolves (then srf's Dialog answers it with
  // its local SDP) or after (then the app's 'modify' handler does): either way the app answers it.
  const txns = await h.registry.getSingleMetricAsString('sip_server_transactions_total')
  t.match(txns, /method="INVITE",class="2xx",direction="in"\} 2/, `A's INVITE and B's re-INVITE were both answered 2xx by the application (modify handler: ${modified.length})`)
  await waitFor(() => ended.length >= 1, 5000)
  t.notOk(ended.some((e) => /ACK timeout|failed/.test(e)), `no leg ended by ACK timeout or failure (${ended.join(', ')})`)
  const dropped = await h.registry.getSingleMetricAsString('sip_server_dropped_total')
  t.notMatch(dropped, /reason="no-transaction"\} [1-9]/, 'no stray responses')
})
