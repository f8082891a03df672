/**
 * The one error shape of the API: `{ error: { code, message, details } }`.
 * Throw an ApiError from a handler; the error handler in app.ts renders it.
 */
export class ApiError extends Error {
  constructor(
    readonly statusCode: number,
    readonly code: string,
    message: string,
    readonly details?: unknown,
  ) {
    super(message)
    this.name = 'ApiError'
  }
}

export interface ErrorBody {
  error: { code: string; message: string; details?: unknown }
}
