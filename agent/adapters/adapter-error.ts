/**
 * What every adapter shares: the vendor error it throws, and how the runtime
 * tells a cancellation (barge-in, hangup) from a failure.
 */
/** Thrown (or yielded as an error) by adapters when the vendor reports an error; carries the vendor status. */
export class AdapterError extends Error {
  constructor(
    message: string,
    readonly adapter: string,
    readonly status?: number,
    readonly retryable = true,
  ) {
    super(message)
    this.name = 'AdapterError'
  }
}

export function isAbortError(err: unknown): boolean {
  return err instanceof Error && (err.name === 'AbortError' || err.name === 'APIUserAbortError')
}
