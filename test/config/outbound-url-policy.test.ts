import t from 'tap'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { OutboundUrlPolicy, OutboundUrlRefused, isNonPublicAddress } from '../../config/outbound-url-policy.ts'
import { invokeHttpTool } from '../../agent/tools.ts'

t.test('non-public addresses', async (t) => {
  for (const a of ['127.0.0.1', '10.1.2.3', '172.20.0.1', '192.168.1.1', '169.254.169.254', '100.64.0.1', '0.0.0.0', '::1', 'fd00::1', 'fe80::1', '::ffff:127.0.0.1', '::ffff:10.0.0.1', 'not-an-ip']) {
    t.ok(isNonPublicAddress(a), `${a} is not public`)
  }
  for (const a of ['8.8.8.8', '1.1.1.1', '172.32.0.1', '2606:4700:4700::1111', '::ffff:8.8.8.8']) t.notOk(isNonPublicAddress(a), `${a} is public`)
})

t.test('the strict policy refuses private targets, by literal and by name', async (t) => {
  const names: Record<string, string[]> = { 'internal.example': ['10.0.0.5'], 'mixed.example': ['93.184.215.14', '127.0.0.1'], 'public.example': ['93.184.215.14'] }
  const policy = new OutboundUrlPolicy({ allowPrivate: false, resolve: async (h) => { const a = names[h]; if (!a) throw Object.assign(new Error('nx'), { code: 'ENOTFOUND' }); return a } })
  await t.rejects(policy.check('http://127.0.0.1:8080/a.wav'), OutboundUrlRefused)
  await t.rejects(policy.check('http://[::1]/a.wav'), /non-public address ::1/)
  await t.rejects(policy.check('http://169.254.169.254/latest/meta-data'), /169\.254\.169\.254/)
  await t.rejects(policy.check('https://internal.example/a.wav'), /internal\.example resolves to the non-public address 10\.0\.0\.5/)
  await t.rejects(policy.check('https://mixed.example/a.wav'), /127\.0\.0\.1/, 'one private address among public ones is enough to refuse')
  await t.rejects(policy.check('https://nowhere.example/a.wav'), /cannot resolve nowhere\.example \(ENOTFOUND\)/)
  await t.rejects(policy.check('ftp://public.example/a.wav'), /scheme ftp: is not http/)
  await t.rejects(policy.check('not a url'), /not a URL/)
  await t.resolves(policy.check('https://public.example/a.wav'))
  await t.resolves(policy.check('https://93.184.215.14/a.wav'))
})

t.test('the embedded policy allows local servers; the system resolver is used by default', async (t) => {
  await t.resolves(new OutboundUrlPolicy({ allowPrivate: true }).check('http://127.0.0.1:9/x'))
  await t.rejects(new OutboundUrlPolicy({ allowPrivate: false }).check('http://localhost:9/x'), /localhost resolves to the non-public address/)
})

t.test("an agent's HTTP tool pointed at the engine's own network fails as a tool error, not a request", async (t) => {
  let hits = 0
  const server = createServer((_req, res) => { hits++; res.setHeader('content-type', 'application/json'); res.end(JSON.stringify({ result: 'secret' })) })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  t.teardown(() => server.close())
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/internal`
  const tool = { name: 'lookup', description: 'd', url }
  const refused = await invokeHttpTool(tool, {}, { callId: 'c1', urlPolicy: new OutboundUrlPolicy({ allowPrivate: false }) })
  t.equal(refused.ok, false)
  t.match(refused.content, /lookup is not allowed to call that address/)
  t.equal(hits, 0, 'no request left the engine')
  const allowed = await invokeHttpTool(tool, {}, { callId: 'c1', urlPolicy: new OutboundUrlPolicy({ allowPrivate: true }) })
  t.match(allowed, { ok: true, content: 'secret' })
  t.equal(hits, 1)
})
