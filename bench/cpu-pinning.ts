/**
 * Pinning bench processes to CPUs with taskset (util-linux), so the system
 * under test and its load generator do not preempt each other on a small box:
 * a generator woken on the engine's core delays the engine's packets by a
 * time slice, which is the box's noise, not the engine's pacing.
 */
import { spawnSync } from 'node:child_process'

/** Pins every thread of `pid` to the CPU list (e.g. "0" or "1-3"); false when taskset is missing or refuses. */
export function pinProcess(pid: number, cpuList: string): boolean {
  return spawnSync('taskset', ['-a', '-p', '-c', cpuList, String(pid)], { stdio: 'ignore' }).status === 0
}
