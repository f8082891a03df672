/**
 * The slice of the Store that call media writes and reads: the agent's
 * transcript, turn timings and summary, quality, call events (DTMF, tool
 * calls, speech updates), recordings, conference membership,
 * and the agent and call rows it starts from. Narrow on purpose: a media
 * plane in a worker thread (MEDIA_WORKERS) reaches the store only through
 * these methods, forwarded to the main thread, which owns the database
 * (PGlite lives in one thread).
 */
import type { Store } from '../../store/index.ts'
import type { RpcChannel } from './rpc-channel.ts'
import type { AgentOutreach } from '../outbound/agent-outreach.ts'

export interface MediaStore {
  calls: Pick<Store['calls'], 'getById' | 'appendTranscript' | 'addTiming' | 'setSummary' | 'attach' | 'setQuality' | 'emit'>
  agents: Pick<Store['agents'], 'get'>
  tools: Pick<Store['tools'], 'forCall'>
  recordings: Pick<Store['recordings'], 'start' | 'markReady' | 'markFailed'>
  conferences: Pick<Store['conferences'], 'setStatus' | 'get'>
  /** The agents' host tools that write (do-not-call, callbacks): not a repository, the main thread's outreach service. */
  outreach?: AgentOutreach
}

/** Repository → the methods a worker may call on it; anything else is refused. */
const METHODS = {
  calls: ['getById', 'appendTranscript', 'addTiming', 'setSummary', 'attach', 'setQuality', 'emit'],
  agents: ['get'],
  tools: ['forCall'],
  recordings: ['start', 'markReady', 'markFailed'],
  conferences: ['setStatus', 'get'],
  outreach: ['addToDoNotCall', 'scheduleCallback'],
} as const satisfies { [R in keyof MediaStore]-?: ReadonlyArray<keyof NonNullable<MediaStore[R]>> }

type Repo = keyof MediaStore

/** Main thread: answers a worker's `store` requests from the real store. */
export function serveMediaStore(channel: RpcChannel, store: MediaStore): void {
  channel.handle('store', async (repo: string, method: string, args: unknown[]) => {
    const allowed = (METHODS as Record<string, readonly string[]>)[repo]
    if (!allowed?.includes(method)) throw new Error(`store.${repo}.${method} is not open to media workers`)
    const target = store[repo as Repo] as unknown as Record<string, (...a: unknown[]) => Promise<unknown>> | undefined
    if (!target) throw new Error(`store.${repo} is not served on this node`)
    return target[method]!.apply(target, args)
  })
}

/** Worker thread: a MediaStore whose every call is a request to the main thread. */
export function mediaStoreOverChannel(channel: RpcChannel): MediaStore {
  const out: Record<string, Record<string, (...a: unknown[]) => Promise<unknown>>> = {}
  for (const [repo, methods] of Object.entries(METHODS)) {
    out[repo] = Object.fromEntries(methods.map((m) => [m, (...args: unknown[]) => channel.request('store', [repo, m, args])]))
  }
  return out as unknown as MediaStore
}
