/**
 * SIP conformance under abuse (issue 14): the ACK-timeout teardown drachtio-server does
 * (BYE with Reason "ACK timeout", seen by drachtio-srf as the dialog's destroy reason),
 * ACKs for non-2xx finals absorbed by their INVITE transaction (no 4xx retransmission
 * storm), whatever branch the ACK carries.
 */
import t from 'tap'
import { createSocket, type Socket } from 'node:dgram'
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { runSipp } from '../../harness/sipp.ts'
import { freePort } from '../../harness/ports.ts'
import { startServer, SDP, sleep, waitFor } from './helpers.ts'

const scenario = (name: string): string => new URL(`./scenarios/${name}`, import.meta.url).pathname
const sippLog = (dir: string): string => {
  const f = readdirSync(dir).find((n) => n.endsWith('_logs.log'))
  return f ? readFileSync(join(dir, f), 'utf8') : ''
}

t.test('a 200 OK never ACKed: BYE to the peer after 64*T1, and the app hears "ACK timeout"', async (t) => {
  const T1 = 100
  const h = await startServer({ timers: { T1, T2: 400, T4: 500 } })
  t.teardown(() => h.close())
  const srf = await h.connectApp()
  const reasons: string[] = []
  srf.invite((req, res) => {
    srf.createUAS(req, res, { localSdp: SDP }).then((dlg) => {
      dlg.on('destroy', (_msg: unknown, reason?: string) => reasons.push(reason ?? ''))
    }, () => {})
  })
  const started = Date.now()
  const r = await runSipp({ scenario: scenario('uac-no-ack.xml'), remote: h.target, localPort: await freePort(), calls: 1, args: ['-trace_logs'], timeoutMs: 30_000 }).done
  t.equal(r.code, 0, `sipp got the BYE (${r.errors.slice(0, 300)})`)
  t.ok(Date.now() - started >= 64 * T1 - 50, 'not before 64*T1')
  t.match(sippLog(r.dir), /BYE-REASON ACK timeout/, 'the BYE carries Reason: SIP ;cause=200 ;text="ACK timeout" (as drachtio-server sends)')
  await waitFor(() => reasons.length > 0, 5000)
  t.same(reasons, ['ACK timeout'], "drachtio-srf's Dialog emitted destroy with reason 'ACK timeout'")
  t.equal((await h.registry.getSingleMetric('sip_server_dialogs')!.get()).values[0]?.value, 0, 'no dialog left behind')
})

async function udp(): Promise<{ sock: Socket; port: number; got: string[] }> {
  const sock = createSocket('udp4')
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()))
  const got: string[] = []
  sock.on('message', (m) => got.push(m.toString()))
  return { sock, port: sock.address().port, got }
}

function invite(port: number, sipPort: number, branch: string, callId: string): string {
  return [
    `INVITE sip:bob@127.0.0.1:${sipPort} SIP/2.0`, `Via: SIP/2.0/UDP 127.0.0.1:${port};branch=${branch};rport`, 'Max-Forwards: 70',
    `From: <sip:alice@127.0.0.1>;tag=a-${callId}`, `To: <sip:bob@127.0.0.1>`, `Call-ID: ${callId}`, 'CSeq: 7 INVITE',
    `Contact: <sip:alice@127.0.0.1:${port}>`, 'Content-Type: application/sdp', `Content-Length: ${Buffer.byteLength(SDP)}`, '', SDP,
  ].join('\r\n')
}

function ackFor(res: string, port: number, sipPort: number, branch: string, callId: string): string {
  const to = /^To:\s*(.*)$/im.exec(res)![1]!.trim()
  return [
    `ACK sip:bob@127.0.0.1:${sipPort} SIP/2.0`, `Via: SIP/2.0/UDP 127.0.0.1:${port};branch=${branch};rport`, 'Max-Forwards: 70',
    `From: <sip:alice@127.0.0.1>;tag=a-${callId}`, `To: ${to}`, `Call-ID: ${callId}`, 'CSeq: 7 ACK', 'Content-Length: 0', '', '',
  ].join('\r\n')
}

t.test('ACK for a 407 ends its retransmissions, with the INVITE branch (§17.1.1.3) or a new one', async (t) => {
  const h = await startServer({ timers: { T1: 100, T2: 400, T4: 500 } })
  t.teardown(() => h.close())
  const srf = await h.connectApp()
  srf.invite((_req, res) => { res.send(407, 'Proxy Authentication Required', { headers: { 'Proxy-Authenticate': 'Digest realm="x", nonce="n", qop="auth"' } }) })
  for (const ackBranch of ['same', 'new'] as const) {
    await t.test(`ACK with ${ackBranch} branch`, async (t) => {
      const { sock, port, got } = await udp()
      t.teardown(() => sock.close())
      const callId = `c-${ackBranch}-${Date.now()}`
      const branch = `z9hG4bK-inv-${ackBranch}`
      sock.send(invite(port, h.sipPort, branch, callId), h.sipPort, '127.0.0.1')
      await waitFor(() => got.some((m) => m.startsWith('SIP/2.0 407')), 5000)
      const res = got.find((m) => m.startsWith('SIP/2.0 407'))!
      sock.send(ackFor(res, port, h.sipPort, ackBranch === 'same' ? branch : `z9hG4bK-ack-${Date.now()}`, callId), h.sipPort, '127.0.0.1')
      await sleep(150)
      const before = got.filter((m) => m.startsWith('SIP/2.0 407')).length
      await sleep(1500) // Timer G would have fired at 100, 200, 400, 400... ms
      const after = got.filter((m) => m.startsWith('SIP/2.0 407')).length
      t.equal(after, before, `no 407 retransmitted after the ACK (${after} in all)`)
    })
  }
  const text = await h.registry.getSingleMetricAsString('sip_server_dropped_total')
  t.notMatch(text, /reason="no-transaction"\} [1-9]/, 'no stray messages')
})
