/**
 * WAV recorder for a session (RIFF/WAVE PCM 16-bit).
 *
 * - 'stereo': caller (inbound) on the left channel, agent/outbound on the
 *   right; 'mixed': both summed into mono; 'inbound' / 'outbound': one side.
 * - Written incrementally: audio is appended every `flushEveryMs` and the
 *   RIFF and data sizes in the header are rewritten after each append, so a
 *   crash leaves a valid file holding everything up to the last flush.
 *
 * Inbound and outbound frames arrive in different scheduler phases and either
 * side can pause (hold, jitter-buffer underrun), so each side has a FIFO and
 * the side that is behind by more than a few frames is padded with silence to
 * keep the channels aligned in time.
 */
import { closeSync, openSync, writeSync } from 'node:fs'
import type { AudioFrame, DuplexFrameSink, SampleRate } from '../audio/frame.ts'
import { WAV_HEADER_BYTES, writeWavHeader } from './wav.ts'

export type RecordingMode = 'stereo' | 'mixed' | 'inbound' | 'outbound'

export interface RecorderOptions {
  path: string
  sampleRate: SampleRate
  mode?: RecordingMode
  flushEveryMs?: number
}

export interface RecordingResult {
  path: string
  durationMs: number
  bytes: number
  channels: number
  sampleRate: number
}

const MAX_SKEW_FRAMES = 3

export class WavRecorder implements DuplexFrameSink {
  readonly path: string
  readonly sampleRate: SampleRate
  readonly mode: RecordingMode
  readonly channels: 1 | 2
  private readonly fd: number
  private readonly frameSamples: number
  private readonly inFifo: Int16Array
  private readonly outFifo: Int16Array
  private inFill = 0
  private outFill = 0
  private readonly pending: Buffer
  private pendingBytes = 0
  private dataBytes = 0
  private readonly flushBytes: number
  private closed = false
  private readonly header = Buffer.alloc(WAV_HEADER_BYTES)

  constructor(opts: RecorderOptions) {
    this.path = opts.path
    this.sampleRate = opts.sampleRate
    this.mode = opts.mode ?? 'stereo'
    this.channels = this.mode === 'stereo' ? 2 : 1
    this.frameSamples = opts.sampleRate / 50
    this.inFifo = new Int16Array(this.frameSamples * (MAX_SKEW_FRAMES + 2))
    this.outFifo = new Int16Array(this.frameSamples * (MAX_SKEW_FRAMES + 2))
    const bytesPerSec = opts.sampleRate * 2 * this.channels
    this.flushBytes = Math.max(this.frameSamples * 2 * this.channels, Math.round((bytesPerSec * (opts.flushEveryMs ?? 500)) / 1000))
    this.pending = Buffer.alloc(this.flushBytes + this.frameSamples * 4 * 2)
    this.fd = openSync(opts.path, 'w')
    this.writeHeader()
  }

  private writeHeader(): void {
    writeWavHeader(this.header, this.sampleRate, this.channels, this.dataBytes)
    writeSync(this.fd, this.header, 0, WAV_HEADER_BYTES, 0)
  }

  onFrame(frame: AudioFrame): void {
    if (this.closed || this.mode === 'outbound') return
    this.push(frame.samples, true)
  }

  onOutboundFrame(frame: AudioFrame): void {
    if (this.closed || this.mode === 'inbound') return
    this.push(frame.samples, false)
  }

  private push(samples: Int16Array, inbound: boolean): void {
    const n = this.frameSamples
    if (this.mode === 'inbound' || this.mode === 'outbound') {
      this.emit(samples, null, n)
      return
    }
    const fifo = inbound ? this.inFifo : this.outFifo
    let fill = inbound ? this.inFill : this.outFill
    if (fill + n > fifo.length) { fifo.copyWithin(0, n, fill); fill -= n } // should not happen: drained below
    fifo.set(samples.subarray(0, n), fill)
    fill += n
    if (inbound) this.inFill = fill
    else this.outFill = fill
    this.drain()
  }

  private drain(): void {
    const n = this.frameSamples
    while (this.inFill >= n && this.outFill >= n) {
      this.emit(this.inFifo, this.outFifo, n)
      this.inFifo.copyWithin(0, n, this.inFill)
      this.outFifo.copyWithin(0, n, this.outFill)
      this.inFill -= n
      this.outFill -= n
    }
    // One side stalled: pad the other with silence to keep channels aligned.
    const limit = n * MAX_SKEW_FRAMES
    if (this.inFill >= limit && this.outFill < n) { this.outFifo.fill(0, this.outFill, n); this.outFill = n; this.drain() }
    else if (this.outFill >= limit && this.inFill < n) { this.inFifo.fill(0, this.inFill, n); this.inFill = n; this.drain() }
  }

  private emit(a: Int16Array, b: Int16Array | null, n: number): void {
    const buf = this.pending
    let o = this.pendingBytes
    if (this.mode === 'stereo') {
      for (let i = 0; i < n; i++) { buf.writeInt16LE(a[i]!, o); buf.writeInt16LE(b![i]!, o + 2); o += 4 }
    } else if (this.mode === 'mixed') {
      for (let i = 0; i < n; i++) {
        const v = a[i]! + b![i]!
        buf.writeInt16LE(v > 32767 ? 32767 : v < -32768 ? -32768 : v, o); o += 2
      }
    } else {
      for (let i = 0; i < n; i++) { buf.writeInt16LE(a[i]!, o); o += 2 }
    }
    this.pendingBytes = o
    if (o >= this.flushBytes) this.flush()
  }

  /** Appends buffered audio and rewrites the header sizes (crash-safe point). */
  flush(): void {
    if (this.pendingBytes === 0) return
    writeSync(this.fd, this.pending, 0, this.pendingBytes, WAV_HEADER_BYTES + this.dataBytes)
    this.dataBytes += this.pendingBytes
    this.pendingBytes = 0
    this.writeHeader()
  }

  get durationMs(): number {
    return ((this.dataBytes + this.pendingBytes) / (2 * this.channels) / this.sampleRate) * 1000
  }

  close(): RecordingResult {
    if (!this.closed) {
      // Whatever is left on one side is written against silence.
      if (this.mode === 'stereo' || this.mode === 'mixed') {
        const n = this.frameSamples
        while (this.inFill > 0 || this.outFill > 0) {
          if (this.inFill < n) { this.inFifo.fill(0, this.inFill, n); this.inFill = n }
          if (this.outFill < n) { this.outFifo.fill(0, this.outFill, n); this.outFill = n }
          this.drain()
        }
      }
      this.flush()
      this.closed = true
      closeSync(this.fd)
    }
    return { path: this.path, durationMs: Math.round(this.durationMs), bytes: WAV_HEADER_BYTES + this.dataBytes, channels: this.channels, sampleRate: this.sampleRate }
  }
}
