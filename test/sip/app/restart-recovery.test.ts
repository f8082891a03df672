import t from 'tap'
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import pino from 'pino'
import { runSipp } from '../../harness/sipp.ts'
import { freePort } from '../../harness/ports.ts'
import { openDatabase } from '../../../store/database.ts'
import { SCN } from './sipp-util.ts'
import { scenarioFile } from './helpers.ts'

const FIXTURE = join(dirname(fileURLToPath(import.meta.url)), 'fixtures', 'node.ts')

function startNode(dataDir: string, port: number): { child: ChildProcess; lines: string[]; waitFor(re: RegExp, ms?: number): Promise<string> } {
  const child = spawn(process.execPath, ['--import', 'tsx', FIXTURE, dataDir, String(port)], { stdio: ['ignore', 'pipe', 'pipe'] })
  const lines: string[] = []
  let buf = ''
  child.stdout!.on('data', (d: Buffer) => {
    buf += d.toString()
    const parts = buf.split('\n')
    buf = parts.pop()!
    lines.push(...parts)
  })
  child.stderr!.on('data', (d: Buffer) => { lines.push(`stderr: ${d.toString().trim()}`) })
  return {
    child, lines,
    async waitFor(re, ms = 150_000) {
      const end = Date.now() + ms
      for (;;) {
        const l = lines.find((x) => re.test(x))
        if (l) return l
        if (child.exitCode !== null || Date.now() > end) throw new Error(`node never printed ${re}: ${lines.slice(-5).join(' | ')}`)
        await new Promise((r) => setTimeout(r, 100))
      }
    },
  }
}

t.test('kill -9 during live calls: after restart every call record is complete', async (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), 'sipapp-restart-'))
  t.teardown(() => rmSync(dataDir, { recursive: true, force: true }))
  const port = await freePort()
  const longCall = scenarioFile('carrier-long', readFileSync(join(SCN, 'carrier-call.xml'), 'utf8').replace('<pause milliseconds="1500"/>', '<pause milliseconds="60000"/>'))

  const a = startNode(dataDir, port)
  t.teardown(() => { a.child.kill('SIGKILL') })
  await a.waitFor(/^READY/)
  const calls = [runSipp({ scenario: longCall, remote: `127.0.0.1:${port}`, service: '+14155550150', localIp: '127.0.0.8', timeoutMs: 30_000 }),
    runSipp({ scenario: longCall, remote: `127.0.0.1:${port}`, service: '+14155550150', localIp: '127.0.0.9', timeoutMs: 30_000 })]
  t.teardown(() => { for (const c of calls) c.kill() })
  const waitAnswered = async () => {
    const end = Date.now() + 20_000
    while (a.lines.filter((l) => l.startsWith('ANSWERED')).length < 2) {
      if (Date.now() > end) throw new Error(`calls not answered: ${a.lines.slice(-5).join(' | ')}`)
      await new Promise((r) => setTimeout(r, 100))
    }
  }
  await waitAnswered()
  const ids = a.lines.filter((l) => l.startsWith('ANSWERED')).map((l) => l.split(' ')[1]!)
  t.equal(ids.length, 2, 'two live calls')

  a.child.kill('SIGKILL')
  await new Promise((r) => a.child.once('exit', r))
  for (const c of calls) c.kill()
  await Promise.all(calls.map((c) => c.done))

  const b = startNode(dataDir, port)
  t.teardown(() => { b.child.kill('SIGKILL') })
  const ready = await b.waitFor(/^READY/)
  t.match(ready, /recovered=2/, 'the restarted node finished both records')
  b.child.kill('SIGTERM')
  await new Promise((r) => b.child.once('exit', r))

  const db = await openDatabase({ dataDir, logger: pino({ level: 'silent' }) })
  t.teardown(() => db.close())
  const { rows } = await db.pool.query(`SELECT id, status, ended_reason, hangup_by, answered_at, ended_at FROM calls ORDER BY seq`)
  t.equal(rows.length, 2)
  for (const r of rows) {
    t.match(r, { status: 'completed', ended_reason: 'node-restart', hangup_by: 'system' }, `call ${r.id} complete`)
    t.ok(r.answered_at && r.ended_at, 'timestamps kept')
  }
  const ev = await db.pool.query(`SELECT count(*)::int AS n FROM events WHERE type = 'call.ended'`)
  t.equal(ev.rows[0].n, 2, 'call.ended events written for the recovered calls')
})
