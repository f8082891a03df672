import { spawn } from 'node:child_process'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Test } from 'tap'

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..')

/**
 * Reruns whole suite files under another configuration (a real PostgreSQL,
 * MEDIA_WORKERS=2, ...): each file runs as a plain node process, not as a tap
 * child, so it prints its own summary, with `env` added to a clean copy of
 * this process's environment. Each file must pass and must have asserted something.
 */
export async function rerunSuites(t: Test, files: readonly string[], env: Record<string, string>, label: string): Promise<void> {
  const childEnv: NodeJS.ProcessEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(TAP|_TAPJS|NODE_OPTIONS$)/.test(k)))
  Object.assign(childEnv, { TAP_TIMEOUT: '240' }, env)
  for (const file of files) {
    const { code, out } = await new Promise<{ code: number | null; out: string }>((resolve) => {
      const child = spawn(process.execPath, ['--import=tsx', file], { cwd: root, env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] })
      let out = ''
      child.stdout.on('data', (d) => (out += d))
      child.stderr.on('data', (d) => (out += d))
      child.on('close', (code) => resolve({ code, out }))
    })
    const summary = /# \{ total: (\d+), pass: (\d+)(?:, fail: (\d+))?/.exec(out)
    t.equal(code, 0, `${file} ${label} ${summary ? `(${summary[2]}/${summary[1]} pass)` : ''}`,
      code === 0 ? {} : { diagnostic: true, output: out.split('\n').filter((l) => /not ok|Error|error/.test(l)).slice(0, 40).join('\n') })
    t.ok(summary && Number(summary[1]) > 0, `${file} ran assertions`)
  }
}
