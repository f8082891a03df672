import type { Campaign, CampaignAmd } from '../../store/campaigns.ts'
import type { StoredAction } from '../../store/flows.ts'
import type { AmdOverride, OriginateRequest } from '../call-control.ts'
import { checkActions } from '../flow/index.ts'

/**
 * What an answered campaign call runs, with the campaign's answering-machine
 * behaviour (Leadlock `amd_voicemail_behavior`) on top, built from the
 * machinery calls already have, no detector of its own:
 *
 * - `type` call: the AI agent (`agentId`); its AMD phase (agent/amd-phase.ts)
 *   runs with the campaign's policy instead of the agent's own: `hangup`
 *   (endedReason machine-detected), `static_message` → leave_message (waits
 *   for the beep or the greeting's end, says `message`, hangs up:
 *   voicemail-left), `agent_decides` → continue (the agent talks to whatever
 *   answered). `enabled: false` turns the agent's own AMD off for the campaign.
 * - `type` flow: the flow's `amd` verb (call/machine-detection.ts) first:
 *   `hangup` hangs a machine up (machine-detected); `static_message` says the
 *   message once the machine's greeting ended (`wait_for_beep`) and hangs up
 *   (voicemail-left); `agent_decides` detects and goes on, the flow reading
 *   `${callplane.amd.result}`. Then the flow (`fetch_flow`) or its actions.
 */

export function amdOverride(amd: CampaignAmd | null): AmdOverride | undefined {
  if (!amd) return undefined
  if (!amd.enabled) return { enabled: false }
  if (amd.behavior === 'hangup') return { enabled: true, onMachine: 'hangup' }
  if (amd.behavior === 'static_message') return { enabled: true, onMachine: 'leave_message', ...(amd.message ? { message: amd.message } : {}) }
  return { enabled: true, onMachine: 'continue' }
}

/** The flow actions a flow campaign's calls run: the AMD part, then the flow. */
export function flowCampaignActions(c: Pick<Campaign, 'flowId' | 'actions' | 'amd'>): StoredAction[] | null {
  const amd = c.amd?.enabled ? c.amd : null
  if (!amd) return null
  const rest: Array<Partial<StoredAction> & { type: string }> = c.flowId
    ? [{ id: 'campaign-flow', type: 'fetch_flow', option: { flow_id: c.flowId } }]
    : (c.actions ?? []).map((a, i) => (i === 0 && !a.id ? { ...a, id: 'campaign-flow' } : a))
  const first = rest[0]?.id ?? 'campaign-flow'
  const head: Array<Partial<StoredAction> & { type: string }> = amd.behavior === 'hangup'
    ? [{ type: 'amd', option: { machine_handle: 'hangup' } }]
    : amd.behavior === 'agent_decides'
      ? [{ type: 'amd', option: { machine_handle: 'continue' } }]
      : [
          { type: 'amd', option: { machine_handle: 'continue', wait_for_beep: true } },
          { type: 'condition_variable', option: { variable: 'callplane.amd.result', condition: '==', value_type: 'string', value_string: 'machine', false_target_id: first } },
          { type: 'talk', option: { text: amd.message ?? '' } },
          { type: 'hangup', option: { reason: 'voicemail-left' } },
        ]
  const r = checkActions([...head, ...rest])
  if (!r.ok) throw new Error(`campaign actions: ${r.problems.join('; ')}`)
  return r.actions as StoredAction[]
}

/** The originate fields that say what the call runs. */
export function campaignProgram(c: Campaign): Pick<OriginateRequest, 'agentId' | 'program' | 'amd'> {
  if (c.type === 'call') {
    const amd = amdOverride(c.amd)
    return { agentId: c.agentId!, ...(amd ? { amd } : {}) }
  }
  const actions = flowCampaignActions(c)
  if (actions) return { program: { actions } }
  return { program: c.flowId ? { flowId: c.flowId } : { actions: c.actions ?? [] } }
}
