import { execFile } from 'node:child_process'
import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { freePort } from './ports.ts'

const run = promisify(execFile)
const BIN = process.env.PG_BIN ?? '/usr/lib/postgresql/15/bin'

export interface ThrowawayPostgres {
  /** postgres://postgres@127.0.0.1:PORT/postgres (trust auth, loopback only). */
  url: string
  port: number
  dir: string
  stop(): Promise<void>
}

/**
 * Starts a throwaway Debian PostgreSQL 15 cluster in a temp dir: initdb,
 * loopback TCP on a free port, the unix socket inside the temp dir, durability
 * off (tests only). As root the server runs as the `postgres` user.
 */
export async function startPostgres(): Promise<ThrowawayPostgres> {
  const dir = mkdtempSync(join(tmpdir(), 'cp-pg-'))
  const data = join(dir, 'data')
  const sock = join(dir, 'sock')
  mkdirSync(sock)
  const asRoot = process.getuid?.() === 0
  let uid = -1
  let gid = -1
  if (asRoot) {
    const { stdout } = await run('id', ['-u', 'postgres'])
    uid = Number(stdout.trim())
    gid = Number((await run('id', ['-g', 'postgres'])).stdout.trim())
    chmodSync(dir, 0o755)
    chownSync(dir, uid, gid)
    chownSync(sock, uid, gid)
  }
  const pg = (cmd: string, args: string[]) => asRoot
    ? run('runuser', ['-u', 'postgres', '--', join(BIN, cmd), ...args], { cwd: dir })
    : run(join(BIN, cmd), args, { cwd: dir })
  await pg('initdb', ['-D', data, '-A', 'trust', '-U', 'postgres', '-E', 'UTF8', '--no-sync', '--locale=C'])
  const port = await freePort()
  const opts = `-p ${port} -k ${sock} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off -c synchronous_commit=off -c max_connections=200`
  await pg('pg_ctl', ['-D', data, '-o', opts, '-l', join(dir, 'server.log'), '-w', '-t', '60', 'start'])
  let stopped = false
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    port,
    dir,
    async stop() {
      if (stopped) return
      stopped = true
      await pg('pg_ctl', ['-D', data, '-m', 'immediate', '-w', 'stop']).catch(() => {})
      rmSync(dir, { recursive: true, force: true })
    },
  }
}
