/**
 * RFC 4733 telephone-events (DTMF named events, §3.2) carried in RTP.
 *
 * Payload (§2.3): event (8 bits) | E (1) | R (1) | volume (6) | duration (16).
 * All packets of one event share the RTP timestamp of its start (§2.3.1);
 * the duration grows and the last packets carry E=1, sent three times for
 * robustness (§2.5.1.4). The receiver reports each event once.
 */

const EVENT_CHARS = '0123456789*#ABCD'

export function digitToEvent(digit: string): number {
  const i = EVENT_CHARS.indexOf(digit.toUpperCase())
  if (i < 0) throw new RangeError(`not a DTMF digit: ${JSON.stringify(digit)}`)
  return i
}

export function eventToDigit(event: number): string | null {
  return event >= 0 && event < 16 ? EVENT_CHARS[event]! : null
}

export interface TelephoneEventPayload {
  event: number
  end: boolean
  volume: number
  duration: number
}

export function parseTelephoneEvent(p: Uint8Array, into: TelephoneEventPayload): boolean {
  if (p.length < 4) return false
  into.event = p[0]!
  into.end = (p[1]! & 0x80) !== 0
  into.volume = p[1]! & 0x3f
  into.duration = (p[2]! << 8) | p[3]!
  return true
}

export function writeTelephoneEvent(out: Uint8Array, event: number, end: boolean, volume: number, duration: number): number {
  out[0] = event & 0xff
  out[1] = (end ? 0x80 : 0) | (volume & 0x3f)
  out[2] = (duration >> 8) & 0xff
  out[3] = duration & 0xff
  return 4
}

export interface DtmfEvent {
  digit: string
  /** Duration in ms as reported by the sender (clock units / rate). */
  durationMs: number
  /** RTP timestamp that identifies the event. */
  rtpTimestamp: number
  /** true when the event was closed by an E-bit packet, false when inferred. */
  ended: boolean
}

/**
 * Turns a stream of telephone-event packets into one DtmfEvent per key press.
 * Dedupes retransmitted end packets (same timestamp) and recovers when end
 * packets were lost (a new timestamp closes the previous event, §2.5.2.2).
 */
export class DtmfReceiver {
  private readonly clockRate: number
  private readonly scratch: TelephoneEventPayload = { event: 0, end: false, volume: 0, duration: 0 }
  private curTs = -1
  private curEvent = -1
  private curDuration = 0
  private reportedTs = -1

  constructor(clockRate = 8000) { this.clockRate = clockRate }

  /** Returns a completed event when this packet finishes one, else null. */
  push(payload: Uint8Array, rtpTimestamp: number): DtmfEvent | null {
    const p = this.scratch
    if (!parseTelephoneEvent(payload, p)) return null
    if (p.event > 15) return null // not a DTMF named event
    let done: DtmfEvent | null = null
    if (rtpTimestamp !== this.curTs) {
      // A new event; if the previous one never got an E bit, report it now.
      if (this.curTs >= 0 && this.reportedTs !== this.curTs) {
        done = this.make(this.curEvent, this.curDuration, this.curTs, false)
        this.reportedTs = this.curTs
      }
      this.curTs = rtpTimestamp
      this.curEvent = p.event
      this.curDuration = 0
    }
    if (p.duration > this.curDuration) this.curDuration = p.duration
    if (p.end && this.reportedTs !== rtpTimestamp) {
      this.reportedTs = rtpTimestamp
      return this.make(p.event, this.curDuration, rtpTimestamp, true)
    }
    return done
  }

  /** Called on inactivity: report an event whose end packets were all lost. */
  flush(): DtmfEvent | null {
    if (this.curTs >= 0 && this.reportedTs !== this.curTs) {
      this.reportedTs = this.curTs
      return this.make(this.curEvent, this.curDuration, this.curTs, false)
    }
    return null
  }

  private make(event: number, duration: number, ts: number, ended: boolean): DtmfEvent {
    return { digit: eventToDigit(event)!, durationMs: Math.round((duration * 1000) / this.clockRate), rtpTimestamp: ts, ended }
  }
}

/** One packet the sender wants on the wire this tick. */
export interface DtmfPacket {
  /** Bytes written into the caller's payload buffer (always 4). */
  length: number
  /** Set on the first packet of an event (RFC 4733 §2.5.1.3). */
  marker: boolean
  /** true when this event starts a new RTP timestamp (the event start). */
  newEvent: boolean
}

/**
 * Paces queued digits as telephone-event packets, one per 20 ms tick. The
 * caller supplies the RTP timestamp of the event start (§2.3.1) when
 * `newEvent` is reported.
 */
export class DtmfSender {
  private readonly queue: { event: number; durationSamples: number }[] = []
  private readonly step: number
  private readonly gapTicks: number
  private current: { event: number; durationSamples: number } | null = null
  private elapsed = 0
  private endsSent = 0
  private gap = 0
  private readonly volume: number

  constructor(clockRate = 8000, volume = 10) {
    this.step = clockRate / 50
    this.gapTicks = 2 // 40 ms inter-digit pause
    this.volume = volume
  }

  enqueue(digits: string, durationMs = 100, clockRate = this.step * 50): void {
    for (const d of digits) {
      this.queue.push({ event: digitToEvent(d), durationSamples: Math.round((durationMs * clockRate) / 1000) })
    }
  }

  get busy(): boolean {
    return this.current !== null || this.queue.length > 0
  }

  /** Fills `out` with this tick's packet, or returns null if nothing to send. */
  next(out: Uint8Array, result: DtmfPacket): DtmfPacket | null {
    if (!this.current) {
      if (this.gap > 0) { this.gap--; return null }
      const nxt = this.queue.shift()
      if (!nxt) return null
      this.current = nxt
      this.elapsed = 0
      this.endsSent = 0
    }
    const cur = this.current
    const first = this.elapsed === 0 && this.endsSent === 0
    if (this.elapsed < cur.durationSamples) {
      this.elapsed = Math.min(cur.durationSamples, this.elapsed + this.step)
      result.length = writeTelephoneEvent(out, cur.event, false, this.volume, this.elapsed)
      result.marker = first
      result.newEvent = first
      return result
    }
    // §2.5.1.4: the final packet is sent three times with the same duration.
    result.length = writeTelephoneEvent(out, cur.event, true, this.volume, this.elapsed)
    result.marker = false
    result.newEvent = false
    if (++this.endsSent >= 3) { this.current = null; this.gap = this.gapTicks }
    return result
  }

  clear(): void {
    this.queue.length = 0
    this.current = null
  }
}
