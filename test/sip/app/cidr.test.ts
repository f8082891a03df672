import t from 'tap'
import { CidrList, parseCidr, cidrContains, normalizeIp } from '../../../sip/app/cidr.ts'

t.test('IPv4 blocks', async (t) => {
  const c = parseCidr('192.168.10.0/24')!
  t.ok(cidrContains(c, '192.168.10.1'))
  t.ok(cidrContains(c, '192.168.10.255'))
  t.notOk(cidrContains(c, '192.168.11.1'))
  t.ok(cidrContains(parseCidr('10.1.2.3')!, '10.1.2.3'), 'bare address is /32')
  t.notOk(cidrContains(parseCidr('10.1.2.3')!, '10.1.2.4'))
  t.ok(cidrContains(parseCidr('0.0.0.0/0')!, '8.8.8.8'))
  t.ok(cidrContains(c, '::ffff:192.168.10.7'), 'IPv4-mapped IPv6 source')
  t.notOk(cidrContains(c, '2001:db8::1'), 'family mismatch')
})

t.test('IPv6 blocks', async (t) => {
  const c = parseCidr('2001:db8::/32')!
  t.ok(cidrContains(c, '2001:db8:1234::1'))
  t.ok(cidrContains(c, '[2001:db8::5]'))
  t.notOk(cidrContains(c, '2001:db9::1'))
  t.ok(cidrContains(parseCidr('::1')!, '::1'))
  t.ok(cidrContains(parseCidr('fe80::/10')!, 'fe80::1%eth0'))
})

t.test('invalid entries are reported, not widened', async (t) => {
  for (const bad of ['10.0.0.0/33', '10.0.0/8', 'foo', '10.0.0.0/-1', '::1/129', '10.0.0.0/8x']) t.equal(parseCidr(bad), null, bad)
  const l = new CidrList(['10.0.0.0/8', 'nonsense'])
  t.same(l.invalid, ['nonsense'])
  t.equal(l.blocks.length, 1)
})

t.test('the most specific block wins', async (t) => {
  const l = new CidrList(['10.0.0.0/8', '10.1.0.0/16', '10.1.2.0/24'])
  t.equal(l.match('10.1.2.9')!.bits, 24)
  t.equal(l.match('10.1.9.9')!.bits, 16)
  t.equal(l.match('11.0.0.1'), null)
  t.equal(normalizeIp('::FFFF:1.2.3.4'), '1.2.3.4')
})
