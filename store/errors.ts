/**
 * Errors the store raises on bad input or state; they carry the HTTP status the
 * control API answers with, so callers never turn them into a 500.
 */
export class StoreError extends Error {
  constructor(
    readonly statusCode: number,
    readonly code: string,
    message: string,
    readonly details?: unknown,
  ) {
    super(message)
    this.name = 'StoreError'
  }
}

export const invalidCursor = () => new StoreError(400, 'invalid_cursor', 'cursor is not one this API returned')
export const limitExceeded = (what: string, max: number) => new StoreError(409, 'limit_exceeded', `at most ${max} ${what} per account`, { max })
export const invalidReference = (field: string, what: string) => new StoreError(400, 'invalid_reference', `${field}: no such ${what} in this account`, { field })
/** A field that does not fit the rest of the body (the schema alone cannot say). */
export const invalidField = (field: string, problem: string) => new StoreError(400, 'validation_failed', `invalid body: ${field}: ${problem}`, { field })
export const conflict = (message: string, details?: unknown) => new StoreError(409, 'conflict', message, details)
export const invalidState = (message: string, details?: unknown) => new StoreError(409, 'invalid_state', message, details)
