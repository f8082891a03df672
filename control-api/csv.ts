/**
 * RFC 4180 CSV as the contact imports take it: comma-separated, fields in
 * double quotes may hold commas, newlines and doubled quotes; CRLF or LF line
 * ends; a UTF-8 BOM is dropped. Each record keeps the line it starts on, so
 * an import can name the line of every bad row.
 */

export interface CsvRecord {
  /** 1-based line of the file the record starts on. */
  line: number
  fields: string[]
}

export class CsvError extends Error {
  constructor(readonly line: number, message: string) {
    super(`line ${line}: ${message}`)
    this.name = 'CsvError'
  }
}

export function parseCsv(text: string): CsvRecord[] {
  const s = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text
  const out: CsvRecord[] = []
  let line = 1
  let i = 0
  while (i < s.length) {
    const start = line
    const fields: string[] = []
    for (;;) {
      let value = ''
      if (s[i] === '"') {
        const open = line
        i++
        for (;;) {
          if (i >= s.length) throw new CsvError(open, 'a quoted field is not closed')
          const ch = s[i]!
          if (ch === '"') {
            if (s[i + 1] === '"') { value += '"'; i += 2; continue }
            i++
            break
          }
          if (ch === '\n') line++
          value += ch
          i++
        }
        if (i < s.length && s[i] !== ',' && s[i] !== '\n' && s[i] !== '\r') throw new CsvError(line, 'text after a closing quote')
      } else {
        while (i < s.length && s[i] !== ',' && s[i] !== '\n' && s[i] !== '\r') value += s[i++]
      }
      fields.push(value)
      if (s[i] === ',') { i++; continue }
      if (s[i] === '\r') i++
      if (s[i] === '\n') { i++; line++ }
      break
    }
    // Blank lines carry nothing.
    if (!(fields.length === 1 && fields[0]!.trim() === '')) out.push({ line: start, fields })
  }
  return out
}
