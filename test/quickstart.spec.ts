import assert from 'node:assert/strict'
import { execFile, spawn } from 'node:child_process'
import { once } from 'node:events'
import { existsSync } from 'node:fs'
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { promisify } from 'node:util'
import { unmountUnder } from './leftovers.ts'

const ROOT = new URL('../', import.meta.url).pathname

/** Where `program` is on this process's PATH. */
async function which (program: string): Promise<string> {
  const { stdout } = await promisify(execFile)('bash', ['-c', 'command -v "$1"', 'which', program])
  return stdout.trim()
}

/** Runs scripts/demo.sh with `args` (with `as`, a command that runs it as another user): its exit code and all it printed. */
async function demo (args: string[], options: { env?: NodeJS.ProcessEnv, as?: string[] } = {}): Promise<{ code: number | null, output: string }> {
  const [command, ...prefix] = [...options.as ?? [], 'bash']
  const child = spawn(command, [...prefix, join(ROOT, 'scripts/demo.sh'), ...args], { cwd: ROOT, env: options.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  child.stdout.on('data', (part: Buffer) => { output += part.toString('utf8') })
  child.stderr.on('data', (part: Buffer) => { output += part.toString('utf8') })
  const code = await new Promise<number | null>(resolve => { child.on('exit', resolve) })
  return { code, output }
}

/** The pids of the processes whose command line names `dir`, and the mount points under it. */
async function leftIn (dir: string): Promise<{ pids: number[], mounts: string[] }> {
  const pids: number[] = []
  for (const entry of await readdir('/proc')) {
    const cmdline = await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '')
    if (/^\d+$/.test(entry) && cmdline.split('\0').some(arg => arg.startsWith(`${dir}/`))) {
      pids.push(Number(entry))
    }
  }
  const mounts = (await readFile('/proc/self/mounts', 'utf8')).split('\n').map(line => line.split(' ')[1] ?? '').filter(point => point.startsWith(`${dir}/`))
  return { pids, mounts }
}

/** The folder of the demo whose dockerd runs, if one does. */
async function runningDemoFolder (): Promise<string | undefined> {
  for (const entry of await readdir('/proc')) {
    const folder = /(\/tmp\/physarum-demo\.\w+)\/docker\0/.exec(await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => ''))?.[1]
    if (folder != null) {
      return folder
    }
  }
  return undefined
}

/**
 * The README's first command, as a new user runs it: scripts/demo.sh brings up every daemon with
 * its CLI (the seed's steps 1 to 7 with our commands: bootstrap, allocator, registry-service with
 * its own etcd, Prometheus scraping, hl-cli add of demos/helloworld, the proxy) and curls
 * 127.0.0.1:4200/hello-world-server; here in the background, so the user's own request follows,
 * then `scripts/demo.sh stop` removes everything.
 */
describe('the quickstart (scripts/demo.sh)', { timeout: 600_000 }, () => {
  it('answers --help, a bad argument and a user other than root before it sets up the toolchain', async () => {
    // a PATH with the few programs those answers need, and no Node or npm: setting up the
    // toolchain would fail (without reaching the npm registry)
    const bin = await mkdtemp(join(tmpdir(), 'physarum-demo-bin-'))
    try {
      await chmod(bin, 0o755)
      for (const program of ['bash', 'dirname', 'sed', 'id', 'setpriv']) {
        await symlink(await which(program), join(bin, program))
      }
      const env = { PATH: bin, HOME: bin, PHYSARUM_TOOLCHAIN: '/dev/null/toolchain' }
      const help = await demo(['--help'], { env })
      assert.equal(help.code, 0, help.output)
      assert.match(help.output, /^# Usage: scripts\/demo\.sh/m)
      const bad = await demo(['--later'], { env })
      assert.equal(bad.code, 2, bad.output)
      assert.equal(bad.output, '[physarum] unknown argument: --later (see --help)\n')
      const notRoot = await demo(['--background'], { env, as: process.getuid?.() === 0 ? ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups'] : [] })
      assert.equal(notRoot.code, 1, notRoot.output)
      assert.match(notRoot.output, /^\[physarum\] the demo starts its own dockerd: run it as root: sudo .*demo\.sh --background\n$/)
    } finally {
      await rm(bin, { recursive: true, force: true })
    }
  })

  it('refuses a second demo started while the first still sets up, before it binds any port', async () => {
    // a toolchain whose pnpm install waits: the first demo stays in its setup, before its pid file
    const toolchain = await mkdtemp(join(tmpdir(), 'physarum-demo-toolchain-'))
    const version = /"packageManager": *"pnpm@([^"]+)"/.exec(await readFile(join(ROOT, 'package.json'), 'utf8'))?.[1] ?? ''
    const bin = join(toolchain, `pnpm-${version}`, 'node_modules', '.bin')
    await mkdir(bin, { recursive: true })
    const started = join(toolchain, 'installing')
    await writeFile(join(bin, 'pnpm'), `#!/bin/sh\n[ "$1" = --version ] && { echo ${version}; exit 0; }\ntouch ${started}\nexec sleep 600\n`, { mode: 0o755 })
    const env = { ...process.env, PHYSARUM_TOOLCHAIN: toolchain }
    const first = spawn('bash', [join(ROOT, 'scripts/demo.sh')], { cwd: ROOT, env, stdio: 'ignore', detached: true })
    const exited = once(first, 'exit')
    try {
      for (let tries = 0; !existsSync(started); tries++) {
        assert.ok(tries < 300 && first.exitCode == null, 'the first demo reached its pnpm install')
        await new Promise(resolve => setTimeout(resolve, 100))
      }
      const second = spawn('bash', [join(ROOT, 'scripts/demo.sh')], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true })
      let output = ''
      second.stdout.on('data', (part: Buffer) => { output += part.toString('utf8') })
      second.stderr.on('data', (part: Buffer) => { output += part.toString('utf8') })
      const code = await Promise.race([once(second, 'exit').then(([code]) => code as number | null), new Promise(resolve => setTimeout(resolve, 30_000, 'still running'))])
      if (code === 'still running') {
        process.kill(-second.pid!, 'SIGKILL')
      }
      assert.equal(code, 1, output)
      assert.equal(output, `[physarum] another demo (pid ${first.pid}) is starting on the same ports: wait for it, then scripts/demo.sh stop ends it\n`)
    } finally {
      process.kill(-first.pid!, 'SIGKILL')
      await exited
      await rm(toolchain, { recursive: true, force: true })
    }
  })

  // as root, like the other tests that start a private dockerd (demo.sh says so when it is not)
  it('answers "Hello, world" through the proxy from a container on the allocator\'s engine; its stop command leaves nothing behind', async () => {
    const { code, output } = await demo(['--background'])
    try {
      assert.equal(code, 0, output)
      assert.equal(output.match(/^Hello, world$/gm)?.length, 2, output)
      assert.match(output, /cold start: \d+ ms/)
      assert.match(output, /Prometheus \(9090: all four up\)/)
      assert.match(output, /hello-world-server \(soft 100 ms, hard 1000 ms\): 1 instance\(s\)/)
      assert.match(output, /physarum-hello-world-server-\w+-service {2}Up/)
      assert.match(output, /physarum-hello-world-server-\w+-sidecar {2}Up/)
      assert.match(output, /^\[physarum\] stop: scripts\/demo.sh stop/m)
      // still running after the command returned: the user's own request
      const response = await fetch('http://127.0.0.1:4200/hello-world-server')
      assert.equal(response.status, 200)
      assert.equal(await response.text(), 'Hello, world\n')
      const again = await demo(['--background'])
      assert.equal(again.code, 1)
      assert.match(again.output, /a demo is already running \(pid \d+\): scripts\/demo.sh stop ends it/)
    } finally {
      const stopped = await demo(['stop'])
      assert.equal(stopped.code, 0, stopped.output)
      assert.match(stopped.output, /stopped; nothing of it is left/)
    }
    const work = /logs in (\/tmp\/physarum-demo\.\w+)\//.exec(output)?.[1]
    assert.ok(work != null, output)
    for (const left of [work, '/run/physarum-demo.pid', '/run/physarum-demo.out']) {
      assert.equal(existsSync(left), false, `${left} is left behind`)
    }
    await assert.rejects(fetch('http://127.0.0.1:4200/hello-world-server'), 'the proxy is gone')
    assert.match((await demo(['stop'])).output, /no demo is running/)
  })

  it('its stop command also ends the daemons of a demo killed with SIGKILL, which could not stop them itself', async () => {
    const child = spawn('bash', [join(ROOT, 'scripts/demo.sh')], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] })
    const exited = once(child, 'exit')
    let output = ''
    let work: string | undefined
    try {
      // killed once its engine, image registry and ping-monitor run
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => { reject(new Error(`the demo's ping-monitor did not start within 300 s:\n${output}`)) }, 300_000)
        const read = (part: Buffer): void => {
          output += part.toString('utf8')
          if (/^\[physarum\] +bootstrap: /m.test(output)) {
            clearTimeout(timer)
            resolve()
          }
        }
        child.stdout.on('data', read)
        child.stderr.on('data', read)
        void exited.then(() => { clearTimeout(timer); reject(new Error(`the demo ended before its ping-monitor ran:\n${output}`)) })
      })
      child.kill('SIGKILL')
      await exited
      // the demo's dockerd names its folder
      work = await runningDemoFolder()
      assert.ok(work != null, `no dockerd of the demo runs:\n${output}`)
      assert.notDeepEqual((await leftIn(work)).pids, [], 'its daemons outlive the demo')
      assert.match((await demo(['--background'])).output, /a demo was killed and left its daemons running in \/tmp\/physarum-demo\.\w+: scripts\/demo\.sh stop ends them/)

      const stopped = await demo(['stop'])
      assert.equal(stopped.code, 0, stopped.output)
      assert.match(stopped.output, /stopped; nothing of it is left/)
      assert.deepEqual(await leftIn(work), { pids: [], mounts: [] })
      for (const left of [work, '/run/physarum-demo.pid', '/run/physarum-demo.work']) {
        assert.equal(existsSync(left), false, `${left} is left behind`)
      }
      assert.match((await demo(['stop'])).output, /no demo is running/)
    } finally {
      child.kill('SIGKILL')
      work ??= await runningDemoFolder()
      // what the stop command did not end, so that the files after this one find the machine clean
      if (work != null) {
        for (const pid of (await leftIn(work)).pids) {
          try {
            process.kill(pid, 'SIGKILL')
          } catch {
            // gone meanwhile
          }
        }
        await unmountUnder(work)
        await rm(work, { recursive: true, force: true })
      }
      // the killed demo's files only: another demo's stay
      const owned = { '/run/physarum-demo.pid': String(child.pid), '/run/physarum-demo.work': work }
      for (const [file, content] of Object.entries(owned)) {
        if ((await readFile(file, 'utf8').catch(() => '')).trim() === content) {
          await rm(file, { force: true })
        }
      }
    }
  })
})
