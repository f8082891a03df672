import t from 'tap'
import { migrate } from '../../store/migrator.ts'
import { bootstrap } from '../../store/bootstrap.ts'
import { createStore } from '../../store/index.ts'
import { SecretBox } from '../../store/secrets.ts'
import { JobScheduler, SettableClock, type JobHandler } from '../../store/job-scheduler.ts'
import { openTestDatabase, silent } from '../control-api/helpers.ts'
import { sleep, waitFor } from '../harness/wait.ts'

/**
 * The durable scheduler on the real store (PGlite here; PostgreSQL when
 * test/control-api/postgres.test.ts reruns this file): due times from the
 * business clock, leases, re-runs after a lost node, several schedulers
 * (nodes) sharing one table without running a job twice.
 */
/** Polls `ok` every 20 ms until it holds; throws `timed out waiting for <what>` after `ms`. */
const until = async (what: string, ok: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> => { await waitFor(ok, ms, what, 20) }

t.test('job scheduler', async (t) => {
  const tdb = await openTestDatabase()
  const db = tdb.db
  t.teardown(async () => { await db.close(); await tdb.cleanup() })
  await migrate(db, silent)
  const boot = await bootstrap(db, 'cp_jobs_test_key', silent)
  const store = createStore(db, new SecretBox('jobs-test'), silent)
  const acct = boot.account.id
  const clock = new SettableClock()
  const schedulers: JobScheduler[] = []
  const node = (nodeId: string, leaseMs = 2000): JobScheduler => {
    const s = new JobScheduler({ jobs: store.jobs, nodeId, clock, logger: silent, leaseMs, pollMs: 100 })
    schedulers.push(s)
    s.start()
    return s
  }
  t.teardown(async () => { for (const s of schedulers) await s.stop() })

  t.test('a job runs when the business clock reaches its due time, not before', async (t) => {
    const a = node('n-due')
    const ran: string[] = []
    a.handle('t.due', async (job) => { ran.push(job.key) })
    const inAnHour = new Date(clock.now().getTime() + 3600_000)
    await store.jobs.schedule({ kind: 't.due', key: 'later', accountId: acct, dueAt: inAnHour, payload: { n: 1 } })
    await store.jobs.schedule({ kind: 't.due', key: 'now', dueAt: clock.now() })
    a.poke()
    await until('the due job', () => ran.includes('now'))
    await sleep(300)
    t.same(ran, ['now'], 'the job due in an hour waits')
    t.equal((await store.jobs.get('t.due', 'later'))?.payload.n, 1, 'it is stored with its payload')
    clock.advance(3600_000)
    await until('the later job after the clock moved', () => ran.includes('later'))
    await until('both rows gone', async () => (await store.jobs.get('t.due', 'later')) === null)
    t.equal(await store.jobs.get('t.due', 'now'), null, 'a job done is removed')
  })

  t.test('runAt keeps a job for a later run; a handler that throws is retried with its error, backing off, and never dropped', async (t) => {
    const a = node('n-again')
    const runs: number[] = []
    a.handle('t.again', async (job, ctx) => {
      runs.push(job.attempts)
      if (runs.length < 3) return { runAt: new Date(ctx.clock.now().getTime() + 60_000) }
    })
    await store.jobs.schedule({ kind: 't.again', key: 'k', dueAt: clock.now() })
    a.poke()
    await until('first run', () => runs.length === 1)
    clock.advance(60_000)
    await until('second run', () => runs.length === 2)
    clock.advance(60_000)
    await until('third run', () => runs.length === 3)
    t.same(runs, [1, 1, 1], 'each runAt run counts as a first run (not a re-run)')
    await until('the row gone', async () => (await store.jobs.get('t.again', 'k')) === null)

    let thrown = 0
    a.handle('t.throws', async () => { thrown++; throw new Error(`boom ${thrown}`) })
    await store.jobs.schedule({ kind: 't.throws', key: 'k', dueAt: clock.now() })
    a.poke()
    await until('first failure', () => thrown === 1)
    await until('the error recorded', async () => (await store.jobs.get('t.throws', 'k'))?.lastError === 'boom 1')
    const after = await store.jobs.get('t.throws', 'k')
    t.ok(after!.dueAt.getTime() > clock.now().getTime(), 'retried later, not at once')
    // Each retry waits out its backoff: move the clock past it (however slow the box is).
    await until('ten failures', async () => {
      clock.advance(600_000)
      await sleep(50)
      return thrown >= 10
    }, 60_000)
    await until('the tenth error recorded', async () => (await store.jobs.get('t.throws', 'k'))?.lastError === `boom ${thrown}`)
    t.equal((await store.jobs.counts('t.throws')).pending, 1, 'still pending after ten errors in a row: failing work is retried, never lost')
  })

  t.test('schedule() during a run re-times it after that run; cancel() of a pending job removes it, of a running one aborts it', async (t) => {
    const a = node('n-resched')
    let release!: () => void
    const runs: Array<Record<string, unknown>> = []
    a.handle('t.resched', async (job) => {
      runs.push(job.payload)
      if (runs.length === 1) await new Promise<void>((r) => { release = r })
    })
    await store.jobs.schedule({ kind: 't.resched', key: 'k', dueAt: clock.now(), payload: { v: 1 } })
    a.poke()
    await until('running', () => runs.length === 1)
    await store.jobs.schedule({ kind: 't.resched', key: 'k', dueAt: clock.now(), payload: { v: 2 } })
    release()
    await until('the re-timed run', () => runs.length === 2)
    t.same(runs, [{ v: 1 }, { v: 2 }], 'the run in progress kept its payload; the new one ran after it')

    const ran: string[] = []
    const aborted: string[] = []
    a.handle('t.cancel', async (job, ctx) => {
      ran.push(job.key)
      if (job.key === 'running') await new Promise<void>((r) => ctx.signal.addEventListener('abort', () => { aborted.push(job.key); r() }))
    })
    await store.jobs.schedule({ kind: 't.cancel', key: 'pending', dueAt: new Date(clock.now().getTime() + 60_000) })
    t.equal(await store.jobs.cancel('t.cancel', 'pending'), true)
    t.equal(await store.jobs.cancel('t.cancel', 'pending'), false, 'nothing left to cancel')
    await store.jobs.schedule({ kind: 't.cancel', key: 'running', dueAt: clock.now() })
    a.poke()
    await until('running', () => ran.includes('running'))
    t.equal(await store.jobs.cancel('t.cancel', 'running'), true)
    await until('the run aborted at its next lease renewal', () => aborted.includes('running'))
    await until('the row gone', async () => (await store.jobs.get('t.cancel', 'running')) === null)
    clock.advance(120_000)
    await sleep(300)
    t.same(ran, ['running'], 'the cancelled pending job never ran')
  })

  t.test('a job whose node died (lease not renewed) runs again on another node, which is told it is a re-run', async (t) => {
    await store.jobs.schedule({ kind: 't.orphan', key: 'k', dueAt: clock.now() })
    const leaseMs = 1500
    const claimedBy = Date.now()
    const { jobs: [claimed] } = await store.jobs.claim({ owner: 'dead-node', kinds: ['t.orphan'], now: clock.now(), limit: 1, leaseMs })
    t.equal(claimed?.attempts, 1, 'the dead node had claimed it')
    const b = node('n-survivor')
    const seen: Array<{ attempts: number; at: number }> = []
    b.handle('t.orphan', async (job) => { seen.push({ attempts: job.attempts, at: Date.now() }) })
    await until('taken over after the lease expired', () => seen.length === 1, 10_000)
    // The lease was taken after claimedBy, so it cannot have run out before claimedBy + leaseMs.
    t.ok(seen[0]!.at - claimedBy >= leaseMs - 20, `not while the lease held (ran ${seen[0]!.at - claimedBy} ms after the claim, lease ${leaseMs} ms)`)
    t.equal(seen[0]!.attempts, 2, 'attempts 2: the handler knows an earlier run may have done part of the work')
  })

  t.test('three nodes, 300 jobs: every job runs exactly once', async (t) => {
    const counts = new Map<string, number>()
    const byNode = new Map<string, number>()
    const handler = (nodeId: string): JobHandler => async (job) => {
      counts.set(job.key, (counts.get(job.key) ?? 0) + 1)
      byNode.set(nodeId, (byNode.get(nodeId) ?? 0) + 1)
      await sleep(Math.random() * 10)
    }
    for (let i = 0; i < 300; i++) await store.jobs.schedule({ kind: 't.many', key: `k${i}`, dueAt: clock.now() })
    for (const id of ['m1', 'm2', 'm3']) node(id).handle('t.many', handler(id), { concurrency: 8 })
    await until('all 300 ran', () => counts.size === 300, 30_000)
    await sleep(300)
    t.equal([...counts.values()].filter((n) => n !== 1).length, 0, 'no job ran twice')
    t.equal((await store.jobs.counts('t.many')).pending + (await store.jobs.counts('t.many')).running, 0, 'none left')
    t.ok(byNode.size >= 1, `shared by ${byNode.size} node(s): ${JSON.stringify(Object.fromEntries(byNode))}`)
  })

  t.test('scheduleMany: a batch in one statement, re-timing existing jobs like schedule()', async (t) => {
    const a = node('n-many')
    const ran: string[] = []
    a.handle('t.batch', async (job) => { ran.push(`${job.key}:${String(job.payload.v)}`) })
    const later = new Date(clock.now().getTime() + 7200_000)
    await store.jobs.schedule({ kind: 't.batch', key: 'k0', dueAt: later, payload: { v: 'old' } })
    const batch = Array.from({ length: 1200 }, (_, i) => ({ kind: 't.batch', key: `k${i}`, dueAt: i < 1000 ? clock.now() : later, payload: { v: i } }))
    await store.jobs.scheduleMany([...batch, { kind: 't.batch', key: 'k1', dueAt: clock.now(), payload: { v: 'last' } }])
    await until('the 1000 due ones', () => ran.length === 1000, 20_000)
    t.ok(ran.includes('k0:0'), 'an existing job was re-timed and its payload replaced')
    t.ok(ran.includes('k1:last'), 'a key given twice keeps the last')
    t.equal((await store.jobs.counts('t.batch')).pending, 200, 'the 200 due later wait')
  })

  t.test('stop() hands the leases of runs in progress back at once', async (t) => {
    const a = new JobScheduler({ jobs: store.jobs, nodeId: 'n-stopping', clock, logger: silent, leaseMs: 60_000, pollMs: 100 })
    a.start()
    let started = false
    a.handle('t.stop', async (_job, ctx) => { started = true; await new Promise((r) => ctx.signal.addEventListener('abort', r)) })
    await store.jobs.schedule({ kind: 't.stop', key: 'k', dueAt: clock.now() })
    a.poke()
    await until('running', () => started)
    await a.stop()
    const b = node('n-next')
    const got: number[] = []
    b.handle('t.stop', async (job) => { got.push(job.attempts) })
    await until('the next node ran it without waiting out the 60 s lease', () => got.length === 1, 5000)
    t.same(got, [2])
  })
})
