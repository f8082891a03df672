/**
 * Where a media session's memory goes (issue 4: ≤ 100 KB per session).
 *
 * One configuration per process, so every figure is a clean marginal cost:
 *   g711  N PCMU sessions (consumer sink + looping tone, as in media-sessions.ts)
 *   opus  N Opus sessions (same, Opus at --rate Hz PCM)
 *   pair  N bridged pairs PCMU leg ↔ Opus leg (the media-sessions.ts Opus step)
 *
 * Phases: warm-up (a few sessions created, fed and closed so code, JIT and the
 * codec library are loaded), baseline, N sessions negotiated (idle), then
 * --push seconds of real RTP from a local sender (PCMU filler, Opus packets
 * encoded the way the engine's answer asks), then again after the traffic.
 * Each reading follows two full GCs and reports, per leg: PSS growth (what
 * the bench counts), V8 heap (used / physical), external and ArrayBuffer
 * memory, and the native rest (PSS − V8 physical), which is where libopus
 * state, malloc'd buffers and socket handles land.
 *
 *   tsx bench/media-memory.ts [--kind g711|opus|pair|all] [--n 100 | --n 50,150] [--push 3] [--rate 8000] [--snapshot] [--spaces]
 *
 * A ladder (--n 50,150) also prints the marginal cost per leg between steps:
 * it leaves out fixed costs that grow with traffic, not with sessions (the V8
 * young generation grows to its maximum under any packet load, 16 MiB here).
 *
 * --kind all runs g711, opus and pair, each in its own child process.
 * --snapshot writes heap snapshots at the baseline and after the traffic and
 * prints the constructors whose retained self size grew most per leg.
 */
import { spawnSync } from 'node:child_process'
import { createSocket, type Socket } from 'node:dgram'
import { readFileSync, unlinkSync } from 'node:fs'
import { getHeapSpaceStatistics, getHeapStatistics, writeHeapSnapshot } from 'node:v8'
import { v8Collector } from '../media/idle-gc.ts'
import { fileURLToPath } from 'node:url'
import { PerformanceObserver } from 'node:perf_hooks'
import { createCodec } from '../codecs/index.ts'
import { MediaEngine } from '../media/media-engine.ts'
import { PcmSource } from '../media/playback.ts'
import { Bridge } from '../media/bridge.ts'
import type { MediaSession } from '../media/session/media-session.ts'
import type { SampleRate } from '../audio/frame.ts'

const arg = (name: string, def: string): string => {
  const i = process.argv.indexOf(`--${name}`)
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : def
}
const kind = arg('kind', 'all')
const ladder = arg('n', '100').split(',').map(Number)
const pushSec = Number(arg('push', '3'))
const rate = Number(arg('rate', '8000')) as SampleRate
const snapshot = process.argv.includes('--snapshot')

if (kind === 'all') {
  const self = fileURLToPath(import.meta.url)
  for (const k of ['g711', 'opus', 'pair']) {
    const rest = process.argv.slice(2).filter((a, i, all) => a !== '--kind' && all[i - 1] !== '--kind')
    const r = spawnSync(process.execPath, [...process.execArgv, self, '--kind', k, ...rest], { stdio: 'inherit' })
    if (r.status !== 0) process.exit(r.status ?? 1)
  }
  process.exit(0)
}
if (kind !== 'g711' && kind !== 'opus' && kind !== 'pair') throw new RangeError(`--kind ${kind}: expected g711, opus, pair or all`)

const gc = v8Collector()!

interface Reading { pss: number; heapUsed: number; heapPhysical: number; external: number; arrayBuffers: number }
function read(): Reading {
  gc(); gc()
  const m = process.memoryUsage()
  const h = getHeapStatistics()
  const pss = Number(/^Pss:\s+(\d+) kB/m.exec(readFileSync('/proc/self/smaps_rollup', 'utf8'))?.[1] ?? NaN) * 1024
  return { pss, heapUsed: m.heapUsed, heapPhysical: h.total_physical_size, external: m.external, arrayBuffers: m.arrayBuffers }
}
const kb = (b: number) => (b / 1024).toFixed(1)
function report(label: string, base: Reading, now: Reading, legs: number): void {
  const d = (k: keyof Reading) => (now[k] - base[k]) / legs
  if (process.argv.includes('--spaces')) console.log('    spaces (physical KiB):', getHeapSpaceStatistics().map((x) => `${x.space_name} ${kb(x.physical_space_size)}`).join(', '))
  console.log(`  ${label.padEnd(22)} per leg: PSS ${kb(d('pss'))} KiB | V8 heap used ${kb(d('heapUsed'))}, physical ${kb(d('heapPhysical'))} | external ${kb(d('external'))} (ArrayBuffers ${kb(d('arrayBuffers'))}) | native rest (PSS − V8 physical) ${kb(d('pss') - d('heapPhysical'))} KiB`)
}

const sdpFor = (port: number, pt: number, codec: string) =>
  `v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio ${port} RTP/AVP ${pt}\r\na=rtpmap:${pt} ${codec}\r\na=ptime:20\r\n`

const engine = new MediaEngine({ rtpPortMin: 40000, rtpPortMax: 49999, bindHost: '127.0.0.1', sessionDefaults: { inactivityTimeoutMs: 0 } })
const consumer = { onFrame() { /* forces decode, as an agent's VAD would */ } }
const tone8k = new Int16Array(8000)
for (let i = 0; i < tone8k.length; i++) tone8k[i] = Math.round(6000 * Math.sin((2 * Math.PI * 440 * i) / 8000))
const toneOpus = new Int16Array(rate)
for (let i = 0; i < toneOpus.length; i++) toneOpus[i] = Math.round(6000 * Math.sin((2 * Math.PI * 440 * i) / rate))

// The peer: one socket that sends every stream and swallows what the sessions send back.
const peer: Socket = createSocket('udp4')
await new Promise<void>((r) => peer.bind(0, '127.0.0.1', () => r()))
peer.on('message', () => { /* discard egress */ })
const peerPort = peer.address().port

interface Stream { port: number; pt: number; ssrc: number; seq: number; ts: number; step: number; payloads: Buffer[] }
const streams: Stream[] = []
const pcmuPayload = Buffer.alloc(160, 0xd5)
let opusPayloads: Buffer[] | null = null

/** 1 s of Opus as the peer encodes it after reading our answer (as media-sessions.ts does). */
function peerOpus(answer: string): Buffer[] {
  const fmtp = /a=fmtp:111 (.*)/.exec(answer)?.[1]?.trim()
  const enc = createCodec({ name: 'opus', sampleRate: 48000, fmtp, opusComplexity: 10 })
  const frame = new Int16Array(960)
  const out = new Uint8Array(1500)
  const list: Buffer[] = []
  for (let f = 0; f < 50; f++) {
    for (let i = 0; i < 960; i++) frame[i] = Math.round(5000 * Math.sin((2 * Math.PI * 220 * (f * 960 + i)) / 48000))
    list.push(Buffer.from(out.subarray(0, enc.encode(frame, out))))
  }
  return list
}

function peerOpusNote(): string {
  const list = opusPayloads
  return list ? `, peer Opus ${Math.round(list.reduce((a, p) => a + p.length, 0) / list.length)} B/packet` : ''
}

async function pcmuLeg(i: number): Promise<MediaSession> {
  const s = await engine.createSession({ codecs: ['PCMU'] })
  await s.createAnswer(sdpFor(peerPort, 0, 'PCMU/8000'))
  streams.push({ port: s.localPort, pt: 0, ssrc: 0x20000000 + i, seq: 1, ts: 0, step: 160, payloads: [pcmuPayload] })
  return s
}
async function opusLeg(i: number): Promise<MediaSession> {
  const s = await engine.createSession({ codecs: ['opus'], opusSampleRate: rate })
  const answer = await s.createAnswer(sdpFor(peerPort, 111, 'opus/48000/2'))
  opusPayloads ??= peerOpus(answer)
  streams.push({ port: s.localPort, pt: 111, ssrc: 0x50000000 + i, seq: 1, ts: 0, step: 960, payloads: opusPayloads })
  return s
}

async function create(n: number, offset: number): Promise<{ sessions: MediaSession[]; legs: number }> {
  const sessions: MediaSession[] = []
  for (let i = offset; i < offset + n; i++) {
    if (kind === 'g711' || kind === 'opus') {
      const s = kind === 'g711' ? await pcmuLeg(i) : await opusLeg(i)
      s.addSink(consumer)
      void s.play(new PcmSource(kind === 'g711' ? tone8k : toneOpus, kind === 'g711' ? 8000 : rate, 1e9))
      sessions.push(s)
    } else {
      const a = await pcmuLeg(i)
      const b = await opusLeg(i)
      new Bridge(a, b)
      sessions.push(a, b)
    }
  }
  return { sessions, legs: sessions.length }
}

const hdr = Buffer.alloc(12)
let gcCount = 0
let gcMs = 0
new PerformanceObserver((list) => { for (const e of list.getEntries()) { gcCount++; gcMs += e.duration } }).observe({ entryTypes: ['gc'] })
async function push(sec: number): Promise<void> {
  const ticks = Math.round((sec * 1000) / 20)
  const t0 = performance.now()
  const cpu0 = process.cpuUsage()
  const gc0 = { n: gcCount, ms: gcMs }
  try { await sendFor(ticks, t0) } finally {
    const c = process.cpuUsage(cpu0)
    const wall = performance.now() - t0
    console.log(`  traffic: process CPU ${(((c.user + c.system) / 1000 / wall) * 100).toFixed(0)}% of a core (sender included), ${gcCount - gc0.n} GCs, ${(gcMs - gc0.ms).toFixed(0)} ms in GC pauses (${(((gcMs - gc0.ms) / wall) * 100).toFixed(1)}% of wall)`)
  }
  await new Promise((r) => setTimeout(r, 200)) // let the jitter buffers drain
}
async function sendFor(ticks: number, t0: number): Promise<void> {
  for (let k = 0; k < ticks; k++) {
    for (const st of streams) {
      hdr[0] = 0x80; hdr[1] = st.pt
      hdr.writeUInt16BE(st.seq, 2); hdr.writeUInt32BE(st.ts >>> 0, 4); hdr.writeUInt32BE(st.ssrc >>> 0, 8)
      peer.send([hdr, st.payloads[k % st.payloads.length]!], st.port, '127.0.0.1')
      st.seq = (st.seq + 1) & 0xffff
      st.ts = (st.ts + st.step) >>> 0
    }
    const wait = t0 + (k + 1) * 20 - performance.now()
    if (wait > 0) await new Promise((r) => setTimeout(r, wait))
  }
}

/** Heap snapshot → self size and count per "type:name", for a diff. */
function snapshotSummary(): Map<string, { size: number; count: number }> {
  const file = writeHeapSnapshot()
  const snap = JSON.parse(readFileSync(file, 'utf8')) as { snapshot: { meta: { node_fields: string[]; node_types: [string[]] } }; nodes: number[]; strings: string[] }
  unlinkSync(file)
  const f = snap.snapshot.meta.node_fields
  const stride = f.length
  const iType = f.indexOf('type'), iName = f.indexOf('name'), iSize = f.indexOf('self_size')
  const types = snap.snapshot.meta.node_types[0]
  const out = new Map<string, { size: number; count: number }>()
  for (let i = 0; i < snap.nodes.length; i += stride) {
    const type = types[snap.nodes[i + iType]!]!
    const name = type === 'string' || type === 'concatenated string' || type === 'sliced string' ? '(strings)' : snap.strings[snap.nodes[i + iName]!]!.slice(0, 60)
    const key = `${type}:${name}`
    const e = out.get(key) ?? { size: 0, count: 0 }
    e.size += snap.nodes[i + iSize]!
    e.count++
    out.set(key, e)
  }
  return out
}
function snapshotDiff(a: Map<string, { size: number; count: number }>, b: Map<string, { size: number; count: number }>, legs: number): void {
  const rows = [...b].map(([k, v]) => ({ k, size: v.size - (a.get(k)?.size ?? 0), count: v.count - (a.get(k)?.count ?? 0) })).filter((r) => r.size > 0)
  rows.sort((x, y) => y.size - x.size)
  const total = rows.reduce((s, r) => s + r.size, 0)
  console.log(`  heap snapshot growth: ${kb(total / legs)} KiB per leg (self sizes); top entries per leg:`)
  for (const r of rows.slice(0, 25)) console.log(`    ${kb(r.size / legs).padStart(7)} KiB  ${(r.count / legs).toFixed(1).padStart(6)} objs  ${r.k}`)
}

// Warm-up: load the codec library, compile the packet path, then close.
{
  const w = await create(4, 100000)
  await push(0.5)
  await Promise.all(w.sessions.map((s) => s.close()))
  streams.length = 0
}
const base = read()
const snapBase = snapshot ? snapshotSummary() : null
const sessions: MediaSession[] = []
let prev: { r: Reading; legs: number } | null = null
for (const n of ladder) {
  const made = await create(n - (kind === 'pair' ? sessions.length / 2 : sessions.length), kind === 'pair' ? sessions.length / 2 : sessions.length)
  sessions.push(...made.sessions)
  const legs = sessions.length
  console.log(`media-memory: ${kind} × ${n}${kind === 'pair' ? ' pairs' : ''} = ${legs} legs${kind === 'g711' ? '' : `, Opus PCM ${rate} Hz`}${peerOpusNote()}`)
  report('negotiated, idle', base, read(), legs)
  await push(pushSec)
  const after = read()
  report(`after ${pushSec} s of RTP`, base, after, legs)
  if (prev) report(`marginal ${prev.legs}→${legs} legs`, prev.r, after, legs - prev.legs)
  prev = { r: after, legs }
}
const st = sessions.map((s) => s.stats())
console.log(`  check: ${st.reduce((a, s) => a + s.packetsReceived, 0)} packets received, ${st.reduce((a, s) => a + s.framesIn, 0)} frames decoded, ${st.reduce((a, s) => a + s.packetsSent, 0)} sent, ${st.reduce((a, s) => a + s.concealed, 0)} concealed`)
if (snapBase) snapshotDiff(snapBase, snapshotSummary(), sessions.length)
await Promise.all(sessions.map((s) => s.close()))
await engine.stop()
peer.close()
report('closed (leak check)', base, read(), sessions.length)
process.exit(0)
