import { resolve, sep } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { OutboundUrlPolicy } from '../config/outbound-url-policy.ts'
import type { FrameSource, SampleRate } from '../audio/frame.ts'
import { PcmSource, loadAudio, type PlaySpec } from '../media/playback.ts'
import { CallControlError, type PlayTone } from './call-control.ts'

/**
 * The audio a `play` or a prompt sends that is not speech: files and URLs
 * (where a tenant may point them, and loaded through the outbound URL policy)
 * and generated tones (with the bound that keeps an endless tone from
 * silencing a call for good).
 */
export interface PromptAudioOptions {
  /** Directories file:// URLs may point under; anything else is refused so an API key cannot read arbitrary files off the node. */
  mediaRoots: string[]
  /** Which http(s) URLs may be fetched (config/outbound-url-policy.ts); unset allows any. */
  urlPolicy?: OutboundUrlPolicy | undefined
}

/** `url` as a PlaySpec location: http(s) as it is, file:// only under a media root. */
export function mediaLocation(url: string, mediaRoots: string[], what = 'play'): { type: 'file' | 'url'; location: string } {
  if (/^https?:\/\//i.test(url)) return { type: 'url', location: url }
  let path: string
  try { path = resolve(fileURLToPath(url)) } catch { throw new CallControlError('rejected', `${what}: ${url} is not a usable file URL`) }
  if (!mediaRoots.some((root) => path.startsWith(resolve(root) + sep))) {
    throw new CallControlError('rejected', `${what}: file URLs must point under ${mediaRoots.join(', ')}`)
  }
  return { type: 'file', location: url }
}

/**
 * A generated tone. Cadenced tones never end by themselves: without a
 * duration they stop after 30 s (a beep after its 250 ms), so an agent queued
 * behind them is not silenced for good.
 */
export function toneSpec(tone: PlayTone, durationMs?: number): PlaySpec {
  return { type: 'tone', tone, durationMs: durationMs ?? (tone === 'beep' ? 250 : 30_000) }
}

/**
 * Loads `urls` (checked by mediaLocation and the URL policy, fetched through
 * the policy's pinned fetch) and plays them in order, `loops` times through
 * the list (0: until stopped). A URL that cannot be loaded refuses the whole
 * list before anything plays ('rejected').
 */
export async function loadPlaylist(urls: string[], loops: number, rate: SampleRate, o: PromptAudioOptions, what = 'play'): Promise<FrameSource> {
  const specs = urls.map((u) => mediaLocation(u, o.mediaRoots, what))
  const policy = o.urlPolicy
  for (const s of specs) {
    if (s.type === 'url') await policy?.check(s.location).catch((err: unknown) => { throw new CallControlError('rejected', `${what}: ${(err as Error).message}`) })
  }
  // The policy's fetch connects only to addresses it approves at connect
  // time, so a name re-resolving to a private address after check() fails here.
  const fetchAudio = policy ? (u: string, init?: { signal?: AbortSignal }) => policy.fetch(u, init) : undefined
  const loaded = await Promise.all(specs.map((s, i) => loadAudio(s.location, rate, fetchAudio).catch((err: unknown) => {
    throw new CallControlError('rejected', `${what}: cannot load ${urls[i]}: ${(err as Error).message}`)
  })))
  return new PlaylistSource(rate, loaded.map((p) => p.pcm), loops)
}

/** Decoded clips played one after the other, `loops` times through (0: until the source is stopped). */
export class PlaylistSource implements FrameSource {
  private readonly clips: Int16Array[]
  private index = 0
  private pass = 0
  private current: PcmSource | null

  constructor(readonly sampleRate: SampleRate, clips: Int16Array[], private readonly loops: number) {
    // Empty clips play nothing, and a list of only those must not loop forever.
    this.clips = clips.filter((c) => c.length > 0)
    this.current = this.clips.length > 0 && loops >= 0 ? new PcmSource(this.clips[0]!, sampleRate) : null
  }

  get ended(): boolean { return this.current === null }

  nextFrame(): Int16Array | null {
    while (this.current) {
      const f = this.current.nextFrame()
      if (f) return f
      this.advance()
    }
    return null
  }

  private advance(): void {
    if (++this.index >= this.clips.length) {
      this.index = 0
      if (this.loops > 0 && ++this.pass >= this.loops) { this.current = null; return }
    }
    this.current = new PcmSource(this.clips[this.index]!, this.sampleRate)
  }
}
