/**
 * Request/response and one-way notifications over a worker MessagePort, in
 * both directions: what the main thread and a media-plane worker
 * (media-plane-worker.ts) say to each other. Everything must be
 * structured-cloneable (MessagePorts go in the transfer list); errors cross as { name, message, code, details } and
 * a CallControlError comes out the other side as a CallControlError, so the
 * API answers the same status whichever thread the call lives on.
 */
import type { Transferable } from 'node:worker_threads'
import { CallControlError, type CallControlErrorCode } from '../call-control.ts'

/** A Worker, or a worker's parentPort: both post and receive. */
export interface MessageEndpoint {
  postMessage(value: unknown, transfer?: readonly Transferable[]): void
  on(event: 'message', listener: (value: unknown) => void): unknown
}

interface SerializedError { name: string; message: string; code?: string; details?: unknown }

type Frame =
  | { t: 'req'; id: number; method: string; args: unknown[] }
  | { t: 'res'; id: number; ok: true; value: unknown }
  | { t: 'res'; id: number; ok: false; error: SerializedError }
  | { t: 'note'; method: string; args: unknown[] }

type Handler = (...args: never[]) => unknown

function serializeError(err: unknown): SerializedError {
  if (err instanceof CallControlError) return { name: err.name, message: err.message, code: err.code, ...(err.details !== undefined ? { details: err.details } : {}) }
  const e = err instanceof Error ? err : new Error(String(err))
  return { name: e.name, message: e.message }
}

function reviveError(e: SerializedError): Error {
  if (e.name === 'CallControlError' && e.code) return new CallControlError(e.code as CallControlErrorCode, e.message, e.details)
  return Object.assign(new Error(e.message), { name: e.name })
}

export class RpcChannel {
  private nextId = 1
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>()
  private readonly handlers = new Map<string, Handler>()
  private closedWith: Error | null = null

  constructor(private readonly port: MessageEndpoint) {
    port.on('message', (m) => this.onFrame(m as Frame))
  }

  /** Serves `method` for the other side (requests and notifications alike). */
  handle(method: string, fn: Handler): this {
    this.handlers.set(method, fn)
    return this
  }

  request<T>(method: string, args: unknown[] = [], transfer: Transferable[] = []): Promise<T> {
    if (this.closedWith) return Promise.reject(this.closedWith)
    const id = this.nextId++
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject })
      this.port.postMessage({ t: 'req', id, method, args } satisfies Frame, transfer)
    })
  }

  /** Fire and forget: no answer, errors on the other side are its own to log. */
  notify(method: string, args: unknown[] = [], transfer: Transferable[] = []): void {
    if (this.closedWith) return
    this.port.postMessage({ t: 'note', method, args } satisfies Frame, transfer)
  }

  /** The other side is gone (worker exit or error): fail what waits and refuse what comes. */
  fail(err: Error): void {
    this.closedWith = err
    for (const p of this.pending.values()) p.reject(err)
    this.pending.clear()
  }

  get pendingCount(): number {
    return this.pending.size
  }

  private onFrame(m: Frame): void {
    if (m.t === 'res') {
      const p = this.pending.get(m.id)
      if (!p) return
      this.pending.delete(m.id)
      if (m.ok) p.resolve(m.value)
      else p.reject(reviveError(m.error))
      return
    }
    const fn = this.handlers.get(m.method) as ((...a: unknown[]) => unknown) | undefined
    if (m.t === 'note') {
      if (fn) void Promise.resolve().then(() => fn(...m.args)).catch(() => { /* a notification has no one to answer */ })
      return
    }
    const reply = (f: Frame) => { if (!this.closedWith) this.port.postMessage(f) }
    if (!fn) { reply({ t: 'res', id: m.id, ok: false, error: { name: 'Error', message: `no handler for ${m.method}` } }); return }
    Promise.resolve().then(() => fn(...m.args)).then(
      (value) => reply({ t: 'res', id: m.id, ok: true, value }),
      (err: unknown) => reply({ t: 'res', id: m.id, ok: false, error: serializeError(err) }),
    )
  }
}
