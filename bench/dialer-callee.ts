/**
 * The carrier's callee of bench/dialer.ts (a sipp UAS scenario) and what its
 * log says: when each INVITE arrived, when each call ended, how many calls
 * were up at once. A helper module, not a bench script.
 */

/**
 * A carrier's callee: logs each INVITE's arrival ([timestamp]: epoch seconds,
 * µs), answers at once (200 with SDP), holds `holdMs`, hangs up (BYE) and
 * logs the end; a BYE from the engine first is answered and logged too.
 */
export function calleeScenario(holdMs: number): string {
  return `<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="dialer bench callee">
  <recv request="INVITE">
    <action>
      <ereg regexp=".*" search_in="hdr" header="From:" assign_to="ifrom"/>
      <ereg regexp=".*" search_in="hdr" header="To:" assign_to="ito"/>
      <ereg regexp="Contact: *.?(sips?:[^>;\\r\\n]+)" search_in="msg" assign_to="icall,icontact"/>
      <log message="INVITE [timestamp] [call_id]"/>
    </action>
  </recv>
  <send retrans="500">
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:[local_ip]:[local_port];transport=[transport]>
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=callee 1 1 IN IP4 127.0.0.1
      s=-
      c=IN IP4 127.0.0.1
      t=0 0
      m=audio [media_port] RTP/AVP 0
      a=rtpmap:0 PCMU/8000
      a=sendrecv

    ]]>
  </send>
  <recv request="ACK"/>
  <recv request="BYE" timeout="${holdMs}" ontimeout="hangup" next="gotbye"/>
  <label id="hangup"/>
  <send retrans="500">
    <![CDATA[
      BYE [$icontact] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From:[$ito];tag=[pid]SIPpTag01[call_number]
      To:[$ifrom]
      Call-ID: [call_id]
      CSeq: 2 BYE
      Contact: <sip:[local_ip]:[local_port];transport=[transport]>
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <recv response="200" next="done">
    <action><log message="END [timestamp] [call_id] callee"/></action>
  </recv>
  <label id="gotbye"/>
  <send>
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

    ]]>
  </send>
  <nop><action><log message="END [timestamp] [call_id] engine"/></action></nop>
  <label id="done"/>
  <Reference variables="icall,ifrom,ito"/>
</scenario>
`
}

export interface CalleeCall { callId: string; inviteAt: number; endAt?: number; endedBy?: string }

/** INVITE arrivals and call ends from the callee's log (epoch ms). */
export function parseCalleeLog(log: string): CalleeCall[] {
  const calls = new Map<string, CalleeCall>()
  for (const line of log.split('\n')) {
    const m = /^(INVITE|END) \S+\t\S+\t(\d+\.\d+) (\S+)(?: (\w+))?/.exec(line)
    if (!m) continue
    const at = Number(m[2]) * 1000
    if (m[1] === 'INVITE') calls.set(m[3]!, { callId: m[3]!, inviteAt: at })
    else {
      const c = calls.get(m[3]!)
      if (c) { c.endAt = at; c.endedBy = m[4] }
    }
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
