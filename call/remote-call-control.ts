import type { Call, CallRepository } from '../store/calls.ts'
import { NodeUnreachable, RelayedFailure, type NodeRelay } from '../store/node-relay.ts'
import { CallControlError, type CallControl, type CallControlErrorCode } from './call-control.ts'

/**
 * Where each CallControl method runs when the call it names lives on another
 * node (the call record's `nodeId`):
 * - `owner`: on the node that holds the call, reached through the NodeRelay
 *   (PostgreSQL NOTIFY); the first argument is the call.
 * - `owner-of-both`: the same, and the second argument is another call, which
 *   must live on the same node (a bridge joins two calls' media on one node).
 * - `stream`: only on the node that holds the call: its WebSocket cannot be
 *   relayed, so another node answers 404 naming the node.
 * - `here`: not about one live call; runs where it is asked.
 * A new CallControl method must be given its place here (the mapped type makes
 * it a compile error to forget).
 */
type Routing = 'owner' | 'owner-of-both' | 'stream' | 'here'
const ROUTING: { readonly [K in keyof Required<CallControl>]: Routing } = {
  // The new call is placed by, and lives on, the node that was asked.
  originate: 'here',
  hangup: 'owner', say: 'owner', play: 'owner', sendDtmf: 'owner', startRecording: 'owner', stopRecording: 'owner',
  hold: 'owner', unhold: 'owner', mute: 'owner', unmute: 'owner', transfer: 'owner',
  bridge: 'owner-of-both',
  conferenceJoin: 'owner', conferenceKick: 'owner',
  // A room's recording: the room is mixed where its members are, not named by a call.
  conferenceRecord: 'here',
  openStream: 'stream',
  prompt: 'owner', listen: 'owner', echo: 'owner', transcribe: 'owner', externalMedia: 'owner', interrupt: 'owner',
  // A call's flows run where its signalling is (sip/app starts them there).
  runActions: 'owner', stopFlow: 'owner',
  agentTalk: 'owner', detectMachine: 'owner',
}

type AnyMethod = (...args: unknown[]) => Promise<unknown>

/** What travels to the owning node: the call by id (it reads its own, fresh record), the rest as JSON. */
interface RelayedCall {
  callId: string
  args: unknown[]
  /** `owner-of-both`: the other call, by id. */
  otherCallId?: string
}

/**
 * Wraps this node's CallControl so that an action on a call held by another
 * node runs there (issue 16: live calls are controlled from any node). A call
 * held here takes the local method after one string comparison; nothing else
 * is added to its path. `relay` must be started with `serveRelayedCalls` on
 * every node.
 */
export function callControlAcrossNodes(local: CallControl, o: { nodeId: string; relay: NodeRelay }): CallControl {
  const out: Record<string, unknown> = { ...local }
  const here = (call: Call): boolean => call.nodeId === null || call.nodeId === o.nodeId
  for (const name of Object.keys(ROUTING) as Array<keyof CallControl>) {
    const fn = local[name] as AnyMethod | undefined
    if (typeof fn !== 'function') continue
    const routing = ROUTING[name]
    if (routing === 'here') continue
    if (routing === 'stream') {
      out[name] = (call: Call, ...rest: unknown[]) => {
        if (here(call)) return fn(call, ...rest)
        return Promise.reject(new CallControlError('not_found', `call ${call.id} is on node ${call.nodeId}: its media stream is served only there`, { code: 'call_on_other_node', nodeId: call.nodeId }))
      }
      continue
    }
    out[name] = (call: Call, ...rest: unknown[]) => {
      if (routing === 'owner-of-both') {
        const other = rest[0] as Call
        if (other.nodeId !== call.nodeId && other.nodeId !== null && call.nodeId !== null) {
          return Promise.reject(new CallControlError('unsupported', `calls ${call.id} and ${other.id} live on different nodes (${call.nodeId}, ${other.nodeId}): a bridge needs both calls on one node`, { code: 'calls_on_different_nodes' }))
        }
        if (here(call)) return fn(call, ...rest)
        return relay(o.relay, call, name, { callId: call.id, args: rest.slice(1), otherCallId: other.id })
      }
      if (here(call)) return fn(call, ...rest)
      return relay(o.relay, call, name, { callId: call.id, args: rest })
    }
  }
  return out as CallControl
}

async function relay(r: NodeRelay, call: Call, method: string, req: RelayedCall): Promise<unknown> {
  const nodeId = call.nodeId!
  try {
    return await r.request(nodeId, method, req)
  } catch (err) {
    if (err instanceof RelayedFailure) throw asCallControlError(err)
    if (err instanceof NodeUnreachable) {
      throw new CallControlError('unavailable', err.waitedMs
        ? `call ${call.id} lives on node ${nodeId}, which did not answer within ${seconds(err.waitedMs)}: the node may be down`
        : `call ${call.id} lives on node ${nodeId}, which cannot be reached: ${err.message}`,
      { code: 'node_unreachable', nodeId })
    }
    throw new CallControlError('unavailable', `call ${call.id} lives on node ${nodeId}; the action could not be sent there: ${(err as Error).message}`, { code: 'node_unreachable', nodeId })
  }
}

const CODES: ReadonlySet<string> = new Set<CallControlErrorCode>(['not_found', 'invalid_state', 'unsupported', 'unavailable', 'rejected', 'busy'])

/** The owning node's CallControlError comes back as the same error (same code, message, status); anything else as a plain error. */
function asCallControlError(err: RelayedFailure): Error {
  const f = err.failure
  if (f.name === 'CallControlError' && f.code && CODES.has(f.code)) return new CallControlError(f.code as CallControlErrorCode, f.message, f.details)
  return new Error(`node ${err.nodeId}: ${f.message}`)
}

/**
 * The owning node's side: runs a relayed action on `local` (never the
 * wrapped CallControl, so a request cannot bounce between nodes) with the
 * call record read here.
 */
export function serveRelayedCalls(local: CallControl, calls: Pick<CallRepository, 'getById'>): (method: string, args: unknown) => Promise<unknown> {
  return async (method, payload) => {
    const routing = (ROUTING as Record<string, Routing | undefined>)[method]
    const fn = local[method as keyof CallControl] as AnyMethod | undefined
    if ((routing !== 'owner' && routing !== 'owner-of-both') || typeof fn !== 'function') {
      throw new CallControlError('unsupported', `${method} cannot be relayed to another node`)
    }
    const req = payload as RelayedCall
    const call = await calls.getById(req.callId)
    if (!call) throw new CallControlError('not_found', `call ${req.callId} not found`)
    if (routing === 'owner-of-both') {
      const other = req.otherCallId ? await calls.getById(req.otherCallId) : null
      if (!other) throw new CallControlError('not_found', `call ${req.otherCallId ?? '(none)'} not found`)
      return fn(call, other, ...req.args)
    }
    return fn(call, ...req.args)
  }
}

function seconds(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000} s` : `${ms} ms`
}
