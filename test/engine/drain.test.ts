import t from 'tap'
import { join } from 'node:path'
import { startStack } from '../harness/stack.ts'
import { freePort } from '../harness/ports.ts'
import { runSipp } from '../harness/sipp.ts'

const SCENARIOS = join(import.meta.dirname, 'scenarios')
const ANSWER_SDP = ['v=0', 'o=- 1 1 IN IP4 127.0.0.1', 's=-', 'c=IN IP4 127.0.0.1', 't=0 0', 'm=audio 40000 RTP/AVP 0', 'a=rtpmap:0 PCMU/8000', ''].join('\r\n')

t.test('drain: live calls end with BYE, new INVITEs get 503, health turns 503', async (t) => {
  const stack = await startStack()
  t.teardown(() => stack.stop())
  // Answer every call directly, so this tests the drain itself whatever the routing does.
  stack.engine.srfConnection.setInviteHandler(async (req, res, calls) => {
    const dialog = await stack.engine.srfConnection.srf.createUAS(req, res, { localSdp: ANSWER_SDP })
    calls.add(req.get('Call-ID'), dialog)
  })

  const live = runSipp({ scenario: join(SCENARIOS, 'uac-until-bye.xml'), remote: `127.0.0.1:${stack.sipPort}`, localPort: await freePort(), service: '2000', timeoutMs: 30_000 })
  const deadline = Date.now() + 15_000
  while (stack.engine.srfConnection.activeCalls < 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100))
  t.equal(stack.engine.srfConnection.activeCalls, 1, 'the call is live')

  const healthBefore = await fetch(`${stack.baseUrl}/health`)
  t.equal(healthBefore.status, 200)

  await stack.engine.srfConnection.drain()
  const liveResult = await live.done
  t.equal(liveResult.code, 0, `the live caller received BYE and completed (${liveResult.errors.slice(0, 300)})`)
  t.equal(stack.engine.srfConnection.activeCalls, 0)

  // While draining, a new call is refused with 503 (sipp's uac fails on any non-2xx final).
  const refused = runSipp({ scenario: 'uac', remote: `127.0.0.1:${stack.sipPort}`, localPort: await freePort(), service: '2000', timeoutMs: 15_000, args: ['-recv_timeout', '5000'] })
  const refusedResult = await refused.done
  t.not(refusedResult.code, 0, 'the new call was not answered')
  t.match(refusedResult.errors + refusedResult.stdout, /503/, 'it was refused with 503')

  const metrics = await (await fetch(`${stack.baseUrl}/metrics`)).text()
  t.match(metrics, /callplane_sip_app_invites_total\{outcome="refused_draining"\} 1/)
})

t.test('health: a component that goes down turns /health into 503 and says which', async (t) => {
  const stack = await startStack()
  t.teardown(() => stack.stop())
  const ok = await fetch(`${stack.baseUrl}/health`)
  t.equal(ok.status, 200)
  await stack.engine.sipServer!.stop()
  let res: Response | undefined
  let body: { status?: string; components?: Record<string, { status: string }> } = {}
  const deadline = Date.now() + 10_000
  while (Date.now() < deadline) {
    res = await fetch(`${stack.baseUrl}/health`)
    body = await res.json() as typeof body
    if (res.status === 503) break
    await new Promise((r) => setTimeout(r, 200))
  }
  t.equal(res?.status, 503)
  t.equal(body.status, 'degraded')
  t.equal(body.components?.['sip-app']?.status, 'down', 'the SIP app lost its drachtio connection')
})

