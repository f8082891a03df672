import t from 'tap'
import { MediaScheduler, hrtimeMs } from '../../media/scheduler.ts'
import { PortPool } from '../../media/port-pool.ts'
import { PcmSource } from '../../media/playback.ts'
import { freeUdpRange } from '../harness/ports.ts'
import { engineFor, connectedPair, sleep } from './helpers.ts'
import { sine } from '../codecs/signal.ts'

t.test('RTCP SR/RR between two sessions yields RTT, jitter, loss and MOS', async (t) => {
  const engine = await engineFor(t)
  const [a, b] = await connectedPair(engine, { codecs: ['PCMU'], rtcpIntervalMs: 300 }, { codecs: ['PCMU'], rtcpIntervalMs: 300 })
  void a.play(new PcmSource(sine(500, 8000, 3), 8000))
  void b.play(new PcmSource(sine(700, 8000, 3), 8000))
  await sleep(2000)
  const sa = a.stats()
  const sb = b.stats()
  t.ok(sa.rtcpSent >= 3 && sb.rtcpReceived >= 3, `RTCP exchanged (a sent ${sa.rtcpSent}, b received ${sb.rtcpReceived})`)
  t.ok(sa.rttMs !== null && sa.rttMs >= 0 && sa.rttMs < 200, `RTT from LSR/DLSR: ${sa.rttMs} ms`)
  t.ok(sa.remoteReport, 'peer report about our stream parsed')
  t.equal(sa.remoteReport!.cumulativeLost, 0)
  t.ok(sa.remoteReport!.jitterMs < 20, `peer-reported jitter ${sa.remoteReport!.jitterMs} ms`)
  t.ok(sa.mos > 4, `estimated MOS ${sa.mos}`)
  t.equal(sa.garbage.rtcpInvalid, 0, 'rtcp-mux demultiplexed cleanly')
})

t.test('scheduler is drift-free and runs ingress of every task before any egress', async (t) => {
  const sched = new MediaScheduler()
  const log: string[] = []
  let first = 0
  let last = 0
  let ticks = 0
  const mk = (name: string) => ({
    ingress: (n: number) => { if (n === 3) log.push(`${name}.in`) },
    egress: (n: number, now: number) => { if (n === 3) log.push(`${name}.out`); if (name === 'a') { if (!first) first = now; last = now; ticks++ } },
  })
  const a = mk('a')
  const b = mk('b')
  sched.add(a)
  sched.add(b)
  const start = hrtimeMs()
  await sleep(2000)
  const st = sched.getStats()
  sched.remove(a)
  sched.remove(b)
  const elapsed = hrtimeMs() - start
  t.same(log, ['a.in', 'b.in', 'a.out', 'b.out'], 'two phases per tick')
  // Targets are start + n·20 ms: ticks run plus ticks skipped after a stall
  // (a loaded box) always add up to the elapsed time; nothing accumulates.
  const accounted = ticks + st.skippedTicks
  const expected = elapsed / 20
  t.ok(Math.abs(accounted - expected) <= 6, `${ticks} ticks + ${st.skippedTicks} skipped in ${elapsed.toFixed(0)} ms (≈ ${expected.toFixed(0)} periods)`)
  t.ok(Math.abs((last - first) - (accounted - 1) * 20) <= 120, 'tick n runs at start + n·20 ms (within one stall)')
  t.equal(sched.getStats().tasks, 0, 'clock stops with the last task')
})

t.test('port pool: even RTP ports with RTCP on +1, round robin, exhaustion, release', async (t) => {
  const range = await freeUdpRange(6)
  const pool = new PortPool(range.min, range.min + 5, '127.0.0.1')
  t.equal(pool.capacity, 3)
  const p1 = await pool.allocate()
  const p2 = await pool.allocate()
  const p3 = await pool.allocate()
  t.same([p1.port, p2.port, p3.port], [range.min, range.min + 2, range.min + 4])
  t.equal(p1.rtcp.address().port, p1.port + 1)
  await t.rejects(pool.allocate(), /exhausted/)
  pool.release(p2)
  const p4 = await pool.allocate()
  t.equal(p4.port, range.min + 2, 'freed pair reused once the cursor comes round')
  for (const p of [p1, p3, p4]) pool.release(p)
  t.equal(pool.used, 0)
})
