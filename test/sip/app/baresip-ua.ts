/**
 * baresip as a registered phone (an extension): registers with digest through
 * our server as outbound proxy, auto-answers, sends a sine tone (ausine),
 * optionally dials one number, quits after `seconds`.
 */
import { spawn } from 'node:child_process'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { encodeWav } from '../../../media/wav.ts'

export interface PhoneOptions {
  user: string
  password: string
  domain: string
  /** Our SIP server, "127.0.0.1:5060". */
  proxy: string
  /** baresip's own SIP port. */
  localPort: number
  localIp?: string
  seconds: number
  dial?: string
}

export function runPhone(o: PhoneOptions): { done: Promise<{ code: number | null; log: string }>; kill: (signal?: NodeJS.Signals) => void; log: () => string } {
  const dir = mkdtempSync(join(tmpdir(), 'baresip-phone-'))
  const ip = o.localIp ?? '127.0.0.1'
  const wav = join(dir, 'tone.wav')
  writeFileSync(wav, sineWav(440, 8000, 30))
  writeFileSync(join(dir, 'config'), [
    'poll_method\t\tepoll',
    `sip_listen\t\t${ip}:${o.localPort}`,
    'audio_player\t\talsa,null',
    'audio_alert\t\talsa,null',
    `audio_source\t\taufile,${wav}`,
    'module_path\t\t/usr/lib/baresip/modules',
    'module\t\t\taccount.so',
    'module\t\t\tg711.so',
    'module\t\t\taufile.so',
    'module\t\t\talsa.so',
    'module_app\t\tmenu.so',
    '',
  ].join('\n'))
  // The AOR names our server by address: baresip 1.0 would otherwise resolve the domain over DNS.
  writeFileSync(join(dir, 'accounts'), `<sip:${o.user}@${o.proxy}>;auth_pass=${o.password};regint=60;answermode=auto\n`)
  const args = ['-f', dir, '-t', String(o.seconds)]
  if (o.dial) args.push('-e', `/dial ${o.dial}`)
  const child = spawn('baresip', args, { stdio: ['ignore', 'pipe', 'pipe'] })
  let log = ''
  child.stdout.on('data', (d: Buffer) => { log += d.toString() })
  child.stderr.on('data', (d: Buffer) => { log += d.toString() })
  const timer = setTimeout(() => child.kill('SIGKILL'), (o.seconds + 10) * 1000)
  const done = new Promise<{ code: number | null; log: string }>((resolve) => {
    child.on('close', (code) => { clearTimeout(timer); resolve({ code, log }) })
  })
  return { done, kill: (signal: NodeJS.Signals = 'SIGTERM') => { child.kill(signal) }, log: () => log }
}

/** A mono 16-bit PCM WAV of a sine tone (aufile wants the codec's rate). */
function sineWav(freq: number, rate: number, seconds: number): Buffer {
  const n = rate * seconds
  return encodeWav(Int16Array.from({ length: n }, (_, i) => Math.round(8000 * Math.sin((2 * Math.PI * freq * i) / rate))), rate)
}
