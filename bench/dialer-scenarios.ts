/**
 * The sipp scenarios of bench/dialer.ts and what their logs say: a callee
 * (a carrier's number a campaign dials, or a contact agent's phone) that
 * logs when each INVITE arrived, when it hung up and when each call ended,
 * and a caller that waits for the engine's BYE. A helper module, not a bench
 * script. The XML is built by test/harness/sipp-scenarios.ts, the tests' own.
 */
import { callerScenario as callerScenarioOf, sdp, uasScenario } from '../test/harness/sipp-scenarios.ts'

/**
 * A callee: logs each INVITE's arrival ([timestamp]: epoch seconds, µs) with
 * its Request-URI user, answers at once (200 with SDP), holds `holdMs`, logs
 * and sends its BYE, and logs the end (its BYE answered); a BYE from the
 * engine first is answered and logged too.
 */
export function calleeScenario(holdMs: number): string {
  return uasScenario({
    name: 'dialer bench callee', kind: 'answer', ringing: false, capture: ['ruser'], log: 'INVITE [timestamp] [call_id] [$ruser]',
    end: { by: 'either', holdMs },
  })
}

export interface CalleeCall {
  callId: string
  /** The Request-URI's user (whom the engine called). */
  user: string
  inviteAt: number
  /** When the callee sent its BYE (absent when the engine hung up first). */
  hangupAt?: number
  endAt?: number
  endedBy?: string
}

/** INVITE arrivals and call ends from the callee's log (epoch ms). */
export function parseCalleeLog(log: string): CalleeCall[] {
  const calls = new Map<string, CalleeCall>()
  for (const line of log.split('\n')) {
    const m = /^(INVITE|HANGUP|END) \S+\t\S+\t(\d+\.\d+) (\S+)(?: (\S+))?/.exec(line)
    if (!m) continue
    const at = Number(m[2]) * 1000
    if (m[1] === 'INVITE') { calls.set(m[3]!, { callId: m[3]!, user: m[4] ?? '', inviteAt: at }); continue }
    const c = calls.get(m[3]!)
    if (!c) continue
    if (m[1] === 'HANGUP') c.hangupAt = at
    else { c.endAt = at; c.endedBy = m[4] }
  }
  return [...calls.values()].sort((a, b) => a.inviteAt - b.inviteAt)
}

/** The most calls up at once at the callee (INVITE → its end), and the series of that count at each change. */
export function concurrency(calls: CalleeCall[], until: number): { max: number; at: number[]; up: number[] } {
  const ev: Array<[number, number]> = []
  for (const c of calls) { ev.push([c.inviteAt, 1]); ev.push([c.endAt ?? until, -1]) }
  ev.sort((a, b) => a[0] - b[0] || a[1] - b[1])
  let n = 0
  let max = 0
  const at: number[] = []
  const up: number[] = []
  for (const [t, d] of ev) { n += d; max = Math.max(max, n); at.push(t); up.push(n) }
  return { max, at, up }
}

/**
 * A caller: INVITE to [service] at the engine (PCMU), ACK through the
 * Record-Route set, then waits up to `byeTimeoutMs` for the engine's BYE and
 * answers it.
 */
export function callerScenario(byeTimeoutMs: number): string {
  return callerScenarioOf({
    name: 'dialer bench caller', from: '<sip:+14155550142@[local_ip]:[local_port]>', contact: '<sip:+14155550142@[local_ip]:[local_port]>',
    sdp: sdp({ port: '[media_port]', origin: 'caller' }), byeTimeoutMs,
  })
}
