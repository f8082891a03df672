import t, { type Test } from 'tap'
import { createServer, request as httpRequest } from 'node:http'
import { connect as netConnect, type AddressInfo, type Socket } from 'node:net'
import { OutboundUrlPolicy, OutboundUrlRefused, isNonPublicAddress } from '../../config/outbound-url-policy.ts'
import { invokeHttpTool } from '../../agent/tools.ts'
import { sourceFromSpec } from '../../media/playback.ts'
import WebSocket from 'ws'

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

/** A local HTTP server counting hits; `handler` may redirect. */
async function localServer(t: Test, handler: (path: string) => { status: number; location?: string; body?: string }) {
  let hits = 0
  const server = createServer((req, res) => {
    hits++
    const r = handler(req.url ?? '/')
    res.statusCode = r.status
    if (r.location) res.setHeader('location', r.location)
    res.setHeader('content-type', 'application/json')
    res.end(r.body ?? JSON.stringify({ result: 'secret' }))
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  t.teardown(() => { server.closeAllConnections(); server.close() })
  return { port: (server.address() as AddressInfo).port, hits: () => hits }
}

t.test('DNS rebinding: the fetch re-checks the address it connects to', async (t) => {
  const inner = await localServer(t, () => ({ status: 200 }))
  // First answer public (what check() sees), every later one loopback (what
  // a rebinding name answers by the time the fetch connects).
  const asked: string[] = []
  const rebinding = async (host: string) => { asked.push(host); return asked.length === 1 ? ['93.184.215.14'] : ['127.0.0.1'] }
  const policy = new OutboundUrlPolicy({ allowPrivate: false, resolve: rebinding })
  t.teardown(() => policy.close())
  const url = `http://rebind.example:${inner.port}/internal`
  await t.resolves(policy.check(url), 'the early check sees the public answer')
  await t.rejects(policy.fetch(url), { name: 'OutboundUrlRefused', message: /rebind\.example resolves to the non-public address 127\.0\.0\.1/ })
  t.same(asked, ['rebind.example', 'rebind.example'], 'the connection resolved through the injected resolver, not the system one')
  t.equal(inner.hits(), 0, 'no request reached the loopback server')

  // The same through the agent's HTTP tool (check passes, connect refuses) ...
  asked.length = 0
  const toolPolicy = new OutboundUrlPolicy({ allowPrivate: false, resolve: rebinding })
  t.teardown(() => toolPolicy.close())
  const out = await invokeHttpTool({ name: 'lookup', description: 'd', url }, {}, { callId: 'c1', urlPolicy: toolPolicy })
  t.equal(out.ok, false)
  t.match(out.content, /lookup is not allowed to call that address .*non-public address 127\.0\.0\.1/)
  // ... and through `play`'s loader.
  await t.rejects(sourceFromSpec({ type: 'url', location: url }, 8000, { fetch: (u) => policy.fetch(u) }), OutboundUrlRefused)
  t.equal(inner.hits(), 0)
})

t.test('a literal non-public address is refused at connect time even without check()', async (t) => {
  const inner = await localServer(t, () => ({ status: 200 }))
  const policy = new OutboundUrlPolicy({ allowPrivate: false })
  t.teardown(() => policy.close())
  await t.rejects(policy.fetch(`http://127.0.0.1:${inner.port}/x`), /non-public address 127\.0\.0\.1/)
  await t.rejects(policy.fetch(`file:///etc/passwd`), /scheme file: is not http/)
  t.equal(inner.hits(), 0)
})

t.test('a redirect from an allowed URL to a loopback URL is refused', async (t) => {
  const inner = await localServer(t, () => ({ status: 200 }))
  const outer = await localServer(t, (path) => ({ status: 302, location: path === '/by-name' ? `http://localhost:${inner.port}/secret` : `http://127.0.0.1:${inner.port}/secret` }))
  // The redirecting server is an operator-allowed origin; the target is not.
  const policy = new OutboundUrlPolicy({ allowPrivate: false, allowOrigins: [`http://127.0.0.1:${outer.port}`] })
  t.teardown(() => policy.close())
  await t.resolves(policy.check(`http://127.0.0.1:${outer.port}/by-ip`), 'the first hop is allowed')
  await t.rejects(policy.fetch(`http://127.0.0.1:${outer.port}/by-ip`), { name: 'OutboundUrlRefused', message: /non-public address 127\.0\.0\.1/ })
  await t.rejects(policy.fetch(`http://127.0.0.1:${outer.port}/by-name`), { name: 'OutboundUrlRefused', message: /localhost resolves to the non-public address/ })
  t.equal(outer.hits(), 2, 'the allowed origin was fetched')
  t.equal(inner.hits(), 0, 'the redirect target was never reached')
  const out = await invokeHttpTool({ name: 'lookup', description: 'd', url: `http://127.0.0.1:${outer.port}/by-ip`, method: 'GET' }, {}, { callId: 'c1', urlPolicy: policy })
  t.match(out, { ok: false, content: /lookup is not allowed to call that address/ })
  t.equal(inner.hits(), 0)
})

t.test('the embedded policy fetches from a local server, redirects included', async (t) => {
  const inner = await localServer(t, () => ({ status: 200, body: JSON.stringify({ result: 'local' }) }))
  const outer = await localServer(t, () => ({ status: 302, location: `http://localhost:${inner.port}/x` }))
  const policy = new OutboundUrlPolicy({ allowPrivate: true })
  t.teardown(() => policy.close())
  const direct = await policy.fetch(`http://127.0.0.1:${inner.port}/x`)
  t.equal(direct.status, 200)
  t.same(await direct.json(), { result: 'local' })
  const redirected = await policy.fetch(`http://127.0.0.1:${outer.port}/go`)
  t.same(await redirected.json(), { result: 'local' })
  t.equal(inner.hits(), 2)
  t.match(await invokeHttpTool({ name: 'lookup', description: 'd', url: `http://127.0.0.1:${inner.port}/x` }, {}, { callId: 'c1', urlPolicy: policy }), { ok: true, content: 'local' })
})

/**
 * A forward proxy like an operator's HTTP_PROXY: CONNECT tunnels (what undici
 * uses for http and https targets) and absolute-form requests, every host
 * name resolved to 127.0.0.1 here, so "public" names reach local servers.
 */
async function localProxy(t: Test, ports: Record<string, number>) {
  const seen: string[] = []
  const target = (host: string) => ports[host.split(':')[0]!]
  const proxy = createServer((req, res) => {
    const u = new URL(req.url ?? '/')
    seen.push(`GET ${u.host}`)
    const port = target(u.host)
    if (!port) { res.statusCode = 502; res.end(); return }
    const up = httpRequest({ host: '127.0.0.1', port, path: u.pathname, method: req.method }, (r) => { res.writeHead(r.statusCode ?? 502, r.headers); r.pipe(res) })
    req.pipe(up)
  })
  proxy.on('connect', (req, client: Socket, head) => {
    seen.push(`CONNECT ${req.url}`)
    const port = target(req.url ?? '')
    if (!port) { client.end('HTTP/1.1 502 Bad Gateway\r\n\r\n'); return }
    const up = netConnect(port, '127.0.0.1', () => {
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n')
      up.write(head)
      up.pipe(client)
      client.pipe(up)
    })
    up.on('error', () => client.destroy())
    client.on('error', () => up.destroy())
  })
  await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r))
  t.teardown(() => { proxy.closeAllConnections(); proxy.close() })
  return { url: `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`, seen }
}

t.test('behind HTTP_PROXY: requests go through the proxy and every hop is still checked', async (t) => {
  const media = await localServer(t, (path) => path === '/go-private'
    ? { status: 302, location: 'http://intranet.example/secret' }
    : path === '/go-public' ? { status: 302, location: 'http://media.example/final' } : { status: 200, body: JSON.stringify({ result: path }) })
  const intranet = await localServer(t, () => ({ status: 200 }))
  const proxy = await localProxy(t, { 'media.example': media.port, 'intranet.example': intranet.port })
  // What our resolver says (the proxy resolves on its own): one public name, one private.
  const names: Record<string, string[]> = { 'media.example': ['93.184.216.34'], 'intranet.example': ['10.0.0.7'] }
  const policy = new OutboundUrlPolicy({ allowPrivate: false, proxy: { http: proxy.url, https: proxy.url }, resolve: async (h) => names[h] ?? [] })
  t.teardown(() => policy.close())
  const ok = await policy.fetch(`http://media.example:${media.port}/a.wav`)
  t.equal(ok.status, 200)
  t.same(await ok.json(), { result: '/a.wav' })
  t.ok(proxy.seen.some((s) => s.includes('media.example')), `the request went through the proxy (${proxy.seen.join(', ')})`)
  const followed = await policy.fetch(`http://media.example:${media.port}/go-public`)
  t.same(await followed.json(), { result: '/final' }, 'a redirect to an allowed name is followed')
  await t.rejects(policy.fetch(`http://intranet.example:${intranet.port}/x`), { name: 'OutboundUrlRefused', message: /intranet\.example resolves to the non-public address 10\.0\.0\.7/ })
  await t.rejects(policy.fetch(`http://media.example:${media.port}/go-private`), { name: 'OutboundUrlRefused', message: /non-public address 10\.0\.0\.7/ }, 'a redirect into the private network is refused before the proxy is asked')
  t.equal(intranet.hits(), 0, 'the private server was never reached')
  t.notOk(proxy.seen.some((s) => s.includes('intranet.example')), 'the proxy was never asked for it')
  await t.rejects(new OutboundUrlPolicy({ allowPrivate: false, proxy: false }).fetch(`http://media.example:${media.port}/a.wav`), /cannot resolve media\.example|ENOTFOUND|fetch failed/, 'proxy: false ignores the proxy')
})

t.test('lookupFor: a WebSocket the engine dials connects only to addresses approved at connect time', async (t) => {
  // A name that is public when check() asks and private when the socket connects (DNS rebinding).
  let asked = 0
  const policy = new OutboundUrlPolicy({ allowPrivate: false, resolve: async () => (asked++ === 0 ? ['93.184.216.34'] : ['127.0.0.1']) })
  await policy.check('http://rebind.example:9/ws')
  const lookup = policy.lookupFor('http://rebind.example:9/ws')
  t.type(lookup, 'function', 'a pinned lookup for a tenant URL')
  const ws = new WebSocket('ws://rebind.example:9/ws', { lookup: lookup! })
  const err = await new Promise<Error>((r) => ws.once('error', r))
  t.match(err, { name: 'OutboundUrlRefused', message: /rebind\.example resolves to the non-public address 127\.0\.0\.1/ }, 'the rebound address is refused when connecting')
  t.equal(new OutboundUrlPolicy({ allowPrivate: true }).lookupFor('http://127.0.0.1/'), undefined, 'none needed when private addresses are allowed')
  t.equal(new OutboundUrlPolicy({ allowPrivate: false, allowOrigins: ['http://media.internal:8080'] }).lookupFor('http://media.internal:8080/ws'), undefined, 'none for an exempt origin')
})
