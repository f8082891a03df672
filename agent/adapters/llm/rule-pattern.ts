import { RE2JS } from 're2js'

/**
 * Agent rule patterns (`rules[].match`, case-insensitive) run on RE2 (re2js):
 * matching time is linear in the utterance whatever the pattern, so a stored
 * pattern such as `(a+)+$` cannot stall a call the way a backtracking engine
 * would. RE2 has no backreferences or lookaround; such patterns are refused
 * when the agent is written (the control API calls rulePatternProblem).
 */
export type RulePattern = RE2JS

/** Compiles a rule pattern; throws RulePatternError saying why it cannot be used. */
export function compileRulePattern(pattern: string): RulePattern {
  try {
    return RE2JS.compile(pattern, RE2JS.CASE_INSENSITIVE)
  } catch (err) {
    throw new RulePatternError(explain(err instanceof Error ? err.message : String(err)))
  }
}

/** Why `pattern` cannot be a rule pattern, or null when it can. */
export function rulePatternProblem(pattern: string): string | null {
  try {
    compileRulePattern(pattern)
    return null
  } catch (err) {
    return (err as Error).message
  }
}

export function rulePatternMatches(re: RulePattern, text: string): boolean {
  return re.matcher(text).find()
}

export class RulePatternError extends Error {
  override name = 'RulePatternError'
}

function explain(message: string): string {
  const detail = message.replace(/^error parsing regexp: /, '')
  if (/invalid escape sequence: `\\[1-9]/.test(detail)) return `backreferences (\\1) are not supported: ${detail}`
  if (/`\(\?(=|!|<=|<!)/.test(detail) || /invalid named capture: `\(\?<[=!]/.test(detail)) return `lookahead and lookbehind are not supported: ${detail}`
  return detail
}
