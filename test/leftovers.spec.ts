import assert from 'node:assert/strict'
import { execFile, spawn } from 'node:child_process'
import { once } from 'node:events'
import { existsSync } from 'node:fs'
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises'
import { createInterface } from 'node:readline'
import { describe, it } from 'node:test'
import { promisify } from 'node:util'
import { alive, sweepLeftovers, unmountUnder } from './leftovers.ts'

const run = promisify(execFile)

/** In network namespace `ns`: a process, and a child of it in a namespace of its own, as a container on Docker's bridge network is. */
async function startIn (ns: string): Promise<{ parent: number, child: number, exited: Promise<unknown> }> {
  const shell = spawn('nsenter', [`--net=/var/run/netns/${ns}`, 'sh', '-c', 'unshare --net sleep 600 & echo $!; exec sleep 600'], { stdio: ['ignore', 'pipe', 'inherit'] })
  const exited = once(shell, 'exit')
  const [line] = await once(createInterface({ input: shell.stdout }), 'line') as [string]
  return { parent: shell.pid!, child: Number(line), exited }
}

async function gone (pid: number): Promise<boolean> {
  for (let tries = 0; tries < 50 && alive(pid); tries++) {
    await new Promise(resolve => setTimeout(resolve, 100))
  }
  return !alive(pid)
}

/**
 * test/multihost.spec.ts, killed before its cleanup, leaves namespaces with dockerds, containers
 * and their mounts under its folder: the next run sweeps them with sweepLeftovers, and only those
 * of runs whose process is gone.
 */
describe('sweepLeftovers', () => {
  it('removes what a killed run left: its namespaces, their processes and what those started elsewhere, its folder and the mounts in it; a running run keeps its own', async () => {
    const finished = spawn('true')
    await once(finished, 'exit')
    const dead = `phmtestsweep${finished.pid}`
    const live = `phmtestsweep${process.pid}`
    const namespaces = [`${dead}-a`, `${live}-a`]
    const dirs: string[] = []
    const started: number[] = []
    try {
      for (const ns of namespaces) {
        await run('ip', ['netns', 'add', ns])
      }
      const left = await startIn(`${dead}-a`)
      const kept = await startIn(`${live}-a`)
      started.push(left.parent, left.child, kept.parent, kept.child)
      for (const name of [dead, live]) {
        const dir = await mkdtemp(`/tmp/${name}-`)
        dirs.push(dir)
        await mkdir(`${dir}/exec/netns`, { recursive: true })
        await run('mount', ['-t', 'tmpfs', 'tmpfs', `${dir}/exec/netns`])
      }

      await sweepLeftovers('phmtestsweep')

      await left.exited
      assert.ok(await gone(left.child), 'the process in a namespace of its own, started from the killed run\'s namespace, is gone')
      assert.ok(alive(kept.parent) && alive(kept.child), 'a running run keeps its processes')
      const { stdout } = await run('ip', ['netns', 'list'])
      const listed = stdout.split('\n').map(line => line.split(' ')[0])
      assert.deepEqual(namespaces.map(ns => listed.includes(ns)), [false, true])
      assert.deepEqual(dirs.map(dir => existsSync(dir)), [false, true])
      const mounts = await readFile('/proc/self/mounts', 'utf8')
      assert.deepEqual(dirs.map(dir => mounts.includes(` ${dir}/`)), [false, true])
    } finally {
      for (const pid of started) {
        try {
          process.kill(pid, 'SIGKILL')
        } catch {
          // gone
        }
      }
      for (const ns of namespaces) {
        await run('ip', ['netns', 'del', ns]).catch(() => {})
      }
      for (const dir of dirs) {
        await unmountUnder(dir)
        await rm(dir, { recursive: true, force: true })
      }
    }
  })
})
