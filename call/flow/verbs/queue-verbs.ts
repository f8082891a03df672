import { Type } from '@sinclair/typebox'
import { defineVerb, sleepFor, type VerbContext } from '../verb.ts'
import { withIds } from '../flow-action.ts'
import { FlowAppError } from '../webhook-app.ts'
import type { ForkedRun } from '../flow-services.ts'
import type { StoredAction } from '../../../store/flows.ts'
import { StoreError } from '../../../store/errors.ts'

/**
 * `queue_join {queue_id}` (VoipBin): the caller waits in an ACD queue
 * (call/queues/acd.ts) and the flow forks into the queue's wait flow, looped
 * while it waits (`${callplane.queuecall.position}` is its place in line,
 * set before each pass). When a contact agent answers, the wait flow stops
 * and the two are bridged; the verb returns when the queuecall ends: the
 * agent hung up, service_timeout, a kick (the flow goes on with the next
 * action), wait_timeout (the queue's timeout_flow_id runs instead of the rest
 * of the flow when it has one, else the flow goes on) or the caller hung up.
 *
 * Variables: `callplane.queue.{id,name,detail}`,
 * `callplane.queuecall.{id,timeout_wait,timeout_service,position,status,end_reason,service_agent_id,agent_call_id}`
 * (also as `voipbin.*`).
 */

/** A wait flow that ends sooner than this is started again only after it (no busy loop on an empty flow). */
const MIN_PASS_MS = 1000

export const queueJoin = defineVerb({
  type: 'queue_join',
  summary: 'Wait in an ACD queue hearing its wait flow until a contact agent answers, then talk with them; the flow goes on when the queuecall ends. ${callplane.queuecall.status}: done or abandoned; ${callplane.queuecall.end_reason}: agent-hangup, service-timeout, wait-timeout, kicked, caller-hangup',
  option: Type.Object({
    queue_id: Type.String({ format: 'uuid', description: 'The queue (/v1/queues)' }),
  }, { additionalProperties: false }),
  run: async (ctx, o) => {
    const store = ctx.services.store
    const accountId = ctx.call.accountId
    const acd = ctx.services.acd
    if (!acd) throw new FlowAppError('queue_join: this engine runs no queues')
    const queue = await store.queues.get(accountId, o.queue_id)
    if (!queue) throw new FlowAppError(`queue_join: queue ${o.queue_id} does not exist in this account`)
    const waitFlow = queue.wait_flow_id ? await store.flows.get(accountId, queue.wait_flow_id) : null
    for (const [k, v] of Object.entries({ id: queue.id, name: queue.name, detail: queue.detail })) ctx.vars.set(`callplane.queue.${k}`, v)
    for (const k of ['status', 'end_reason', 'service_agent_id', 'agent_call_id']) ctx.vars.set(`callplane.queuecall.${k}`, null)
    ctx.vars.set('callplane.queuecall.timeout_wait', queue.wait_timeout)
    ctx.vars.set('callplane.queuecall.timeout_service', queue.service_timeout)

    const music = new WaitMusic(ctx)
    const session = await acd.join({ call: ctx.call, queue, control: ctx.control, log: ctx.log, signal: ctx.signal, onAnswer: () => music.stop() })
      .catch((err: unknown) => {
        // The queue was deleted since it was read.
        if (err instanceof StoreError && err.statusCode === 404) throw new FlowAppError(`queue_join: queue ${o.queue_id} does not exist in this account`)
        throw err
      })
    ctx.vars.set('callplane.queuecall.id', session.id)
    if (waitFlow) void music.loop(waitFlow.actions, () => store.queuecalls.position(session.id))
    const out = await session.outcome
    await music.stop()
    ctx.vars.set('callplane.queuecall.status', out.status)
    ctx.vars.set('callplane.queuecall.end_reason', out.endReason)
    ctx.vars.set('callplane.queuecall.service_agent_id', out.serviceAgentId)
    ctx.vars.set('callplane.queuecall.agent_call_id', out.agentCallId)
    if (ctx.signal.aborted) return { outcome: out.endReason }
    if (out.endReason === 'wait-timeout' && queue.timeout_flow_id) {
      const flow = await store.flows.get(accountId, queue.timeout_flow_id)
      if (flow) return { replace: withIds(flow.actions), outcome: 'wait-timeout' }
    }
    return { outcome: out.endReason }
  },
})

/** The wait flow on the caller, pass after pass, until an agent answers or the caller leaves. */
class WaitMusic {
  private current: ForkedRun | null = null
  private stopped = false

  constructor(private readonly ctx: VerbContext) {}

  async loop(actions: StoredAction[], position: () => Promise<number>): Promise<void> {
    const fork = this.ctx.services.fork
    if (!fork) return
    try {
      while (!this.stopped && !this.ctx.signal.aborted) {
        const place = await position().catch(() => 0)
        if (this.stopped) return
        this.ctx.vars.set('callplane.queuecall.position', place)
        const started = Date.now()
        this.current = fork(this.ctx, withIds(actions), this.ctx.vars.toJSON())
        const end = await this.current.done
        this.current = null
        // A wait flow that hung up, failed or was stopped is not started again.
        if (end.reason !== 'completed') {
          if (end.error) this.ctx.log.warn({ error: end.error }, 'queue_join: the wait flow failed; the caller waits in silence')
          return
        }
        const rest = MIN_PASS_MS - (Date.now() - started)
        if (rest > 0) await sleepFor(rest, this.ctx.signal)
      }
    } catch (err) {
      this.ctx.log.warn({ err }, 'queue_join: the wait flow could not run')
    }
  }

  /** Ends the wait flow now (its audio too). */
  async stop(): Promise<void> {
    this.stopped = true
    const run = this.current
    if (!run) return
    run.stop()
    const interrupt = () => this.ctx.control.interrupt?.(this.ctx.call).catch(() => { /* nothing was playing */ })
    await interrupt()
    // A verb of the wait flow between two awaits may start its prompt after that interrupt: once the run
    // has ended nothing more starts; if it takes long, its audio is interrupted again.
    const ended = await Promise.race([run.done.then(() => true), new Promise<false>((r) => setTimeout(() => r(false), 500).unref())])
    if (!ended) await interrupt()
  }
}

export const QUEUE_VERBS = [queueJoin]
