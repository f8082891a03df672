/**
 * Offline STT with pocketsphinx + pocketsphinx-en-us (Debian), no key, no network.
 *
 * Grammar mode: a JSGF grammar is generated from the agent's expected phrases
 * and one long-lived `pocketsphinx_continuous` per call decodes the stream as it
 * arrives (through a FIFO), so by the time the caller stops talking most of the work is
 * done. When the turn-taker sees end of speech we push noise-only "silence" to
 * trip the decoder's own end-of-utterance detector at once instead of waiting
 * for real silence.
 *
 * The decoder only hears the caller's talk spurts (with pre- and post-roll),
 * not the minutes of line silence between them. Its live cepstral mean
 * normalisation (CMN) is re-estimated from everything it is fed; on silence
 * that is the band-fill noise alone, whose cepstrum is far from speech, and
 * the next utterance was then decoded against that skewed mean: measured, the
 * first phrase after ≥ 1 s of silence missed the grammar most of the time
 * ("goodbye" after 1–6 s of silence: 0/9), which is why a call with no greeting
 * got no final for the caller's first words. Gated, every utterance looks like
 * the short noise-speech-noise clips the model handles well, and the decoder
 * idles while nobody talks.
 *
 * If the grammar yields nothing for an utterance (out-of-
 * grammar speech: the fsg search logs "Final result does not match the
 * grammar" on stderr — a deterministic signal, no timer guessing), the
 * buffered utterance is decoded again with the general language model.
 *
 * The Debian build is 5prealpha: the CLI is the stable surface (the library ABI
 * is not), hence a child process rather than bindings.
 */
import { execFileSync, spawn, type ChildProcessWithoutNullStreams } from 'node:child_process'
import { constants, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs'
import { Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { createInterface } from 'node:readline'
import type { AudioFrame } from '../../../audio/frame.ts'
import { Channel } from '../../channel.ts'
import { pcmToL16le } from '../../../codecs/l16.ts'
import type { SttAdapter, SttEvent, SttStream, SttStreamOptions } from './contract.ts'
import { BandFill } from './bandfill.ts'
import { buildJsgf } from './jsgf.ts'
import { EnergyVad } from '../../vad/energy.ts'

export interface PocketsphinxOptions {
  binary?: string
  /** Extra phrases on top of those passed per stream. */
  phrases?: string[]
  /** Disable the general-LM pass when the grammar finds nothing. */
  lmFallback?: boolean
  /** Noise level for narrowband band-fill (see bandfill.ts). */
  bandFillLevel?: number
}

const FLUSH_SILENCE_MS = 700
/** Audio before the first voiced frame that still reaches the decoder (soft onsets, its own VAD's pre-speech window). */
const PREROLL_MS = 400
/** After the turn-taker's flush, keep feeding this much real audio before the gate closes again. */
const POSTROLL_MS = 1000
/** Only keep this much unrecognised audio for the fallback pass. */
const MAX_FALLBACK_SAMPLES = 16000 * 15

class PocketsphinxStream implements SttStream {
  private readonly out = new Channel<SttEvent>()
  private readonly child: ChildProcessWithoutNullStreams
  private readonly fill: BandFill
  private readonly dir: string
  private readonly audio: Socket
  private pendingAudio: Int16Array[] = []
  private pendingSamples = 0
  private closed = false
  private fallbackRuns = new Set<ChildProcessWithoutNullStreams>()
  /** More sensitive than the runtime's turn-taker, so the gate is open before a turn starts. */
  private readonly gateVad = new EnergyVad({ minSpeechDb: -50, marginDb: 9 })
  private gateOpen = false
  private flushedQuietMs: number | undefined
  private preroll: Int16Array[] = []
  private prerollSamples = 0

  constructor(
    private readonly opts: SttStreamOptions,
    private readonly cfg: PocketsphinxOptions,
    phrases: string[],
  ) {
    this.fill = new BandFill(opts.sampleRate, cfg.bandFillLevel)
    this.dir = mkdtempSync(join(tmpdir(), 'callplane-ps-'))
    // Audio goes through a FIFO: Node gives children a socket for stdin, and
    // pocketsphinx fopen()s its -infile, which fails on a socket (ENXIO).
    // Logging stays on (stderr) because the grammar-miss signal is only logged there.
    const fifo = join(this.dir, 'audio.fifo')
    execFileSync('mkfifo', [fifo])
    const args = ['-infile', fifo]
    if (phrases.length) {
      const g = buildJsgf(phrases)
      const path = join(this.dir, 'agent.jsgf')
      writeFileSync(path, g.jsgf)
      args.push('-jsgf', path)
    }
    this.child = spawn(cfg.binary ?? 'pocketsphinx_continuous', args, { stdio: ['pipe', 'pipe', 'pipe'] })
    this.child.stdin.end()
    // O_RDWR: opening never blocks waiting for the reader (Linux), and a libuv
    // pipe handle keeps writes non-blocking even if the decoder dies.
    this.audio = new Socket({ fd: openSync(fifo, constants.O_RDWR | constants.O_NONBLOCK), readable: false, writable: true })
    this.audio.on('error', (error) => this.out.push({ type: 'error', error, at: performance.now() }))
    this.child.on('error', (error) => this.out.push({ type: 'error', error, at: performance.now() }))
    createInterface({ input: this.child.stdout }).on('line', (line) => this.onHypothesis(line.trim(), 'grammar'))
    createInterface({ input: this.child.stderr }).on('line', (line) => {
      if (!line.includes('does not match the grammar')) return
      if (this.cfg.lmFallback !== false) void this.runFallback()
      else this.onHypothesis('', 'grammar')
    })
    opts.signal?.addEventListener('abort', () => void this.close(), { once: true })
  }

  private onHypothesis(text: string, source: string, utteranceEndAt?: number): void {
    if (this.closed) return
    if (source === 'grammar') {
      this.pendingAudio = []
      this.pendingSamples = 0
    }
    const at = performance.now()
    if (text) this.out.push({ type: 'final', text, at, source, ...(utteranceEndAt !== undefined ? { utteranceEndAt } : {}) })
    this.out.push({ type: 'end_of_utterance', at })
  }

  push(frame: AudioFrame): void {
    if (this.closed) return
    const voiced = this.gateVad.process(frame).speech
    // Band fill runs on every frame so its resampler and noise stay continuous across gate changes.
    const wide = this.fill.process(frame.samples)
    if (!this.gateOpen) {
      if (!voiced) {
        this.preroll.push(wide)
        this.prerollSamples += wide.length
        while (this.prerollSamples - this.preroll[0]!.length >= (16000 * PREROLL_MS) / 1000) this.prerollSamples -= this.preroll.shift()!.length
        return
      }
      this.openGate()
    }
    this.write(wide)
    if (voiced) this.flushedQuietMs = this.flushedQuietMs === undefined ? undefined : 0
    else if (this.flushedQuietMs !== undefined) {
      this.flushedQuietMs += (frame.samples.length * 1000) / frame.sampleRate
      if (this.flushedQuietMs >= POSTROLL_MS) {
        this.gateOpen = false
        this.flushedQuietMs = undefined
      }
    }
  }

  private openGate(): void {
    this.gateOpen = true
    this.flushedQuietMs = undefined
    for (const c of this.preroll) this.write(c)
    this.preroll = []
    this.prerollSamples = 0
  }

  private write(wide: Int16Array): void {
    this.audio.write(pcmToL16le(wide))
    if (this.cfg.lmFallback !== false) {
      this.pendingAudio.push(wide)
      this.pendingSamples += wide.length
      while (this.pendingSamples > MAX_FALLBACK_SAMPLES) this.pendingSamples -= this.pendingAudio.shift()!.length
    }
  }

  flush(): void {
    if (this.closed) return
    // The turn-taker heard speech the gate did not (a quieter talker than our
    // gate expects is unlikely, the runtime's VAD being less sensitive): give
    // the decoder what was buffered rather than nothing.
    if (!this.gateOpen) this.openGate()
    this.write(this.fill.silence(FLUSH_SILENCE_MS))
    this.flushedQuietMs = 0
  }

  /** Decode the unrecognised audio with the general language model. */
  private async runFallback(): Promise<void> {
    const missAt = performance.now()
    const chunks = this.pendingAudio
    this.pendingAudio = []
    this.pendingSamples = 0
    if (this.closed) return
    if (chunks.length === 0) {
      this.out.push({ type: 'end_of_utterance', at: performance.now() })
      return
    }
    const file = join(this.dir, `utt-${Date.now()}.raw`)
    writeFileSync(file, Buffer.concat(chunks.map(pcmToL16le)))
    const child = spawn(this.cfg.binary ?? 'pocketsphinx_continuous', ['-infile', file, '-logfn', '/dev/null'], {
      stdio: ['pipe', 'pipe', 'pipe'],
    })
    this.fallbackRuns.add(child)
    let text = ''
    child.stdout.on('data', (d: Buffer) => (text += d.toString()))
    child.stderr.resume()
    await new Promise<void>((resolve) => child.on('close', () => resolve()))
    this.fallbackRuns.delete(child)
    rmSync(file, { force: true })
    this.onHypothesis(text.split('\n').map((s) => s.trim()).filter(Boolean).join(' '), 'lm-fallback', missAt)
  }

  events(): AsyncIterable<SttEvent> {
    return this.out
  }

  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    for (const c of this.fallbackRuns) c.kill('SIGKILL')
    const exited = new Promise<void>((resolve) => {
      if (this.child.exitCode !== null || this.child.signalCode !== null) resolve()
      else this.child.once('close', () => resolve())
    })
    this.child.kill('SIGKILL')
    this.audio.destroy()
    await exited
    rmSync(this.dir, { recursive: true, force: true })
    this.out.close()
  }
}

export class PocketsphinxStt implements SttAdapter {
  readonly name = 'pocketsphinx'
  constructor(private readonly opts: PocketsphinxOptions = {}) {}
  async open(options: SttStreamOptions): Promise<SttStream> {
    const phrases = [...(this.opts.phrases ?? []), ...(options.phrases ?? [])]
    return new PocketsphinxStream(options, this.opts, phrases)
  }
}
