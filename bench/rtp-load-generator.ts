/**
 * RTP load generator in a separate process, reusable by every media bench.
 *
 * The parent starts it with startRtpLoadGenerator(), asks it to open UDP
 * sockets on 127.0.0.1 (their ports go into the SDP it negotiates with the
 * engine under test: rtpengine, a Callplane media session, ...), then runs a
 * bounded load: every stream sends one 20 ms G.711 packet (12-byte RTP header
 * + 160 bytes) per ptime, or cycles through pre-encoded payloads (Opus) given
 * by the parent, all streams paced by ONE hrtime-checked loop with
 * their phases spread evenly over the 20 ms. Everything that arrives on the
 * sockets is demultiplexed by SSRC and measured:
 *  - loss: per stream sent by us and relayed back (relay mode), else from
 *    the RTP sequence numbers;
 *  - transit jitter |D(i-1,i)| (RFC 3550 §6.4.1) from a send timestamp the
 *    generator puts in the payload, when the payload comes back unchanged
 *    (a relay): this isolates what the engine adds;
 *  - inter-arrival deviation | Δarrival − ptime |: the egress pacing jitter
 *    as a receiver hears it (works for any sender, e.g. Callplane's own
 *    outbound streams);
 *  - the generator's own lateness and CPU, so a saturated generator shows.
 *
 * Driving Callplane media sessions the same way (what a bench/media-*.ts does):
 *
 *   const gen = await startRtpLoadGenerator()
 *   const [port] = await gen.open(1)               // one socket can carry many streams
 *   // for each session: offer SDP c=127.0.0.1 m=audio <port> to the engine, read
 *   // the session's RTP port from its answer, then
 *   streams.push({ ssrc: 0x2000 + i, socket: 0, host: '127.0.0.1', port: sessionPort })
 *   const stats = await gen.run({ streams, durationMs: 10_000 })
 *   // stats.interArrivalDevMs: the engine's egress pacing jitter as heard here;
 *   // stats.lost: from the sequence numbers of what the engine sent back;
 *   // use expectRelayed: true when the session relays our packets unchanged.
 *   await gen.close()
 *
 * Streams demultiplex by SSRC, so sessions may share sockets (keep the SSRCs
 * unique). The generator is bounded: durationMs / ptime packets per stream,
 * and it stops sending when it falls 2 s behind.
 */
import { fork, type ChildProcess } from 'node:child_process'
import { createSocket, type Socket } from 'node:dgram'
import { fileURLToPath } from 'node:url'

export interface RtpStreamSpec {
  ssrc: number
  /** Index of the generator socket to send from (see open()). */
  socket: number
  host: string
  port: number
  /** Payload type (default 0 = PCMU). */
  pt?: number
  /** Index into RtpRunConfig.payloadSets: send these payloads in turn instead
   * of the stamped G.711 filler (e.g. pre-encoded Opus for a transcoding leg). */
  payloadSet?: number
  /** RTP timestamp increment per packet (default 8 × ptime: an 8 kHz clock; 960 for Opus). */
  timestampStep?: number
}

export interface RtpRunConfig {
  streams: RtpStreamSpec[]
  durationMs: number
  ptimeMs?: number
  /** Wait after the last packet before counting (default 400 ms). */
  drainMs?: number
  /** Ignore jitter samples in the first ms of the run (default 300). */
  warmupMs?: number
  /** Every stream we send should come back (a relay): loss = sent − received per SSRC. */
  expectRelayed?: boolean
  /** Pre-encoded payloads (base64, one list per set) for streams with payloadSet.
   * Encoding is done once by the parent, so the generator's per-packet cost
   * stays a copy and a send whatever the codec. */
  payloadSets?: string[][]
}

export interface Dist {
  p50: number
  p95: number
  p99: number
  max: number
  count: number
}

export interface RtpLoadStats {
  streamsSent: number
  packetsSent: number
  packetsReceived: number
  streamsReceived: number
  lost: number
  lossRatio: number
  /** Engine-added jitter (payload-stamped), ms; null when no stamped packet came back. */
  transitJitterMs: Dist | null
  /** | Δarrival − ptime |, ms. */
  interArrivalDevMs: Dist | null
  /** RFC 3550 interarrival jitter estimate per stream (ms): mean and max over streams. */
  rfc3550JitterMs: { mean: number; max: number } | null
  /** How late the generator sent packets vs their schedule, ms. */
  senderLateMs: Dist
  /** Packets not sent because the generator fell more than 2 s behind. */
  unsent: number
  /** Socket errors (failed sends) during the run. */
  socketErrors: number
  generatorCpuSec: number
  wallSec: number
  generatorCoreShare: number
  /** Histograms: bin width binMs, counts from 0 (the last bin is overflow). */
  hist: { binMs: number; transit: number[]; interArrival: number[] }
}

const BIN_MS = 0.05
const BINS = 1000 // 0..50 ms, last bin = overflow
const MAGIC = 0x43504c47 // 'CPLG'

// ───────────────────────── parent side ─────────────────────────

export interface RtpLoadGenerator {
  pid: number
  /** Opens n UDP sockets on 127.0.0.1 and returns their ports (indexes 0..n-1 continue earlier ones). */
  open(n: number): Promise<number[]>
  run(cfg: RtpRunConfig): Promise<RtpLoadStats>
  close(): Promise<void>
}

type Reply = { id: number; ok: true; value: unknown } | { id: number; ok: false; error: string }

const children = new Set<ChildProcess>()
/** Kills every generator process started here (for SIGINT/exit handlers). */
export function killRtpLoadGenerators(): void {
  for (const c of children) c.kill('SIGKILL')
  children.clear()
}

export async function startRtpLoadGenerator(): Promise<RtpLoadGenerator> {
  const child = fork(fileURLToPath(import.meta.url), ['--rtp-load-child'], {
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  })
  children.add(child)
  const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>()
  let seq = 0
  child.on('message', (m: Reply) => {
    const p = pending.get(m.id)
    if (!p) return
    pending.delete(m.id)
    if (m.ok) p.resolve(m.value)
    else p.reject(new Error(m.error))
  })
  child.on('exit', (code) => {
    children.delete(child)
    for (const p of pending.values()) p.reject(new Error(`rtp load generator exited (${code})`))
    pending.clear()
  })
  const call = <T>(op: string, arg: unknown): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      const id = ++seq
      pending.set(id, { resolve: resolve as (v: unknown) => void, reject })
      child.send({ id, op, arg })
    })
  await call('ping', null)
  return {
    pid: child.pid!,
    open: (n) => call<number[]>('open', n),
    run: (cfg) => call<RtpLoadStats>('run', cfg),
    async close() {
      if (child.exitCode !== null) return
      const exited = new Promise<void>((r) => child.once('exit', () => r()))
      child.send({ id: ++seq, op: 'exit', arg: null })
      const t = setTimeout(() => child.kill('SIGKILL'), 2000)
      await exited
      clearTimeout(t)
    },
  }
}

/**
 * Several generator processes behind one RtpLoadGenerator: socket index s
 * lives in process s % n, and a run sends each stream from the process that
 * owns its socket, all processes at once. On a box with cores to spare this
 * lifts the generator's own ceiling (one Node process sends and receives
 * ~30–60k packets/s); on a 2-core box it only adds contention, so n = 1 there.
 */
export async function startRtpLoadGenerators(n: number): Promise<RtpLoadGenerator & { pids: number[] }> {
  if (n <= 1) { const g = await startRtpLoadGenerator(); return Object.assign(g, { pids: [g.pid] }) }
  const gens = await Promise.all(Array.from({ length: n }, () => startRtpLoadGenerator()))
  const owned: number[][] = gens.map(() => []) // global socket index → local, per process
  let opened = 0
  return {
    pid: gens[0]!.pid,
    pids: gens.map((g) => g.pid),
    async open(k: number) {
      const want = gens.map((_, gi) => { let c = 0; for (let s = opened; s < opened + k; s++) if (s % n === gi) c++; return c })
      const ports = await Promise.all(gens.map((g, gi) => (want[gi]! > 0 ? g.open(want[gi]!) : Promise.resolve([]))))
      const out: number[] = []
      const next = gens.map(() => 0)
      for (let s = opened; s < opened + k; s++) {
        const gi = s % n
        owned[gi]!.push(s)
        out.push(ports[gi]![next[gi]!++]!)
      }
      opened += k
      return out
    },
    async run(cfg: RtpRunConfig) {
      const parts = gens.map((_, gi) => cfg.streams
        .filter((st) => st.socket % n === gi)
        .map((st) => ({ ...st, socket: owned[gi]!.indexOf(st.socket) })))
      const results = await Promise.all(gens.map((g, gi) => (parts[gi]!.length > 0 ? g.run({ ...cfg, streams: parts[gi]! }) : null)))
      return mergeRtpLoadStats(results.filter((r): r is RtpLoadStats => r !== null), cfg.expectRelayed === true)
    },
    async close() { await Promise.all(gens.map((g) => g.close())) },
  }
}

function sumHist(hs: number[][]): number[] {
  const out = new Array<number>(Math.max(0, ...hs.map((h) => h.length))).fill(0)
  for (const h of hs) for (let i = 0; i < h.length; i++) out[i]! += h[i]!
  return out
}

/** One set of figures from several generators' runs (histograms summed, so percentiles stay exact). */
export function mergeRtpLoadStats(parts: RtpLoadStats[], relayed: boolean): RtpLoadStats {
  const sum = (f: (r: RtpLoadStats) => number) => parts.reduce((a, r) => a + f(r), 0)
  const transit = sumHist(parts.map((r) => r.hist.transit))
  const inter = sumHist(parts.map((r) => r.hist.interArrival))
  const count = (h: number[]) => h.reduce((a, b) => a + b, 0)
  const lost = sum((r) => r.lost)
  const expected = relayed ? sum((r) => r.packetsSent) : sum((r) => r.packetsReceived) + lost
  const jit = parts.filter((r) => r.rfc3550JitterMs)
  const wallSec = Math.max(...parts.map((r) => r.wallSec))
  const late = parts.map((r) => r.senderLateMs)
  return {
    streamsSent: sum((r) => r.streamsSent),
    packetsSent: sum((r) => r.packetsSent),
    packetsReceived: sum((r) => r.packetsReceived),
    streamsReceived: sum((r) => r.streamsReceived),
    lost,
    lossRatio: expected > 0 ? lost / expected : 0,
    transitJitterMs: distFromHist(transit, count(transit)),
    interArrivalDevMs: distFromHist(inter, count(inter)),
    rfc3550JitterMs: jit.length ? { mean: jit.reduce((a, r) => a + r.rfc3550JitterMs!.mean, 0) / jit.length, max: Math.max(...jit.map((r) => r.rfc3550JitterMs!.max)) } : null,
    // Per-process percentiles cannot be merged exactly: the worst process's, which bounds the merged one.
    senderLateMs: { p50: Math.max(...late.map((d) => d.p50)), p95: Math.max(...late.map((d) => d.p95)), p99: Math.max(...late.map((d) => d.p99)), max: Math.max(...late.map((d) => d.max)), count: late.reduce((a, d) => a + d.count, 0) },
    unsent: sum((r) => r.unsent),
    socketErrors: sum((r) => r.socketErrors),
    generatorCpuSec: sum((r) => r.generatorCpuSec),
    wallSec,
    generatorCoreShare: sum((r) => r.generatorCoreShare),
    hist: { binMs: parts[0]?.hist.binMs ?? BIN_MS, transit: trimHist(transit), interArrival: trimHist(inter) },
  }
}

// ───────────────────────── child side ─────────────────────────

interface RecvStream {
  received: number
  baseSeq: number
  maxExt: number
  cycles: number
  lastSeq: number
  lastArrival: number
  lastTransit: number
  jitter: number
}

function distFromHist(h: number[], count: number): Dist | null {
  if (count === 0) return null
  const at = (p: number) => {
    const rank = Math.ceil((p / 100) * count)
    let acc = 0
    for (let i = 0; i < h.length; i++) {
      acc += h[i]!
      if (acc >= rank) return (i + 1) * BIN_MS
    }
    return h.length * BIN_MS
  }
  let maxBin = 0
  for (let i = h.length - 1; i >= 0; i--) if (h[i]! > 0) { maxBin = i; break }
  return { p50: at(50), p95: at(95), p99: at(99), max: (maxBin + 1) * BIN_MS, count }
}

function trimHist(h: Float64Array | number[]): number[] {
  let last = 0
  for (let i = 0; i < h.length; i++) if (h[i]! > 0) last = i
  return Array.from(h.slice(0, last + 1))
}

function childMain(): void {
  const sockets: Socket[] = []
  /** Per-SSRC send state kept across runs. */
  const txState = new Map<number, { seq: number; ts: number; at: number; step: number }>()
  const ports: number[] = []
  // receive state, reset per run
  let streams = new Map<number, RecvStream>()
  let transitHist = new Float64Array(BINS)
  let iaHist = new Float64Array(BINS)
  let transitCount = 0
  let iaCount = 0
  let measuring = false
  let ptime = 20
  let received = 0
  let socketErrors = 0

  const onMessage = (msg: Buffer): void => {
    const now = performance.now()
    if (msg.length < 12 || (msg[0]! & 0xc0) !== 0x80) return
    received++
    const ssrc = msg.readUInt32BE(8)
    const seq = msg.readUInt16BE(2)
    let s = streams.get(ssrc)
    if (!s) {
      s = { received: 0, baseSeq: seq, maxExt: seq, cycles: 0, lastSeq: seq, lastArrival: -1, lastTransit: NaN, jitter: 0 }
      streams.set(ssrc, s)
    }
    s.received++
    // extended highest sequence number (RFC 3550 A.1, simplified)
    const delta = (seq - s.lastSeq + 0x10000) & 0xffff
    if (delta < 0x8000) {
      if (seq < s.lastSeq) s.cycles += 0x10000
      s.lastSeq = seq
      s.maxExt = s.cycles + seq
    }
    const hdr = 12 + (msg[0]! & 0x0f) * 4
    let transit = NaN
    if (msg.length >= hdr + 12 && msg.readUInt32BE(hdr) === MAGIC) transit = now - msg.readDoubleBE(hdr + 4)
    if (measuring) {
      if (s.lastArrival >= 0) {
        const dev = Math.abs(now - s.lastArrival - ptime)
        iaHist[Math.min(BINS - 1, Math.floor(dev / BIN_MS))]!++
        iaCount++
      }
      if (!Number.isNaN(transit) && !Number.isNaN(s.lastTransit)) {
        const d = Math.abs(transit - s.lastTransit)
        transitHist[Math.min(BINS - 1, Math.floor(d / BIN_MS))]!++
        transitCount++
        s.jitter += (d - s.jitter) / 16
      }
    }
    s.lastArrival = now
    s.lastTransit = transit
  }

  const open = async (n: number): Promise<number[]> => {
    const out: number[] = []
    for (let i = 0; i < n; i++) {
      const sock = createSocket({ type: 'udp4', recvBufferSize: 4 * 1024 * 1024, sendBufferSize: 4 * 1024 * 1024 })
      await new Promise<void>((resolve, reject) => {
        sock.once('error', reject)
        sock.bind(0, '127.0.0.1', () => resolve())
      })
      sock.on('message', onMessage)
      sock.on('error', () => { socketErrors++ })
      sockets.push(sock)
      ports.push(sock.address().port)
      out.push(sock.address().port)
    }
    return out
  }

  const run = async (cfg: RtpRunConfig): Promise<RtpLoadStats> => {
    ptime = cfg.ptimeMs ?? 20
    const n = cfg.streams.length
    const perStream = Math.max(1, Math.floor(cfg.durationMs / ptime))
    const total = n * perStream
    streams = new Map()
    transitHist = new Float64Array(BINS)
    iaHist = new Float64Array(BINS)
    transitCount = 0
    iaCount = 0
    received = 0
    socketErrors = 0
    measuring = false
    const lateHist = new Float64Array(BINS)
    let lateCount = 0
    // per-stream send state
    const seqs = new Uint16Array(n)
    const ts = new Uint32Array(n)
    const sent = new Uint32Array(n)
    for (let i = 0; i < n; i++) {
      // A stream that ran before continues its sequence and timestamp, as a
      // live call would: a random restart on the same SSRC is dropped by the
      // receiver's RFC 3550 A.1 probation and would show up as a bad packet.
      const prev = txState.get(cfg.streams[i]!.ssrc >>> 0)
      seqs[i] = prev ? prev.seq : (Math.random() * 0xffff) | 0
      ts[i] = prev ? (prev.ts + Math.round((performance.now() - prev.at) / ptime) * prev.step) >>> 0 : (Math.random() * 0xffffffff) >>> 0
    }
    // A ring of preallocated packets: no allocation per packet. dgram.send() with a
    // host string sends on the next tick (address lookup), and a send the kernel
    // cannot take at once stays queued holding its buffer: so one tick never writes
    // more than MAX_BURST packets, far fewer than the ring holds, and a late
    // generator catches up over several ticks instead of overwriting its own packets.
    const G711_PKT = 12 + 160
    const sets = (cfg.payloadSets ?? []).map((list) => list.map((b64) => Buffer.from(b64, 'base64')))
    let maxPayload = 0
    for (const set of sets) for (const p of set) maxPayload = Math.max(maxPayload, p.length)
    const PKT = Math.max(G711_PKT, 12 + maxPayload)
    const RING = 16384
    const MAX_BURST = 2048
    const ring: Buffer[] = []
    for (let i = 0; i < RING; i++) {
      const b = Buffer.alloc(PKT, 0xff)
      b[0] = 0x80
      ring.push(b)
    }
    let ringPos = 0
    const cpu0 = process.cpuUsage()
    const t0 = performance.now() + 50
    const warmEnd = t0 + (cfg.warmupMs ?? 300)
    const endBy = t0 + perStream * ptime + 2000
    const slot = ptime / n
    let next = 0
    let unsent = 0
    await new Promise<void>((resolve) => {
      const tick = () => {
        const now = performance.now()
        if (!measuring && now >= warmEnd) measuring = true
        if (now > endBy) {
          unsent = total - next
          next = total
        }
        let burst = 0
        while (next < total) {
          if (++burst > MAX_BURST) {
            setImmediate(tick)
            return
          }
          const k = (next / n) | 0
          const i = next - k * n
          const due = t0 + k * ptime + i * slot
          if (due > now) break
          const st = cfg.streams[i]!
          const b = ring[ringPos]!
          ringPos = (ringPos + 1) & (RING - 1)
          b[1] = (st.pt ?? 0) & 0x7f
          b.writeUInt16BE(seqs[i]!, 2)
          b.writeUInt32BE(ts[i]!, 4)
          b.writeUInt32BE(st.ssrc >>> 0, 8)
          const t = performance.now()
          let len = G711_PKT
          const set = st.payloadSet === undefined ? undefined : sets[st.payloadSet]
          if (set && set.length > 0) {
            const p = set[k % set.length]!
            p.copy(b, 12)
            len = 12 + p.length
          } else {
            b.writeUInt32BE(MAGIC, 12)
            b.writeDoubleBE(t, 16)
            b.fill(0xff, 24, G711_PKT)
          }
          sockets[st.socket]!.send(b, 0, len, st.port, st.host)
          seqs[i] = (seqs[i]! + 1) & 0xffff
          ts[i] = (ts[i]! + (st.timestampStep ?? 8 * ptime)) >>> 0
          sent[i]!++
          if (now >= warmEnd) {
            lateHist[Math.min(BINS - 1, Math.floor((t - due) / BIN_MS))]!++
            lateCount++
          }
          next++
        }
        if (next < total) setTimeout(tick, 1)
        else resolve()
      }
      setTimeout(tick, Math.max(0, t0 - performance.now()))
    })
    for (let i = 0; i < n; i++) {
      // Media time went on between runs: advance the timestamp by the idle gap.
      txState.set(cfg.streams[i]!.ssrc >>> 0, { seq: seqs[i]!, ts: ts[i]!, at: performance.now(), step: cfg.streams[i]!.timestampStep ?? 8 * ptime })
    }
    await new Promise((r) => setTimeout(r, cfg.drainMs ?? 400))
    measuring = false
    const wallSec = (performance.now() - t0) / 1000
    const cpu = process.cpuUsage(cpu0)
    const generatorCpuSec = (cpu.user + cpu.system) / 1e6
    // loss
    let lost = 0
    let packetsSent = 0
    if (cfg.expectRelayed) {
      cfg.streams.forEach((st, i) => {
        packetsSent += sent[i]!
        const r = streams.get(st.ssrc >>> 0)?.received ?? 0
        lost += Math.max(0, sent[i]! - r)
      })
    } else {
      for (let i = 0; i < n; i++) packetsSent += sent[i]!
      for (const s of streams.values()) lost += Math.max(0, s.maxExt - s.baseSeq + 1 - s.received)
    }
    let jSum = 0
    let jMax = 0
    let jN = 0
    for (const s of streams.values()) {
      if (Number.isNaN(s.lastTransit)) continue
      jSum += s.jitter
      jMax = Math.max(jMax, s.jitter)
      jN++
    }
    const expected = cfg.expectRelayed ? packetsSent : received + lost
    return {
      streamsSent: n,
      packetsSent,
      packetsReceived: received,
      streamsReceived: streams.size,
      lost,
      lossRatio: expected > 0 ? lost / expected : 0,
      transitJitterMs: distFromHist(Array.from(transitHist), transitCount),
      interArrivalDevMs: distFromHist(Array.from(iaHist), iaCount),
      rfc3550JitterMs: jN ? { mean: jSum / jN, max: jMax } : null,
      senderLateMs: distFromHist(Array.from(lateHist), lateCount) ?? { p50: 0, p95: 0, p99: 0, max: 0, count: 0 },
      unsent,
      socketErrors,
      generatorCpuSec,
      wallSec,
      generatorCoreShare: generatorCpuSec / wallSec,
      hist: { binMs: BIN_MS, transit: trimHist(transitHist), interArrival: trimHist(iaHist) },
    }
  }

  process.on('disconnect', () => process.exit(0))
  process.on('message', (m: { id: number; op: string; arg: unknown }) => {
    const reply = (r: Reply) => process.send!(r)
    const go = async () => {
      switch (m.op) {
        case 'ping': return 'pong'
        case 'open': return open(m.arg as number)
        case 'run': return run(m.arg as RtpRunConfig)
        case 'exit':
          for (const s of sockets) s.close()
          setImmediate(() => process.exit(0))
          return null
        default: throw new Error(`unknown op ${m.op}`)
      }
    }
    go().then((value) => reply({ id: m.id, ok: true, value }), (err: Error) => reply({ id: m.id, ok: false, error: err.message }))
  })
}

if (process.argv.includes('--rtp-load-child') && process.send) childMain()

/** Histogram plot series (ms) from a stats histogram, cut where 99.9% of samples are covered. */
export function histSeries(label: string, counts: number[], binMs: number): { label: string; x: number[]; y: number[] } {
  const total = counts.reduce((a, b) => a + b, 0)
  let acc = 0
  let end = counts.length
  for (let i = 0; i < counts.length; i++) {
    acc += counts[i]!
    if (acc >= total * 0.999) { end = i + 1; break }
  }
  // merge bins so the plot has at most ~60 bars
  const merge = Math.max(1, Math.ceil(end / 60))
  const x: number[] = []
  const y: number[] = []
  for (let i = 0; i < end; i += merge) {
    let c = 0
    for (let j = i; j < Math.min(end, i + merge); j++) c += counts[j]!
    x.push(Number((i * binMs).toFixed(4)))
    y.push(total > 0 ? (c / total) * 100 : 0)
  }
  return { label, x, y }
}

/** CDF series (ms, %) from a stats histogram. */
export function cdfSeries(label: string, counts: number[], binMs: number): { label: string; x: number[]; y: number[] } {
  const total = counts.reduce((a, b) => a + b, 0)
  const x: number[] = []
  const y: number[] = []
  let acc = 0
  for (let i = 0; i < counts.length; i++) {
    if (counts[i] === 0 && i !== counts.length - 1) continue
    acc += counts[i]!
    x.push(Number(((i + 1) * binMs).toFixed(4)))
    y.push(total > 0 ? (acc / total) * 100 : 0)
    if (acc >= total * 0.9999) break
  }
  return { label, x, y }
}
