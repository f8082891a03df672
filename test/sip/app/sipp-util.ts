import { readdirSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { runSipp, type SippOptions, type SippResult } from '../../harness/sipp.ts'

export const SCN = join(dirname(fileURLToPath(import.meta.url)), 'scenarios')

/** The <log> lines of a sipp run (-trace_logs). */
export function sippLog(dir: string): string {
  const f = readdirSync(dir).find((n) => n.endsWith('_logs.log'))
  return f ? readFileSync(join(dir, f), 'utf8') : ''
}

/** Runs one of our scenarios and returns the result plus its log. */
export async function sipp(scenario: string, opts: Omit<SippOptions, 'scenario'>): Promise<SippResult & { log: string }> {
  const r = runSipp({ ...opts, scenario: scenario.includes('/') ? scenario : join(SCN, scenario), args: [...(opts.args ?? []), '-trace_logs'] })
  const res = await r.done
  return { ...res, log: sippLog(res.dir) }
}

/** Starts a sipp UAS (our scenario) and returns its port, the kill switch and the result promise. */
export function sippUas(scenario: string, port: number, opts: Omit<SippOptions, 'scenario' | 'localPort'> = {}): { port: number; done: Promise<SippResult & { log: string }>; kill: () => void } {
  const r = runSipp({ ...opts, scenario: scenario.includes('/') ? scenario : join(SCN, scenario), localPort: port, args: [...(opts.args ?? []), '-trace_logs'] })
  return { port, kill: r.kill, done: r.done.then((res) => ({ ...res, log: sippLog(res.dir) })) }
}
