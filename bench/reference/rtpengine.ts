import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

/**
 * rtpengine (Debian `rtpengine-daemon`) as a userspace media relay
 * (--table=-1: no kernel forwarding), on loopback, driven over the ng
 * protocol with rtpengine-client. Started in a temp dir, in the foreground,
 * killed by stop().
 */
export const RTPENGINE_BIN = '/usr/bin/rtpengine'

/** The part of rtpengine-client's Client we use (the package ships no types). */
interface NgClient {
  offer(port: number, host: string, opts: Record<string, unknown>): Promise<NgReply>
  answer(port: number, host: string, opts: Record<string, unknown>): Promise<NgReply>
  delete(port: number, host: string, opts: Record<string, unknown>): Promise<NgReply>
  ping(port: number, host: string): Promise<NgReply>
  close?(): void
  socket?: { close(): void }
}
export interface NgReply {
  result: string
  sdp?: string
  'error-reason'?: string
  [k: string]: unknown
}

const require = createRequire(import.meta.url)
const { Client } = require('rtpengine-client') as { Client: new (opts: Record<string, unknown>) => NgClient }

export interface RtpengineOptions {
  ngPort: number
  portMin: number
  portMax: number
  /** Worker threads (default: rtpengine's own default, one per core). */
  threads?: number
}

export interface RunningRtpengine {
  pid: number
  ngPort: number
  offer(callId: string, fromTag: string, sdp: string): Promise<NgReply>
  answer(callId: string, fromTag: string, toTag: string, sdp: string): Promise<NgReply>
  delete(callId: string, fromTag: string): Promise<NgReply>
  log(): string
  stop(): Promise<void>
}

const running = new Set<ChildProcess>()
export function killAllRtpengine(): void {
  for (const c of running) c.kill('SIGKILL')
  running.clear()
}

export async function startRtpengine(opts: RtpengineOptions): Promise<RunningRtpengine> {
  if (!existsSync(RTPENGINE_BIN)) throw new Error(`${RTPENGINE_BIN} not found (apt-get install rtpengine-daemon)`)
  const dir = mkdtempSync(join(tmpdir(), 'rtpengine-ref-'))
  const args = [
    '--config-file=none', '--table=-1', '--foreground', '--log-stderr', '--log-level=4',
    '--interface=127.0.0.1', `--listen-ng=127.0.0.1:${opts.ngPort}`,
    `--port-min=${opts.portMin}`, `--port-max=${opts.portMax}`,
    '--delete-delay=0', '--timeout=60', `--pidfile=${join(dir, 'rtpengine.pid')}`,
    ...(opts.threads ? [`--num-threads=${opts.threads}`] : []),
  ]
  const child = spawn(RTPENGINE_BIN, args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] })
  running.add(child)
  let out = ''
  const keep = (d: Buffer) => { out = (out + d.toString()).slice(-8000) }
  child.stdout!.on('data', keep)
  child.stderr!.on('data', keep)
  let exited = false
  const exitedP = new Promise<void>((resolve) => child.on('exit', () => { exited = true; resolve() }))
  const client = new Client({ localAddress: '127.0.0.1', localPort: 0, timeout: 5000 })
  const stop = async () => {
    running.delete(child)
    try { client.socket?.close() } catch { /* closed */ }
    if (!exited) {
      child.kill('SIGTERM')
      const t = setTimeout(() => child.kill('SIGKILL'), 3000)
      await exitedP
      clearTimeout(t)
    }
    rmSync(dir, { recursive: true, force: true })
  }
  const ng = (p: Promise<NgReply>, what: string) =>
    p.then((r) => {
      if (r.result !== 'ok') throw new Error(`rtpengine ${what}: ${r.result} ${r['error-reason'] ?? ''}`)
      return r
    })
  const deadline = Date.now() + 10_000
  while (Date.now() < deadline) {
    if (exited) {
      await stop()
      throw new Error(`rtpengine exited at start:\n${out}`)
    }
    try {
      const r = await Promise.race([client.ping(opts.ngPort, '127.0.0.1'), new Promise<never>((_, rej) => setTimeout(() => rej(new Error('timeout')), 500))])
      if (r.result === 'pong' || r.result === 'ok') break
    } catch { /* not yet */ }
    await new Promise((r) => setTimeout(r, 200))
  }
  if (Date.now() >= deadline) {
    await stop()
    throw new Error(`rtpengine did not answer ng ping on 127.0.0.1:${opts.ngPort}:\n${out}`)
  }
  return {
    pid: child.pid!,
    ngPort: opts.ngPort,
    offer: (callId, fromTag, sdp) => ng(client.offer(opts.ngPort, '127.0.0.1', { 'call-id': callId, 'from-tag': fromTag, sdp, ICE: 'remove', replace: ['origin'] }), 'offer'),
    answer: (callId, fromTag, toTag, sdp) => ng(client.answer(opts.ngPort, '127.0.0.1', { 'call-id': callId, 'from-tag': fromTag, 'to-tag': toTag, sdp, ICE: 'remove', replace: ['origin'] }), 'answer'),
    delete: (callId, fromTag) => ng(client.delete(opts.ngPort, '127.0.0.1', { 'call-id': callId, 'from-tag': fromTag }), 'delete'),
    log: () => out,
    stop,
  }
}

/** A minimal G.711 audio SDP for host:port. */
export function g711Sdp(port: number, host = '127.0.0.1', pt: 0 | 8 = 0): string {
  return [
    'v=0', `o=- ${port} 1 IN IP4 ${host}`, 's=-', `c=IN IP4 ${host}`, 't=0 0',
    `m=audio ${port} RTP/AVP ${pt}`, `a=rtpmap:${pt} ${pt === 0 ? 'PCMU' : 'PCMA'}/8000`, 'a=ptime:20', 'a=sendrecv', '',
  ].join('\r\n')
}

/** The media port in an SDP's first m=audio line. */
export function sdpAudioPort(sdp: string): number {
  const m = /^m=audio (\d+) /m.exec(sdp)
  if (!m) throw new Error(`no m=audio in SDP:\n${sdp}`)
  return Number(m[1])
}
