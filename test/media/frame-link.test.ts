import t from 'tap'
import { MessageChannel } from 'node:worker_threads'
import { FrameLink, LINK_RATE, LinkedEndpoint, LinkSink, LinkSource } from '../../media/frame-link.ts'
import { Mixer } from '../../media/mixer.ts'
import { MediaScheduler } from '../../media/scheduler.ts'
import { RtpPacketView, writeRtpHeader } from '../../media/rtp/packet.ts'
import type { AudioFrame, FrameSink } from '../../audio/frame.ts'

/**
 * FrameLink over a real MessageChannel (both ends in this thread; across
 * workers it is the same port API): bounded queue, malformed messages
 * dropped and counted, close seen by both ends, relay packets re-parsed, and
 * LinkedEndpoint feeding a Mixer on the scheduler's own ticks.
 */
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const N = LINK_RATE / 50
const frameOf = (v: number) => new Int16Array(N).fill(v)
const audio = (samples: Int16Array): AudioFrame => ({ samples, sampleRate: LINK_RATE, rtpTimestamp: 0, receivedAt: 0 })

t.test('frames cross in order; the queue is bounded; garbage is counted', async (t) => {
  const { port1, port2 } = new MessageChannel()
  const a = new FrameLink(port1)
  const b = new FrameLink(port2)
  t.teardown(() => a.close())
  const sink = new LinkSink(a)
  for (let i = 1; i <= 6; i++) sink.onFrame(audio(frameOf(i)))
  await sleep(20)
  t.equal(a.sent, 6)
  t.equal(b.received, 6)
  t.equal(b.dropped, 2, 'two oldest frames dropped: the queue holds four')
  const src = new LinkSource(b)
  t.same([3, 4, 5, 6].map(() => src.nextFrame()?.[0]), [3, 4, 5, 6], 'the newest four, oldest first')
  t.equal(src.nextFrame(), null, 'empty queue: nothing this tick')
  // What a confused or hostile sender could post on the port: dropped and counted, never queued.
  for (const junk of [{ t: 'frame', samples: new Int16Array(7) }, { t: 'frame', samples: 'x' }, { t: 'rtp', bytes: new Uint8Array(3), dtmf: false }, null, 42]) port1.postMessage(junk)
  await sleep(20)
  t.equal(b.dropped, 5, 'three malformed frames/packets counted (unknown kinds are ignored)')
  t.equal(src.nextFrame(), null, 'nothing malformed reached the queue')
  t.notOk(src.ended)
})

t.test('closing one end ends the other; DTMF and relay packets cross', async (t) => {
  const { port1, port2 } = new MessageChannel()
  const a = new FrameLink(port1)
  const b = new FrameLink(port2)
  const digits: string[] = []
  b.onDtmf = (d, ms) => digits.push(`${d}/${ms}`)
  const got: Array<{ pt: number; seq: number; payload: number[]; dtmf: boolean }> = []
  b.onRtp = (pkt: RtpPacketView, dtmf) => got.push({ pt: pkt.payloadType, seq: pkt.sequence, payload: [...pkt.buf.subarray(pkt.payloadOffset, pkt.payloadOffset + pkt.payloadLength)], dtmf })
  a.sendDtmf('5', 120)
  const raw = new Uint8Array(12 + 4)
  writeRtpHeader(raw, 0, false, 4242, 160, 0xdeadbeef)
  raw.set([1, 2, 3, 4], 12)
  const view = new RtpPacketView()
  t.equal(view.parse(raw), null)
  a.sendRtp(view, false)
  await sleep(20)
  t.same(digits, ['5/120'])
  t.same(got, [{ pt: 0, seq: 4242, payload: [1, 2, 3, 4], dtmf: false }], 'the packet arrives whole and parses')
  let closedB = false
  b.onClose(() => { closedB = true })
  a.close()
  await sleep(20)
  t.ok(a.isClosed && b.isClosed && closedB, 'both ends closed')
  t.ok(new LinkSource(b).ended, 'a source on a closed link has ended')
  a.sendRtp(view, false)
  t.equal(a.sent, 1, 'nothing is sent on a closed link')
})

t.test('a linked endpoint is a mixer member on this thread\'s ticks', async (t) => {
  const scheduler = new MediaScheduler({})
  t.teardown(() => scheduler.stop())
  const { port1, port2 } = new MessageChannel()
  const far = new FrameLink(port1)
  const near = new FrameLink(port2)
  const member = new LinkedEndpoint(near, scheduler)
  // A local member that always speaks 1000; the linked one speaks 300 from the far side.
  const local = {
    sinks: new Set<FrameSink>(), heard: [] as number[], isClosed: false,
    addSink(s: FrameSink) { this.sinks.add(s) }, removeSink(s: FrameSink) { this.sinks.delete(s) },
    play(src: { nextFrame(): Int16Array | null }) {
      const task = { ingress: () => { for (const s of this.sinks) s.onFrame(audio(frameOf(1000))) }, egressAfterIngress: () => true, egress: () => { const f = src.nextFrame(); if (f) this.heard.push(f[0]!) } }
      scheduler.add(task)
      t.teardown(() => scheduler.remove(task))
      return new Promise(() => {})
    },
  }
  const mixer = new Mixer(scheduler, LINK_RATE)
  mixer.add(local)
  mixer.add(member)
  const farHeard: number[] = []
  const farSource = new LinkSource(far)
  const pump = setInterval(() => {
    far.send(frameOf(300))
    const f = farSource.nextFrame()
    if (f) farHeard.push(f[0]!)
  }, 20)
  t.teardown(() => clearInterval(pump))
  await sleep(600)
  t.ok(local.heard.filter((v) => v === 300).length >= 15, `the local member hears the linked one (${local.heard.filter((v) => v === 300).length} frames of 300)`)
  t.ok(farHeard.filter((v) => v === 1000).length >= 15, `the far call hears the local member through the link (${farHeard.filter((v) => v === 1000).length} frames of 1000)`)
  t.notOk(farHeard.includes(1300), 'never itself: the mix for the linked member leaves out its own voice')
  mixer.remove(member)
  far.close()
  await sleep(20)
  t.ok(member.isClosed, 'the endpoint closes with its link')
})
