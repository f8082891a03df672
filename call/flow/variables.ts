/**
 * A flow run's variables and their `${name}` substitution (VoipBin's flow
 * variables). Names are `callplane.*`; VoipBin's `voipbin.*` spelling of the
 * same name reads and writes the same value, so VoipBin flows run unchanged
 * (`${voipbin.call.digits}` is `${callplane.call.digits}`). An unknown name
 * becomes empty text, as in VoipBin.
 */
/** A value is cut at this many characters, a substituted string too: a tenant's flow cannot grow them without bound. */
export const MAX_VALUE_CHARS = 65_536
const MAX_SUBSTITUTED_CHARS = 262_144
/** At most this many variables in one run. */
export const MAX_VARIABLES = 1000

const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g

export class FlowVariables {
  private readonly values = new Map<string, string>()

  constructor(initial: Record<string, string> = {}) {
    for (const [k, v] of Object.entries(initial)) this.set(k, v)
  }

  private static key(name: string): string {
    return name.startsWith('voipbin.') ? `callplane.${name.slice('voipbin.'.length)}` : name
  }

  get(name: string): string | undefined {
    return this.values.get(FlowVariables.key(name.trim()))
  }

  set(name: string, value: string | number | boolean | null | undefined): void {
    const k = FlowVariables.key(name.trim())
    if (value === null || value === undefined) this.values.delete(k)
    // Values come from callers (speech, digits) and from apps' answers: NUL and lone surrogates,
    // which PostgreSQL's jsonb refuses, must not make the run's state unstorable.
    else {
      if (!this.values.has(k) && this.values.size >= MAX_VARIABLES) throw new Error(`a run may hold at most ${MAX_VARIABLES} variables`)
      this.values.set(k, String(value).slice(0, MAX_VALUE_CHARS).replace(/\u0000/g, '').replace(LONE_SURROGATE, '\ufffd'))
    }
  }

  /** Every variable, under its `callplane.*` name (what a webhook app is sent, what GET shows). */
  toJSON(): Record<string, string> {
    return Object.fromEntries(this.values)
  }

  /** `${name}` → its value in a string. */
  substituteText(text: string): string {
    if (!text.includes('${')) return text
    const out = text.replace(/\$\{([^}]{1,200})\}/g, (_m, name: string) => this.get(name) ?? '')
    return out.length > MAX_SUBSTITUTED_CHARS ? out.slice(0, MAX_SUBSTITUTED_CHARS) : out
  }

  /**
   * Every string inside an option object substituted (VoipBin substitutes in
   * `text`, `data`, `value` and the rest alike). Objects are copied only
   * where something changes, so a verb without `${` costs a walk, no copies.
   */
  substitute<T>(value: T): T {
    if (typeof value === 'string') return this.substituteText(value) as T
    if (Array.isArray(value)) {
      let out: unknown[] | null = null
      value.forEach((v, i) => {
        const s = this.substitute(v)
        if (s !== v) (out ??= value.slice())[i] = s
      })
      return (out ?? value) as T
    }
    if (value && typeof value === 'object') {
      let out: Record<string, unknown> | null = null
      for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
        const s = this.substitute(v)
        if (s !== v) (out ??= { ...(value as Record<string, unknown>) })[k] = s
      }
      return (out ?? value) as T
    }
    return value
  }
}
