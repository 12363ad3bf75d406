import assert from 'node:assert/strict'
import { execFile, spawn } from 'node:child_process'
import { once } from 'node:events'
import { chmod, lstat, mkdir, mkdtemp, readFile, realpath, rm, stat, symlink, writeFile } from 'node:fs/promises'
import { homedir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { after, before, describe, it } from 'node:test'
import { promisify } from 'node:util'

const ROOT = new URL('../', import.meta.url).pathname.replace(/\/$/, '')
const run = promisify(execFile)

/**
 * scripts/install.sh as docs/operations.md has an operator run it, into folders of the test's own
 * instead of /usr/local, /etc/physarum and /etc/systemd/system (and no system user).
 */
describe('scripts/install.sh', { timeout: 300_000 }, () => {
  let dir: string
  let prefix: string
  let etc: string
  let units: string

  before(async () => {
    dir = await mkdtemp('/tmp/physarum-install-')
    // as /usr/local is: the units' users must reach what is installed there
    await chmod(dir, 0o755)
    prefix = join(dir, 'usr')
    etc = join(dir, 'etc')
    units = join(dir, 'units')
    // as the earlier docs had operators do: <prefix>/bin/node a link to the Node that runs this
    // test (the toolchain's, under the installing user's home), and first on PATH
    await mkdir(join(prefix, 'bin'), { recursive: true })
    await symlink(process.execPath, join(prefix, 'bin', 'node'))
    await run('bash', [join(ROOT, 'scripts/install.sh'), '--prefix', prefix, '--etc', etc, '--units', units, '--no-user'],
      { maxBuffer: 16 * 1024 * 1024, env: { ...process.env, PATH: `${join(prefix, 'bin')}:${process.env.PATH ?? ''}` } })
  })
  after(async () => { await rm(dir, { recursive: true, force: true }) })

  it('puts a Node that a service user can run, and the commands, in <prefix>/bin', async () => {
    const node = await realpath(join(prefix, 'bin', 'node'))
    assert.ok(!node.startsWith(`${homedir()}/`), `${node} is under the installing user's home`)
    // nobody (a DynamicUser unit's user is no better off) may run it, and does
    const asNobody = ['--reuid=65534', '--regid=65534', '--clear-groups']
    await run('setpriv', [...asNobody, 'test', '-x', join(prefix, 'bin', 'node')])
    const { stdout } = await run('setpriv', [...asNobody, join(prefix, 'bin', 'node'), '--version'])
    const [major, minor] = stdout.trim().slice(1).split('.').map(Number)
    assert.ok(major! > 24 || (major === 24 && minor! >= 9), stdout)
    for (const command of ['ping-monitor', 'registry-service', 'allocator', 'proxy', 'hl-cli']) {
      assert.ok((await lstat(join(prefix, 'bin', command))).isSymbolicLink(), command)
      const help = await run(join(prefix, 'bin', command), ['--help'], { env: { PATH: `${join(prefix, 'bin')}:/usr/bin:/bin` } })
      assert.match(help.stdout, new RegExp(command === 'proxy' ? '--sidecar' : '--'), command)
    }
  })

  it('writes the environment file once, mode 0600, and units that run this checkout with that Node', async () => {
    assert.equal((await stat(join(etc, 'physarum.env'))).mode & 0o777, 0o600)
    assert.equal(await readFile(join(etc, 'physarum.env'), 'utf8'), await readFile(join(ROOT, 'configs/physarum.env.example'), 'utf8'))
    const unit = await readFile(join(units, 'physarum-ping-monitor.service'), 'utf8')
    assert.match(unit, new RegExp(`^ExecStart=${prefix}/bin/node ${ROOT}/packages/ping-monitor/bin/ping-monitor\\.js `, 'm'))
    assert.match(unit, new RegExp(`^EnvironmentFile=${etc}/physarum\\.env$`, 'm'))
    // a second run keeps the operator's environment file
    await writeFile(join(etc, 'physarum.env'), 'PHYSARUM_PSK=kept\n')
    await run('bash', [join(ROOT, 'scripts/install.sh'), '--prefix', prefix, '--etc', etc, '--units', units, '--no-user'], { maxBuffer: 16 * 1024 * 1024 })
    assert.equal(await readFile(join(etc, 'physarum.env'), 'utf8'), 'PHYSARUM_PSK=kept\n')
  })

  it('starts the first ping-monitor on the example environment once its key is set, and a SIGTERM ends it with the units\' success status', async () => {
    const example = await readFile(join(ROOT, 'configs/physarum.env.example'), 'utf8')
    const env: Record<string, string> = { PATH: `${join(prefix, 'bin')}:/usr/bin:/bin`, HOME: dir }
    for (const line of example.split('\n')) {
      const match = /^([A-Z_]+)=(.*)$/.exec(line)
      if (match != null) {
        env[match[1]!] = match[2]!
      }
    }
    const args = [join(ROOT, 'packages/ping-monitor/bin/ping-monitor.js'), '--state-dir', join(dir, 'state'), '--listen', '/ip4/127.0.0.1/tcp/0', '--metrics-listen', '127.0.0.1:0']
    // as installed, the file holds no key: the daemon says so instead of running an open overlay
    const keyless = await run(join(prefix, 'bin', 'node'), args, { env }).then(() => ({ code: 0, stderr: '' }), (err: { code: number, stderr: string }) => err)
    assert.equal(keyless.code, 2, keyless.stderr)
    assert.match(keyless.stderr, /No pre-shared key: set PHYSARUM_PSK/)
    env.PHYSARUM_PSK = 'a passphrase set by the operator'
    const child = spawn(join(prefix, 'bin', 'node'), args, { env, stdio: ['ignore', 'pipe', 'pipe'] })
    const exited = once(child, 'exit')
    const lines: string[] = []
    createInterface({ input: child.stderr }).on('line', line => { lines.push(line) })
    try {
      for await (const line of createInterface({ input: child.stdout })) {
        if (line.startsWith('ping-monitor listening: /ip4/127.0.0.1/tcp/')) {
          break
        }
      }
      assert.equal(child.exitCode, null, lines.join('\n'))
      child.kill('SIGTERM')
      const [code] = await exited as [number | null]
      const unit = await readFile(join(units, 'physarum-ping-monitor.service'), 'utf8')
      assert.equal(String(code), /^SuccessExitStatus=(\d+)$/m.exec(unit)?.[1], lines.join('\n'))
    } finally {
      child.kill('SIGKILL')
    }
  })
})
