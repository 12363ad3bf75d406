import assert from 'node:assert/strict'
import { execFile, spawn } from 'node:child_process'
import { once } from 'node:events'
import { existsSync } from 'node:fs'
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises'
import { dirname } from 'node:path'
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

const ALLOCATOR_HELPERS = new URL('../packages/allocator/test/helpers.ts', import.meta.url).pathname

/**
 * A process that starts a private dockerd with the allocator tests' startDocker (DOCKER_HOST
 * unset), prints its socket, then stops it and exits unless `hold`, when it waits to be killed.
 */
async function startDockerIn (hold: boolean): Promise<{ process: ReturnType<typeof spawn>, host: string, exited: Promise<unknown> }> {
  const script = `import { startDocker } from ${JSON.stringify(ALLOCATOR_HELPERS)}
const engine = await startDocker()
console.log(engine.host)
${hold ? 'setInterval(() => {}, 60_000)' : 'await engine.stop()'}`
  const env = { ...process.env }
  delete env.DOCKER_HOST
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { env, stdio: ['ignore', 'pipe', 'inherit'] })
  const exited = once(child, 'exit')
  const [line] = await once(createInterface({ input: child.stdout }), 'line') as [string]
  return { process: child, host: line, exited }
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

  it('removes the private dockerd and folder (/tmp/pd<pid>-...) of an allocator test run that was killed, at the next start of one', async () => {
    const killed = await startDockerIn(true)
    const dir = dirname(killed.host.replace(/^unix:\/\//, ''))
    const dockerd = Number(await readFile(`${dir}/dockerd.pid`, 'utf8'))
    try {
      assert.match(dir, new RegExp(`^/tmp/pd${killed.process.pid}-`), 'the folder is named after the run')
      killed.process.kill('SIGKILL')
      await killed.exited
      assert.ok(alive(dockerd), 'the killed run left its dockerd running')

      const next = await startDockerIn(false)
      await next.exited
      assert.ok(await gone(dockerd), 'the killed run\'s dockerd is gone')
      assert.ok(!existsSync(dir), 'the killed run\'s folder is gone')
      assert.ok(!existsSync(dirname(next.host.replace(/^unix:\/\//, ''))), 'the next run removed its own folder')
    } finally {
      killed.process.kill('SIGKILL')
      try {
        process.kill(dockerd, 'SIGTERM')
      } catch {
        // gone
      }
      await gone(dockerd)
      await unmountUnder(dir)
      await rm(dir, { recursive: true, force: true })
    }
  })
})
