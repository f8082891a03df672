import { spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, existsSync, readdirSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export interface SippOptions {
  /** Built-in scenario name (uac, uas, ...) or a path to an XML scenario. */
  scenario: string
  /** Target host:port (omit for a UAS). */
  remote?: string
  /** Local port sipp binds to. */
  localPort?: number
  localIp?: string
  transport?: 'u1' | 'un' | 't1' | 'tn'
  /** Total calls to place (-m). */
  calls?: number
  /** Calls per second (-r). */
  rate?: number
  /** Extra sipp args. */
  args?: string[]
  /** Kill after this many ms (default 30 s); a hung sipp fails the test, not the suite. */
  timeoutMs?: number
  /** Injection CSV file (-inf). */
  injectionFile?: string
  service?: string
}

export interface SippResult {
  code: number | null
  stdout: string
  stderr: string
  /** Parsed from sipp's -trace_stat CSV when present. */
  successful: number
  failed: number
  errors: string
  dir: string
}

/** Starts sipp and resolves when it exits. Exit code 0 means every call succeeded. */
export function runSipp(opts: SippOptions): { done: Promise<SippResult>; kill: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'sipp-'))
  const builtin = ['uac', 'uas', 'regexp', '3pcc-C-A', '3pcc-C-B', '3pcc-A', '3pcc-B', 'branchc', 'branchs', 'uac_pcap'].includes(opts.scenario)
  const args = [
    ...(builtin ? ['-sn', opts.scenario] : ['-sf', opts.scenario]),
    '-i', opts.localIp ?? '127.0.0.1',
    '-p', String(opts.localPort ?? 0),
    '-t', opts.transport ?? 'u1',
    '-m', String(opts.calls ?? 1),
    '-r', String(opts.rate ?? 10),
    '-bg', // not actually backgrounded: combined with -nostdin below we just want no curses UI
  ].filter((a) => a !== '-bg')
  args.push('-nostdin', '-trace_stat', '-trace_err', '-stf', join(dir, 'stat.csv'), '-error_file', join(dir, 'errors.log'))
  if (opts.service) args.push('-s', opts.service)
  if (opts.injectionFile) args.push('-inf', opts.injectionFile)
  if (opts.args) args.push(...opts.args)
  if (opts.remote) args.push(opts.remote)
  const child = spawn('sipp', args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (d: Buffer) => { stdout += d.toString() })
  child.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
  const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 30_000)
  const done = new Promise<SippResult>((resolve) => {
    let settled = false
    const finish = (code: number | null) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      const stat = parseStat(join(dir, 'stat.csv'))
      const errFile = readdirSync(dir).find((f) => f.includes('errors'))
      resolve({
        code, stdout, stderr, dir,
        successful: stat.successful, failed: stat.failed,
        errors: errFile ? readFileSync(join(dir, errFile), 'utf8') : '',
      })
    }
    child.on('close', (code) => finish(code))
    // 'close' also waits for sipp's stdout/stderr to reach EOF. When a media
    // worker thread is terminated (test/call/media-workers.test.ts) while
    // sipp runs, one of those EOFs has been seen never to arrive on a loaded
    // box although sipp exited; the exit code and the stat file are what
    // count, so settle on 'exit' once the streams had a moment to drain.
    child.on('exit', (code) => {
      setTimeout(() => {
        if (settled) return
        child.stdout.destroy()
        child.stderr.destroy()
        finish(code)
      }, 500)
    })
  })
  return { done, kill: () => child.kill('SIGTERM') }
}

function parseStat(file: string): { successful: number; failed: number } {
  if (!existsSync(file)) return { successful: 0, failed: 0 }
  const lines = readFileSync(file, 'utf8').trim().split('\n')
  if (lines.length < 2) return { successful: 0, failed: 0 }
  const head = lines[0]!.split(';')
  const last = lines[lines.length - 1]!.split(';')
  const col = (name: string) => Number(last[head.indexOf(name)] ?? 0)
  return { successful: col('SuccessfulCall(C)'), failed: col('FailedCall(C)') }
}

/**
 * Resolves once something is bound to `port` (how tests know a sipp UAS is
 * ready): UDP is probed by trying to bind it, TCP by connecting.
 */
export async function waitListening(port: number, transport: 'udp' | 'tcp' = 'udp', host = '127.0.0.1', timeoutMs = 5000): Promise<void> {
  const { createSocket } = await import('node:dgram')
  const { connect } = await import('node:net')
  const end = Date.now() + timeoutMs
  for (;;) {
    const ready = await new Promise<boolean>((resolve) => {
      if (transport === 'udp') {
        const s = createSocket('udp4')
        s.once('error', () => { s.close(); resolve(true) })
        s.bind(port, host, () => s.close(() => resolve(false)))
      } else {
        const c = connect({ port, host })
        c.once('connect', () => { c.destroy(); resolve(true) })
        c.once('error', () => resolve(false))
      }
    })
    if (ready) return
    if (Date.now() > end) throw new Error(`nothing listening on ${transport} ${port}`)
    await new Promise((r) => setTimeout(r, 25))
  }
}
