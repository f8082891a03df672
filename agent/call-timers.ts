/**
 * The timers of one agent on one call (silence, max duration, STT deadlines,
 * DTMF gathering, barge-in resume): all cleared at once when the call ends,
 * so nothing fires into a finished call.
 */
export class CallTimers {
  private readonly live = new Set<NodeJS.Timeout>()

  set(ms: number, fn: () => void): NodeJS.Timeout {
    const t = setTimeout(() => {
      this.live.delete(t)
      fn()
    }, ms)
    this.live.add(t)
    return t
  }

  clear(t: NodeJS.Timeout | undefined): void {
    if (!t) return
    clearTimeout(t)
    this.live.delete(t)
  }

  clearAll(): void {
    for (const t of this.live) clearTimeout(t)
    this.live.clear()
  }
}
