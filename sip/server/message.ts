/**
 * SIP message model, parser and serializer (RFC 3261 §7, §20, §25).
 *
 * Headers are kept as an ordered list of (canonical name, raw value) so that a
 * message round-trips without reordering; multi-valued headers are split only
 * on demand (`getAll`). Compact header forms are expanded on parse (§7.3.3).
 */

export const MAGIC_COOKIE = 'z9hG4bK'

export class SipParseError extends Error {
  constructor(message: string, readonly partial?: SipMessage) {
    super(message)
  }
}

export interface Header { name: string; value: string }

export interface ParseLimits { maxBytes: number; maxHeaders: number; maxHeaderLength: number }
export const DEFAULT_LIMITS: ParseLimits = { maxBytes: 65535, maxHeaders: 256, maxHeaderLength: 8192 }

// RFC 3261 §7.3.3 compact forms, plus the ones registered later (RFC 3265, 3515, 3892, 4028, 3841).
const COMPACT: Record<string, string> = {
  i: 'call-id', m: 'contact', e: 'content-encoding', l: 'content-length', c: 'content-type',
  f: 'from', s: 'subject', k: 'supported', t: 'to', v: 'via', o: 'event', r: 'refer-to',
  b: 'referred-by', u: 'allow-events', x: 'session-expires', a: 'accept-contact', j: 'reject-contact',
  d: 'request-disposition', y: 'identity',
}

const CANONICAL: Record<string, string> = {
  'call-id': 'Call-ID', cseq: 'CSeq', via: 'Via', from: 'From', to: 'To', contact: 'Contact',
  'content-length': 'Content-Length', 'content-type': 'Content-Type', 'max-forwards': 'Max-Forwards',
  route: 'Route', 'record-route': 'Record-Route', 'www-authenticate': 'WWW-Authenticate',
  'proxy-authenticate': 'Proxy-Authenticate', authorization: 'Authorization',
  'proxy-authorization': 'Proxy-Authorization', rseq: 'RSeq', rack: 'RAck', 'refer-to': 'Refer-To',
  'referred-by': 'Referred-By', 'mime-version': 'MIME-Version', 'p-asserted-identity': 'P-Asserted-Identity',
  'session-expires': 'Session-Expires', 'min-se': 'Min-SE', 'user-agent': 'User-Agent',
  'content-encoding': 'Content-Encoding', 'allow-events': 'Allow-Events', 'accept-contact': 'Accept-Contact',
  'reject-contact': 'Reject-Contact', 'request-disposition': 'Request-Disposition', 'subscription-state': 'Subscription-State',
  'content-disposition': 'Content-Disposition', 'call-info': 'Call-Info', 'alert-info': 'Alert-Info',
  'error-info': 'Error-Info', 'retry-after': 'Retry-After', 'in-reply-to': 'In-Reply-To',
}

/** Headers whose comma-separated values are separate header field values (§7.3.1). */
const LIST_HEADERS = new Set(['via', 'route', 'record-route', 'contact', 'allow', 'supported', 'require',
  'proxy-require', 'unsupported', 'accept', 'accept-encoding', 'accept-language', 'allow-events', 'path',
  'content-encoding', 'in-reply-to', 'p-asserted-identity', 'alert-info', 'call-info', 'error-info'])

export function canonicalName(raw: string): string {
  const lower = raw.toLowerCase()
  const expanded = COMPACT[lower] ?? lower
  const canon = CANONICAL[expanded]
  if (canon) return canon
  if (expanded !== lower) return expanded.replace(/(^|-)([a-z])/g, (_m, d: string, c: string) => d + c.toUpperCase())
  return raw
}

const TOKEN_RE = /^[A-Za-z0-9\-.!%*_+`'~]+$/

export class SipMessage {
  isRequest = true
  method = ''
  uri = ''
  status = 0
  reason = ''
  headers: Header[] = []
  body: Buffer = Buffer.alloc(0)

  static request(method: string, uri: string): SipMessage {
    const m = new SipMessage()
    m.method = method
    m.uri = uri
    return m
  }

  static response(status: number, reason: string): SipMessage {
    const m = new SipMessage()
    m.isRequest = false
    m.status = status
    m.reason = reason
    return m
  }

  /** First value of a header (for list headers, the first field line, unsplit). */
  get(name: string): string | undefined {
    const lower = name.toLowerCase()
    for (const h of this.headers) if (h.name.toLowerCase() === lower) return h.value
    return undefined
  }

  has(name: string): boolean { return this.get(name) !== undefined }

  /** All values, with comma-separated list headers split into separate values. */
  getAll(name: string): string[] {
    const lower = name.toLowerCase()
    const out: string[] = []
    for (const h of this.headers) {
      if (h.name.toLowerCase() !== lower) continue
      if (LIST_HEADERS.has(lower)) out.push(...splitList(h.value))
      else out.push(h.value)
    }
    return out
  }

  set(name: string, value: string): this {
    const canon = canonicalName(name)
    const lower = canon.toLowerCase()
    const idx = this.headers.findIndex((h) => h.name.toLowerCase() === lower)
    this.headers = this.headers.filter((h, i) => i === idx || h.name.toLowerCase() !== lower)
    if (idx >= 0) this.headers[idx] = { name: canon, value }
    else this.headers.push({ name: canon, value })
    return this
  }

  add(name: string, value: string): this {
    this.headers.push({ name: canonicalName(name), value })
    return this
  }

  /** Inserts before the first header of that name (or at the top), e.g. a new Via. */
  prepend(name: string, value: string): this {
    const canon = canonicalName(name)
    const lower = canon.toLowerCase()
    const idx = this.headers.findIndex((h) => h.name.toLowerCase() === lower)
    this.headers.splice(idx >= 0 ? idx : 0, 0, { name: canon, value })
    return this
  }

  remove(name: string): this {
    const lower = name.toLowerCase()
    this.headers = this.headers.filter((h) => h.name.toLowerCase() !== lower)
    return this
  }

  /** Removes the first value of a list header (e.g. top Via, top Route). */
  removeFirst(name: string): string | undefined {
    const lower = name.toLowerCase()
    const idx = this.headers.findIndex((h) => h.name.toLowerCase() === lower)
    if (idx < 0) return undefined
    const h = this.headers[idx]!
    const parts = splitList(h.value)
    const first = parts.shift()
    if (parts.length === 0) this.headers.splice(idx, 1)
    else h.value = parts.join(', ')
    return first
  }

  get callId(): string { return this.get('call-id') ?? '' }
  get cseq(): { seq: number; method: string } {
    const v = this.get('cseq') ?? ''
    const m = /^\s*(\d+)\s+(\S+)\s*$/.exec(v)
    return m ? { seq: Number(m[1]), method: m[2]!.toUpperCase() } : { seq: -1, method: '' }
  }
  get fromTag(): string | undefined { return paramOf(this.get('from'), 'tag') }
  get toTag(): string | undefined { return paramOf(this.get('to'), 'tag') }
  get topVia(): Via | undefined {
    const v = this.getAll('via')[0]
    return v === undefined ? undefined : parseVia(v)
  }

  clone(): SipMessage {
    const m = new SipMessage()
    m.isRequest = this.isRequest
    m.method = this.method
    m.uri = this.uri
    m.status = this.status
    m.reason = this.reason
    m.headers = this.headers.map((h) => ({ ...h }))
    m.body = this.body
    return m
  }

  /** Start line and headers, always with a Content-Length recomputed from the body bytes (§20.14). */
  private head(): string {
    let s = this.isRequest ? `${this.method} ${this.uri} SIP/2.0\r\n` : `SIP/2.0 ${this.status} ${this.reason}\r\n`
    for (const h of this.headers) {
      if (h.name === 'Content-Length') continue
      s += `${h.name}: ${h.value}\r\n`
    }
    return s + `Content-Length: ${this.body.length}\r\n\r\n`
  }

  toBuffer(): Buffer {
    const head = this.head()
    if (this.body.length === 0) return Buffer.from(head, 'utf8')
    return Buffer.concat([Buffer.from(head, 'utf8'), this.body])
  }

  toString(): string {
    const head = this.head()
    return this.body.length === 0 ? head : head + this.body.toString('utf8')
  }
}

/** Splits a header value on commas outside quotes and angle brackets. */
export function splitList(value: string): string[] {
  const out: string[] = []
  let depth = 0
  let inQuote = false
  let start = 0
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i)
    if (inQuote) {
      if (c === 0x5c) i++ // quoted-pair
      else if (c === 0x22) inQuote = false
    } else if (c === 0x22) inQuote = true
    else if (c === 0x3c) depth++
    else if (c === 0x3e) depth = Math.max(0, depth - 1)
    else if (c === 0x2c && depth === 0) {
      const part = value.slice(start, i).trim()
      if (part) out.push(part)
      start = i + 1
    }
  }
  const last = value.slice(start).trim()
  if (last) out.push(last)
  return out
}

export interface ParseOptions {
  /** Stream transports frame by Content-Length, so it is mandatory (§18.3). */
  stream?: boolean
  limits?: ParseLimits
  /** Messages from applications: drachtio-srf computes Content-Length in UTF-16 units, so trust the framing instead. */
  ignoreContentLength?: boolean
}

/**
 * Parses one complete SIP message. Throws SipParseError with a reason suitable
 * for a 400 reason phrase; `partial` carries what could be read so the caller
 * can still answer a request whose headers were readable.
 */
export function parseMessage(buf: Buffer, opts: ParseOptions = {}): SipMessage {
  const limits = opts.limits ?? DEFAULT_LIMITS
  if (buf.length > limits.maxBytes) throw new SipParseError('Message Too Large')
  let sep = buf.indexOf('\r\n\r\n')
  let sepLen = 4
  if (sep < 0) {
    // Tolerate bare-LF messages (RFC 3261 §7 says CRLF, but be liberal in what we accept).
    sep = buf.indexOf('\n\n')
    sepLen = 2
    if (sep < 0) {
      // No blank line: a header-only message truncated by the sender, or junk.
      sep = buf.length
      sepLen = 0
    }
  }
  const head = buf.toString('utf8', 0, sep)
  const rawLines = head.split(/\r?\n/)
  // RFC 3261 §7.5: ignore leading CRLFs before the start line.
  while (rawLines.length && rawLines[0] === '') rawLines.shift()
  if (rawLines.length === 0) throw new SipParseError('Empty Message')
  const startLine = rawLines.shift()!
  const m = new SipMessage()
  const badVersion = parseStartLine(startLine, m)

  // Unfold continuation lines (§7.3.1).
  const lines: string[] = []
  for (const l of rawLines) {
    if ((l.startsWith(' ') || l.startsWith('\t')) && lines.length) lines[lines.length - 1] += ' ' + l.trim()
    else lines.push(l)
  }
  if (lines.length > limits.maxHeaders) throw new SipParseError('Too Many Headers', m)
  for (const line of lines) {
    if (line.length > limits.maxHeaderLength) throw new SipParseError('Header Too Long', m)
    const colon = line.indexOf(':')
    if (colon <= 0) throw new SipParseError('Malformed Header Line', m)
    const name = line.slice(0, colon).trim()
    if (!TOKEN_RE.test(name)) throw new SipParseError('Malformed Header Name', m)
    m.headers.push({ name: canonicalName(name), value: line.slice(colon + 1).trim() })
  }
  if (badVersion) throw new SipParseError('Version Not Supported', m)

  const bodyStart = Math.min(buf.length, sep + sepLen)
  const available = buf.length - bodyStart
  const clValues = m.headers.filter((h) => h.name === 'Content-Length')
  if (clValues.length > 1 && new Set(clValues.map((h) => h.value)).size > 1) throw new SipParseError('Conflicting Content-Length', m)
  const clRaw = clValues[0]?.value
  if (opts.ignoreContentLength) {
    m.body = buf.subarray(bodyStart)
  } else if (clRaw !== undefined) {
    if (!/^\d{1,9}$/.test(clRaw)) throw new SipParseError('Bad Content-Length', m)
    const cl = Number(clRaw)
    // §18.3: a datagram shorter than Content-Length is an error; extra bytes are discarded.
    if (cl > available) throw new SipParseError('Content-Length Exceeds Message', m)
    m.body = buf.subarray(bodyStart, bodyStart + cl)
  } else {
    if (opts.stream) throw new SipParseError('Missing Content-Length', m)
    m.body = buf.subarray(bodyStart)
  }
  return m
}

function parseStartLine(line: string, m: SipMessage): boolean {
  if (/^SIP\//i.test(line)) {
    const r = /^SIP\/(\d+\.\d+) (\d{3})(?: (.*))?$/i.exec(line)
    if (!r) throw new SipParseError('Bad Status Line')
    if (r[1] !== '2.0') throw new SipParseError('Version Not Supported')
    const code = Number(r[2])
    if (code < 100 || code > 699) throw new SipParseError('Bad Status Code')
    m.isRequest = false
    m.status = code
    m.reason = r[3] ?? ''
    return false
  }
  const parts = line.split(' ')
  if (parts.length !== 3) throw new SipParseError('Bad Request Line')
  const [method, uri, version] = parts as [string, string, string]
  if (!TOKEN_RE.test(method)) throw new SipParseError('Bad Method')
  m.isRequest = true
  m.method = method
  m.uri = uri
  if (!/^SIP\/\d+\.\d+$/i.test(version)) throw new SipParseError('Bad Request Line')
  if (!/^[A-Za-z][A-Za-z0-9+\-.]*:\S+$/.test(uri)) throw new SipParseError('Bad Request-URI', m)
  // §8.2 / §21.5.6: an unsupported version is answered 505 once the headers are read.
  return version.toUpperCase() !== 'SIP/2.0'
}

// ---- header value helpers --------------------------------------------------

export interface NameAddr { display: string; uri: string; params: Record<string, string | null>; bracketed: boolean }

/** Parses name-addr / addr-spec with header params (§20.10, §25.1). */
export function parseNameAddr(value: string): NameAddr | undefined {
  let v = value.trim()
  let display = ''
  let uri: string
  let rest: string
  let bracketed = false
  // skip a quoted display name
  let i = 0
  if (v.startsWith('"')) {
    i = 1
    while (i < v.length && v[i] !== '"') { if (v[i] === '\\') i++; i++ }
    if (i >= v.length) return undefined
    display = v.slice(0, i + 1)
    i++
  }
  const lt = v.indexOf('<', i)
  if (lt >= 0) {
    const gt = v.indexOf('>', lt)
    if (gt < 0) return undefined
    if (!display) display = v.slice(0, lt).trim()
    uri = v.slice(lt + 1, gt)
    // RFC 4475 §3.1.2.15 (badaspec): no whitespace inside the angle brackets.
    if (uri !== uri.trim()) return undefined
    rest = v.slice(gt + 1)
    bracketed = true
  } else {
    if (display) return undefined
    v = v.slice(i)
    const semi = v.indexOf(';')
    uri = (semi >= 0 ? v.slice(0, semi) : v).trim()
    rest = semi >= 0 ? v.slice(semi) : ''
    // §20.10: a URI with '?', ',' or ';' must be bracketed, so an addr-spec cannot carry headers.
    if (uri.includes('?') || uri.includes(',')) return undefined
  }
  // Empty parameters (';;') are malformed (RFC 4475 badinv01).
  if (/;\s*(;|$)/.test(rest)) return undefined
  if (!/^[A-Za-z][A-Za-z0-9+\-.]*:/.test(uri)) return undefined
  return { display, uri, params: parseParams(rest), bracketed }
}

export function parseParams(s: string): Record<string, string | null> {
  const out: Record<string, string | null> = {}
  for (const p of s.split(';')) {
    const t = p.trim()
    if (!t) continue
    const eq = t.indexOf('=')
    if (eq < 0) out[t.toLowerCase()] = null
    else out[t.slice(0, eq).trim().toLowerCase()] = t.slice(eq + 1).trim()
  }
  return out
}

export function formatParams(params: Record<string, string | null>): string {
  let s = ''
  for (const [k, v] of Object.entries(params)) s += v === null ? `;${k}` : `;${k}=${v}`
  return s
}

export function paramOf(headerValue: string | undefined, name: string): string | undefined {
  if (!headerValue) return undefined
  const na = parseNameAddr(headerValue)
  const v = na?.params[name]
  return v === null || v === undefined ? undefined : v
}

export interface Via { transport: string; host: string; port?: number; params: Record<string, string | null>; raw: string }

/** Parses one Via value (§20.42), e.g. `SIP/2.0/UDP [::1]:5060;branch=z9hG4bK1;rport`. */
export function parseVia(value: string): Via | undefined {
  const r = /^SIP\s*\/\s*2\.0\s*\/\s*([A-Za-z]+)\s+(\[[0-9A-Fa-f:.]+\]|[^\s;:]+)(?:\s*:\s*(\d+))?\s*(;.*)?$/i.exec(value.trim())
  if (!r) return undefined
  const port = r[3] ? Number(r[3]) : undefined
  if (port !== undefined && (port < 1 || port > 65535)) return undefined
  return { transport: r[1]!.toUpperCase(), host: r[2]!, port, params: parseParams(r[4] ?? ''), raw: value }
}

export function formatVia(v: Via): string {
  return `SIP/2.0/${v.transport} ${v.host}${v.port ? ':' + v.port : ''}${formatParams(v.params)}`
}

export interface SipUri { scheme: string; user?: string; password?: string; host: string; port?: number; params: Record<string, string | null>; headers: string }

/** Parses sip:/sips: URIs (§19.1.1); other schemes return undefined. */
export function parseUri(uri: string): SipUri | undefined {
  // userinfo may hold almost anything but '@' (RFC 4475 intmeth), so it is everything before the '@'.
  const r = /^(sips?):(?:([^@]*)@)?(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-_.]+)(?::(\d{1,5}))?((?:;[^?]*)?)(?:\?(.*))?$/i.exec(uri.trim())
  if (!r) return undefined
  const port = r[4] ? Number(r[4]) : undefined
  if (port !== undefined && (port < 1 || port > 65535)) return undefined
  let user: string | undefined
  let password: string | undefined
  if (r[2] !== undefined) {
    const colon = r[2].indexOf(':')
    user = colon >= 0 ? r[2].slice(0, colon) : r[2]
    password = colon >= 0 ? r[2].slice(colon + 1) : undefined
  }
  return {
    scheme: r[1]!.toLowerCase(), user, password, host: r[3]!, port,
    params: parseParams(r[5] ?? ''), headers: r[6] ?? '',
  }
}

/** Strips IPv6 brackets. */
export function bareHost(host: string): string {
  return host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host
}

/** Brackets an IPv6 literal for use in URIs and Via. */
export function uriHost(host: string): string {
  return host.includes(':') && !host.startsWith('[') ? `[${host}]` : host
}

/**
 * Checks the mandatory headers of a request (§8.1.1) and returns a 400 reason
 * phrase, or undefined when the request is well-formed enough to process.
 */
export function validateRequest(m: SipMessage): string | undefined {
  for (const h of ['Via', 'From', 'To', 'Call-ID', 'CSeq']) {
    if (!m.has(h)) return `Missing ${h}`
  }
  if (m.headers.filter((h) => h.name === 'Call-ID').length > 1) return 'Multiple Call-ID'
  if (m.headers.filter((h) => h.name === 'CSeq').length > 1) return 'Multiple CSeq'
  if (m.headers.filter((h) => h.name === 'From').length > 1) return 'Multiple From'
  if (m.headers.filter((h) => h.name === 'To').length > 1) return 'Multiple To'
  const cseq = m.cseq
  // §8.1.1.5: CSeq number is a 32-bit unsigned integer below 2^31.
  if (cseq.seq < 0 || cseq.seq >= 2 ** 31 || !/^\s*\d{1,10}\s/.test(m.get('cseq') ?? '')) return 'Bad CSeq'
  if (cseq.method !== m.method.toUpperCase()) return 'CSeq Method Mismatch'
  if (!parseNameAddr(m.get('from')!)) return 'Bad From'
  if (!parseNameAddr(m.get('to')!)) return 'Bad To'
  const via = m.topVia
  if (!via) return 'Bad Via'
  for (const h of m.headers) {
    if (h.name !== 'Via') continue
    // Empty list elements or parameters (RFC 4475 badinv01: `;;,;,,`).
    if (/(^|,)\s*(,|$)|;\s*(;|,|$)/.test(h.value)) return 'Bad Via'
    for (const v of splitList(h.value)) if (!parseVia(v)) return 'Bad Via'
  }
  // A bare magic cookie is no transaction id at all (RFC 4475 badbranch).
  if (via.params['branch'] === MAGIC_COOKIE) return 'Bad Via Branch'
  const mf = m.get('max-forwards')
  if (mf !== undefined && (!/^\d{1,10}$/.test(mf) || Number(mf) > 255)) return 'Bad Max-Forwards'
  if (/^sips?:/i.test(m.uri)) {
    const u = parseUri(m.uri)
    // Headers are not allowed in a Request-URI (§19.1.1 table; RFC 4475 escruri).
    if (!u || u.headers) return 'Bad Request-URI'
  }
  for (const c of m.getAll('contact')) {
    if (c !== '*' && !parseNameAddr(c)) return 'Bad Contact'
  }
  if (!m.callId || /\s/.test(m.callId)) return 'Bad Call-ID'
  return undefined
}

/** Checks the headers a response needs before it can be matched to a client transaction (§17.1.3). */
export function validateResponse(m: SipMessage): string | undefined {
  for (const h of ['Via', 'From', 'To', 'Call-ID', 'CSeq']) if (!m.has(h)) return `Missing ${h}`
  if (m.cseq.seq < 0) return 'Bad CSeq'
  if (!m.topVia) return 'Bad Via'
  return undefined
}

let counter = 0
const RAND_PREFIX = Math.random().toString(36).slice(2, 8)
/** Unique-enough token for tags and branches: random prefix + counter. */
export function randomToken(): string {
  counter = (counter + 1) % 0x7fffffff
  return RAND_PREFIX + counter.toString(36) + Math.floor(Math.random() * 0xffffff).toString(36)
}

export function newBranch(): string { return MAGIC_COOKIE + randomToken() }

export const REASONS: Record<number, string> = {
  100: 'Trying', 180: 'Ringing', 181: 'Call Is Being Forwarded', 182: 'Queued', 183: 'Session Progress',
  200: 'OK', 202: 'Accepted', 300: 'Multiple Choices', 301: 'Moved Permanently', 302: 'Moved Temporarily',
  400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found', 405: 'Method Not Allowed',
  407: 'Proxy Authentication Required', 408: 'Request Timeout', 413: 'Request Entity Too Large',
  415: 'Unsupported Media Type', 416: 'Unsupported URI Scheme', 420: 'Bad Extension', 480: 'Temporarily Unavailable',
  481: 'Call/Transaction Does Not Exist', 482: 'Loop Detected', 483: 'Too Many Hops', 486: 'Busy Here',
  487: 'Request Terminated', 488: 'Not Acceptable Here', 491: 'Request Pending', 500: 'Server Internal Error',
  501: 'Not Implemented', 503: 'Service Unavailable', 504: 'Server Time-out', 505: 'Version Not Supported',
  600: 'Busy Everywhere', 603: 'Decline',
}

/**
 * Builds a response to a request (§8.2.6): copies Via, From, To, Call-ID, CSeq,
 * and (when given) adds a To tag.
 */
export function makeResponse(req: SipMessage, status: number, reason?: string, toTag?: string): SipMessage {
  const res = SipMessage.response(status, reason ?? REASONS[status] ?? 'Unknown')
  for (const h of req.headers) {
    const n = h.name
    if (n === 'Via' || n === 'From' || n === 'Call-ID' || n === 'CSeq') res.headers.push({ ...h })
    else if (n === 'To') {
      let v = h.value
      if (toTag && status > 100 && paramOf(v, 'tag') === undefined) v += `;tag=${toTag}`
      res.headers.push({ name: 'To', value: v })
    }
  }
  return res
}
