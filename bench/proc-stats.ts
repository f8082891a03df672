import { readFileSync, readdirSync } from 'node:fs'

/**
 * CPU and memory of a process (optionally with all its descendants) from
 * /proc, for measuring engines that run in their own processes (Kamailio's
 * forked workers, rtpengine's threads, a Callplane server process).
 */

const CLK_TCK = 100 // sysconf(_SC_CLK_TCK) on Linux x86-64

interface Stat {
  pid: number
  ppid: number
  /** utime + stime, seconds (includes all threads of the process). */
  cpuSec: number
}

function readStat(pid: number): Stat | undefined {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8')
    // comm may contain spaces and parentheses: split after the last ')'
    const rest = s.slice(s.lastIndexOf(')') + 2).split(' ')
    // rest[0] = state (field 3); utime = field 14, stime = field 15
    const ppid = Number(rest[1])
    const utime = Number(rest[11])
    const stime = Number(rest[12])
    return { pid, ppid, cpuSec: (utime + stime) / CLK_TCK }
  } catch {
    return undefined
  }
}

/** pid and all its descendants that are alive now. */
export function processTree(root: number): number[] {
  const children = new Map<number, number[]>()
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue
    const st = readStat(Number(d))
    if (!st) continue
    const list = children.get(st.ppid)
    if (list) list.push(st.pid)
    else children.set(st.ppid, [st.pid])
  }
  const out: number[] = []
  const stack = [root]
  while (stack.length) {
    const p = stack.pop()!
    out.push(p)
    for (const c of children.get(p) ?? []) stack.push(c)
  }
  return out
}

/**
 * CPU seconds of the children pid has reaped (cutime + cstime): work done by
 * short-lived processes it ran (espeak-ng per TTS line, PostgreSQL backends
 * that exited), which /proc no longer shows under their own pids.
 */
export function reapedChildrenSeconds(pid: number): number {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ')
    // rest[13] = cutime (field 16), rest[14] = cstime (field 17)
    return (Number(f[13]) + Number(f[14])) / CLK_TCK
  } catch {
    return 0
  }
}

/** CPU seconds (user + system) used so far by pid, or by pid and its descendants. */
export function cpuSeconds(pid: number, tree = false): number {
  const pids = tree ? processTree(pid) : [pid]
  let sum = 0
  for (const p of pids) sum += readStat(p)?.cpuSec ?? 0
  return sum
}

/**
 * Memory in KiB: PSS when the kernel exposes smaps_rollup (shared memory is
 * split between the processes sharing it, so a forked server is not counted
 * N times), else RSS.
 */
export function memoryKiB(pid: number, tree = false): number {
  const pids = tree ? processTree(pid) : [pid]
  let sum = 0
  for (const p of pids) {
    try {
      const r = readFileSync(`/proc/${p}/smaps_rollup`, 'utf8')
      const m = /^Pss:\s+(\d+) kB/m.exec(r)
      if (m) {
        sum += Number(m[1])
        continue
      }
    } catch { /* fall back to RSS */ }
    try {
      const s = readFileSync(`/proc/${p}/status`, 'utf8')
      sum += Number(/^VmRSS:\s+(\d+) kB/m.exec(s)?.[1] ?? 0)
    } catch { /* gone */ }
  }
  return sum
}

/**
 * A CPU meter over an interval: start(), then read() gives seconds and share of one core.
 * `reaped`: the children pid reaped meanwhile count too (reapedChildrenSeconds), so the
 * work of a process tree whose members come and go is not lost (nor counted negative).
 */
export function cpuMeter(pid: number, tree = false, reaped = false): { read(): { cpuSec: number; wallSec: number; coreShare: number } } {
  const at = () => cpuSeconds(pid, tree) + (reaped ? reapedChildrenSeconds(pid) : 0)
  const c0 = at()
  const t0 = process.hrtime.bigint()
  return {
    read() {
      const cpuSec = at() - c0
      const wallSec = Number(process.hrtime.bigint() - t0) / 1e9
      return { cpuSec, wallSec, coreShare: wallSec > 0 ? cpuSec / wallSec : 0 }
    },
  }
}

/**
 * Calls onOrphan (then exits) if the process that started this one goes away,
 * e.g. the orchestrator was killed with SIGKILL: a bench must not leave
 * Kamailio, rtpengine, sipp or an engine running behind it.
 */
export function exitWithParent(onOrphan: () => void, everyMs = 1000): void {
  const parent = process.ppid
  const t = setInterval(() => {
    let alive = process.ppid === parent
    if (alive) {
      try { process.kill(parent, 0) } catch { alive = false }
    }
    if (!alive) {
      clearInterval(t)
      try { onOrphan() } finally { process.exit(1) }
    }
  }, everyMs)
  t.unref()
}

/** utime + stime of every thread of pid (and its descendants), seconds, keyed by "pid/tid". */
function threadSeconds(pid: number, tree: boolean): Map<string, number> {
  const out = new Map<string, number>()
  for (const p of tree ? processTree(pid) : [pid]) {
    let tids: string[] = []
    try { tids = readdirSync(`/proc/${p}/task`) } catch { continue }
    for (const t of tids) {
      try {
        const s = readFileSync(`/proc/${p}/task/${t}/stat`, 'utf8')
        const rest = s.slice(s.lastIndexOf(')') + 2).split(' ')
        out.set(`${p}/${t}`, (Number(rest[11]) + Number(rest[12])) / CLK_TCK)
      } catch { /* thread gone */ }
    }
  }
  return out
}

/**
 * The busiest single thread over an interval, as a share of one core. A
 * Node.js process saturates when its event-loop thread reaches one core,
 * long before the process as a whole uses all cores.
 */
export function threadMeter(pid: number, tree = false): { read(): { busiestShare: number; busiest: string | undefined } } {
  const c0 = threadSeconds(pid, tree)
  const t0 = process.hrtime.bigint()
  return {
    read() {
      const wallSec = Number(process.hrtime.bigint() - t0) / 1e9
      let best = 0
      let busiest: string | undefined
      for (const [k, v] of threadSeconds(pid, tree)) {
        const d = v - (c0.get(k) ?? 0)
        if (d > best) { best = d; busiest = k }
      }
      return { busiestShare: wallSec > 0 ? best / wallSec : 0, busiest }
    },
  }
}

/**
 * Every thread's share of one core over an interval, busiest first, keyed
 * "pid/tid" (the main thread of a process is "pid/pid"). For an engine that
 * runs work in worker threads (MEDIA_WORKERS), where any one thread reaching
 * a core saturates the part it runs, not only the main event loop.
 */
export function threadSharesMeter(pid: number, tree = false): { read(): { wallSec: number; threads: { id: string; pid: number; tid: number; share: number }[] } } {
  const c0 = threadSeconds(pid, tree)
  const t0 = process.hrtime.bigint()
  return {
    read() {
      const wallSec = Number(process.hrtime.bigint() - t0) / 1e9
      const threads: { id: string; pid: number; tid: number; share: number }[] = []
      for (const [k, v] of threadSeconds(pid, tree)) {
        const [p, t] = k.split('/').map(Number) as [number, number]
        threads.push({ id: k, pid: p, tid: t, share: wallSec > 0 ? (v - (c0.get(k) ?? 0)) / wallSec : 0 })
      }
      threads.sort((a, b) => b.share - a.share)
      return { wallSec, threads }
    },
  }
}
