/**
 * The sipp scenarios of bench/dialer.ts and what their logs say: a callee
 * (a carrier's number a campaign dials, or a contact agent's phone) that
 * logs when each INVITE arrived, when it hung up and when each call ended,
 * and a caller that waits for the engine's BYE. A helper module, not a bench
 * script.
 */

/**
 * A callee: logs each INVITE's arrival ([timestamp]: epoch seconds, µs) with
 * its Request-URI user, answers at once (200 with SDP), holds `holdMs`, logs
 * and sends its BYE, and logs the end (its BYE answered); a BYE from the
 * engine first is answered and logged too.
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
      <ereg regexp="^INVITE sips?:([^@; ]+)" search_in="msg" assign_to="rall,ruser"/>
      <log message="INVITE [timestamp] [call_id] [$ruser]"/>
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
  <nop><action><log message="HANGUP [timestamp] [call_id]"/></action></nop>
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
  <Reference variables="icall,ifrom,ito,rall"/>
</scenario>
`
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
  return `<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="dialer bench caller">
  <send retrans="500"><![CDATA[
      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:+14155550142@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: <sip:+14155550142@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=caller 1 1 IN IP4 127.0.0.1
      s=-
      c=IN IP4 127.0.0.1
      t=0 0
      m=audio [media_port] RTP/AVP 0
      a=rtpmap:0 PCMU/8000
      a=sendrecv
    ]]></send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="183" optional="true"/>
  <recv response="200" rtd="true" rrs="true"/>
  <send><![CDATA[
      ACK [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:+14155550142@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      [routes]
      CSeq: 1 ACK
      Contact: <sip:+14155550142@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Length: 0
    ]]></send>
  <recv request="BYE" timeout="${byeTimeoutMs}"/>
  <send><![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0
    ]]></send>
</scenario>
`
}
