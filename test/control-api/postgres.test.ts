import t from 'tap'
import { spawn } from 'node:child_process'
import { dirname, join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import { startPostgres } from '../harness/postgres.ts'

/**
 * The control-API and store suites again, against a real PostgreSQL 15
 * (a throwaway cluster): each suite file runs as a child process with
 * DATABASE_URL set, and creates its own database on that server.
 */
const here = dirname(fileURLToPath(import.meta.url))
const root = join(here, '..', '..')
const SUITES = [
  'test/control-api/resources.test.ts',
  'test/control-api/auth.test.ts',
  'test/control-api/calls.test.ts',
  'test/control-api/compression.test.ts',
  'test/control-api/webhooks-delivery.test.ts',
  'test/store/repositories.test.ts',
  'test/control-api/e2e-events.test.ts',
  'test/control-api/request-isolation.test.ts',
]

function runSuite(file: string, env: NodeJS.ProcessEnv): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import=tsx', file], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    child.stdout.on('data', (d) => (out += d))
    child.stderr.on('data', (d) => (out += d))
    child.on('close', (code) => resolve({ code, out }))
  })
}

t.test('suites against real PostgreSQL', async (t) => {
  if (process.env.DATABASE_URL) {
    t.pass('DATABASE_URL is set: the suites already run against it')
    return
  }
  const pg = await startPostgres()
  t.teardown(() => pg.stop())
  // Run each suite as a plain node process (not as a tap child), so it prints its own summary.
  const env: NodeJS.ProcessEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(TAP|_TAPJS|NODE_OPTIONS$)/.test(k)))
  Object.assign(env, { DATABASE_URL: pg.url, TAP_TIMEOUT: '240' })
  for (const file of SUITES) {
    const { code, out } = await runSuite(file, env)
    const summary = /# \{ total: (\d+), pass: (\d+)(?:, fail: (\d+))?/.exec(out)
    t.equal(code, 0, `${relative(root, join(root, file))} on PostgreSQL ${summary ? `(${summary[2]}/${summary[1]} pass)` : ''}`,
      code === 0 ? {} : { diagnostic: true, output: out.split('\n').filter((l) => /not ok|Error|error/.test(l)).slice(0, 40).join('\n') })
    t.ok(summary && Number(summary[1]) > 0, `${file} ran assertions`)
  }
})
