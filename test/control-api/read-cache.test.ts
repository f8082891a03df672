import t from 'tap'
import { EventBus, type CallplaneEvent } from '../../store/outbox.ts'
import { ReadCache } from '../../control-api/read-cache.ts'

const ACC = 'acc-1'
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const event = (accountId: string, callId: string | null): CallplaneEvent => ({
  id: 'e', type: 'call.ended', accountId, callId, createdAt: new Date().toISOString(), data: {},
})

/** A loader over a mutable "database" value that counts its reads and can be held open. */
function source(initial: string) {
  const s = {
    value: initial,
    reads: 0,
    gate: null as Promise<void> | null,
    load: async () => {
      s.reads++
      const seen = s.value
      if (s.gate) await s.gate
      return seen
    },
  }
  return s
}

t.test('concurrent misses share one load; hits do not load', async (t) => {
  const cache = new ReadCache(new EventBus(), 10_000)
  const src = source('v1')
  let open!: () => void
  src.gate = new Promise((r) => { open = r })
  const all = Array.from({ length: 50 }, () => cache.get('k', ACC, null, src.load))
  open()
  t.same(await Promise.all(all), Array(50).fill('v1'))
  t.equal(src.reads, 1, 'fifty concurrent misses cost one database read')
  t.equal(await cache.get('k', ACC, null, src.load), 'v1')
  t.equal(src.reads, 1)
  t.equal(cache.hits, 1)
  cache.close()
})

t.test('an event for the account drops list pages and the call, not other calls', async (t) => {
  const bus = new EventBus()
  const cache = new ReadCache(bus, 10_000)
  const list = source('page-1')
  const a = source('call-a')
  const b = source('call-b')
  await cache.get('list', ACC, null, list.load)
  await cache.get('call/a', ACC, 'a', a.load)
  await cache.get('call/b', ACC, 'b', b.load)
  list.value = 'page-2'
  a.value = 'call-a2'
  b.value = 'call-b2'
  bus.publish(event(ACC, 'a'))
  t.equal(await cache.get('list', ACC, null, list.load), 'page-2')
  t.equal(await cache.get('call/a', ACC, 'a', a.load), 'call-a2')
  t.equal(await cache.get('call/b', ACC, 'b', b.load), 'call-b', 'another call of the account stays cached')
  bus.publish(event('acc-2', null))
  t.equal(await cache.get('list', ACC, null, list.load), 'page-2', 'another account\'s events change nothing')
  t.equal(list.reads, 2)
  cache.close()
})

t.test('a load that started before an event neither stays cached nor serves later readers', async (t) => {
  const bus = new EventBus()
  const cache = new ReadCache(bus, 10_000)
  const src = source('old')
  let open!: () => void
  src.gate = new Promise((r) => { open = r })
  const early = cache.get('list', ACC, null, src.load) // reads 'old', still in flight
  src.value = 'new'
  bus.publish(event(ACC, 'x')) // the change is announced while the old read is in flight
  src.gate = null
  const late = await cache.get('list', ACC, null, src.load)
  t.equal(late, 'new', 'a reader after the event does not join the stale load')
  open()
  t.equal(await early, 'old', 'the early reader gets what it read')
  t.equal(await cache.get('list', ACC, null, src.load), 'new', 'the stale result was not stored over the fresh one')
  cache.close()
})

t.test('a hot entry is reloaded in the background before it expires; readers never wait', async (t) => {
  const cache = new ReadCache(new EventBus(), 2000)
  const src = source('v1')
  t.equal(await cache.get('k', ACC, null, src.load), 'v1')
  await sleep(1600) // past three quarters of the TTL (1500 ms), well before it ends
  src.value = 'v2'
  let open!: () => void
  src.gate = new Promise((r) => { open = r })
  t.equal(await cache.get('k', ACC, null, src.load), 'v1', 'served from the cache while the reload runs')
  t.equal(src.reads, 2, 'one background reload started')
  t.equal(await cache.get('k', ACC, null, src.load), 'v1')
  t.equal(src.reads, 2, 'and only one')
  open()
  await sleep(5)
  t.equal(await cache.get('k', ACC, null, src.load), 'v2', 'the reloaded value replaces the old one')
  t.equal(cache.refreshes, 1)
  await sleep(2100)
  src.value = 'v3'
  t.equal(await cache.get('k', ACC, null, src.load), 'v3', 'an expired entry is read again, never served past its TTL')
  cache.close()
})

t.test('uncacheable values and failures are not kept', async (t) => {
  const cache = new ReadCache(new EventBus(), 10_000)
  const src = source('live')
  await cache.get('call/a', ACC, 'a', src.load, (v) => v !== 'live')
  await cache.get('call/a', ACC, 'a', src.load, (v) => v !== 'live')
  t.equal(src.reads, 2, 'a live call is read every time')
  let fail = true
  const flaky = async () => {
    if (fail) throw new Error('db down')
    return 'ok'
  }
  await t.rejects(cache.get('x', ACC, null, flaky), /db down/)
  fail = false
  t.equal(await cache.get('x', ACC, null, flaky), 'ok', 'a failed load is retried by the next reader')
  cache.close()
})

t.test('ttl 0 disables the cache', async (t) => {
  const cache = new ReadCache(new EventBus(), 0)
  const src = source('v')
  await cache.get('k', ACC, null, src.load)
  await cache.get('k', ACC, null, src.load)
  t.equal(src.reads, 2)
  cache.close()
})

t.test('a read slower than the TTL still serves the readers after it (no reload storm on an overloaded loop)', async (t) => {
  const cache = new ReadCache(new EventBus(), 300)
  let reads = 0
  const slow = async () => {
    reads++
    await sleep(400)
    return `v${reads}`
  }
  t.equal(await cache.get('k', ACC, null, slow), 'v1')
  t.equal(await cache.get('k', ACC, null, slow), 'v1', 'the entry counts its age from when the read completed')
  t.equal(reads, 1)
  cache.close()
})

t.test('a background refresh hands the loader the value it replaces; a miss does not', async (t) => {
  const bus = new EventBus()
  const cache = new ReadCache(bus, 400)
  const seen: Array<string | undefined> = []
  let n = 0
  const load = async (previous?: string) => {
    seen.push(previous)
    return `v${++n}`
  }
  t.equal(await cache.get('k', ACC, null, load), 'v1')
  await sleep(320) // past three quarters of the TTL
  t.equal(await cache.get('k', ACC, null, load), 'v1', 'served while the refresh runs')
  await sleep(5)
  t.equal(await cache.get('k', ACC, null, load), 'v2')
  bus.publish(event(ACC, null))
  t.equal(await cache.get('k', ACC, null, load), 'v3', 'after an event: a miss')
  t.same(seen, [undefined, 'v1', undefined], 'only the refresh saw the previous value')
  cache.close()
})
