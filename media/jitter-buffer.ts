/**
 * Adaptive jitter buffer for one inbound RTP stream.
 *
 * Packets are copied into a preallocated ring indexed by sequence number, so
 * reordering costs nothing and no memory is allocated per packet. Playout is
 * driven by the shared 20 ms clock: each `pop` yields the next packet in
 * sequence order, a `lost` marker for a gap (the caller conceals), a `skip`
 * for sequence slots used by non-audio packets (RFC 4733 events share the
 * stream's sequence space, §2.1), or `empty` when the buffer ran dry.
 *
 * Adaptation: the target depth follows the RFC 3550 interarrival-jitter
 * estimate (three times the jitter, within [min, max]). An empty buffer is
 * bridged with up to three concealed frames (the packet may be late and still
 * plays); after that the buffer re-fills to the target before playing again.
 * Clock skew (sender faster than our clock) shows as a depth that stays above
 * target; `shouldShrink` then asks the caller to drop one frame that decodes
 * to near-silence, so no speech the network delivered is discarded.
 */
import { seqDiff } from './rtp/packet.ts'

export type PopKind = 'packet' | 'lost' | 'skip' | 'empty'

export interface PopResult {
  kind: PopKind
  /** View into the ring slot; valid until the next push. */
  payload: Uint8Array
  sequence: number
  timestamp: number
  marker: boolean
  payloadType: number
}

export interface JitterBufferStats {
  pushed: number
  played: number
  lost: number
  late: number
  duplicates: number
  overflows: number
  /** Times the slots grew for a payload larger than any before. */
  grows: number
  /** Frames concealed while waiting for a late packet. */
  expands: number
  underruns: number
  skewDrops: number
  resets: number
  depth: number
  targetDepth: number
}

export interface JitterBufferOptions {
  /** Ring size in packets (power of two). */
  slots?: number
  /**
   * Bytes reserved per slot at first: size it for the negotiated codec and
   * ptime (160 for PCMU at 20 ms). A larger payload grows every slot once, up
   * to maxSlotBytes, so the ring is not paid for at MTU size on every call.
   */
  slotBytes?: number
  /** Largest payload kept whole (default: slotBytes, i.e. no growth); larger ones are truncated and counted. */
  maxSlotBytes?: number
  minDepth?: number
  maxDepth?: number
}

/**
 * Ring slot sizing for a negotiated codec: the payload one packet of `ptimeMs`
 * carries (G.711 and G.722: 8 bytes per ms, RFC 3551 §4.5.14 and §4.5.2; L16:
 * 2 bytes per sample), so a 20 ms PCMU call reserves 16 × 160 bytes instead of
 * MTU-sized slots. Opus (RFC 7587) is variable-rate: 128 bytes holds a 20 ms
 * packet up to ~50 kbit/s (narrowband and wideband speech send 40–100 bytes);
 * larger ones grow the ring once. Growth stops at an MTU's payload.
 */
export function slotSizingFor(codec: { name: string; sampleRate: number }, ptimeMs = 20): { slotBytes: number; maxSlotBytes: number } {
  const ms = Math.max(20, Math.min(ptimeMs || 20, 120))
  const maxSlotBytes = 1500 - 12 // Ethernet MTU minus the RTP header: whatever one datagram can carry on a LAN path
  switch (codec.name) {
    case 'PCMU': case 'PCMA': case 'G722': return { slotBytes: 8 * ms, maxSlotBytes }
    case 'L16': return { slotBytes: Math.min(maxSlotBytes, (codec.sampleRate / 1000) * 2 * ms), maxSlotBytes }
    default: return { slotBytes: 128, maxSlotBytes }
  }
}

const EMPTY = -1
/** Frames concealed in a row on an empty buffer before declaring an underrun. */
const MAX_EXPAND = 3

export class JitterBuffer {
  private readonly slots: number
  private readonly mask: number
  private slotBytes: number
  private readonly maxSlotBytes: number
  private data: Uint8Array
  private readonly seqs: Int32Array
  private readonly stamps: Uint32Array
  private readonly lens: Int32Array // -1 marks a skip (non-audio) slot
  private readonly markers: Uint8Array
  private readonly pts: Uint8Array
  private readonly minDepth: number
  private readonly maxDepth: number
  private target: number
  private count = 0
  private playing = false
  private nextSeq = 0
  private highSeq = 0
  private started = false
  private overTargetTicks = 0
  private expandRun = 0
  private nextPt = 0
  private readonly result: PopResult = { kind: 'empty', payload: new Uint8Array(0), sequence: 0, timestamp: 0, marker: false, payloadType: 0 }
  readonly stats: JitterBufferStats = {
    pushed: 0, played: 0, lost: 0, late: 0, duplicates: 0, overflows: 0, grows: 0, expands: 0, underruns: 0, skewDrops: 0, resets: 0, depth: 0, targetDepth: 0,
  }

  constructor(opts: JitterBufferOptions = {}) {
    this.slots = opts.slots ?? 64
    if ((this.slots & (this.slots - 1)) !== 0) throw new RangeError('slots must be a power of two')
    this.mask = this.slots - 1
    this.slotBytes = opts.slotBytes ?? 320
    this.maxSlotBytes = Math.max(this.slotBytes, opts.maxSlotBytes ?? this.slotBytes)
    this.data = new Uint8Array(this.slots * this.slotBytes)
    this.seqs = new Int32Array(this.slots).fill(EMPTY)
    this.stamps = new Uint32Array(this.slots)
    this.lens = new Int32Array(this.slots)
    this.markers = new Uint8Array(this.slots)
    this.pts = new Uint8Array(this.slots)
    this.minDepth = opts.minDepth ?? 2
    this.maxDepth = Math.min(opts.maxDepth ?? 10, this.slots - 4)
    this.target = this.minDepth
    this.stats.targetDepth = this.target
  }

  /** Packets between the next to play and the highest received, inclusive. */
  get depth(): number {
    if (!this.started || this.count === 0) return 0
    return seqDiff(this.highSeq, this.nextSeq) + 1
  }

  /** Feeds the RFC 3550 jitter estimate (ms) to adapt the target depth. */
  setJitterEstimate(jitterMs: number): void {
    const t = 1 + Math.ceil((3 * jitterMs) / 20)
    this.target = Math.max(this.minDepth, Math.min(this.maxDepth, t))
    this.stats.targetDepth = this.target
  }

  /**
   * Stores a packet. `payload === null` marks a sequence slot used by a
   * non-audio packet (telephone-event). Returns what happened to it.
   */
  push(sequence: number, timestamp: number, marker: boolean, payload: Uint8Array | null, offset = 0, length = payload ? payload.length - offset : 0, payloadType = 0): 'ok' | 'late' | 'duplicate' | 'reset' {
    this.nextPt = payloadType
    this.stats.pushed++
    if (!this.started) {
      this.started = true
      this.nextSeq = sequence
      this.highSeq = sequence
    } else {
      const ahead = seqDiff(sequence, this.nextSeq)
      if (ahead < 0) {
        if (this.playing || seqDiff(sequence, this.highSeq) < -this.maxDepth) { this.stats.late++; return 'late' }
        // Before playout starts an earlier packet simply becomes the start.
        this.nextSeq = sequence
      } else if (ahead >= this.slots - 1) {
        // A jump the ring cannot span: the stream restarted or we stalled.
        this.reset()
        this.stats.resets++
        this.started = true
        this.nextSeq = sequence
        this.highSeq = sequence
        this.store(sequence, timestamp, marker, payload, offset, length)
        return 'reset'
      }
      if (seqDiff(sequence, this.highSeq) > 0) this.highSeq = sequence
    }
    const idx = sequence & this.mask
    if (this.seqs[idx] === sequence) { this.stats.duplicates++; return 'duplicate' }
    this.store(sequence, timestamp, marker, payload, offset, length)
    return 'ok'
  }

  private store(sequence: number, timestamp: number, marker: boolean, payload: Uint8Array | null, offset: number, length: number): void {
    const idx = sequence & this.mask
    if (this.seqs[idx] === EMPTY) this.count++
    this.seqs[idx] = sequence
    this.stamps[idx] = timestamp
    this.markers[idx] = marker ? 1 : 0
    this.pts[idx] = this.nextPt
    if (payload === null) {
      this.lens[idx] = -1
    } else {
      let n = length
      if (n > this.slotBytes) {
        if (this.slotBytes < this.maxSlotBytes) this.grow(n)
        if (n > this.slotBytes) { n = this.slotBytes; this.stats.overflows++ }
      }
      // Byte loop instead of set(subarray): no view object per packet.
      const data = this.data
      const base = idx * this.slotBytes
      for (let i = 0; i < n; i++) data[base + i] = payload[offset + i]!
      this.lens[idx] = n
    }
  }

  /**
   * Re-lays the ring out with slots of at least `need` bytes (rounded up to
   * 64, doubling, capped at maxSlotBytes), keeping what is buffered. Happens
   * at most a few times per call (the peer's largest packet so far), never per
   * packet. A PopResult payload handed out before stays valid: it views the
   * old array, which lives on until the caller drops it.
   */
  private grow(need: number): void {
    const size = Math.min(this.maxSlotBytes, Math.max((need + 63) & ~63, this.slotBytes * 2))
    const data = new Uint8Array(this.slots * size)
    const old = this.data
    for (let i = 0; i < this.slots; i++) {
      const len = this.lens[i]!
      if (this.seqs[i] === EMPTY || len <= 0) continue
      data.set(old.subarray(i * this.slotBytes, i * this.slotBytes + len), i * size)
    }
    this.data = data
    this.slotBytes = size
    this.stats.grows++
  }

  /** Bytes reserved per slot now (grows with the largest payload seen, up to maxSlotBytes). */
  get slotSize(): number { return this.slotBytes }

  /** Called once per 20 ms tick (or more when a packet holds less than 20 ms). */
  pop(): PopResult {
    const r = this.result
    this.stats.depth = this.depth
    if (!this.playing) {
      if (this.count === 0 || this.depth < this.target) { r.kind = 'empty'; return r }
      this.playing = true
      // Start at the earliest buffered packet.
      while (this.seqs[this.nextSeq & this.mask] !== this.nextSeq) this.nextSeq = (this.nextSeq + 1) & 0xffff
    }
    if (this.count === 0) {
      // Nothing buffered: conceal in place without consuming the sequence
      // number (the packet may just be late, and then still plays). After a
      // few frames of this the stream has stopped (DTX, hold): re-buffer.
      if (++this.expandRun <= MAX_EXPAND) {
        this.stats.expands++
        r.kind = 'lost'
        return r
      }
      this.playing = false
      this.stats.underruns++
      r.kind = 'empty'
      return r
    }
    this.expandRun = 0
    // Clock skew / post-spike drain: note when depth stays above target; the
    // caller drops a quiet decoded frame (shouldShrink) so speech is never cut.
    if (this.depth > this.target + 2) this.overTargetTicks++
    else this.overTargetTicks = 0
    this.take(r)
    return r
  }

  /** Depth has stayed above target for a second: the caller should drop one quiet frame. */
  get shouldShrink(): boolean { return this.overTargetTicks >= 50 }

  /** The caller dropped a frame for skew; restart the observation window. */
  recordSkewDrop(): void {
    this.stats.skewDrops++
    this.overTargetTicks = 0
  }

  private take(r: PopResult): void {
    const idx = this.nextSeq & this.mask
    r.sequence = this.nextSeq
    if (this.seqs[idx] === this.nextSeq) {
      const len = this.lens[idx]!
      r.timestamp = this.stamps[idx]!
      r.marker = this.markers[idx] === 1
      r.payloadType = this.pts[idx]!
      if (len < 0) {
        r.kind = 'skip'
      } else {
        r.kind = 'packet'
        // One view per played packet (as before); no per-slot view objects kept (memory per session).
        r.payload = this.data.subarray(idx * this.slotBytes, idx * this.slotBytes + len)
        this.stats.played++
      }
      this.seqs[idx] = EMPTY
      this.count--
    } else {
      r.kind = 'lost'
      this.stats.lost++
    }
    this.nextSeq = (this.nextSeq + 1) & 0xffff
  }

  /** Drops everything (re-INVITE, SSRC change). */
  reset(): void {
    this.seqs.fill(EMPTY)
    this.count = 0
    this.playing = false
    this.started = false
    this.overTargetTicks = 0
    this.expandRun = 0
  }
}
