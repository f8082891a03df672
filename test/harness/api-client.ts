import type { Stack } from './stack.ts'

/** The REST API of a test stack as its admin key sees it: what a user's curl does. */
export function apiClient(stack: Pick<Stack, 'baseUrl' | 'apiKey'>) {
  const api = (path: string, init: RequestInit = {}) => fetch(`${stack.baseUrl}${path}`, {
    ...init, headers: { authorization: `Bearer ${stack.apiKey}`, ...(init.body ? { 'content-type': 'application/json' } : {}) },
  })
  const post = (path: string, body?: unknown) => api(path, { method: 'POST', ...(body !== undefined ? { body: JSON.stringify(body) } : {}) })
  return { api, post }
}

/** Polls `fn` every 100 ms until it gives a truthy value; null once `ms` have passed (the caller asserts). */
export async function pollUntil<T>(fn: () => Promise<T | null | undefined> | T | null | undefined, ms = 20_000): Promise<T | null> {
  const end = Date.now() + ms
  for (;;) {
    const v = await fn()
    if (v) return v
    if (Date.now() > end) return null
    await new Promise((r) => setTimeout(r, 100))
  }
}
