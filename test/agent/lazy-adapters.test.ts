/**
 * Cloud vendor SDKs are loaded only when an agent that uses them is created.
 * A child process with a module-resolve hook lists which vendor packages were
 * resolved: importing the agent module and running an offline agent must
 * resolve none; creating an OpenAI agent must resolve `openai`.
 */
import t from 'tap'
import { execFile } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import { promisify } from 'node:util'

const run = promisify(execFile)
const ROOT = resolve(import.meta.dirname, '..', '..')

async function vendorsLoaded(body: string): Promise<string[]> {
  const dir = mkdtempSync(join(tmpdir(), 'lazy-adapters-'))
  try {
    const hook = join(dir, 'hook.mjs')
    writeFileSync(hook, `
import { register } from 'node:module'
register('data:text/javascript,' + encodeURIComponent(\`
export async function resolve(s, c, next) {
  const r = await next(s, c)
  const m = /node_modules\\\\/((?:@[^/]+\\\\/)?[^/]+)\\\\//.exec(r.url)
  if (m && /^(openai|@deepgram\\\\/sdk|@elevenlabs\\\\/elevenlabs-js)$/.test(m[1])) process.stderr.write('VENDOR ' + m[1] + '\\\\n')
  return r
}\`))
`)
    const script = join(dir, 'main.mts')
    writeFileSync(script, `const agent = await import(${JSON.stringify(pathToFileURL(join(ROOT, 'agent', 'index.ts')).href)})\n${body}\nprocess.exit(0)\n`)
    const { stderr } = await run(process.execPath, ['--import', 'tsx', '--import', pathToFileURL(hook).href, script], { cwd: ROOT, timeout: 60_000 })
    return [...new Set(stderr.split('\n').filter((l) => l.startsWith('VENDOR ')).map((l) => l.slice(7)))].sort()
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

const port = `{ sampleRate: 8000, onFrame: () => () => {}, onDtmf: () => () => {}, onEnded: () => () => {}, play() {}, flush() {}, async sendDtmf() {}, async hangup() {}, async transfer() {} }`

t.test('importing the agent module and creating an offline agent loads no vendor SDK', async (t) => {
  t.same(await vendorsLoaded(`agent.createAgent({ port: ${port}, config: {} })`), [])
})

t.test('creating an agent with the OpenAI LLM loads the openai SDK (and only that)', async (t) => {
  // The factory starts the import; give it the moment it needs before exiting.
  const loaded = await vendorsLoaded(`agent.createAgent({ port: ${port}, config: { llm: { provider: 'openai', options: { baseURL: 'http://127.0.0.1:9/v1', apiKey: 'x' } } } })\nawait new Promise((r) => setTimeout(r, 3000))`)
  t.same(loaded, ['openai'])
})
