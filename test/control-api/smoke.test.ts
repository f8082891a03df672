import t from 'tap'
import { buildTestApp, call } from './helpers.ts'

t.test('smoke', async (t) => {
  const h = await buildTestApp()
  t.teardown(() => h.close())
  const r = await call(h.app, h.adminKey, 'POST', '/v1/agents', { name: 'a1', greeting: 'hi' })
  t.equal(r.statusCode, 201, r.body)
  const l = await call(h.app, h.adminKey, 'GET', '/v1/agents')
  t.equal(l.statusCode, 200, l.body)
  console.log(l.body)
  const h2 = await call(h.app, h.adminKey, 'POST', '/v1/calls/00000000-0000-4000-8000-000000000000/hangup')
  console.log(h2.statusCode, h2.body)
  const o = await call(h.app, null, 'GET', '/openapi.json')
  t.equal(o.statusCode, 200)
  console.log(Object.keys(o.json().paths).length)
})
