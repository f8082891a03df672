import type { Store } from '../../store/index.ts'
import { invalidField, invalidReference } from '../../store/errors.ts'

/**
 * The caller ID of outbound work an account schedules (scheduled calls,
 * sequences): `phone_number_id` (one of the account's numbers), or `from`
 * (a number string the account owns), or by default the agent's number (the
 * first of the account's numbers routed to the agent). A 400 names the field.
 */
export async function resolveCallerId(
  store: Pick<Store, 'numbers'>, accountId: string, agentId: string,
  given: { phoneNumberId?: string | null | undefined; from?: string | null | undefined },
): Promise<{ phoneNumberId: string | null; from: string }> {
  if (given.phoneNumberId) {
    const n = await store.numbers.get(accountId, given.phoneNumberId)
    if (!n) throw invalidReference('phone_number_id', 'number')
    if (given.from && given.from !== n.number) throw invalidField('from', `${given.from} is not the number phone_number_id names (${n.number}): give one of them`)
    return { phoneNumberId: n.id, from: n.number }
  }
  if (given.from) {
    const n = await store.numbers.findInAccount(accountId, given.from)
    if (!n) throw invalidField('from', `${given.from} is not a number of this account (/v1/numbers)`)
    return { phoneNumberId: n.id, from: n.number }
  }
  const n = await store.numbers.firstForAgent(accountId, agentId)
  if (!n) throw invalidField('phone_number_id', 'the agent has no number of its own to call from: give phone_number_id or from')
  return { phoneNumberId: n.id, from: n.number }
}
