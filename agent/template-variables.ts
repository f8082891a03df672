/**
 * `{{name}}` dynamic variables in an agent's prompt and spoken lines
 * (Leadlock's `dynamic_variables`, substituted into prompts and greetings).
 *
 * Names are letters, digits, `_`, `.` and `-` (`{{ name }}` with spaces is the
 * same variable). A name with no value is replaced by the empty string, so a
 * caller never hears "curly brace curly brace"; text that is not a variable
 * reference stays as written.
 */
const REFERENCE = /\{\{\s*([A-Za-z0-9_.-]{1,64})\s*\}\}/g

export function substituteVariables(text: string, vars: Readonly<Record<string, string>>): string {
  return text.replace(REFERENCE, (_m, name: string) => (Object.hasOwn(vars, name) ? vars[name]! : ''))
}

/** String values of a metadata object: numbers and booleans as text, everything else left out. */
export function stringValues(meta: Readonly<Record<string, unknown>> | null | undefined): Record<string, string> {
  const out: Record<string, string> = {}
  for (const [k, v] of Object.entries(meta ?? {})) {
    if (typeof v === 'string') out[k] = v
    else if (typeof v === 'number' || typeof v === 'boolean') out[k] = String(v)
  }
  return out
}
