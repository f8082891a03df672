/**
 * What the fallback chains (`stt/fallback.ts`, `llm/fallback.ts`,
 * `tts/fallback.ts`) share: when the primary vendor errors or stalls past a
 * deadline, the next one takes over mid-call without dropping the turn, and a
 * failed adapter sits out a cool-down so later turns skip it straight away.
 */
import { performance } from 'node:perf_hooks'

export interface FallbackOptions {
  /** No first chunk within this → next adapter. */
  firstChunkTimeoutMs?: number
  /** Gap between chunks beyond this → next adapter. */
  stallTimeoutMs?: number
  /** How long a failed adapter is skipped. */
  cooldownMs?: number
  onSwitch?(kind: 'stt' | 'llm' | 'tts', from: string, to: string, reason: string): void
}

/** Which adapters of a chain are cooling down after a failure: the healthy ones are tried first. */
export class Health {
  private until = new Map<number, number>()
  constructor(private readonly cooldownMs: number) {}
  order(n: number): number[] {
    const now = performance.now()
    const idx = [...Array(n).keys()]
    return [...idx.filter((i) => (this.until.get(i) ?? 0) <= now), ...idx.filter((i) => (this.until.get(i) ?? 0) > now)]
  }
  fail(i: number): void {
    this.until.set(i, performance.now() + this.cooldownMs)
  }
}

export class StallError extends Error {
  constructor(ms: number) {
    super(`no data within ${ms} ms`)
    this.name = 'StallError'
  }
}

/** The iterator's next item, or a StallError after `ms`. */
export async function nextWithin<T>(it: AsyncIterator<T>, ms: number): Promise<IteratorResult<T>> {
  let timer: NodeJS.Timeout | undefined
  try {
    return await Promise.race([
      it.next(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new StallError(ms)), ms)
      }),
    ])
  } finally {
    clearTimeout(timer)
  }
}
