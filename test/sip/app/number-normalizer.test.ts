import t from 'tap'
import { toE164, normalizeDialled, userPart, isE164 } from '../../../sip/app/number-normalizer.ts'

t.test('E.164 from the shapes carriers send', async (t) => {
  t.equal(toE164('+14155550100'), '+14155550100')
  t.equal(toE164('+1 (415) 555-0100'), '+14155550100')
  t.equal(toE164('14155550100'), '+14155550100', 'E.164 without +')
  t.equal(toE164('4155550100', { defaultCountry: 'US' }), '+14155550100', 'national with country')
  t.equal(toE164('011442079460958', { defaultCountry: 'US' }), '+442079460958', 'NANP international prefix')
  t.equal(toE164('00442079460958', { defaultCountry: 'DE' }), '+442079460958', 'ITU 00 prefix')
  t.equal(toE164('00442079460958'), '+442079460958', '00 prefix without country')
  t.equal(toE164('02079460958', { defaultCountry: 'gb' }), '+442079460958', 'national UK, lowercase country')
  t.equal(toE164('sip:+14155550100@carrier.example;user=phone'), '+14155550100', 'SIP URI')
  t.equal(toE164('<sip:14155550100@1.2.3.4:5060>'), '+14155550100', 'name-addr')
  t.equal(toE164('tel:+1-415-555-0100'), '+14155550100', 'tel URI with visual separators')
  t.equal(toE164('9999#14155550100', { stripPrefix: '9999#' }), '+14155550100', 'tech prefix')
})

t.test('short codes and extensions are not E.164 but keep their digits', async (t) => {
  t.equal(toE164('1000'), null)
  t.equal(toE164('1000', { defaultCountry: 'US' }), null)
  t.equal(toE164('*97'), null)
  t.equal(normalizeDialled('sip:1000@10.0.0.1'), '1000')
  t.equal(normalizeDialled('sip:alice@acme.example'), 'alice')
  t.equal(normalizeDialled('sip:4155550100@x', { defaultCountry: 'US' }), '+14155550100')
})

t.test('helpers', async (t) => {
  t.equal(userPart('"Bob" <sips:bob@example.com>;tag=1'), 'bob')
  t.ok(isE164('+442079460958'))
  t.notOk(isE164('442079460958'))
  t.notOk(isE164('+0123456789'))
})
