import { readFileSync } from 'node:fs'
import { processMemory } from './procfs.ts'
import type { TestDocker } from '../../packages/allocator/test/helpers.ts'

/**
 * What a benchmark reads about a Docker container from outside: the resident memory of its
 * processes (/proc of each pid in its cgroup, as Linux counts them) and the engine's own memory
 * figure (a one-shot `docker stats`). Both need the engine on this host (a private dockerd is).
 */

type Docker = TestDocker['docker']

export interface ContainerMemory {
  /** Sum of VmRSS over the container's processes, bytes. */
  rss: number
  /** Sum of RssAnon: the private part of `rss` (without the mapped Node binary and other files), bytes. */
  anon: number
  /** Sum of VmHWM (each process's high-water mark), bytes. */
  hwm: number
  /** How many processes the container holds. */
  processes: number
  /** `docker stats`' figure: the cgroup's usage less its inactive file cache (what the CLI shows), bytes. */
  cgroup: number
}

/** The pids of the cgroup `pid` is in (cgroup v2), or just `pid` when that cannot be read. */
export function cgroupPids (pid: number): number[] {
  try {
    const line = readFileSync(`/proc/${pid}/cgroup`, 'utf8').split('\n').find(l => l.startsWith('0::'))
    if (line == null) {
      return [pid]
    }
    const procs = readFileSync(`/sys/fs/cgroup${line.slice(3)}/cgroup.procs`, 'utf8')
    const pids = procs.split('\n').filter(p => p !== '').map(Number)
    return pids.includes(pid) ? pids : [pid]
  } catch {
    return [pid]
  }
}

export async function containerMemory (docker: Docker, id: string): Promise<ContainerMemory> {
  const container = docker.getContainer(id)
  const info = await container.inspect()
  const pid = info.State.Pid
  if (!(pid > 0)) {
    throw new Error(`container ${id.slice(0, 12)} is not running (${info.State.Status})`)
  }
  let rss = 0
  let hwm = 0
  let anon = 0
  const pids = cgroupPids(pid)
  for (const p of pids) {
    try {
      const sample = processMemory(p)
      rss += sample.rss
      hwm += sample.hwm
      const match = /^RssAnon:\s+(\d+) kB/m.exec(readFileSync(`/proc/${p}/status`, 'utf8'))
      anon += match == null ? Number.NaN : Number(match[1]) * 1024
    } catch {
      // exited meanwhile
    }
  }
  const stats = await container.stats({ stream: false, 'one-shot': true })
  const memory = stats.memory_stats as { usage?: number, stats?: Record<string, number> }
  const inactive = memory.stats?.inactive_file ?? memory.stats?.total_inactive_file ?? 0
  return { rss, anon, hwm, processes: pids.length, cgroup: (memory.usage ?? Number.NaN) - inactive }
}
