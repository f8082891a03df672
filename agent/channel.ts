/**
 * A minimal unbounded async queue: producers push synchronously from callbacks
 * (child-process stdout, websocket messages), consumers use `for await`.
 * Unbounded is fine here because every producer is rate-limited by real time
 * (audio) or by a vendor stream.
 */
export class Channel<T> implements AsyncIterable<T> {
  private items: T[] = []
  private waiters: Array<{ resolve: (r: IteratorResult<T>) => void; reject: (e: Error) => void }> = []
  private closed = false
  private failure: Error | undefined

  push(item: T): void {
    if (this.closed) return
    const w = this.waiters.shift()
    if (w) w.resolve({ value: item, done: false })
    else this.items.push(item)
  }

  close(error?: Error): void {
    if (this.closed) return
    this.closed = true
    const waiters = this.waiters.splice(0)
    // A consumer already waiting gets the error; otherwise it is kept for the next next().
    if (error && waiters.length > 0) {
      waiters.shift()!.reject(error)
    } else this.failure = error
    for (const w of waiters) w.resolve({ value: undefined, done: true })
  }

  get isClosed(): boolean {
    return this.closed
  }

  [Symbol.asyncIterator](): AsyncIterator<T> {
    return {
      next: (): Promise<IteratorResult<T>> => {
        const item = this.items.shift()
        if (item !== undefined) return Promise.resolve({ value: item, done: false })
        if (this.closed) {
          if (this.failure) {
            const f = this.failure
            this.failure = undefined
            return Promise.reject(f)
          }
          return Promise.resolve({ value: undefined, done: true })
        }
        return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }))
      },
      return: (): Promise<IteratorResult<T>> => {
        this.close()
        return Promise.resolve({ value: undefined, done: true })
      },
    }
  }
}
