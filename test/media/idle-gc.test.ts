import t from 'tap'
import { getHeapSpaceStatistics } from 'node:v8'
import { IdleGc } from '../../media/idle-gc.ts'
import { MediaEngine } from '../../media/media-engine.ts'

const youngUsed = () => getHeapSpaceStatistics().find((s) => s.space_name === 'new_space')!.space_used_size

/** Holds the last tick's garbage so the allocations escape (no escape analysis). */
let lastTick: unknown[] = []
/** Allocates about `bytes` of short-lived objects, like one tick of packet handling. */
function churn(bytes: number): void {
  const list: unknown[] = []
  for (let i = 0; i < bytes / 48; i++) list.push({ a: i, b: i + 1 })
  lastTick = list
}

t.test('collects the young generation between ticks once it nears full, not before', async (t) => {
  const gc = new IdleGc()
  t.ok(gc.available, 'the collector is reachable without --expose-gc on the command line')
  let sawDrop = false
  for (let tick = 0; tick < 400 && gc.stats().collections < 3; tick++) {
    churn(64 * 1024)
    const before = youngUsed()
    const n = gc.stats().collections
    gc.afterTick(18)
    if (gc.stats().collections > n && youngUsed() < before) sawDrop = true
  }
  const st = gc.stats()
  t.ok(st.collections >= 3, `${st.collections} collections between ticks`)
  t.ok(sawDrop, 'a collection empties the young generation')
  t.ok(st.meanMs > 0 && st.meanMs < 100, `mean ${st.meanMs.toFixed(2)} ms`)
})

t.test('a tick without slack left is not delayed further by a collection', async (t) => {
  const gc = new IdleGc()
  for (let tick = 0; tick < 400 && gc.stats().skippedNoSlack === 0; tick++) {
    churn(64 * 1024)
    gc.afterTick(1) // the next target is 1 ms away: the engine is behind
  }
  t.equal(gc.stats().collections, 0, 'never collects when the next target is close')
  t.ok(gc.stats().skippedNoSlack > 0, 'counts the collections it skipped')
})

t.test('the engine reports its idle collections, and can turn them off', async (t) => {
  const on = new MediaEngine({ rtpPortMin: 42000, rtpPortMax: 42099 })
  const off = new MediaEngine({ rtpPortMin: 42100, rtpPortMax: 42199, idleGc: false })
  t.teardown(async () => { await on.stop(); await off.stop() })
  t.same(Object.keys(on.stats().idleGc ?? {}).sort(), ['collections', 'meanMs', 'skippedNoSlack'])
  t.equal(off.stats().idleGc, null)
})
