import t from 'tap'
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { freePort, freeUdpRange } from '../harness/ports.ts'
import { runSipp } from '../harness/sipp.ts'
import { SCN as SIPP_SCENARIOS, sippLog } from '../sip/app/sipp-util.ts'

const ROOT = resolve(import.meta.dirname, '../..')

/** Runs the start command (main.ts) as a user would, in its own process. */
function startProcess(env: Record<string, string>) {
  const child = spawn(process.execPath, ['--import', 'tsx', 'main.ts'], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/root', LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (d: Buffer) => { stdout += d.toString() })
  child.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
  const exited = new Promise<{ code: number | null; ms: number }>((res) => {
    const started = Date.now()
    child.on('exit', (code) => res({ code, ms: Date.now() - started }))
  })
  return { child, exited, out: () => stdout, err: () => stderr }
}

t.test('a bad SIP_PORT stops start-up with one line naming the variable', async (t) => {
  const p = startProcess({ SIP_PORT: 'abc' })
  const { code } = await p.exited
  t.not(code, 0)
  const lines = p.err().trim().split('\n')
  t.equal(lines.length, 1, 'exactly one line')
  t.match(lines[0], /SIP_PORT/)
  t.match(lines[0], /1-65535/)
})

t.test('RTP_PORT_MIN above RTP_PORT_MAX stops start-up naming the variable', async (t) => {
  const p = startProcess({ RTP_PORT_MIN: '50000', RTP_PORT_MAX: '40000' })
  const { code } = await p.exited
  t.not(code, 0)
  const lines = p.err().trim().split('\n')
  t.equal(lines.length, 1)
  t.match(lines[0], /RTP_PORT_MIN/)
})

t.test('the start command brings the stack up, /health is 200, SIGTERM exits 0', async (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), 'callplane-start-'))
  t.teardown(() => rmSync(dataDir, { recursive: true, force: true }))
  const [sipPort, httpPort, drachtioPort] = [await freePort(), await freePort(), await freePort()]
  const rtp = await freeUdpRange(20)
  const p = startProcess({
    SIP_HOST: '127.0.0.1', SIP_PORT: String(sipPort), HTTP_HOST: '127.0.0.1', HTTP_PORT: String(httpPort),
    DRACHTIO_PORT: String(drachtioPort), RTP_PORT_MIN: String(rtp.min), RTP_PORT_MAX: String(rtp.max),
    DATA_DIR: dataDir,
  })
  t.teardown(() => { p.child.kill('SIGKILL') })

  // Generous: a cold start on a loaded test box (initdb, migrations, module graph) has taken over 30 s.
  const deadline = Date.now() + 90_000
  let health: { status: number; body: Record<string, unknown> } | undefined
  while (Date.now() < deadline) {
    try {
      const res = await fetch(`http://127.0.0.1:${httpPort}/health`)
      health = { status: res.status, body: await res.json() as Record<string, unknown> }
      if (res.status === 200) break
    } catch { /* not listening yet */ }
    await new Promise((r) => setTimeout(r, 250))
  }
  t.equal(health?.status, 200, `/health answered 200 within 90 s (stderr: ${p.err().slice(0, 500)})`)
  const components = (health?.body.components ?? {}) as Record<string, { status: string }>
  for (const c of ['store', 'sip-server', 'sip-app', 'media']) t.equal(components[c]?.status, 'up', `${c} is up`)
  t.equal(health?.body.status, 'ok')

  t.match(p.out(), new RegExp(`udp:127\\.0\\.0\\.1:${sipPort}`), 'prints where SIP listens')
  t.match(p.out(), new RegExp(`http://127\\.0\\.0\\.1:${httpPort}`), 'prints where HTTP listens')
  t.match(p.out(), /Admin API key \(shown once/, 'a generated admin key is printed on first start')
  const demo = new RegExp(`call (sip:1000@127\\.0\\.0\\.1:${sipPort}) from any softphone`).exec(p.out())
  t.ok(demo, `the banner says how to reach the demo (${p.out().slice(0, 400)})`)

  // The banner's URI works: the demo agent answers it; a number that does not exist is 404, not 403.
  const answered = await runSipp({ scenario: join(SIPP_SCENARIOS, 'carrier-call.xml'), remote: `127.0.0.1:${sipPort}`, localPort: await freePort(), service: '1000', timeoutMs: 30_000 }).done
  t.equal(answered.code, 0, `calling ${demo?.[1]} is answered by the demo agent (${answered.errors.slice(0, 200)})`)
  const wrong = await runSipp({ scenario: join(SIPP_SCENARIOS, 'invite-rejected.xml'), remote: `127.0.0.1:${sipPort}`, localPort: await freePort(), service: '1001', timeoutMs: 15_000, args: ['-trace_logs'] }).done
  t.match(sippLog(wrong.dir), /FINAL 404/, 'an unknown number gets 404 Not Found')

  const home = await fetch(`http://127.0.0.1:${httpPort}/`, { headers: { accept: 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8' } })
  t.equal(home.status, 200)
  const html = await home.text()
  t.match(home.headers.get('content-type'), /text\/html/)
  t.match(html, /href="\/docs"/, 'the page links the docs')
  t.match(html, demo?.[1] ?? 'sip:1000@', 'and shows the demo SIP URI')

  const metrics = await (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text()
  t.match(metrics, /callplane_active_calls 0/, 'prom-client metrics are served')
  t.match(metrics, /process_cpu_seconds_total/)

  p.child.kill('SIGTERM')
  const sigtermAt = Date.now()
  const { code } = await p.exited
  t.equal(code, 0, 'SIGTERM with no calls exits 0')
  t.ok(Date.now() - sigtermAt < 5000, 'within 5 s')
})
