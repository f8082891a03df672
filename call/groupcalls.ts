import { randomUUID } from 'node:crypto'
import type { Store } from '../store/index.ts'
import { isFinal, type CallProgram } from '../store/calls.ts'
import type { DialAddress, Groupcall } from '../store/groupcalls.ts'
import type { StoredAction } from '../store/flows.ts'
import type { CallControl } from './call-control.ts'
import { AddressError, dialTarget } from './dial-address.ts'
import { GroupDial, type DialLog, type DialProgress, type DialTarget, type RingMethod } from './group-dialer.ts'

/**
 * A groupcall (VoipBin CallManagerGroupcall): a GroupDial (group-dialer.ts)
 * with its record in the store, which follows it: the legs placed
 * (`call_ids`), the destination being dialled (`dial_index`), how many ring
 * (`call_count`), who answered (`answer_call_id`), the outcome, and
 * `status` progressing → (hangingup) → hangup once every leg has ended,
 * the answered one included. POST /v1/groupcalls and the flow's `connect`
 * both start one here.
 */

export interface GroupcallDeps {
  store: Store
  control: CallControl
  log: DialLog
  /** The node placing the legs, when the caller knows it (else the legs' own records say). */
  nodeId: string | null
}

export interface StartGroupcall {
  accountId: string
  source: DialAddress
  destinations: DialAddress[]
  /** What each destination dials: from resolveTargets (the API refuses unresolvable ones first). */
  targets: DialTarget[]
  ringMethod: RingMethod
  timeoutMs: number
  /** What the answered call runs (groupcalls); none for a connect, whose leg is bridged. */
  program?: { flowId: string } | { actions: StoredAction[] } | undefined
  /** A connect's flow call: the legs may present its parties as caller ID, and the record names it. */
  masterCallId?: string | undefined
  signal?: AbortSignal | undefined
  /** endedReason of the answered call when `signal` hangs it up. */
  abortedAnswerReason?: string | undefined
  /** Metadata on every leg besides its groupcallId (e.g. the queuecall a queue offer dials for). */
  legMetadata?: Record<string, string> | undefined
}

/** The dials this process runs, so a hangup that reaches this node ends its dial at once (no leg placed after it). */
const running = new Map<string, GroupDial>()

/** Each destination's dial target, or (lenient) the reason it cannot be dialled, kept on that leg. */
export async function resolveTargets(store: Store, accountId: string, destinations: DialAddress[]): Promise<DialTarget[]> {
  return Promise.all(destinations.map(async (d) => {
    try {
      return { to: await dialTarget(store, accountId, d) }
    } catch (err) {
      if (err instanceof AddressError) return { error: err.message }
      throw err
    }
  }))
}

export async function startGroupcall(deps: GroupcallDeps, input: StartGroupcall): Promise<{ record: Groupcall; dial: GroupDial }> {
  const { store } = deps
  // The row is written while the first legs are placed (their INVITEs need not wait for it): progress
  // writes wait for it, and a row that cannot be written stops the dial.
  const id = randomUUID()
  const creating = store.groupcalls.create({
    id, accountId: input.accountId, source: input.source, destinations: input.destinations,
    flowId: input.program && 'flowId' in input.program ? input.program.flowId : null,
    actions: input.program && 'actions' in input.program ? input.program.actions : null,
    ringMethod: input.ringMethod, answerMethod: 'hangup_others', timeoutMs: input.timeoutMs,
    masterCallId: input.masterCallId ?? null, nodeId: deps.nodeId,
  })
  creating.catch(() => {})
  const log = deps.log.child({ groupcallId: id })
  // Progress is for the API's readers: it yields to what the calls wait on (Database.whenIdle).
  const progress = coalesced(async (p: DialProgress) => { await creating; await store.db.whenIdle(); await store.groupcalls.progress(id, {
    callIds: p.callIds, dialIndex: p.dialIndex, callCount: p.ringing, answerCallId: p.answeredCallId, nodeId: p.nodeId,
  }) }, log)
  const program: CallProgram | undefined = input.program
  const dial = new GroupDial({
    bus: store.bus, control: deps.control, log, accountId: input.accountId, from: input.source.target!, targets: input.targets,
    ringMethod: input.ringMethod, timeoutMs: input.timeoutMs, program, parentCallId: input.masterCallId,
    metadata: { ...input.legMetadata, groupcallId: id }, signal: input.signal, abortedAnswerReason: input.abortedAnswerReason, onProgress: progress.write,
    mayContinue: async () => !(await store.groupcalls.hangupRequested(id)),
  })
  let record: Groupcall
  try {
    record = await creating
  } catch (err) {
    dial.abort('canceled', 'system-hangup')
    void dial.result.finally(() => dial.close())
    throw err
  }
  running.set(record.id, dial)
  void (async () => {
    const r = await dial.result
    await progress.flush()
    // The record follows the calls; it yields to what they wait on (the answer's bridge, a queue's next offer).
    await store.db.whenIdle()
    await store.groupcalls.settle(record.id, r.status)
    // The groupcall lives as long as its answered call.
    if (r.answered) await dial.legEnded(r.answered.id)
    await store.db.whenIdle()
    await store.groupcalls.setStatus(record.id, 'hangup')
  })().catch((err: unknown) => log.error({ err }, 'groupcall record could not follow its dial')).finally(() => {
    running.delete(record.id)
    dial.close()
  })
  return { record, dial }
}

/**
 * POST /v1/groupcalls/:id/hangup: every call of the group is hung up
 * (ringing ones canceled, the answered one too). A dial running here stops
 * at once; one on another node sees its legs hung up (through CallControl,
 * which reaches the node holding each) and its record's `hangingup` before
 * it dials a next destination.
 */
export async function hangupGroupcall(deps: Pick<GroupcallDeps, 'store' | 'control'>, gc: Groupcall): Promise<Groupcall> {
  if (gc.status === 'hangup') return gc
  await deps.store.groupcalls.setStatus(gc.id, 'hangingup')
  const local = running.get(gc.id)
  if (local) local.abort('groupcall-hangup')
  const hangup = deps.control.hangup
  if (hangup) {
    await Promise.all(gc.callIds.map(async (id) => {
      const call = await deps.store.calls.getById(id)
      if (!call || isFinal(call.status)) return
      await hangup(call, { endedReason: 'groupcall-hangup', by: 'api' }).catch(() => { /* ended meanwhile */ })
    }))
  }
  return (await deps.store.groupcalls.get(gc.accountId, gc.id)) ?? gc
}

/** At most one write in flight, then the newest state (progress events come faster than the database). */
function coalesced<T>(write: (v: T) => Promise<void>, log: DialLog): { write: (v: T) => void; flush: () => Promise<void> } {
  let next: T | undefined
  let pending = false
  let writing: Promise<void> | null = null
  const loop = async (): Promise<void> => {
    while (pending) {
      pending = false
      await write(next as T).catch((err: unknown) => log.warn({ err }, 'groupcall progress could not be stored'))
    }
    writing = null
  }
  return {
    write: (v) => {
      next = v
      pending = true
      writing ??= loop()
    },
    flush: async () => { await writing },
  }
}
