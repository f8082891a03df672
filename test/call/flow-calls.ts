import { apiClient } from '../harness/api-client.ts'
import type { Stack } from '../harness/stack.ts'
import { waitFor } from '../harness/wait.ts'
import { RtpCaller, placeCall } from '../sip/app/rtp-caller.ts'

/**
 * What the flow tests do as a user: JSON over the stack's API, a SIP call to
 * a number (sipp signalling, the test owning the caller's RTP), the call
 * record read back until its flows ended.
 */
export interface ExecutedAction { id: string; type: string; outcome?: string; startedAt: string; endedAt?: string }
export interface FlowCallDetail {
  id: string
  status: string
  endedReason: string | null
  activeflows: Array<{ id: string; status: string; executedActions: ExecutedAction[]; variables: Record<string, string>; error: string | null }>
}

export function flowCalls(stack: Pick<Stack, 'baseUrl' | 'apiKey' | 'sipPort'>, dir: string) {
  const { api } = apiClient(stack)
  const post = async (path: string, body: unknown) => {
    const r = await api(path, { method: 'POST', body: JSON.stringify(body) })
    return { status: r.status, body: await r.json() as Record<string, unknown> }
  }
  const detail = async (callId: string) => (await (await api(`/v1/calls/${callId}`)).json()) as FlowCallDetail

  /** Calls `number`; resolves once the engine answered (a new call to it past ringing: a failing app may end it fast), with its id. */
  const call = async (number: string, opts: { sendInfo?: { digits: string; afterMs: number } } = {}) => {
    const caller = new RtpCaller()
    await caller.start()
    const listed = async () => ((await (await api(`/v1/calls?number=${encodeURIComponent(number)}&limit=20`)).json()) as { data: Array<{ id: string; status: string }> }).data
    const before = new Set((await listed()).map((c) => c.id))
    const sipp = await placeCall({ dir, sipPort: stack.sipPort, service: number, caller, ...(opts.sendInfo ? { sendInfo: opts.sendInfo } : {}) })
    const callId = await waitFor(async () => (await listed()).find((c) => !before.has(c.id) && c.status !== 'ringing')?.id, 20_000, `the call to ${number} is answered`)
    return { caller, sipp, callId, close: () => { sipp.kill(); caller.close() } }
  }

  /** The record once the call ended and every run on it has ended. */
  const ended = async (callId: string) => waitFor(async () => {
    const d = await detail(callId)
    return d.status !== 'in-progress' && d.status !== 'ringing' && d.activeflows.every((a) => a.status === 'ended') ? d : null
  }, 30_000, 'the call ended')

  return { api, post, detail, call, ended }
}
