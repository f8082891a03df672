import t from 'tap'
import { startPostgres } from '../harness/postgres.ts'
import { rerunSuites } from '../harness/suite-rerun.ts'

/**
 * The control-API and store suites again, against a real PostgreSQL 15
 * (a throwaway cluster): each suite file runs as a child process with
 * DATABASE_URL set, and creates its own database on that server.
 */
const SUITES = [
  'test/control-api/resources.test.ts',
  'test/control-api/auth.test.ts',
  'test/control-api/calls.test.ts',
  'test/control-api/compression.test.ts',
  'test/control-api/webhooks-delivery.test.ts',
  'test/store/repositories.test.ts',
  'test/control-api/e2e-events.test.ts',
  'test/control-api/request-isolation.test.ts',
  'test/call/flow-ivr.test.ts',
  'test/store/job-scheduler.test.ts',
  'test/call/queues.test.ts',
  'test/call/campaigns.test.ts',
  'test/call/sequences.test.ts',
]

t.test('suites against real PostgreSQL', async (t) => {
  if (process.env.DATABASE_URL) {
    t.pass('DATABASE_URL is set: the suites already run against it')
    return
  }
  const pg = await startPostgres()
  t.teardown(() => pg.stop())
  await rerunSuites(t, SUITES, { DATABASE_URL: pg.url }, 'on PostgreSQL')
})
