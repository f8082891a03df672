import { promisify } from 'node:util'
import { brotliCompress, constants as zlibConstants, gzip } from 'node:zlib'
import type { FastifyReply, FastifyRequest } from 'fastify'

const gzipAsync = promisify(gzip)
const brotliAsync = promisify(brotliCompress)

/** Content codings we produce (RFC 9110 §8.4.1): gzip (RFC 1952) and br (RFC 7932). */
export type Coding = 'gzip' | 'br'

/**
 * Bodies below this size go out as they are: a compressed 1 KB body saves
 * less than a TCP segment and the client still pays for the inflate.
 */
export const COMPRESS_MIN_BYTES = 1024

/**
 * A JSON response body kept with its compressed encodings, so a cached body is
 * compressed once per cache entry instead of once per request. gzip is what
 * nearly every HTTP client asks for, so it can be made up front (`eager`, done
 * by the cache's loader: on a refresh-ahead that happens in the background and
 * no reader waits for it); br is made on first demand. Both run on libuv's
 * thread pool (async zlib), not on the event loop.
 */
export class EncodedBody {
  private readonly codings = new Map<Coding, Promise<Buffer>>()

  private constructor(readonly identity: Buffer) {}

  /**
   * Wraps serialized JSON; with `eager`, waits for its gzip encoding too (when
   * it is worth compressing). A cache refresh passes the body it replaces: when
   * the bytes are the same (the common case for a hot page), that body is kept
   * with the encodings already made, so an unchanged page is not compressed again.
   */
  static async of(json: Buffer, opts: { eager?: boolean; previous?: EncodedBody } = {}): Promise<EncodedBody> {
    if (opts.previous && opts.previous.identity.equals(json)) return opts.previous
    const body = new EncodedBody(json)
    if (opts.eager && body.compressible) await body.encoded('gzip').catch(() => undefined)
    return body
  }

  get compressible(): boolean {
    return this.identity.length >= COMPRESS_MIN_BYTES
  }

  /** The body in `coding`; concurrent first requests share one compression. */
  encoded(coding: Coding): Promise<Buffer> {
    let p = this.codings.get(coding)
    if (!p) {
      p = coding === 'gzip'
        ? gzipAsync(this.identity)
        : brotliAsync(this.identity, {
          params: {
            [zlibConstants.BROTLI_PARAM_MODE]: zlibConstants.BROTLI_MODE_TEXT,
            // Quality 5 compresses JSON about as well as gzip -9 at a fraction of brotli's default (11) cost.
            [zlibConstants.BROTLI_PARAM_QUALITY]: 5,
            [zlibConstants.BROTLI_PARAM_SIZE_HINT]: this.identity.length,
          },
        })
      // A failed compression is not remembered: the caller falls back to identity and a later request retries.
      p.catch(() => this.codings.delete(coding))
      this.codings.set(coding, p)
    }
    return p
  }
}

/**
 * The coding to answer with for an Accept-Encoding header (RFC 9110 §12.5.3),
 * or null for identity. Codings are case-insensitive; `q=0` means "not
 * acceptable"; `*` stands for any coding not listed; a missing or empty header
 * means identity only is wanted (we never force a coding on a client that did
 * not ask, although §12.5.3 would allow it). Among acceptable codings the
 * highest q wins, br before gzip on a tie (smaller for JSON). `x-gzip` is
 * gzip's alias (RFC 9110 §8.4.1.3).
 */
export function negotiateCoding(header: string | string[] | undefined): Coding | null {
  if (header === undefined) return null
  const value = Array.isArray(header) ? header.join(',') : header
  let gzipQ = -1
  let brQ = -1
  let starQ = -1
  for (const part of value.split(',')) {
    const [rawName, ...params] = part.split(';')
    const name = rawName!.trim().toLowerCase()
    if (!name) continue
    let q = 1
    for (const p of params) {
      const m = /^\s*q\s*=\s*(\S*)\s*$/i.exec(p)
      // qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] ) (RFC 9110 §12.4.2);
      // a malformed one makes the member unusable rather than guessing its weight.
      if (m) q = /^(0(\.\d{0,3})?|1(\.0{0,3})?)$/.test(m[1]!) ? Number(m[1]) : 0
    }
    if (name === 'gzip' || name === 'x-gzip') gzipQ = Math.max(gzipQ, q)
    else if (name === 'br') brQ = Math.max(brQ, q)
    else if (name === '*') starQ = Math.max(starQ, q)
  }
  if (gzipQ < 0) gzipQ = starQ
  if (brQ < 0) brQ = starQ
  if (brQ <= 0 && gzipQ <= 0) return null
  return brQ >= gzipQ ? 'br' : 'gzip'
}

/**
 * Sends a JSON body in the best coding the request accepts (identity for small
 * bodies, clients that send no Accept-Encoding, or when compression failed).
 * Every answer carries `Vary: Accept-Encoding` so shared caches keep the
 * codings apart (RFC 9110 §12.5.5); Fastify sets Content-Length from the
 * Buffer actually sent.
 */
export async function sendEncoded(req: FastifyRequest, reply: FastifyReply, body: EncodedBody): Promise<FastifyReply> {
  const vary = reply.getHeader('vary')
  // Added to, not replacing, a Vary another hook may have set (e.g. Origin for CORS).
  reply.type('application/json; charset=utf-8').header('vary', vary ? `${String(vary)}, accept-encoding` : 'accept-encoding')
  const coding = body.compressible ? negotiateCoding(req.headers['accept-encoding']) : null
  if (coding) {
    const encoded = await body.encoded(coding).catch(() => null)
    if (encoded) return reply.header('content-encoding', coding).send(encoded)
  }
  return reply.send(body.identity)
}
