/** Shared setup for media tests: engines on private port ranges, connected session pairs. */
import { MediaEngine, type MediaEngineOptions } from '../../media/media-engine.ts'
import type { MediaSession, MediaSessionOptions } from '../../media/session/media-session.ts'
import type { AudioFrame } from '../../audio/frame.ts'
import { freeUdpRange } from '../harness/ports.ts'

export interface Teardown { teardown(fn: () => unknown): void }

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms))

export async function engineFor(t: Teardown, ports = 16, opts: MediaEngineOptions = {}): Promise<MediaEngine> {
  const range = await freeUdpRange(ports)
  const engine = new MediaEngine({ rtpPortMin: range.min, rtpPortMax: range.max, bindHost: '127.0.0.1', ...opts })
  t.teardown(() => engine.stop())
  return engine
}

/** Two sessions connected to each other through offer/answer. */
export async function connectedPair(engine: MediaEngine, a: MediaSessionOptions = {}, b: MediaSessionOptions = {}): Promise<[MediaSession, MediaSession]> {
  const sa = await engine.createSession(a)
  const sb = await engine.createSession(b)
  await sa.setRemoteDescription(await sb.createAnswer(await sa.createOffer()))
  return [sa, sb]
}

export function frameCollector(session: MediaSession): AudioFrame[] {
  const frames: AudioFrame[] = []
  session.on('frame', (f) => frames.push({ ...f, samples: f.samples.slice() }))
  return frames
}

export function concatFrames(frames: AudioFrame[]): Int16Array {
  const out = new Int16Array(frames.reduce((a, f) => a + f.samples.length, 0))
  let o = 0
  for (const f of frames) { out.set(f.samples, o); o += f.samples.length }
  return out
}
