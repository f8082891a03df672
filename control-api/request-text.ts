import { ApiError } from './errors.ts'

/**
 * What every string and object a request carries must satisfy before any
 * route sees it, whatever the field: no NUL characters (PostgreSQL text and
 * jsonb cannot hold U+0000), no lone UTF-16 surrogates (not Unicode text:
 * they cannot be encoded as UTF-8, and jsonb refuses their escapes), and JSON
 * no deeper than MAX_JSON_DEPTH (validators, serializers and the store all
 * recurse over it). Checked once, centrally, for bodies, query strings and
 * path parameters, so a bad value is a 400 naming where it is, never a 500
 * from deep inside.
 */
export const MAX_JSON_DEPTH = 32

/**
 * How deeply `text` (JSON) nests objects and arrays, scanning no further than
 * one level past `limit`: linear, without recursion, so a body of a million
 * `[` costs one pass and no stack.
 */
export function jsonDepthExceeds(text: string, limit: number): boolean {
  let depth = 0
  let inString = false
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (inString) {
      if (c === 0x5c) i++ // backslash: skip the escaped character
      else if (c === 0x22) inString = false
    } else if (c === 0x22) {
      inString = true
    } else if (c === 0x5b || c === 0x7b) {
      if (++depth > limit) return true
    } else if (c === 0x5d || c === 0x7d) {
      depth--
    }
  }
  return false
}

/** A high surrogate not followed by a low one, or a low one not preceded by a high one (matched per UTF-16 code unit: no `u` flag). */
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/

/** Why `s` is not acceptable text, or null when it is. */
export function textProblem(s: string): string | null {
  if (s.includes('\u0000')) return 'contains a NUL character (U+0000)'
  if (LONE_SURROGATE.test(s)) return 'contains a lone UTF-16 surrogate (not valid Unicode text)'
  return null
}

/**
 * The first string (value or key) in `value` that is not acceptable text, as
 * a JSON pointer and the reason. `value` is already depth-checked.
 */
export function findBadText(value: unknown, path = ''): { path: string; problem: string } | null {
  if (typeof value === 'string') {
    const problem = textProblem(value)
    return problem ? { path: path || '/', problem } : null
  }
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const bad = findBadText(value[i], `${path}/${i}`)
      if (bad) return bad
    }
    return null
  }
  if (value !== null && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) {
      const keyPath = `${path}/${pointerToken(k)}`
      const keyProblem = textProblem(k)
      if (keyProblem) return { path: keyPath, problem: `has a key that ${keyProblem}` }
      const bad = findBadText(v, keyPath)
      if (bad) return bad
    }
  }
  return null
}

/** RFC 6901 §3 escaping; the bad characters themselves are shown escaped so the message stays printable. */
function pointerToken(k: string): string {
  return k.replace(/~/g, '~0').replace(/\//g, '~1').replace(/[\u0000\ud800-\udfff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)
}

/** The 400 for bad text in `where` (body, querystring, params). */
export function badTextError(where: string, bad: { path: string; problem: string }): ApiError {
  return new ApiError(400, 'validation_failed', `invalid ${where}: ${bad.path} ${bad.problem}`, [{ path: bad.path, message: bad.problem }])
}

export function tooDeepError(): ApiError {
  return new ApiError(400, 'validation_failed', `invalid body: JSON nested deeper than ${MAX_JSON_DEPTH} levels`, [{ path: '/', message: `nesting deeper than ${MAX_JSON_DEPTH}` }])
}
