import t from 'tap'
import { spawnSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

/**
 * The layering rules of .dependency-cruiser.cjs (DESIGN.md "Layout and
 * dependency direction"): the repository passes them, and a wrong-way import
 * or a cycle, planted in a scratch tree with the same folders, fails them.
 */
const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
const depcruise = join(root, 'node_modules', '.bin', 'depcruise')

function cruise(cwd: string, paths: string[]): { code: number | null; out: string } {
  const r = spawnSync(depcruise, ['--config', join(root, '.dependency-cruiser.cjs'), '--output-type', 'err', ...paths], { cwd, encoding: 'utf8' })
  return { code: r.status, out: `${r.stdout}${r.stderr}` }
}

t.test('the repository has no wrong-way import and no cycle', async (t) => {
  const r = cruise(root, ['engine.ts', 'main.ts', 'audio', 'codecs', 'media', 'agent', 'call', 'sip', 'control-api', 'store', 'config'])
  t.equal(r.code, 0, r.out.trim().split('\n').slice(-12).join('\n'))
  t.match(r.out, /no dependency violations found \((\d{3,}) modules/, 'it cruised the whole tree')
})

t.test('a planted wrong-way import or cycle fails', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'layers-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const put = (path: string, body: string) => { mkdirSync(dirname(join(dir, path)), { recursive: true }); writeFileSync(join(dir, path), body) }
  writeFileSync(join(dir, 'tsconfig.json'), JSON.stringify({ compilerOptions: { module: 'nodenext', allowImportingTsExtensions: true, noEmit: true } }))
  put('call/call-control.ts', 'export const x = 1\n')
  put('audio/frame.ts', 'export const rate = 8000\n')
  put('codecs/g711.ts', "import { rate } from '../audio/frame.ts'\nexport const y = rate\n")
  put('media/session.ts', "import { y } from '../codecs/g711.ts'\nexport const z = y\n")
  put('sip/server/server.ts', 'export const s = 1\n')
  t.equal(cruise(dir, ['audio', 'codecs', 'media', 'call', 'sip']).code, 0, 'downward imports pass')

  put('codecs/l16.ts', "import { x } from '../call/call-control.ts'\nexport const w = x\n")
  let r = cruise(dir, ['audio', 'codecs', 'media', 'call', 'sip'])
  t.not(r.code, 0, 'codecs importing call/ fails')
  t.match(r.out, /codecs-imports-only-audio: codecs\/l16\.ts → call\/call-control\.ts/)
  rmSync(join(dir, 'codecs/l16.ts'))

  put('sip/server/transport.ts', "import { z } from '../../media/session.ts'\nexport const q = z\n")
  r = cruise(dir, ['audio', 'codecs', 'media', 'call', 'sip'])
  t.match(r.out, /sip-server-imports-only-itself: sip\/server\/transport\.ts → media\/session\.ts/, 'sip/server importing the engine fails')
  rmSync(join(dir, 'sip/server/transport.ts'))

  put('media/a.ts', "import { b } from './b.ts'\nexport const a = () => b\n")
  put('media/b.ts', "import { a } from './a.ts'\nexport const b = () => a\n")
  r = cruise(dir, ['audio', 'codecs', 'media', 'call', 'sip'])
  t.match(r.out, /no-cycles: media\/(a|b)\.ts/, 'a cycle fails')
})
