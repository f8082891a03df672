/** Writes RTP packets into a pcap (Ethernet/IPv4/UDP) that sipp's play_pcap_audio replays. */
import { writeFileSync } from 'node:fs'
import { writeRtpHeader } from '../../media/rtp/packet.ts'

export function writeRtpPcap(path: string, payloads: Uint8Array[], opts: { payloadType: number; ptimeMs?: number; ssrc?: number; clockStep?: number }): void {
  const ptime = opts.ptimeMs ?? 20
  const chunks: Buffer[] = []
  const gh = Buffer.alloc(24)
  gh.writeUInt32LE(0xa1b2c3d4, 0); gh.writeUInt16LE(2, 4); gh.writeUInt16LE(4, 6)
  gh.writeUInt32LE(65535, 16); gh.writeUInt32LE(1, 20) // DLT_EN10MB
  chunks.push(gh)
  payloads.forEach((p, i) => {
    const rtp = new Uint8Array(12 + p.length)
    writeRtpHeader(rtp, opts.payloadType, i === 0, (1000 + i) & 0xffff, (5000 + i * (opts.clockStep ?? 160)) >>> 0, opts.ssrc ?? 0x12345678)
    rtp.set(p, 12)
    const udpLen = 8 + rtp.length
    const ipLen = 20 + udpLen
    const frame = Buffer.alloc(14 + ipLen)
    frame.writeUInt16BE(0x0800, 12)
    frame[14] = 0x45; frame.writeUInt16BE(ipLen, 16); frame[22] = 64; frame[23] = 17
    frame.set([127, 0, 0, 1], 26); frame.set([127, 0, 0, 1], 30)
    frame.writeUInt16BE(40000, 34); frame.writeUInt16BE(40002, 36); frame.writeUInt16BE(udpLen, 38)
    frame.set(rtp, 42)
    const ph = Buffer.alloc(16)
    const tUs = i * ptime * 1000
    ph.writeUInt32LE(1_700_000_000 + Math.floor(tUs / 1e6), 0); ph.writeUInt32LE(tUs % 1e6, 4)
    ph.writeUInt32LE(frame.length, 8); ph.writeUInt32LE(frame.length, 12)
    chunks.push(ph, frame)
  })
  writeFileSync(path, Buffer.concat(chunks))
}
