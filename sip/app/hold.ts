/**
 * Hold and unhold by re-INVITE, RFC 3264 §8.4: the holder offers the stream
 * "sendonly" (it still sends music-on-hold) or "inactive"; unhold offers
 * "sendrecv" again. The session version in o= goes up with every new offer
 * (RFC 3264 §8).
 */

export type SdpDirection = 'sendrecv' | 'sendonly' | 'recvonly' | 'inactive'

/** The SDP with every media section's direction set to `dir` and o= version bumped. */
export function withDirection(sdp: string, dir: SdpDirection): string {
  const eol = sdp.includes('\r\n') ? '\r\n' : '\n'
  const lines = sdp.split(/\r?\n/).filter((l) => l !== '' && !/^a=(sendrecv|sendonly|recvonly|inactive)\s*$/.test(l))
  const out: string[] = []
  let inMedia = false
  for (const l of lines) {
    if (l.startsWith('m=')) {
      if (inMedia) out.push(`a=${dir}`)
      inMedia = true
    }
    out.push(l.startsWith('o=') ? bumpVersion(l) : l)
  }
  if (inMedia) out.push(`a=${dir}`)
  return out.join(eol) + eol
}

function bumpVersion(o: string): string {
  const parts = o.split(' ')
  if (parts.length >= 3 && /^\d+$/.test(parts[2]!)) parts[2] = String(BigInt(parts[2]!) + 1n)
  return parts.join(' ')
}

/** The direction of the first media section (session-level default sendrecv, RFC 4566 §6). */
export function directionOf(sdp: string): SdpDirection {
  let session: SdpDirection = 'sendrecv'
  let media: SdpDirection | null = null
  let inMedia = false
  for (const l of sdp.split(/\r?\n/)) {
    if (l.startsWith('m=')) {
      if (inMedia) break
      inMedia = true
      continue
    }
    const m = /^a=(sendrecv|sendonly|recvonly|inactive)\s*$/.exec(l)
    if (m) {
      if (inMedia) media = m[1] as SdpDirection
      else session = m[1] as SdpDirection
    }
  }
  // A c=0.0.0.0 offer is the RFC 2543 way of holding.
  if (/^c=IN IP4 0\.0\.0\.0/m.test(sdp)) return 'inactive'
  return media ?? session
}

/** True when a re-INVITE offer puts us on hold (the far end will not receive). */
export function isHoldOffer(sdp: string): boolean {
  const d = directionOf(sdp)
  return d === 'sendonly' || d === 'inactive'
}
