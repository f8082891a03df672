/**
 * Per-source reception statistics, RFC 3550 Appendix A.1 (sequence
 * validation with wrap-around), A.3 (expected/lost packets) and A.8
 * (interarrival jitter).
 */
import { seqDiff } from './packet.ts'

const MAX_DROPOUT = 3000
const MAX_MISORDER = 100
const SEQ_MOD = 0x10000

export class RtpReceiveStats {
  private baseSeq = 0
  private maxSeq = 0
  private cycles = 0
  private badSeq = -1
  private started = false
  /** Packets accepted (including duplicates, as in A.3). */
  received = 0
  duplicates = 0
  reordered = 0
  private expectedPrior = 0
  private receivedPrior = 0
  private transit = 0
  private haveTransit = false
  /** Interarrival jitter in timestamp units (A.8), kept as a float. */
  jitter = 0
  /** Highest jitter seen in ms, for reporting. */
  maxJitterMs = 0
  private readonly clockRate: number
  /** Recent sequence numbers for duplicate detection (bitmap of the last 128). */
  private readonly seenWindow = new Uint8Array(128)

  constructor(clockRate: number) { this.clockRate = clockRate }

  reset(): void {
    this.started = false
    this.received = 0
    this.duplicates = 0
    this.reordered = 0
    this.expectedPrior = 0
    this.receivedPrior = 0
    this.haveTransit = false
    this.jitter = 0
    this.cycles = 0
    this.badSeq = -1
    this.seenWindow.fill(0)
  }

  /**
   * A.1 update_seq. Returns 'ok', 'duplicate', or 'restart' (a large jump
   * accepted after two sequential packets, e.g. the peer restarted its stream),
   * or 'bad' (dropped).
   */
  update(seq: number): 'ok' | 'duplicate' | 'restart' | 'bad' {
    if (!this.started) {
      this.started = true
      this.baseSeq = seq
      this.maxSeq = seq
      this.seenWindow.fill(0)
      this.seenWindow[seq & 127] = 1
      this.received++
      return 'ok'
    }
    const delta = seqDiff(seq, this.maxSeq)
    if (delta > 0 && delta < MAX_DROPOUT) {
      // In order, possibly with a gap: clear window slots we skipped.
      for (let s = 1; s <= delta && s <= 128; s++) this.seenWindow[(this.maxSeq + s) & 127] = 0
      if (seq < this.maxSeq) this.cycles += SEQ_MOD
      this.maxSeq = seq
    } else if (delta <= 0 && delta > -MAX_MISORDER) {
      if (delta > -128 && this.seenWindow[seq & 127]) {
        this.duplicates++
        return 'duplicate'
      }
      this.reordered++
    } else {
      // Very large jump: accept only if the next packet follows it (A.1).
      if (seq === this.badSeq) {
        this.started = false
        this.update(seq)
        return 'restart'
      }
      this.badSeq = (seq + 1) & 0xffff
      return 'bad'
    }
    this.seenWindow[seq & 127] = 1
    this.received++
    return 'ok'
  }

  /** A.8: arrival in ms (monotonic), RTP timestamp of the packet. */
  updateJitter(rtpTimestamp: number, arrivalMs: number): void {
    const arrival = (arrivalMs * this.clockRate) / 1000
    const transit = arrival - rtpTimestamp
    if (this.haveTransit) {
      let d = transit - this.transit
      // Timestamps are 32-bit; fold wrap into a small difference.
      if (d > 2 ** 31) d -= 2 ** 32
      else if (d < -(2 ** 31)) d += 2 ** 32
      if (d < 0) d = -d
      this.jitter += (d - this.jitter) / 16
      const ms = this.jitterMs
      if (ms > this.maxJitterMs) this.maxJitterMs = ms
    }
    this.transit = transit
    this.haveTransit = true
  }

  get jitterMs(): number { return (this.jitter * 1000) / this.clockRate }
  get extendedMaxSeq(): number { return this.cycles + this.maxSeq }
  get expected(): number { return this.started ? this.extendedMaxSeq - this.baseSeq + 1 : 0 }
  /** Cumulative lost (A.3); duplicates can make it negative, clamp at 0 for display. */
  get lost(): number { return Math.max(0, this.expected - (this.received)) }

  /** A.3 fraction lost since the previous call, as the 8-bit RR field. */
  takeFractionLost(): number {
    const expected = this.expected
    const expectedInterval = expected - this.expectedPrior
    this.expectedPrior = expected
    const receivedInterval = this.received - this.receivedPrior
    this.receivedPrior = this.received
    const lostInterval = expectedInterval - receivedInterval
    if (expectedInterval === 0 || lostInterval <= 0) return 0
    return Math.min(255, Math.floor((lostInterval << 8) / expectedInterval))
  }
}
