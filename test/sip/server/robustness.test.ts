import t from 'tap'
import { spawn } from 'node:child_process'
import { createSocket } from 'node:dgram'
import Srf from 'drachtio-srf'
import { runSipp } from '../../harness/sipp.ts'
import { freePort } from '../../harness/ports.ts'
import { startServer, SDP, SECRET, freeUdpPort6 } from './helpers.ts'

const scenario = (name: string): string => new URL(`./scenarios/${name}`, import.meta.url).pathname

t.test('calls complete under 15% packet loss thanks to retransmissions (UDP)', async (t) => {
  // Short timers keep recovery quick; sipp drops 15% of what it sends and receives.
  const h = await startServer({ timers: { T1: 250, T2: 1000, T4: 1000 } })
  t.teardown(() => h.close())
  const srf = await h.connectApp()
  srf.invite((req, res) => { void srf.createUAS(req, res, { localSdp: SDP }) })
  const r = await runSipp({ scenario: 'uac', remote: h.target, localPort: await freePort(), calls: 30, rate: 30, args: ['-lost', '15'], timeoutMs: 60_000 }).done
  t.equal(r.successful, 30, `all calls completed despite loss: ${r.errors.slice(0, 500)}`)
  const m = await h.registry.getSingleMetricAsString('sip_server_retransmissions_total')
  t.match(m, /sip_server_retransmissions_total\{[^}]*\} [1-9]/, 'server retransmitted')
})

t.test('per-source rate limit drops excess new transactions and counts them', async (t) => {
  const h = await startServer({ maxTransactionsPerSourcePerSecond: 5 })
  t.teardown(() => h.close())
  const sock = createSocket('udp4')
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()))
  const port = sock.address().port
  let answered = 0
  sock.on('message', (m) => { if (m.toString().startsWith('SIP/2.0 200')) answered++ })
  for (let i = 0; i < 50; i++) {
    sock.send([
      'OPTIONS sip:127.0.0.1 SIP/2.0', `Via: SIP/2.0/UDP 127.0.0.1:${port};branch=z9hG4bKrl${i};rport`, 'Max-Forwards: 70',
      'From: <sip:flood@127.0.0.1>;tag=f', 'To: <sip:127.0.0.1>', `Call-ID: flood-${i}`, 'CSeq: 1 OPTIONS', 'Content-Length: 0', '', '',
    ].join('\r\n'), h.sipPort, '127.0.0.1')
  }
  await new Promise((r) => setTimeout(r, 300))
  sock.close()
  t.ok(answered >= 5 && answered <= 7, `only the allowed burst was answered (${answered})`)
  const m = await h.registry.getSingleMetricAsString('sip_server_dropped_total')
  const dropped = Number(/reason="rate-limit"\} (\d+)/.exec(m)?.[1] ?? 0)
  t.ok(dropped >= 43, `excess counted as dropped (${dropped})`)
})

t.test('metrics and cdr events for a call', async (t) => {
  const h = await startServer()
  t.teardown(() => h.close())
  const srf = await h.connectApp()
  const cdrs: string[] = []
  srf.on('cdr:attempt', (source: string) => cdrs.push(`attempt:${source}`))
  srf.on('cdr:start', (source: string, _time: string, role: string) => cdrs.push(`start:${source}:${role}`))
  srf.on('cdr:stop', (source: string, _time: string, reason: string) => cdrs.push(`stop:${source}:${reason}`))
  srf.invite((req, res) => { void srf.createUAS(req, res, { localSdp: SDP }) })
  const r = await runSipp({ scenario: 'uac', remote: h.target, localPort: await freePort(), calls: 1 }).done
  t.equal(r.code, 0)
  await new Promise((r) => setTimeout(r, 100))
  t.same(cdrs, ['attempt:network', 'start:application:uas', 'stop:network:normal-release'])
  const text = await h.registry.metrics()
  t.match(text, /sip_server_transactions_total\{method="INVITE",class="2xx",direction="in"\} 1/)
  t.match(text, /sip_server_transactions_total\{method="BYE",class="2xx",direction="in"\} 1/)
  t.match(text, /sip_server_connected_apps 1/)
})

t.test('IPv6: UDP call on [::1]', async (t) => {
  const h = await startServer({ sipHost: '::1' })
  t.teardown(() => h.close())
  const srf = await h.connectApp()
  srf.invite((req, res) => { void srf.createUAS(req, res, { localSdp: SDP }) })
  t.match(h.server.addresses.udp[0], /^udp:\[::1\]:\d+$/)
  const r = await runSipp({ scenario: 'uac', remote: `[::1]:${h.sipPort}`, localIp: '::1', localPort: await freeUdpPort6(), calls: 2 }).done
  t.equal(r.code, 0, `sipp over IPv6: ${r.errors}`)
})

t.test('standalone `sip/server/main.ts` serves an external srf app and exits 0 on SIGTERM', async (t) => {
  const sipPort = await freePort()
  const controlPort = await freePort()
  const child = spawn(process.execPath, ['--import', 'tsx', 'sip/server/main.ts'], {
    env: { ...process.env, SIP_HOST: '127.0.0.1', SIP_PORT: String(sipPort), DRACHTIO_PORT: String(controlPort), LOG_LEVEL: 'silent' },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let out = ''
  await new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => { out += d.toString(); if (out.includes('listening')) resolve() })
    child.once('exit', (c) => reject(new Error(`exited early ${c}`)))
  })
  t.match(out, new RegExp(`udp:127\\.0\\.0\\.1:${sipPort}`))
  const srf = new Srf()
  await new Promise<void>((resolve, reject) => {
    srf.once('connect', (err: Error | null) => (err ? reject(err) : resolve()))
    srf.connect({ host: '127.0.0.1', port: controlPort, secret: SECRET })
  })
  srf.invite((req, res) => { void srf.createUAS(req, res, { localSdp: SDP }) })
  const r = await runSipp({ scenario: 'uac', remote: `127.0.0.1:${sipPort}`, localPort: await freePort(), calls: 1 }).done
  t.equal(r.code, 0, 'call through the standalone server')
  srf.disconnect()
  const code = await new Promise<number | null>((resolve) => { child.once('exit', (c) => resolve(c)); child.kill('SIGTERM') })
  t.equal(code, 0)
})
void scenario

t.test('externalAddress is advertised in Contact; sips: targets are refused (no TLS yet)', async (t) => {
  const h = await startServer({ externalAddress: '203.0.113.7' })
  t.teardown(() => h.close())
  const srf = await h.connectApp()
  const contacts: string[] = []
  srf.invite(async (req, res) => {
    const dlg = await srf.createUAS(req, res, { localSdp: SDP })
    contacts.push(String((dlg as unknown as { local: { contact: string } }).local.contact))
  })
  const r = await runSipp({ scenario: 'uac', remote: h.target, localPort: await freePort(), calls: 1 }).done
  t.equal(r.code, 0)
  t.match(contacts[0], /203\.0\.113\.7/)
  const err = await new Promise<Error | null>((resolve) => {
    (srf as unknown as { request(u: string, o: object, cb: (e: Error | null) => void): void })
      .request('sips:bob@127.0.0.1:5061', { method: 'OPTIONS' }, (e) => resolve(e))
  })
  t.match(String(err), /unable to resolve/)
})

t.test('overload: new INVITEs beyond the pending limit are answered 503 at once', async (t) => {
  const h = await startServer({ overload: { maxPendingInvites: 2 } })
  t.teardown(() => h.close())
  const srf = await h.connectApp()
  const held: { send(s: number): void }[] = []
  srf.invite((_req, res) => {
    held.push(res)
    if (held.length === 2) {
      // release the two held calls once the third has been refused by the server
      const timer = setInterval(async () => {
        const m = await h.registry.getSingleMetricAsString('sip_server_dropped_total')
        if (/reason="overload"\} 1/.test(m)) { clearInterval(timer); for (const r of held) r.send(503) }
      }, 50)
    }
  })
  const r = await runSipp({ scenario: scenario('uac-503.xml'), remote: h.target, localPort: await freePort(), calls: 3, rate: 50 }).done
  t.equal(r.code, 0, `all three calls got 503: ${r.errors}`)
  t.equal(held.length, 2, 'only two INVITEs reached the app')
})

t.test('dual-stack bind (::) serves IPv4 callers', async (t) => {
  const h = await startServer({ sipHost: '::' })
  t.teardown(() => h.close())
  const srf = await h.connectApp()
  srf.invite((req, res) => { void srf.createUAS(req, res, { localSdp: SDP }) })
  const r = await runSipp({ scenario: 'uac', remote: `127.0.0.1:${h.sipPort}`, localPort: await freePort(), calls: 2 }).done
  t.equal(r.code, 0, `IPv4 call through a dual-stack socket: ${r.errors}`)
})
