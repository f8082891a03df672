import { isFinal, type Call, type CallProgram, type CallStatus } from '../store/calls.ts'
import type { CallplaneEvent, EventBus } from '../store/outbox.ts'
import type { CallControl } from './call-control.ts'

/**
 * The one ring logic, behind the `connect` verb and POST /v1/groupcalls:
 * legs placed through `CallControl.originate`, each followed
 * on the store's EventBus (`call.ringing` / `call.answered` / `call.ended` /
 * `call.failed`), the first answer winning and the others hung up
 * (ringing: CANCEL, RFC 3261 §9.1; answered too late: BYE).
 *
 * - `ring_all`: every destination rings at once for `timeoutMs` (each leg's
 *   own ring timeout, so its record ends `no-answer`).
 * - `linear`: one after another, each for `timeoutMs`; a busy, failed or
 *   unanswered leg moves on to the next, a leg someone else hung up (the
 *   groupcall's hangup, DELETE /v1/calls) ends the dial.
 *
 * Aborting `signal` (the flow's call ended, its run was stopped) or calling
 * `abort()` (the groupcall was hung up) hangs up every leg that is still
 * up, the answered one included: the dial owns its legs until `close()`.
 */

export type RingMethod = 'ring_all' | 'linear'

/** What a dial logs through: pino's Logger and the API's request logger both fit. */
export interface DialLog {
  child(bindings: Record<string, unknown>): DialLog
  debug(obj: object, msg: string): void
  info(obj: object, msg: string): void
  warn(obj: object, msg: string): void
  error(obj: object, msg: string): void
}
export type DialStatus = 'answered' | 'no-answer' | 'busy' | 'failed' | 'canceled'

/** A destination as the dialer takes it (OriginateRequest.to), or why it cannot be dialled at all. */
export type DialTarget = { to: string } | { error: string }

export interface GroupDialOptions {
  bus: EventBus
  control: CallControl
  log: DialLog
  accountId: string
  /** Caller ID of every leg. */
  from: string
  targets: DialTarget[]
  ringMethod: RingMethod
  /** ring_all: how long they all ring; linear: how long each rings. */
  timeoutMs: number
  /** What an answered leg runs (groupcalls, the `call` verb); none = it stays up silent for a bridge. */
  program?: CallProgram | undefined
  /** The live call the legs are placed for: its parties may be the caller ID. */
  parentCallId?: string | undefined
  metadata?: Record<string, string> | undefined
  signal?: AbortSignal | undefined
  /** endedReason of an answered leg the abort signal hangs up (ringing ones are `canceled`); default `canceled`. */
  abortedAnswerReason?: string | undefined
  /** Each change worth keeping (a leg placed, ringing, answered, a linear step). */
  onProgress?: ((p: DialProgress) => void) | undefined
  /** Asked before a linear dial moves on: false ends it (a groupcall hung up between two legs). */
  mayContinue?: (() => Promise<boolean>) | undefined
}

export interface DialProgress {
  callIds: string[]
  dialIndex: number
  /** Legs placed and not yet ended or answered. */
  ringing: number
  answeredCallId: string | null
  /** The node holding the legs (the one placing them). */
  nodeId: string | null
}

export interface LegResult {
  index: number
  to: string | null
  callId: string | null
  status: CallStatus | 'not-placed'
  endedReason: string | null
  error?: string
}

export interface DialResult {
  status: DialStatus
  /** The winning leg, answered (its record as of the answer). */
  answered: Call | null
  legs: LegResult[]
  /** Why the first destination that could not be dialled at all was refused (no route, caller ID, not registered). */
  error?: Error
}

/** The events that move a leg; everything else on the bus is ignored. */
const LEG_EVENTS = new Set(['call.ringing', 'call.answered', 'call.ended', 'call.failed'])
/** Events for calls not known yet are kept this many at most (a leg's first events may beat its originate's answer). */
const EARLY_EVENTS_MAX = 500
/** After a leg's own ring timeout, how long until the dial hangs it up itself (a dialer that never settled). */
const BACKSTOP_MS = 5_000
/** endedReason of legs hung up because another answered (RFC 3326 "Call completed elsewhere"). */
export const ANSWERED_ELSEWHERE = 'answered-elsewhere'

interface Deferred<T> { promise: Promise<T>; resolve(v: T): void }
function deferred<T>(): Deferred<T> {
  let resolve!: (v: T) => void
  const promise = new Promise<T>((r) => { resolve = r })
  return { promise, resolve }
}

class Leg {
  call: Call | null = null
  status: CallStatus | 'not-placed' = 'not-placed'
  endedReason: string | null = null
  error: string | undefined
  /** The dial's own backstop hung it up: it counts as not answered, not as canceled. */
  timedOut = false
  /** The first of answered / ended. */
  readonly settled = deferred<'answered' | 'ended'>()
  readonly ended = deferred<Call>()
  constructor(readonly index: number, readonly to: string | null) {}

  get live(): boolean { return this.call !== null && !isFinal(this.status as CallStatus) }
}

export class GroupDial {
  /** Resolves with the outcome: someone answered, or why nobody did. Never rejects. */
  readonly result: Promise<DialResult>
  private readonly placedOne = deferred<boolean>()
  private readonly legs: Leg[] = []
  private readonly byId = new Map<string, Leg>()
  private readonly early = new Map<string, CallplaneEvent[]>()
  private earlyCount = 0
  private placing = 0
  private winner: Leg | null = null
  private aborted = false
  private firstError: Error | undefined
  private dialIndex = 0
  private readonly unsubscribe: () => void
  private readonly onAbort = () => this.abort('canceled', this.o.abortedAnswerReason)
  private readonly log: DialLog

  constructor(private readonly o: GroupDialOptions) {
    this.log = o.log.child({ component: 'group-dial' })
    this.unsubscribe = o.bus.subscribe((e) => this.onEvent(e))
    if (o.signal?.aborted) this.aborted = true
    else o.signal?.addEventListener('abort', this.onAbort, { once: true })
    this.result = this.run().catch((err: unknown) => {
      this.log.error({ err }, 'group dial failed')
      this.abort()
      this.placedOne.resolve(false)
      return this.outcome()
    })
  }

  /**
   * True once a leg has been placed; false when the dial ended without
   * placing any (every destination refused: `result.error` says why).
   */
  get placed(): Promise<boolean> { return this.placedOne.promise }

  /** Resolves with the call's final record when that leg of this dial ends. */
  legEnded(callId: string): Promise<Call> {
    const leg = this.byId.get(callId)
    if (!leg) return Promise.reject(new Error(`call ${callId} is not a leg of this dial`))
    return leg.ended.promise
  }

  /** Hangs up every leg still up, with this endedReason (an answered one with `answeredReason`). */
  abort(endedReason = 'canceled', answeredReason = endedReason): void {
    if (this.aborted) return
    this.aborted = true
    for (const leg of this.legs) this.hangup(leg, leg.status === 'in-progress' ? answeredReason : endedReason)
  }

  /** Stops following the legs (after the answered one ended, or when nobody needs its end). */
  close(): void {
    this.unsubscribe()
    this.o.signal?.removeEventListener('abort', this.onAbort)
    this.early.clear()
  }

  private async run(): Promise<DialResult> {
    if (!this.aborted) {
      if (this.o.ringMethod === 'ring_all') await this.ringAll()
      else await this.ringLinear()
    }
    this.placedOne.resolve(false)
    return this.outcome()
  }

  private async ringAll(): Promise<void> {
    const legs = await Promise.all(this.o.targets.map((t, i) => this.place(t, i)))
    const placed = legs.filter((l) => l.call)
    if (!placed.length) return
    const backstop = setTimeout(() => this.expire(placed), this.o.timeoutMs + BACKSTOP_MS)
    try {
      await new Promise<void>((resolve) => {
        let left = placed.length
        for (const leg of placed) {
          void leg.settled.promise.then((how) => {
            if (how === 'answered') { this.claim(leg); resolve() } else if (--left === 0) resolve()
          })
        }
      })
    } finally {
      clearTimeout(backstop)
    }
  }

  private async ringLinear(): Promise<void> {
    for (let i = 0; i < this.o.targets.length; i++) {
      if (this.aborted) return
      if (i > 0 && this.o.mayContinue && !(await this.o.mayContinue())) { this.abort(); return }
      this.dialIndex = i
      const leg = await this.place(this.o.targets[i]!, i)
      if (!leg.call) continue
      const backstop = setTimeout(() => this.expire([leg]), this.o.timeoutMs + BACKSTOP_MS)
      const how = await leg.settled.promise
      clearTimeout(backstop)
      if (how === 'answered') { this.claim(leg); return }
      // Hung up by someone else while it rang: the dial was ended, not unanswered.
      if (leg.status === 'canceled' && !leg.timedOut) { this.aborted = true; return }
    }
  }

  private async place(t: DialTarget, index: number): Promise<Leg> {
    const leg = new Leg(index, 'to' in t ? t.to : null)
    this.legs.push(leg)
    if ('error' in t) {
      leg.error = t.error
      this.firstError ??= new Error(t.error)
      return leg
    }
    if (this.aborted) return leg
    const originate = this.o.control.originate
    if (!originate) {
      leg.error = 'this node cannot place calls'
      this.firstError ??= new Error(leg.error)
      return leg
    }
    this.placing++
    try {
      const call = await originate({
        accountId: this.o.accountId, from: this.o.from, to: t.to, timeoutSec: this.o.timeoutMs / 1000, record: false,
        ...(this.o.program ? { program: this.o.program } : {}), ...(this.o.parentCallId ? { parentCallId: this.o.parentCallId } : {}),
        ...(this.o.metadata ? { metadata: this.o.metadata } : {}),
      })
      leg.call = call
      leg.status = call.status
      this.byId.set(call.id, leg)
      this.placedOne.resolve(true)
      for (const e of this.early.get(call.id) ?? []) this.apply(leg, e)
    } catch (err) {
      leg.error = err instanceof Error ? err.message : String(err)
      this.firstError ??= err instanceof Error ? err : new Error(leg.error)
      this.log.info({ to: t.to, err: leg.error }, 'destination could not be dialled')
    } finally {
      if (--this.placing === 0) { this.early.clear(); this.earlyCount = 0 }
    }
    if (leg.call && this.aborted) this.hangup(leg, 'canceled')
    this.progress()
    return leg
  }

  private onEvent(e: CallplaneEvent): void {
    if (!e.callId || e.accountId !== this.o.accountId || !LEG_EVENTS.has(e.type)) return
    const leg = this.byId.get(e.callId)
    if (leg) { this.apply(leg, e); return }
    if (this.placing > 0 && this.earlyCount < EARLY_EVENTS_MAX) {
      const list = this.early.get(e.callId) ?? []
      list.push(e)
      this.early.set(e.callId, list)
      this.earlyCount++
    }
  }

  private apply(leg: Leg, e: CallplaneEvent): void {
    const rec = (e.data as { call?: Partial<Call> }).call
    if (!leg.call || isFinal(leg.status as CallStatus)) return
    if (rec) leg.call = { ...leg.call, ...rec, transcript: [], timings: [] }
    if (e.type === 'call.ringing') {
      if (leg.status === 'queued') leg.status = 'ringing'
    } else if (e.type === 'call.answered') {
      leg.status = 'in-progress'
      leg.settled.resolve('answered')
    } else {
      leg.status = (rec?.status as CallStatus | undefined) ?? (e.type === 'call.failed' ? 'failed' : 'completed')
      leg.endedReason = rec?.endedReason ?? null
      leg.settled.resolve('ended')
      leg.ended.resolve(leg.call)
    }
    this.progress()
  }

  /** An answered leg: the first wins (unless the dial was aborted); any other is hung up. */
  private claim(leg: Leg): void {
    if (this.winner === leg) return
    if (this.winner || this.aborted) { this.hangup(leg, this.aborted ? 'canceled' : ANSWERED_ELSEWHERE); return }
    this.winner = leg
    for (const other of this.legs) if (other !== leg) this.hangup(other, ANSWERED_ELSEWHERE)
    this.progress()
  }

  /** The legs' own ring timeouts should have ended them; whatever still rings is hung up as unanswered. */
  private expire(legs: Leg[]): void {
    for (const leg of legs) {
      if (!leg.live || leg.status === 'in-progress') continue
      leg.timedOut = true
      this.hangup(leg, 'no-answer')
    }
  }

  private hangup(leg: Leg, endedReason: string): void {
    if (!leg.live || !leg.call) return
    const hangup = this.o.control.hangup
    if (!hangup) return
    void hangup(leg.call, { endedReason, by: 'system' }).catch((err: unknown) => this.log.debug({ err, callId: leg.call?.id }, 'leg already gone'))
  }

  private progress(): void {
    if (!this.o.onProgress) return
    this.o.onProgress({
      callIds: this.legs.flatMap((l) => (l.call ? [l.call.id] : [])),
      dialIndex: this.dialIndex,
      ringing: this.legs.filter((l) => l.live && l.status !== 'in-progress').length,
      answeredCallId: this.winner?.call?.id ?? null,
      nodeId: this.legs.find((l) => l.call?.nodeId)?.call?.nodeId ?? null,
    })
  }

  private outcome(): DialResult {
    const legs: LegResult[] = this.legs.map((l) => ({
      index: l.index, to: l.to, callId: l.call?.id ?? null, status: l.status, endedReason: l.endedReason, ...(l.error ? { error: l.error } : {}),
    }))
    const base = { legs, ...(this.firstError ? { error: this.firstError } : {}) }
    if (this.winner?.call) return { status: 'answered', answered: this.winner.call, ...base }
    if (this.aborted) return { status: 'canceled', answered: null, ...base }
    const statuses = this.legs.map((l) => (l.timedOut ? 'no-answer' : l.status))
    // What the caller is told when several ended differently: someone rang out, else someone was busy,
    // else the legs were hung up from outside (a groupcall's hangup), else they failed.
    const status: DialStatus = statuses.includes('no-answer') ? 'no-answer' : statuses.includes('busy') ? 'busy' : statuses.includes('canceled') ? 'canceled' : 'failed'
    return { status, answered: null, ...base }
  }
}
