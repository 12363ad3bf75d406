import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'

/**
 * What Linux's /proc says about another process: its CPU time (every thread, user + system) and
 * its resident memory. The benchmarks read these for a daemon they run as a child process, so
 * that the figure is that process's alone and reading it costs the process nothing.
 */

let clockTicks: number | undefined

/** Clock ticks per second of /proc/<pid>/stat's times (almost always 100). */
export function clockTicksPerSecond (): number {
  if (clockTicks == null) {
    try {
      clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim())
    } catch {
      clockTicks = Number.NaN
    }
    if (!Number.isFinite(clockTicks) || clockTicks <= 0) {
      clockTicks = 100
    }
  }
  return clockTicks
}

/** CPU seconds (user + system, every thread) the process has used so far. */
export function processCpuSeconds (pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  // the command name (field 2) is in parentheses and may hold spaces: count from after it
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  // fields[0] is field 3 (state): utime is field 14, stime field 15
  const utime = Number(fields[11])
  const stime = Number(fields[12])
  return (utime + stime) / clockTicksPerSecond()
}

export interface MemorySample {
  /** Resident set size now (VmRSS), bytes. */
  rss: number
  /** The highest resident set size since the process started (VmHWM), bytes. */
  hwm: number
}

export function processMemory (pid: number): MemorySample {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const kib = (name: string): number => {
    const match = new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)
    return match == null ? Number.NaN : Number(match[1]) * 1024
  }
  return { rss: kib('VmRSS'), hwm: kib('VmHWM') }
}

/** CPU seconds of the processes, each 0 for one that is gone. */
export function sumCpuSeconds (pids: readonly number[]): number {
  let sum = 0
  for (const pid of pids) {
    try {
      sum += processCpuSeconds(pid)
    } catch {
      // exited: it no longer counts
    }
  }
  return sum
}
