/**
 * Shared setup for sip/server tests: an embedded server on free ports and
 * drachtio-srf applications connected to it.
 */
import Srf from 'drachtio-srf'
import { Registry } from 'prom-client'
import { createSipServer, type SipServer, type SipServerOptions } from '../../../sip/server/index.ts'
import { freePort } from '../../harness/ports.ts'

export const SECRET = 'cymru'

export interface Harness {
  server: SipServer
  sipPort: number
  controlPort: number
  registry: Registry
  target: string
  apps: Srf[]
  connectApp(): Promise<Srf>
  close(): Promise<void>
}

export async function startServer(extra: Partial<SipServerOptions> = {}): Promise<Harness> {
  const sipPort = await freePort()
  const controlPort = await freePort()
  const registry = new Registry()
  const server = createSipServer({ sipHost: '127.0.0.1', sipPort, controlPort, secret: SECRET, registry, ...extra })
  await server.start()
  const apps: Srf[] = []
  return {
    server, sipPort, controlPort, registry, apps,
    target: `127.0.0.1:${sipPort}`,
    async connectApp() {
      const srf = new Srf()
      apps.push(srf)
      await new Promise<void>((resolve, reject) => {
        srf.once('connect', (err: Error | null) => (err ? reject(err) : resolve()))
        srf.on('error', () => { /* reconnects are not wanted in tests */ })
        srf.connect({ host: '127.0.0.1', port: controlPort, secret: SECRET })
      })
      return srf
    },
    async close() {
      for (const a of apps) {
        try { a.disconnect() } catch { /* already gone */ }
      }
      await server.stop()
    },
  }
}

export const SDP = [
  'v=0', 'o=- 1 1 IN IP4 127.0.0.1', 's=-', 'c=IN IP4 127.0.0.1', 't=0 0',
  'm=audio 40000 RTP/AVP 0', 'a=rtpmap:0 PCMU/8000', 'a=sendrecv', '',
].join('\r\n')

export function sleep(ms: number): Promise<void> { return new Promise((r) => setTimeout(r, ms)) }

/** Resolves when `fn` returns true, polling; rejects after `ms`. */
export async function waitFor(fn: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms
  while (!fn()) {
    if (Date.now() > end) throw new Error('waitFor timed out')
    await sleep(20)
  }
}

/*
 * drachtio-srf's bundled typings lag its runtime API (callback shapes of
 * createUAC/request, Dialog#destroy's promise); tests use this narrower view.
 */
export interface SentRequest {
  on(e: 'response', f: (res: { status: number; body: string; get(h: string): string }) => void): void
  cancel(): void
  get(h: string): string
}
export interface LooseDialog {
  id: string
  remote: { sdp: string }
  destroy(): Promise<unknown>
  modify(sdp: string): Promise<string>
  request(opts: { method: string; headers?: Record<string, string>; body?: string }): Promise<{ status: number }>
  on(e: string, f: (...a: unknown[]) => void): void
}
export interface LooseSrf {
  request(uri: string, opts: Record<string, unknown>, cb: (err: Error | null, req: SentRequest) => void): void
  createUAC(uri: string, opts: Record<string, unknown>, cbs?: {
    cbRequest?: (err: unknown, req: SentRequest) => void
    cbProvisional?: (res: { status: number }) => void
  }): Promise<LooseDialog>
}
export function loose(srf: Srf): LooseSrf { return srf as unknown as LooseSrf }
export function looseDialog(d: unknown): LooseDialog { return d as LooseDialog }

/** The SIP status a rejected createUAC/createB2BUA promise carries. */
export async function rejectionStatus(p: Promise<unknown>): Promise<number | string> {
  try {
    await p
    return 'resolved'
  } catch (err) {
    return (err as { status?: number }).status ?? String(err)
  }
}

/** Sends an out-of-dialog request and resolves with the final status. */
export function requestStatus(srf: Srf, uri: string, opts: Record<string, unknown>): Promise<number> {
  return new Promise((resolve, reject) => {
    loose(srf).request(uri, opts, (err, req) => {
      if (err) return reject(err)
      req.on('response', (res) => { if (res.status >= 200) resolve(res.status) })
    })
  })
}

/** A UDP port free on an IPv6 address (the shared freePort probes IPv4 only). */
export async function freeUdpPort6(host = '::1'): Promise<number> {
  const { createSocket } = await import('node:dgram')
  return new Promise((resolve, reject) => {
    const s = createSocket('udp6')
    s.once('error', reject)
    s.bind(0, host, () => { const p = s.address().port; s.close(() => resolve(p)) })
  })
}
