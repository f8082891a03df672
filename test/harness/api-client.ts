import { waitFor } from './wait.ts'
import type { Stack } from './stack.ts'

/** The REST API of a test stack as its admin key sees it: what a user's curl does. */
export function apiClient(stack: Pick<Stack, 'baseUrl' | 'apiKey'>) {
  const api = (path: string, init: RequestInit = {}) => fetch(`${stack.baseUrl}${path}`, {
    ...init, headers: { authorization: `Bearer ${stack.apiKey}`, ...(init.body ? { 'content-type': 'application/json' } : {}) },
  })
  const post = (path: string, body?: unknown) => api(path, { method: 'POST', ...(body !== undefined ? { body: JSON.stringify(body) } : {}) })
  return { api, post }
}

/** Polls `fn` until it gives a truthy value; null once `ms` have passed (the caller asserts). */
export function pollUntil<T>(fn: () => Promise<T | null | undefined> | T | null | undefined, ms = 20_000): Promise<T | null> {
  return waitFor(fn, ms).catch(() => null)
}
