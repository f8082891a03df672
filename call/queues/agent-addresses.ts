import type { Store } from '../../store/index.ts'
import type { DialAddress } from '../../store/groupcalls.ts'
import type { PresenceKeys } from '../../store/contact-agents.ts'
import { addressProblems } from '../dial-address.ts'

/**
 * A contact agent's addresses (VoipBin CommonAddress: extensions, numbers,
 * SIP URIs), checked and turned into what presence needs: the extensions
 * whose registration decides `offline`, and the call parties (`to`/`from`
 * of call records) that make the agent `busy`. An outbound leg to an
 * extension is recorded `to: ext:<username>`, a call from the phone
 * `from: <username>` with its extension id.
 */

/** `field: problem` strings, or the presence keys. */
export async function resolveAgentAddresses(store: Store, accountId: string, addresses: DialAddress[]): Promise<{ problems: string[] } | { keys: PresenceKeys }> {
  const problems: string[] = []
  const extensionIds: string[] = []
  const dialKeys: string[] = []
  let reachableOtherwise = false
  for (const [i, a] of addresses.entries()) {
    const where = `addresses/${i}`
    if (a.type === 'agent') { problems.push(`${where}/type: a contact agent is reached on extensions, numbers or SIP URIs (not agent)`); continue }
    if ([a.target, a.target_name].some((v) => v?.includes('${'))) { problems.push(`${where}: no \${variables} here (they belong to flows)`); continue }
    const p = addressProblems(a, where)
    if (p.length) { problems.push(...p); continue }
    if (a.type === 'extension') {
      const ext = a.target_name !== undefined
        ? await store.sipDirectory.extensionByUsername(accountId, a.target_name).then((e) => (e ? { id: e.id, username: e.username } : null))
        : await store.extensions.get(accountId, a.target!).then((e) => (e ? { id: e.id, username: e.extension } : null))
      if (!ext) { problems.push(`${where}: no such extension in this account`); continue }
      extensionIds.push(ext.id)
      dialKeys.push(`ext:${ext.username}`, ext.username)
    } else {
      reachableOtherwise = true
      dialKeys.push(a.target!.trim())
    }
  }
  return problems.length ? { problems } : { keys: { extensionIds: [...new Set(extensionIds)], dialKeys: [...new Set(dialKeys)], reachableOtherwise } }
}
