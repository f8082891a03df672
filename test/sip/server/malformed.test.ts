/**
 * RFC 4475 torture messages and other malformed input: each invalid message
 * gets 400 (505 for a bad version) or is dropped, valid ones are processed, and
 * the server keeps completing calls throughout.
 */
import t from 'tap'
import { readdirSync, readFileSync } from 'node:fs'
import { connect } from 'node:net'
import { createSocket } from 'node:dgram'
import { runSipp } from '../../harness/sipp.ts'
import { freePort } from '../../harness/ports.ts'
import { startServer, SDP } from './helpers.ts'

const DIR = '/work/shared/reference/rfc4475/'
// RFC 4475 §3.1.2, §3.2.1 and the three §3.3 messages the README lists as invalid.
const INVALID = new Set(['badinv01', 'clerr', 'scalar02', 'scalarlg', 'quotbal', 'ltgtruri', 'lwsruri', 'lwsstart', 'trws',
  'escruri', 'baddate', 'regbadct', 'badaspec', 'baddn', 'badvers', 'mismatch01', 'mismatch02', 'bigcode', 'badbranch', 'ncl',
  'insuf', 'multi01', 'mcl01'])
// Messages the RFC lets an element accept liberally.
// inv2543 carries no Content-Length, which is mandatory on a stream (§18.3), so TCP rejects it.
const LIBERAL = new Set(['baddate', 'badbranch', 'inv2543'])

/** Sends bytes on a fresh TCP connection and returns the first non-100 status line seen (or undefined). */
function sendTcp(port: number, data: Buffer, waitMs = 2000): Promise<number | undefined> {
  return new Promise((resolve) => {
    const sock = connect({ port, host: '127.0.0.1' })
    let buf = ''
    let done = false
    const finish = (v: number | undefined): void => {
      if (done) return
      done = true
      clearTimeout(timer)
      sock.destroy()
      resolve(v)
    }
    const timer = setTimeout(() => finish(undefined), waitMs)
    sock.on('data', (d: Buffer) => {
      buf += d.toString('latin1')
      for (const m of buf.matchAll(/^SIP\/2\.0 (\d{3})/gm)) {
        if (m[1] !== '100') return finish(Number(m[1]))
      }
    })
    sock.on('error', () => finish(undefined))
    sock.on('close', () => finish(undefined))
    sock.write(data)
  })
}

function junk(size: number, seed: number): Buffer {
  const b = Buffer.alloc(size)
  let x = seed
  for (let i = 0; i < size; i++) { x = (x * 1103515245 + 12345) & 0x7fffffff; b[i] = x & 0xff }
  return b
}

t.test('RFC 4475 torture corpus over TCP, with calls in progress', async (t) => {
  const h = await startServer()
  t.teardown(() => h.close())
  const srf = await h.connectApp()
  srf.invite((req, res) => {
    // only the sipp calls carry service "callme"; torture INVITEs are rejected by the app
    if (!/callme/.test(req.uri)) return res.send(404)
    void srf.createUAS(req, res, { localSdp: SDP })
  })
  const calls = runSipp({ scenario: 'uac', service: 'callme', remote: h.target, localPort: await freePort(), calls: 20, rate: 20 })

  const files = readdirSync(DIR).filter((f) => f.endsWith('.dat')).sort()
  const results = await Promise.all(files.map(async (f) => ({ name: f.replace('.dat', ''), status: await sendTcp(h.sipPort, readFileSync(DIR + f)) })))
  for (const { name, status } of results) {
    if (LIBERAL.has(name)) {
      t.pass(`${name}: handled (${status ?? 'no response'})`)
    } else if (INVALID.has(name)) {
      if (name === 'badvers') t.equal(status, 505, 'badvers: 505 Version Not Supported')
      else t.ok(status === undefined || status === 400, `${name}: rejected or dropped (${status ?? 'dropped'})`)
    } else {
      t.not(status, 400, `${name}: valid message not rejected (${status ?? 'no response'})`)
    }
  }
  const r = await calls.done
  t.equal(r.code, 0, `calls completed while the corpus was processed: ${r.errors}`)
  t.equal(r.successful, 20)
})

t.test('junk over UDP and TCP never stops the server', async (t) => {
  const h = await startServer()
  t.teardown(() => h.close())
  const srf = await h.connectApp()
  srf.invite((req, res) => { void srf.createUAS(req, res, { localSdp: SDP }) })
  const calls = runSipp({ scenario: 'uac', remote: h.target, localPort: await freePort(), calls: 20, rate: 20 })

  const good = (extra: string, body = ''): string => [
    'INVITE sip:x@127.0.0.1 SIP/2.0', 'Via: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKjunk' + Math.random().toString(36).slice(2), 'Max-Forwards: 70',
    'From: <sip:a@127.0.0.1>;tag=1', 'To: <sip:x@127.0.0.1>', 'Call-ID: junk-' + Math.random(), 'CSeq: 1 INVITE', extra,
  ].filter(Boolean).join('\r\n') + '\r\n\r\n' + body
  const payloads: Buffer[] = [
    junk(1200, 1), junk(60, 2), Buffer.alloc(500, 0), Buffer.from('INVITE sip:x@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 1'),
    Buffer.from(good('X-Huge: ' + 'a'.repeat(70_000))), Buffer.from(good('Content-Length: 500', 'short')),
    Buffer.from(good('Content-Length: abc')), Buffer.from(good('').replace('CSeq: 1 INVITE', 'CSeq: x INVITE')),
    Buffer.from(good('').replace(/^INVITE sip:x@127.0.0.1/, 'INVITE sip:[bad')), Buffer.from(good('').replace(/From: [^\r]*\r\n/, '')),
    Buffer.from(good(Array.from({ length: 400 }, (_, i) => `X-H${i}: v`).join('\r\n'))),
    Buffer.from('SIP/2.0 200 OK\r\n\r\n'), Buffer.from('\r\n\r\n'), Buffer.from('OPTIONS\r\n\r\n'),
  ]
  const udp = createSocket('udp4')
  await new Promise<void>((r) => udp.bind(0, '127.0.0.1', () => r()))
  const udpStatuses: number[] = []
  udp.on('message', (m) => { const s = /^SIP\/2\.0 (\d{3})/.exec(m.toString('latin1')); if (s) udpStatuses.push(Number(s[1])) })
  for (let round = 0; round < 5; round++) {
    for (const p of payloads) udp.send(p, h.sipPort, '127.0.0.1')
    await Promise.all(payloads.slice(0, 6).map((p) => sendTcp(h.sipPort, p, 200)))
  }
  const r = await calls.done
  udp.close()
  t.equal(r.code, 0, `calls completed under junk: ${r.errors}`)
  t.equal(r.successful, 20)
  t.notOk(udpStatuses.some((s) => s < 300), 'no junk message was accepted')
  const metrics = await h.registry.getSingleMetricAsString('sip_server_parse_errors_total')
  t.match(metrics, /sip_server_parse_errors_total [1-9]\d*/, 'parse errors were counted')
})
