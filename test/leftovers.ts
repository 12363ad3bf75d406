import { execFile } from 'node:child_process'
import { readdir, readFile, rm } from 'node:fs/promises'
import { promisify } from 'node:util'

const run = promisify(execFile)

/** Whether a process of this pid runs. */
export function alive (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/** Every process's parent, from /proc/<pid>/stat. */
async function parents (): Promise<Map<number, number>> {
  const parentOf = new Map<number, number>()
  for (const entry of (await readdir('/proc')).filter(name => /^\d+$/.test(name))) {
    const stat = await readFile(`/proc/${entry}/stat`, 'utf8').catch(() => '')
    // the command name may hold spaces and parentheses: the fields follow its last ')'
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])
    if (Number.isInteger(ppid)) {
      parentOf.set(Number(entry), ppid)
    }
  }
  return parentOf
}

/** The processes whose command line names `folders` or a file in one. */
async function naming (folders: string[]): Promise<number[]> {
  const pids: number[] = []
  for (const entry of (await readdir('/proc')).filter(name => /^\d+$/.test(name))) {
    const args = (await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '')).split('\0')
    if (args.some(arg => folders.some(folder => arg === folder || arg.includes(`${folder}/`)))) {
      pids.push(Number(entry))
    }
  }
  return pids
}

/** Lazily unmounts every mount point under `dir`, deepest first. */
export async function unmountUnder (dir: string): Promise<void> {
  const mounts = (await readFile('/proc/self/mounts', 'utf8')).split('\n').map(line => line.split(' ')[1] ?? '')
    .filter(point => point.startsWith(`${dir}/`)).sort().reverse()
  for (const point of mounts) {
    await run('umount', ['-l', point]).catch(() => {})
  }
}

/**
 * What runs of a test killed before their cleanup left: their network namespaces (named
 * `<prefix><pid>-...`, the run's pid gone), every process in them, every process started with
 * their folders (`/tmp/<prefix><pid>-...`) in its command line (a dockerd of the run's own, left
 * to init), and every process those started elsewhere (a container on Docker's bridge network
 * has a namespace of its own, its shim is in the host's), and the folders with what is mounted
 * there.
 */
export async function sweepLeftovers (prefix: string): Promise<void> {
  const deadRun = (name: string): boolean => {
    const pid = new RegExp(`^${prefix}(\\d+)-`).exec(name)?.[1]
    return pid != null && !alive(Number(pid))
  }
  const { stdout } = await run('ip', ['netns', 'list'])
  const namespaces = stdout.split('\n').map(line => line.split(' ')[0] ?? '').filter(deadRun)
  const folders = (await readdir('/tmp')).filter(deadRun).map(entry => `/tmp/${entry}`)
  const doomed = new Set<number>(folders.length > 0 ? await naming(folders) : [])
  for (const name of namespaces) {
    const { stdout: pids } = await run('ip', ['netns', 'pids', name]).catch(() => ({ stdout: '' }))
    pids.split('\n').filter(Boolean).forEach(pid => doomed.add(Number(pid)))
  }
  if (doomed.size > 0) {
    const parentOf = await parents()
    for (let grew = true; grew;) {
      grew = false
      for (const [pid, ppid] of parentOf) {
        if (doomed.has(ppid) && !doomed.has(pid)) {
          doomed.add(pid)
          grew = true
        }
      }
    }
  }
  // all together: a parent killed first would leave its children to init, out of reach
  for (const pid of doomed) {
    try {
      process.kill(pid, 'SIGKILL')
    } catch {
      // gone meanwhile
    }
  }
  for (const name of namespaces) {
    await run('ip', ['netns', 'del', name]).catch(() => {})
  }
  for (const folder of folders) {
    await unmountUnder(folder)
    await rm(folder, { recursive: true, force: true })
  }
}
