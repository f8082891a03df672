/**
 * A flow run's variables and their `${name}` substitution (VoipBin's flow
 * variables). Names are `callplane.*`; VoipBin's `voipbin.*` spelling of the
 * same name reads and writes the same value, so VoipBin flows run unchanged
 * (`${voipbin.call.digits}` is `${callplane.call.digits}`). An unknown name
 * becomes empty text, as in VoipBin.
 */
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
    else this.values.set(k, String(value).replace(/\u0000/g, '').replace(LONE_SURROGATE, '\ufffd'))
  }

  /** Every variable, under its `callplane.*` name (what a webhook app is sent, what GET shows). */
  toJSON(): Record<string, string> {
    return Object.fromEntries(this.values)
  }

  /** `${name}` → its value in a string. */
  substituteText(text: string): string {
    if (!text.includes('${')) return text
    return text.replace(/\$\{([^}]{1,200})\}/g, (_m, name: string) => this.get(name) ?? '')
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
