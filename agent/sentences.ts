/**
 * Splits a streamed LLM reply into speakable pieces, so TTS can start on the
 * first sentence while the model is still writing the rest (the main lever on
 * time-to-first-audio).
 */
const END = /[.!?;:](["')\]]?)\s+/
/** Long clauses are cut at a comma or space so TTS never waits on a run-on sentence. */
const SOFT_LIMIT = 140

export class SentenceSplitter {
  private buf = ''

  push(text: string): string[] {
    this.buf += text
    const out: string[] = []
    for (;;) {
      const m = END.exec(this.buf)
      if (m) {
        const cut = m.index + m[0].length
        const s = this.buf.slice(0, cut).trim()
        this.buf = this.buf.slice(cut)
        if (s) out.push(s)
        continue
      }
      if (this.buf.length > SOFT_LIMIT) {
        const at = Math.max(this.buf.lastIndexOf(', ', SOFT_LIMIT), this.buf.lastIndexOf(' ', SOFT_LIMIT))
        if (at > 0) {
          out.push(this.buf.slice(0, at + 1).trim())
          this.buf = this.buf.slice(at + 1)
          continue
        }
      }
      return out
    }
  }

  flush(): string | undefined {
    const s = this.buf.trim()
    this.buf = ''
    return s || undefined
  }
}
