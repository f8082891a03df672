/**
 * Offline TTS with espeak-ng (Debian package). No key, no network.
 *
 * espeak-ng --stdout streams a WAV header then PCM as it synthesises, at its
 * native 22050 Hz; we pass that rate through and let the runtime resample once
 * to the call's rate. Text goes in on stdin so user text can never be parsed as
 * a command-line flag. Abort kills the process.
 */
import { spawn } from 'node:child_process'
import { performance } from 'node:perf_hooks'
import { Channel } from '../../channel.ts'
import { pcmFromL16le } from '../../../codecs/l16.ts'
import { parseWavHeader, type WavFormat } from '../../../media/wav.ts'
import { AdapterError } from '../adapter-error.ts'
import type { PcmChunk, TtsAdapter, TtsRequest, TtsStream } from './contract.ts'

export interface EspeakOptions {
  /** espeak-ng voice, e.g. "en-us", "de", "en-gb-x-rp". */
  voice?: string
  /** Words per minute (espeak default 175). */
  speed?: number
  pitch?: number
  binary?: string
}

class EspeakStream implements TtsStream {
  ttfbMs: number | undefined
  private readonly out = new Channel<PcmChunk>()

  constructor(request: TtsRequest, opts: EspeakOptions) {
    const started = performance.now()
    const voice = request.voice ?? opts.voice ?? request.language ?? 'en-us'
    const args = ['--stdout', '--stdin', '-v', voice, '-s', String(opts.speed ?? 175)]
    if (opts.pitch !== undefined) args.push('-p', String(opts.pitch))
    if (request.signal.aborted) {
      this.out.close()
      return
    }
    const child = spawn(opts.binary ?? 'espeak-ng', args, { stdio: ['pipe', 'pipe', 'pipe'] })
    let header: WavFormat | undefined
    let pending: Buffer = Buffer.alloc(0)
    let stderr = ''
    const onAbort = (): void => {
      child.kill('SIGKILL')
      this.out.close()
    }
    request.signal.addEventListener('abort', onAbort, { once: true })
    child.stdout.on('data', (data: Buffer) => {
      pending = pending.length ? Buffer.concat([pending, data]) : data
      if (!header) {
        header = parseWavHeader(pending)
        if (!header) return
        pending = pending.subarray(header.dataOffset)
      }
      const usable = pending.length & ~1
      if (usable === 0) return
      const samples = pcmFromL16le(pending.subarray(0, usable))
      pending = pending.subarray(usable)
      if (this.ttfbMs === undefined) this.ttfbMs = performance.now() - started
      this.out.push({ samples, sampleRate: header.sampleRate })
    })
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
    child.on('error', (err) => this.out.close(new AdapterError(`espeak-ng: ${err.message}`, 'espeak', undefined, false)))
    child.on('close', (code) => {
      request.signal.removeEventListener('abort', onAbort)
      if (code !== 0 && !request.signal.aborted) {
        this.out.close(new AdapterError(`espeak-ng exited ${code}: ${stderr.trim()}`, 'espeak', undefined, false))
      } else this.out.close()
    })
    child.stdin.on('error', () => {})
    child.stdin.end(request.text)
  }

  [Symbol.asyncIterator](): AsyncIterator<PcmChunk> {
    return this.out[Symbol.asyncIterator]()
  }
}

export class EspeakTts implements TtsAdapter {
  readonly name = 'espeak'
  constructor(private readonly opts: EspeakOptions = {}) {}
  synthesize(request: TtsRequest): TtsStream {
    return new EspeakStream(request, this.opts)
  }
}
