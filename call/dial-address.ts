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
 * `agent` is refused: an AI agent is not a SIP endpoint a leg can ring (it
 * answers calls the engine terminates), so "connect to an agent" is the
 * `ai_talk` verb on the call itself, not a dial.
 */

export const DialAddressSchema = Type.Object({
  type: Type.Union([Type.Literal('tel'), Type.Literal('extension'), Type.Literal('sip'), Type.Literal('agent')], {
    description: 'tel: an E.164 number over the account\'s carrier routes; extension: a registered extension (target = its id, or target_name = its username); sip: a SIP URI; agent: refused (use the ai_talk verb)',
  }),
  target: Type.Optional(Type.String({ minLength: 1, maxLength: 500, description: 'tel: +E.164; extension: its id; sip: sip:user@host[:port]' })),
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
      return [`${where}/type: an agent cannot be dialled (hand the call to an AI agent with the ai_talk verb)`]
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
    default:
      throw new AddressError(`${a.type} addresses cannot be dialled`)
  }
}
