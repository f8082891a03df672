/**
 * sip/app test harness: a fresh PGlite store, the embedded SIP server, SrfConnection
 * and the SipApplication on free ports, plus a minimal real RTP endpoint as
 * the media binder (the media engine is another part; here a UDP socket that
 * answers SDP, counts RTP received and sends RTP when asked to "say").
 */
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { createHash } from 'node:crypto'
import { createSocket, type Socket } from 'node:dgram'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import pino from 'pino'
import { Registry } from 'prom-client'
import type Srf from 'drachtio-srf'
import { openDatabase, type Database } from '../../../store/database.ts'
import { migrate } from '../../../store/migrator.ts'
import { createStore, type Store } from '../../../store/index.ts'
import { SecretBox } from '../../../store/secrets.ts'
import { AccountRepository } from '../../../store/accounts.ts'
import { SipCore } from '../../../sip/server/server.ts'
import { DEFAULT_OVERLOAD } from '../../../sip/server/overload.ts'
import { SrfConnection } from '../../../sip/app/srf-connection.ts'
import { SipApplication, type SipApplicationOptions } from '../../../sip/app/index.ts'
import type { CallContext, MediaBinder, MediaLeg } from '../../../sip/app/media-binding.ts'
import { freePort, freeUdpRange } from '../../harness/ports.ts'
import { MediaEngine } from '../../../media/media-engine.ts'
import { AgentMediaBinder } from '../../../call/agent-binder.ts'
import { WorkerMediaPlanes } from '../../../call/plane/worker-planes.ts'
import type { LogLevel } from '../../../config/config.ts'

export const SECRET = 'sip-app-test'
export const DOMAIN = 'acme.test'

export interface SipStack {
  db: Database
  store: Store
  server: { stop(): Promise<void> }
  srfConnection: SrfConnection
  app: SipApplication
  media: TestMediaBinder
  accountId: string
  sipPort: number
  dataDir: string
  target: string
  stop(opts?: { keepData?: boolean }): Promise<void>
}

const MIGRATIONS = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'store', 'migrations')

/**
 * A migrated PGlite data directory, built once per migration set and copied
 * for each stack: initdb plus migrations cost ~10 s, a copy well under one.
 */
async function templateDir(logger: pino.Logger): Promise<string> {
  const h = createHash('sha256')
  for (const f of readdirSync(MIGRATIONS).sort()) h.update(f).update(readFileSync(join(MIGRATIONS, f)))
  const dir = join(tmpdir(), `sipapp-pgtemplate-${h.digest('hex').slice(0, 16)}`)
  if (existsSync(dir)) return dir
  const build = mkdtempSync(join(tmpdir(), 'sipapp-pgbuild-'))
  const db = await openDatabase({ dataDir: build, logger })
  await migrate(db, logger)
  await db.close()
  try { renameSync(build, dir) } catch { rmSync(build, { recursive: true, force: true }) /* another test file won the race */ }
  return dir
}

export async function startSipStack(opts: Partial<SipApplicationOptions> & { dataDir?: string; sipPort?: number; accountDomain?: string; realMedia?: boolean } = {}): Promise<SipStack> {
  const logger = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' })
  const dataDir = opts.dataDir ?? mkdtempSync(join(tmpdir(), 'sipapp-test-'))
  if (!existsSync(join(dataDir, 'pgdata'))) cpSync(await templateDir(logger), dataDir, { recursive: true })
  const db = await openDatabase({ dataDir, logger })
  await migrate(db, logger)
  const store = createStore(db, new SecretBox('test-secret'), logger)
  const accounts = new AccountRepository(db.pool)
  const accountId = (await accounts.first())?.id ?? (await accounts.create('acme', opts.accountDomain ?? DOMAIN)).id
  const sipPort = opts.sipPort ?? await freePort()
  const controlPort = await freePort()
  const registry = new Registry()
  // The embedded server, with overload shedding relaxed: this test process also
  // runs PGlite and the peers' CPU shares the box, which must not turn into 503s.
  const server = new SipCore({
    sipHost: '127.0.0.1', sipPort, controlHost: '127.0.0.1', controlPort, secret: SECRET, logger, registry,
    overload: { ...DEFAULT_OVERLOAD, maxUtilization: 2, maxLoopDelayMs: 60_000, windows: 1_000, maxPendingInvites: 100_000, ...('maxCpuShare' in DEFAULT_OVERLOAD ? { maxCpuShare: 1_000 } : {}) },
  })
  await server.start()
  const srfConnection = new SrfConnection({ target: { host: '127.0.0.1', port: controlPort, secret: SECRET }, logger, registry })
  await srfConnection.start()
  const app = await SipApplication.install(srfConnection, { store, logger, nodeId: 'test-node', attemptTimeoutMs: 3_000, ...opts })
  const media = new TestMediaBinder()
  let engine: MediaEngine | WorkerMediaPlanes | null = null
  if (opts.realMedia) {
    const rtp = await freeUdpRange(40)
    const control = { hangup: (id: string) => app.calls.hangup(id, 'agent'), transfer: async (id: string, to: string) => { await app.calls.transfer(id, { mode: 'blind', to }) } }
    if (process.env.MEDIA_WORKERS) {
      // test/call/media-workers.test.ts reruns the real-media suites with media in worker threads.
      const planes = await WorkerMediaPlanes.start({
        workers: Number(process.env.MEDIA_WORKERS), engine: { rtpPortMin: rtp.min, rtpPortMax: rtp.max, bindHost: '127.0.0.1' },
        allowPrivateUrls: true, recordingsDir: join(dataDir, 'recordings'), mediaRoots: [join(dataDir, 'media')],
        logLevel: (process.env.TEST_LOG_LEVEL ?? 'silent') as LogLevel, store, logger,
        isLocal: () => true, control: () => ({ ...control, lost: (id, reason) => app.calls.hangup(id, 'system', reason) }),
      })
      engine = planes
      app.setMediaBinder(planes)
    } else {
      engine = new MediaEngine({ rtpPortMin: rtp.min, rtpPortMax: rtp.max, bindHost: '127.0.0.1' })
      app.setMediaBinder(new AgentMediaBinder({ media: engine, store, logger, control: () => control }))
    }
  } else {
    app.setMediaBinder(media)
  }
  return {
    db, store, server, srfConnection, app, media, accountId, sipPort, dataDir, target: `127.0.0.1:${sipPort}`,
    async stop(o = {}) {
      await srfConnection.drain()
      await srfConnection.stop()
      await server.stop()
      await media.closeAll()
      await engine?.stop()
      await db.close()
      if (!o.keepData && !opts.dataDir) rmSync(dataDir, { recursive: true, force: true })
    },
  }
}

/** A real UDP RTP endpoint per call: enough to prove SDP offer/answer and RTP reach us. */
export class TestMediaBinder implements MediaBinder {
  readonly legs: TestLeg[] = []

  async answer(ctx: CallContext, remoteSdp: string): Promise<MediaLeg> {
    const leg = await TestLeg.open(ctx)
    await leg.setRemote(remoteSdp)
    this.legs.push(leg)
    return leg
  }

  async offer(ctx: CallContext): Promise<MediaLeg> {
    const leg = await TestLeg.open(ctx)
    this.legs.push(leg)
    return leg
  }

  async closeAll(): Promise<void> {
    await Promise.all(this.legs.map((l) => l.close('test-end')))
  }
}

export class TestLeg implements MediaLeg {
  packetsIn = 0
  remote: { host: string; port: number } | null = null
  holdCalls: boolean[] = []
  said: string[] = []
  closedReason: string | null = null
  dialog: Srf.Dialog | null = null
  private closed = false

  private constructor(readonly ctx: CallContext, readonly sock: Socket, readonly port: number) {
    sock.on('message', () => { this.packetsIn++ })
  }

  static async open(ctx: CallContext): Promise<TestLeg> {
    const sock = createSocket('udp4')
    await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()))
    return new TestLeg(ctx, sock, sock.address().port)
  }

  get localSdp(): string {
    return ['v=0', `o=- ${this.port} 1 IN IP4 127.0.0.1`, 's=test', 'c=IN IP4 127.0.0.1', 't=0 0',
      `m=audio ${this.port} RTP/AVP 0 101`, 'a=rtpmap:0 PCMU/8000', 'a=rtpmap:101 telephone-event/8000', 'a=ptime:20', 'a=sendrecv', ''].join('\r\n')
  }

  async setRemote(sdp: string): Promise<string> {
    const c = /^c=IN IP4 (\S+)/m.exec(sdp)
    const m = /^m=audio (\d+)/m.exec(sdp)
    if (!c || !m) throw new Error('no audio in SDP')
    this.remote = { host: c[1]!, port: Number(m[1]) }
    return this.localSdp
  }

  attach(dialog: Srf.Dialog): void {
    this.dialog = dialog
  }

  async setHold(held: boolean): Promise<void> {
    this.holdCalls.push(held)
  }

  /** Sends 10 RTP packets of PCMU silence to the far end. */
  async say(text: string): Promise<void> {
    this.said.push(text)
    if (!this.remote) return
    for (let i = 0; i < 10; i++) {
      const pkt = Buffer.alloc(12 + 160, 0xff)
      pkt[0] = 0x80; pkt[1] = 0; pkt.writeUInt16BE(i, 2); pkt.writeUInt32BE(i * 160, 4); pkt.writeUInt32BE(0x1234, 8)
      this.sock.send(pkt, this.remote.port, this.remote.host)
      await new Promise((r) => setTimeout(r, 20))
    }
  }

  async close(reason: string): Promise<void> {
    if (this.closed) return
    this.closed = true
    this.closedReason = reason
    await new Promise<void>((r) => this.sock.close(() => r()))
  }
}

export { sleep, waitFor } from '../../harness/wait.ts'

/** Writes a sipp scenario XML into a temp file and returns its path. */
export function scenarioFile(name: string, xml: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'sipapp-scn-'))
  const p = join(dir, `${name}.xml`)
  writeFileSync(p, xml)
  return p
}
