/**
 * What a person or a client finds at the engine's HTTP address: `/` (HTML for
 * a browser, JSON otherwise, with the demo SIP URI), and the OpenAPI document
 * describing the two WebSocket routes. Plus the choice of the address the
 * banner and the page tell people to call.
 */
import t from 'tap'
import { startStack } from '../harness/stack.ts'
import { reachableSipHost, sipUri, splitHostPort } from '../../config/reachable-address.ts'
import { prefersHtml } from '../../control-api/routes/home.ts'

t.test('the address people are told to call', async (t) => {
  const interfaces = {
    lo: [{ address: '127.0.0.1', family: 'IPv4', internal: true, netmask: '255.0.0.0', mac: '00:00:00:00:00:00', cidr: '127.0.0.1/8' }],
    eth0: [
      { address: 'fe80::1', family: 'IPv6', internal: false, netmask: 'ffff:ffff:ffff:ffff::', mac: '02:00:00:00:00:01', cidr: 'fe80::1/64', scopeid: 2 },
      { address: '192.0.2.10', family: 'IPv4', internal: false, netmask: '255.255.255.0', mac: '02:00:00:00:00:01', cidr: '192.0.2.10/24' },
    ],
  } as unknown as NodeJS.Dict<import('node:os').NetworkInterfaceInfo[]>
  t.equal(reachableSipHost({ externalAddress: '203.0.113.7', bindHost: '0.0.0.0', interfaces }), '203.0.113.7', 'SIP_EXTERNAL_ADDRESS wins')
  t.equal(reachableSipHost({ bindHost: '10.1.2.3', interfaces }), '10.1.2.3', 'else the bind address')
  t.equal(reachableSipHost({ bindHost: '0.0.0.0', interfaces }), '192.0.2.10', 'bound to every interface: the first non-loopback IPv4')
  t.equal(reachableSipHost({ bindHost: '0.0.0.0', interfaces: { lo: interfaces.lo } }), '127.0.0.1', 'only loopback: loopback')
  t.equal(sipUri('1000', '192.0.2.10', 5060), 'sip:1000@192.0.2.10:5060')
  t.equal(sipUri('1000', '2001:db8::5', 5060), 'sip:1000@[2001:db8::5]:5060', 'IPv6 bracketed')
  t.same(splitHostPort('10.0.0.5:9022'), { host: '10.0.0.5', port: 9022 }, 'DRACHTIO_URL host:port')
  t.same(splitHostPort('[2001:db8::5]:5060'), { host: '2001:db8::5', port: 5060 }, 'bracketed IPv6')
  t.same(splitHostPort('drachtio'), { host: 'drachtio', port: Number.NaN }, 'no port')
})

t.test('content negotiation for /', async (t) => {
  t.ok(prefersHtml('text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8'), 'a browser')
  t.notOk(prefersHtml('*/*'), 'curl')
  t.notOk(prefersHtml(undefined), 'no Accept')
  t.notOk(prefersHtml('application/json'), 'an API client')
  t.notOk(prefersHtml('application/json, text/html;q=0.5'), 'JSON preferred')
})

t.test('/ and the OpenAPI document of a running engine', async (t) => {
  const stack = await startStack()
  t.teardown(() => stack.stop())
  const demo = `sip:1000@127.0.0.1:${stack.sipPort}`
  t.equal(stack.engine.listeners.demo, demo, 'the engine knows the demo URI (bound to 127.0.0.1)')

  const json = await fetch(`${stack.baseUrl}/`)
  t.equal(json.status, 200)
  t.match(json.headers.get('content-type'), /application\/json/)
  t.match(await json.json(), { service: 'callplane', links: { docs: '/docs', openapi: '/openapi.json', health: '/health' }, demo: { sipUri: demo } })

  const html = await fetch(`${stack.baseUrl}/`, { headers: { accept: 'text/html' } })
  t.match(html.headers.get('content-type'), /text\/html/)
  const body = await html.text()
  for (const link of ['/docs', '/openapi.json', '/health']) t.match(body, `href="${link}"`, `links ${link}`)
  t.match(body, demo, 'shows the demo SIP URI')

  const doc = await (await fetch(`${stack.baseUrl}/openapi.json`)).json() as { paths: Record<string, Record<string, { description?: string; parameters?: Array<{ name: string; in: string }>; responses?: Record<string, unknown> }>> }
  const events = doc.paths['/v1/events']?.get
  t.ok(events, 'GET /v1/events is in the OpenAPI document')
  t.match(events?.description, /Upgrade: websocket/)
  t.match(events?.description, /"type":"subscribed"/, 'the message format is described')
  t.same(events?.parameters?.filter((p) => p.in === 'query').map((p) => p.name).sort(), ['callId', 'token', 'types'])
  t.ok(events?.responses?.['101'], 'the upgrade is a 101 response')
  const stream = doc.paths['/v1/calls/{id}/stream']?.get
  t.ok(stream, 'GET /v1/calls/{id}/stream is in the OpenAPI document')
  t.same(stream?.parameters?.filter((p) => p.in === 'query').map((p) => p.name).sort(), ['encapsulation', 'token'])
  t.match(stream?.description, /Twilio Media Streams/)
  t.match(stream?.description, /`clear`/, 'client messages described')
  t.ok(stream?.responses?.['101'] && stream.responses['409'], 'upgrade and "call ended"')
  const reg = doc.paths['/v1/trunks/{id}/registration']?.get
  t.ok(reg, 'the trunk registration status is documented')

  // The WebSocket routes still refuse a plain GET (documenting them changed nothing at run time).
  const plain = await fetch(`${stack.baseUrl}/v1/events`, { headers: { authorization: `Bearer ${stack.apiKey}` } })
  t.equal(plain.status, 404)
})
