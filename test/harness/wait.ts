export function sleep(ms: number): Promise<void> { return new Promise((r) => setTimeout(r, ms)) }

/** Polls `fn` every `everyMs` until it gives a truthy value and returns it; throws `timed out waiting for <what>` after `ms`. */
export async function waitFor<T>(fn: () => Promise<T | null | undefined | false> | T | null | undefined | false, ms = 10_000, what = 'condition', everyMs = 50): Promise<T> {
  const end = Date.now() + ms
  for (;;) {
    const v = await fn()
    if (v) return v
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await sleep(everyMs)
  }
}
