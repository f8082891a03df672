/**
 * The WebRTC VAD (libfvad, compiled to wasm) behind an energy gate.
 *
 * WebRTC's classifier is a per-band GMM over six sub-band energies: it tells
 * speech from stationary noise, hum and tones far better than an energy
 * threshold, at a few microseconds per 20 ms frame (bench/vad-compare.ts).
 * The gate in front makes silence cost one RMS: frames far below speech level
 * never reach the classifier, which is what most of a call's inbound frames
 * are while the agent talks.
 *
 * The wasm module is instantiated once per process (top-level await, ~20 KB);
 * each VAD owns a libfvad instance and a 20 ms buffer in the wasm heap, freed by
 * dispose() or, failing that, when the VAD is garbage-collected.
 */
import createFvad, { type FvadModule } from '@echogarden/fvad-wasm'
import type { AudioFrame } from '../../audio/frame.ts'
import { StreamResampler } from '../../codecs/stream-resampler.ts'
import { frameLevelDb, type Vad, type VadDecision } from './vad.ts'

const fvad: FvadModule = await createFvad()

/** libfvad's rates; others (24 kHz) are converted to 8 kHz first. */
const NATIVE_RATES = new Set([8000, 16000, 32000, 48000])

export type WebRtcVadMode = 0 | 1 | 2 | 3

export interface WebRtcVadOptions {
  /** libfvad aggressiveness: 0 = most speech kept … 3 = fewest false alarms. Default 2. */
  mode?: WebRtcVadMode
  /**
   * Energy gate: frames below this level (dBFS) are silence without asking the
   * classifier. Default -50: telephone speech sits at -30..-15 dBFS, and even a
   * quiet talker's syllables clear -45.
   */
  gateDb?: number
}

interface Native {
  inst: number
  buf: number
}

const natives = new FinalizationRegistry<Native>((n) => freeNative(n))

function freeNative(n: Native): void {
  fvad._fvad_free(n.inst)
  fvad._free(n.buf)
}

export class WebRtcVad implements Vad {
  readonly name = 'webrtc'
  /** Frames the classifier saw (the rest were gated as silence). */
  classified = 0
  gated = 0
  private native: Native | undefined
  private nativeRate = 0
  private bufLen = 0
  private toNative: StreamResampler | undefined
  private conv = new Int16Array(0)
  private readonly gateDb: number
  private readonly mode: WebRtcVadMode

  constructor(opts: WebRtcVadOptions = {}) {
    this.mode = opts.mode ?? 2
    this.gateDb = opts.gateDb ?? -50
    if (![0, 1, 2, 3].includes(this.mode)) throw new RangeError(`WebRTC VAD mode must be 0..3, got ${this.mode}`)
  }

  process(frame: AudioFrame): VadDecision {
    const levelDb = frameLevelDb(frame.samples)
    if (levelDb < this.gateDb) {
      this.gated++
      return { speech: false, levelDb }
    }
    this.classified++
    return { speech: this.classify(frame), levelDb }
  }

  reset(): void {
    if (!this.native) return
    // fvad_reset also returns mode and rate to libfvad's defaults.
    fvad._fvad_reset(this.native.inst)
    fvad._fvad_set_mode(this.native.inst, this.mode)
    fvad._fvad_set_sample_rate(this.native.inst, this.nativeRate)
  }

  /** Frees the wasm-side state now rather than at garbage collection. */
  dispose(): void {
    if (!this.native) return
    natives.unregister(this)
    freeNative(this.native)
    this.native = undefined
  }

  private classify(frame: AudioFrame): boolean {
    let pcm = frame.samples
    if (!this.native) this.open(frame.sampleRate, pcm.length)
    if (this.toNative) {
      const n = this.toNative.processInto(pcm, this.conv)
      pcm = this.conv.subarray(0, n)
    }
    const native = this.native!
    // Frames at the native rate always have the length open() sized for; a
    // converted frame is a sample short or long now and then: pad or cut.
    const heap = fvad.HEAP16
    const at = native.buf >> 1
    const n = Math.min(pcm.length, this.bufLen)
    heap.set(n === pcm.length ? pcm : pcm.subarray(0, n), at)
    if (n < this.bufLen) heap.fill(0, at + n, at + this.bufLen)
    const r = fvad._fvad_process(native.inst, native.buf, this.bufLen)
    if (r < 0) throw new Error(`libfvad rejected a ${this.bufLen}-sample frame at ${this.nativeRate} Hz`)
    return r === 1
  }

  private open(rate: number, frameLen: number): void {
    this.nativeRate = NATIVE_RATES.has(rate) ? rate : 8000
    if (this.nativeRate !== rate) {
      this.toNative = new StreamResampler(rate, this.nativeRate)
      this.conv = new Int16Array(this.toNative.maxOutput(frameLen))
    }
    this.bufLen = Math.round((frameLen * this.nativeRate) / rate)
    const inst = fvad._fvad_new()
    if (!inst) throw new Error('libfvad: out of memory')
    const buf = fvad._malloc(this.bufLen * 2)
    const native = { inst, buf }
    if (fvad._fvad_set_mode(inst, this.mode) < 0 || fvad._fvad_set_sample_rate(inst, this.nativeRate) < 0) {
      freeNative(native)
      throw new Error(`libfvad: mode ${this.mode} at ${this.nativeRate} Hz not accepted`)
    }
    this.native = native
    natives.register(this, native, this)
  }
}
