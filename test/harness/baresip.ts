/**
 * Runs baresip as a real user agent for media tests: it dials `dial` with
 * the WAV `source` as its microphone (aufile), dumps what it hears and sends
 * with the sndfile filter, and quits after `seconds` (hanging up).
 */
import { spawn } from 'node:child_process'
import { mkdtempSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export interface BaresipOptions {
  /** 16-bit mono WAV at the codec's rate (aufile refuses anything else). */
  source: string
  dial: string
  seconds: number
  sipPort: number
  /** Codec modules to load, in preference order (default g711). */
  codecs?: ('g711' | 'g722' | 'opus' | 'l16')[]
}

export interface BaresipResult {
  code: number | null
  log: string
  /** What baresip received and decoded (sndfile "dec" dump). */
  heardWav: string | null
  /** What baresip encoded and sent. */
  sentWav: string | null
}

export function runBaresip(opts: BaresipOptions): { done: Promise<BaresipResult>; kill: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'baresip-'))
  const out = join(dir, 'dump')
  mkdirSync(out)
  const modules = (opts.codecs ?? ['g711']).map((c) => `module\t\t\t${c}.so`).join('\n')
  writeFileSync(join(dir, 'config'), [
    'poll_method\t\tepoll',
    `sip_listen\t\t127.0.0.1:${opts.sipPort}`,
    // No sound card here: the ALSA null device plays into nowhere, which still
    // drives the decode path that the sndfile filter dumps.
    'audio_player\t\talsa,null',
    'audio_alert\t\talsa,null',
    `audio_source\t\taufile,${opts.source}`,
    'module_path\t\t/usr/lib/baresip/modules',
    'module\t\t\taccount.so',
    modules,
    'module\t\t\taufile.so',
    'module\t\t\talsa.so',
    'module\t\t\tsndfile.so',
    'module_app\t\tmenu.so',
    `snd_path\t\t${out}`,
    '',
  ].join('\n'))
  writeFileSync(join(dir, 'accounts'), '<sip:baresip@127.0.0.1>;regint=0\n')
  const child = spawn('baresip', ['-f', dir, '-n', '127.0.0.1', '-e', `/dial ${opts.dial}`, '-t', String(opts.seconds)], { stdio: ['ignore', 'pipe', 'pipe'] })
  let log = ''
  child.stdout.on('data', (d: Buffer) => { log += d.toString() })
  child.stderr.on('data', (d: Buffer) => { log += d.toString() })
  const timer = setTimeout(() => child.kill('SIGKILL'), (opts.seconds + 10) * 1000)
  const done = new Promise<BaresipResult>((resolve) => {
    child.on('close', (code) => {
      clearTimeout(timer)
      const files = readdirSync(out)
      const dec = files.find((f) => f.endsWith('-dec.wav'))
      const enc = files.find((f) => f.endsWith('-enc.wav'))
      resolve({ code, log, heardWav: dec ? join(out, dec) : null, sentWav: enc ? join(out, enc) : null })
    })
  })
  return { done, kill: () => child.kill('SIGTERM') }
}
