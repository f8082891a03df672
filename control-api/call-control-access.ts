import { CallControlError, type CallControl } from '../call/call-control.ts'
import type { ApiDeps } from './deps.ts'
import { ApiError } from './errors.ts'

/**
 * How routes reach the live call: the installed CallControl with the method
 * they need (503 while this node has none), and its CallControlErrors as
 * API errors (status, code, message, details kept).
 */
export function controlOrUnavailable<K extends keyof CallControl>(deps: ApiDeps, method: K): CallControl {
  const cc = deps.callControl.current
  if (!cc || typeof cc[method] !== 'function') {
    throw new ApiError(503, 'unavailable', `call control (${String(method)}) is not available on this node yet`)
  }
  return cc
}

export function mapControlError(err: unknown): never {
  if (err instanceof CallControlError) throw new ApiError(err.statusCode, err.code, err.message, err.details)
  throw err
}
