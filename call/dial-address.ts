import { Type, type Static } from '@sinclair/typebox'
import type { Store } from '../store/index.ts'
import type { DialAddress } from '../store/groupcalls.ts'

/**
 * The addresses `connect`, `call` and groupcalls dial: VoipBin's
 * CommonAddress `{type, target, target_name}`, reduced to what the engine
 * can place a leg to, and turned into what the dialer takes
 * (OriginateRequest.to: an E.164 number over the carrier routes, an
 * extension's username, a SIP URI).
 *
 * `agent` is a contact agent (VoipBin: `connect` with an agent-type address,
 * the successor of `agent_call`): `target` is its id, and it stands for the
 * agent's own addresses (`expandAgentAddresses`, before the targets are
 * resolved), rung whatever its status. An AI agent is not dialled: it is the
 * `ai_talk` verb on the call itself.
 */

export const DialAddressSchema = Type.Object({
  type: Type.Union([Type.Literal('tel'), Type.Literal('extension'), Type.Literal('sip'), Type.Literal('agent')], {
    description: 'tel: an E.164 number over the account\'s carrier routes; extension: a registered extension (target = its id, or target_name = its username); sip: a SIP URI; agent: a contact agent (target = its id), whose own addresses are dialled',
  }),
  target: Type.Optional(Type.String({ minLength: 1, maxLength: 500, description: 'tel: +E.164; extension: its id; sip: sip:user@host[:port]; agent: the contact agent\'s id' })),
  target_name: Type.Optional(Type.String({ minLength: 1, maxLength: 200, description: 'extension only: its username' })),
}, { additionalProperties: false })

export const SourceAddressSchema = Type.Object({
  type: Type.Literal('tel', { description: 'The caller ID is a number' }),
  target: Type.String({ minLength: 1, maxLength: 32, description: 'A number of the account (or, for a flow\'s call, that call\'s own from or to)' }),
}, { additionalProperties: false })

const E164 = /^\+[1-9][0-9]{3,15}$/
const SIP_URI = /^sips?:[^\s]+$/i
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i
/** A flow may fill a field from a variable; it is checked again once substituted. */
const templated = (v: string | undefined) => v !== undefined && v.includes('${')

/** `field: problem` strings for one address (`where` = its path, e.g. `destinations/1`). */
export function addressProblems(a: Static<typeof DialAddressSchema>, where: string): string[] {
  switch (a.type) {
    case 'agent':
      if (a.target_name !== undefined) return [`${where}/target_name: only for extension addresses`]
      if (a.target === undefined) return [`${where}/target: required (a contact agent's id; an AI agent is the ai_talk verb)`]
      return templated(a.target) || UUID.test(a.target) ? [] : [`${where}/target: not a contact agent id (a UUID)`]
    case 'tel':
      if (a.target_name !== undefined) return [`${where}/target_name: only for extension addresses`]
      if (a.target === undefined) return [`${where}/target: required (an E.164 number)`]
      return templated(a.target) || E164.test(a.target) ? [] : [`${where}/target: not an E.164 number (+ and 4 to 16 digits)`]
    case 'sip':
      if (a.target_name !== undefined) return [`${where}/target_name: only for extension addresses`]
      if (a.target === undefined) return [`${where}/target: required (a SIP URI)`]
      return templated(a.target) || SIP_URI.test(a.target) ? [] : [`${where}/target: not a sip: or sips: URI`]
    case 'extension':
      if (a.target === undefined && a.target_name === undefined) return [`${where}: give target (the extension's id) or target_name (its username)`]
      if (a.target !== undefined && a.target_name !== undefined) return [`${where}/target_name: give target or target_name, not both`]
      if (a.target !== undefined && !templated(a.target) && !UUID.test(a.target)) return [`${where}/target: not an extension id (a UUID); give the username as target_name`]
      return []
  }
}

/** Why an address cannot be dialled now (after substitution, or an extension that is gone). */
export class AddressError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'AddressError'
  }
}

/**
 * Each `agent` address replaced by that contact agent's addresses (in their
 * order); an agent the account does not have stays, and its leg fails with
 * why. The other addresses are kept as they are.
 */
export async function expandAgentAddresses(store: Store, accountId: string, addresses: DialAddress[]): Promise<DialAddress[]> {
  if (!addresses.some((a) => a.type === 'agent')) return addresses
  const out: DialAddress[] = []
  for (const a of addresses) {
    const agent = a.type === 'agent' && a.target && UUID.test(a.target) ? await store.contactAgents.get(accountId, a.target) : null
    if (agent) out.push(...agent.addresses)
    else out.push(a)
  }
  return out
}

/** What the dialer is given for an address (OriginateRequest.to); AddressError when it cannot be dialled. */
export async function dialTarget(store: Store, accountId: string, a: DialAddress): Promise<string> {
  const problems = addressProblems(a, a.type)
  if (problems.length) throw new AddressError(problems[0]!)
  switch (a.type) {
    case 'tel':
    case 'sip':
      return a.target!.trim()
    case 'extension': {
      if (a.target_name !== undefined) {
        const ext = await store.sipDirectory.extensionByUsername(accountId, a.target_name)
        if (!ext) throw new AddressError(`extension ${a.target_name}: no such extension in this account`)
        return `ext:${ext.username}`
      }
      const ext = await store.extensions.get(accountId, a.target!)
      if (!ext) throw new AddressError(`extension ${a.target}: no such extension in this account`)
      return `ext:${ext.extension}`
    }
    case 'agent':
      throw new AddressError(`contact agent ${a.target}: no such contact agent in this account`)
    default:
      throw new AddressError(`${a.type as string} addresses cannot be dialled`)
  }
}
