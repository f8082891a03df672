/**
 * Egress pacing on the wire: tcpdump on the loopback interface stamps each
 * packet in the kernel as the engine's sendmsg() hands it over, so the
 * inter-departure deviation | Δt − ptime | per stream is the engine's own
 * pacing, without the receiver's event-loop delays (a Node receiver stamps a
 * packet only when its 'message' callback runs, after whatever else that
 * process was doing). Both figures are reported by bench/media-sessions.ts.
 *
 * Needs tcpdump and the right to capture (root, or CAP_NET_RAW); without
 * them startWireCapture() returns null and the bench says so.
 *
 * The pcap parser reads the classic libpcap format tcpdump -w writes
 * (https://www.tcpdump.org/manpages/pcap-savefile.5.html) with the link types
 * a loopback capture yields: DLT_EN10MB (Linux lo), DLT_NULL, DLT_LINUX_SLL.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export interface WirePacingStats {
  /** RTP packets from the engine's port range inside the window. */
  packets: number
  streams: number
  /** | Δdeparture − ptime | per stream, ms. */
  p50: number
  p99: number
  p999: number
  max: number
}

export interface WireCapture {
  /**
   * Stops the capture and measures the packets sent from [portMin, portMax]
   * at or after `fromEpochMs` (Date.now() clock, as pcap timestamps are).
   */
  stop(fromEpochMs?: number): Promise<WirePacingStats | null>
}

const LINKTYPE_NULL = 0
const LINKTYPE_ETHERNET = 1
const LINKTYPE_LINUX_SLL = 113

export function tcpdumpAvailable(): boolean {
  const r = spawnSync('tcpdump', ['--version'], { stdio: 'ignore' })
  return r.status === 0
}

/**
 * Starts tcpdump on lo for UDP packets whose source port is in
 * [portMin, portMax] (the engine's RTP range: the kernel filter keeps the
 * capture cheap). Resolves once tcpdump is listening, or null if it cannot run.
 */
export async function startWireCapture(portMin: number, portMax: number, ptimeMs = 20, cpuList?: string): Promise<WireCapture | null> {
  if (!tcpdumpAvailable()) return null
  const file = join(tmpdir(), `callplane-wire-${process.pid}-${Date.now()}.pcap`)
  // -s 64: headers and the RTP fixed header are enough; -U: write per packet
  // so nothing is lost when it is stopped; -n: no name lookups.
  const tcpdumpArgs = ['-i', 'lo', '-n', '-U', '-s', '64', '-w', file, `udp and src portrange ${portMin}-${portMax}`]
  // Optionally on the generator's CPUs, away from the engine under test.
  const child: ChildProcess = cpuList
    ? spawn('taskset', ['-c', cpuList, 'tcpdump', ...tcpdumpArgs], { stdio: ['ignore', 'ignore', 'pipe'] })
    : spawn('tcpdump', tcpdumpArgs, { stdio: ['ignore', 'ignore', 'pipe'] })
  const listening = await new Promise<boolean>((resolve) => {
    let err = ''
    const timer = setTimeout(() => resolve(false), 5000)
    child.stderr!.on('data', (d: Buffer) => {
      err += d.toString()
      if (err.includes('listening on')) { clearTimeout(timer); resolve(true) }
    })
    child.once('exit', () => { clearTimeout(timer); resolve(false) })
    child.once('error', () => { clearTimeout(timer); resolve(false) })
  })
  if (!listening) {
    child.kill('SIGKILL')
    rmSync(file, { force: true })
    return null
  }
  return {
    async stop(fromEpochMs = 0) {
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
      child.kill('SIGINT')
      await Promise.race([exited, new Promise((r) => setTimeout(r, 3000))])
      try {
        return measurePcap(readFileSync(file), portMin, portMax, ptimeMs, fromEpochMs)
      } catch {
        return null
      } finally {
        rmSync(file, { force: true })
      }
    },
  }
}

/** Per-stream (source port, SSRC) inter-departure deviation from a pcap file's bytes. */
export function measurePcap(buf: Buffer, portMin: number, portMax: number, ptimeMs: number, fromEpochMs = 0): WirePacingStats | null {
  if (buf.length < 24) return null
  const magic = buf.readUInt32LE(0)
  let le: boolean
  let nano: boolean
  if (magic === 0xa1b2c3d4) { le = true; nano = false } else if (magic === 0xa1b23c4d) { le = true; nano = true } else if (buf.readUInt32BE(0) === 0xa1b2c3d4) { le = false; nano = false } else if (buf.readUInt32BE(0) === 0xa1b23c4d) { le = false; nano = true } else return null
  const u32 = (o: number) => (le ? buf.readUInt32LE(o) : buf.readUInt32BE(o))
  const linktype = u32(20)
  const l2 = linktype === LINKTYPE_ETHERNET ? 14 : linktype === LINKTYPE_NULL ? 4 : linktype === LINKTYPE_LINUX_SLL ? 16 : -1
  if (l2 < 0) return null
  const last = new Map<number, number>()
  const devs: number[] = []
  let packets = 0
  for (let o = 24; o + 16 <= buf.length;) {
    const tMs = u32(o) * 1000 + u32(o + 4) / (nano ? 1e6 : 1e3)
    const incl = u32(o + 8)
    const p = o + 16
    o = p + incl
    if (o > buf.length) break
    const ip = p + l2
    if (incl < l2 + 20 || (buf[ip]! >> 4) !== 4) continue
    const ihl = (buf[ip]! & 0x0f) * 4
    const udp = ip + ihl
    if (buf[ip + 9] !== 17 || udp + 8 + 12 > p + incl) continue
    const sport = buf.readUInt16BE(udp)
    if (sport < portMin || sport > portMax || tMs < fromEpochMs) continue
    const rtp = udp + 8
    if ((buf[rtp]! & 0xc0) !== 0x80) continue // RTCP shares the range only with rtcp-mux off; version bits still match, PT filters it
    const pt = buf[rtp + 1]! & 0x7f
    if (pt >= 72 && pt <= 76) continue // RTCP SR/RR/SDES/BYE/APP (RFC 5761 §4)
    packets++
    const key = sport * 0x100000000 + buf.readUInt32BE(rtp + 8)
    const prev = last.get(key)
    if (prev !== undefined) devs.push(Math.abs(tMs - prev - ptimeMs))
    last.set(key, tMs)
  }
  if (devs.length === 0) return null
  devs.sort((a, b) => a - b)
  const at = (q: number) => devs[Math.min(devs.length - 1, Math.floor(devs.length * q))]!
  const r3 = (v: number) => Math.round(v * 1000) / 1000
  return { packets, streams: last.size, p50: r3(at(0.5)), p99: r3(at(0.99)), p999: r3(at(0.999)), max: r3(devs[devs.length - 1]!) }
}
