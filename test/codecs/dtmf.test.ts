import t from 'tap'
import { DtmfReceiver, DtmfSender, digitToEvent, writeTelephoneEvent, type DtmfPacket } from '../../codecs/dtmf.ts'

function pkt(event: number, end: boolean, duration: number): Uint8Array {
  const b = new Uint8Array(4)
  writeTelephoneEvent(b, event, end, 10, duration)
  return b
}

t.test('receiver reports each event once despite end-packet retransmissions', async (t) => {
  const rx = new DtmfReceiver(8000)
  const seen: string[] = []
  const feed = (p: Uint8Array, ts: number) => { const e = rx.push(p, ts); if (e) seen.push(`${e.digit}:${e.durationMs}:${e.ended}`) }
  for (const d of [160, 320, 480, 640]) feed(pkt(5, false, d), 1000)
  for (let i = 0; i < 3; i++) feed(pkt(5, true, 800), 1000)
  feed(pkt(11, false, 160), 5000)
  feed(pkt(11, true, 400), 5000)
  feed(pkt(11, true, 400), 5000)
  t.same(seen, ['5:100:true', '#:50:true'])
})

t.test('receiver infers the end when all end packets are lost', async (t) => {
  const rx = new DtmfReceiver(8000)
  t.equal(rx.push(pkt(1, false, 160), 100), null)
  t.equal(rx.push(pkt(1, false, 320), 100), null)
  const e = rx.push(pkt(2, false, 160), 2000)
  t.match(e, { digit: '1', ended: false, durationMs: 40 })
  t.match(rx.flush(), { digit: '2', ended: false })
  t.equal(rx.flush(), null, 'flush reports once')
})

t.test('sender paces events with marker, growing duration and three end packets', async (t) => {
  const tx = new DtmfSender(8000)
  tx.enqueue('9A', 60)
  const out = new Uint8Array(4)
  const res: DtmfPacket = { length: 0, marker: false, newEvent: false }
  const log: string[] = []
  for (let i = 0; i < 20 && tx.busy; i++) {
    const p = tx.next(out, res)
    if (!p) { log.push('gap'); continue }
    log.push(`${out[0]}${p.marker ? 'M' : ''}${out[1]! & 0x80 ? 'E' : ''}:${(out[2]! << 8) | out[3]!}`)
  }
  t.same(log, ['9M:160', '9:320', '9:480', '9E:480', '9E:480', '9E:480', 'gap', 'gap',
    `${digitToEvent('A')}M:160`, '12:320', '12:480', '12E:480', '12E:480', '12E:480'])
  t.throws(() => tx.enqueue('x'), RangeError)
})
