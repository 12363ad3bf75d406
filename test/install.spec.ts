import assert from 'node:assert/strict'
import { execFile, spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { once } from 'node:events'
import { chmod, lstat, mkdir, mkdtemp, readdir, readFile, realpath, rm, stat, symlink, writeFile } from 'node:fs/promises'
import { homedir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { after, before, describe, it } from 'node:test'
import { promisify } from 'node:util'

const ROOT = new URL('../', import.meta.url).pathname.replace(/\/$/, '')
const run = promisify(execFile)
const COMMANDS = ['ping-monitor', 'registry-service', 'allocator', 'proxy', 'hl-cli']
const AS_NOBODY = ['--reuid=65534', '--regid=65534', '--clear-groups']
// what an operator may have in <prefix>/bin already: a Node of their own, which every program of
// the host runs, and a command of their own under one of physarum's names
const OWN_NODE = '#!/bin/sh\necho "the operator\'s own node"\n'
const OWN_PROXY = '#!/bin/sh\necho "the operator\'s own proxy"\n'

/**
 * The unit's command line as systemd runs it: `${NAME}` replaced within a word, `$NAME` as a word
 * of its own split at white space (no argument when empty).
 */
function execStart (unit: string, env: Record<string, string>): string[] {
  const line = /^ExecStart=(.*)$/m.exec(unit)?.[1] ?? ''
  return line.split(' ').flatMap(word => /^\$\w+$/.test(word)
    ? (env[word.slice(1)] ?? '').split(/\s+/).filter(Boolean)
    : [word.replace(/\$\{(\w+)\}/g, (_match, name: string) => env[name] ?? '')])
}

/**
 * scripts/install.sh as docs/operations.md has an operator run it, into folders of the test's own
 * instead of /usr/local, /etc/physarum and /etc/systemd/system (and no system user).
 */
describe('scripts/install.sh', { timeout: 600_000 }, () => {
  let dir: string
  let prefix: string
  let etc: string
  let units: string
  let refused: { code: number, stderr: string }
  let leftByRefusal: { dir: string[], bin: string[] }

  const install = async (): Promise<{ code: number, stderr: string }> =>
    await run('bash', [join(ROOT, 'scripts/install.sh'), '--prefix', prefix, '--etc', etc, '--units', units, '--no-user'], { maxBuffer: 16 * 1024 * 1024 })
      .then(({ stderr }) => ({ code: 0, stderr }), (err: { code: number, stderr: string }) => err)

  before(async () => {
    dir = await mkdtemp('/tmp/physarum-install-')
    // as /usr/local is: the units' users must reach what is installed there
    await chmod(dir, 0o755)
    prefix = join(dir, 'usr')
    etc = join(dir, 'etc')
    units = join(dir, 'units')
    await mkdir(join(prefix, 'bin'), { recursive: true })
    await writeFile(join(prefix, 'bin', 'node'), OWN_NODE, { mode: 0o755 })
    await writeFile(join(prefix, 'bin', 'proxy'), OWN_PROXY, { mode: 0o755 })
    refused = await install()
    leftByRefusal = { dir: await readdir(dir), bin: (await readdir(join(prefix, 'bin'))).sort() }
    // the operator moved theirs away; hl-cli is linked to its bin file, as an earlier version did
    await rm(join(prefix, 'bin', 'proxy'))
    await symlink(join(ROOT, 'packages/hl-cli/bin/hl-cli.js'), join(prefix, 'bin', 'hl-cli'))
    const installed = await install()
    assert.equal(installed.code, 0, installed.stderr)
  })
  after(async () => { await rm(dir, { recursive: true, force: true }) })

  it('refuses to replace a command in <prefix>/bin that is not its own, before it changes anything', () => {
    assert.equal(refused.code, 1, refused.stderr)
    assert.match(refused.stderr, new RegExp(`^install\\.sh: ${prefix}/bin/proxy: not installed by physarum, and left as they are; nothing was installed\\. Move them away`, 'm'))
    assert.deepEqual(leftByRefusal, { dir: ['usr'], bin: ['node', 'proxy'] })
  })

  it('leaves <prefix>/bin/node alone, and puts a Node that a service user can run in <prefix>/lib/physarum', async () => {
    assert.equal(await readFile(join(prefix, 'bin', 'node'), 'utf8'), OWN_NODE)
    const node = join(prefix, 'lib', 'physarum', 'node')
    assert.ok(!(await realpath(node)).startsWith(`${homedir()}/`), `${node} is under the installing user's home`)
    // nobody (a DynamicUser unit's user is no better off) may run it, and does
    await run('setpriv', [...AS_NOBODY, 'test', '-x', node])
    const { stdout } = await run('setpriv', [...AS_NOBODY, node, '--version'])
    const [major, minor] = stdout.trim().slice(1).split('.').map(Number)
    assert.ok(major! > 24 || (major === 24 && minor! >= 9), stdout)
  })

  it('puts commands in <prefix>/bin that run with that Node whatever Node is first on PATH, in place of an earlier version\'s links', async () => {
    for (const command of COMMANDS) {
      const file = join(prefix, 'bin', command)
      assert.ok((await lstat(file)).isFile(), `${command} is not a file of its own`)
      assert.match(await readFile(file, 'utf8'), new RegExp(`^exec '${prefix}/lib/physarum/node' '${ROOT}/packages/${command}/bin/${command}\\.js' "\\$@"$`, 'm'))
      // no Node on PATH but the distribution's, if any (Debian's 20, on which libp2p 3 crashes)
      for (const prefixed of [[], ['setpriv', ...AS_NOBODY]]) {
        const [program, ...args] = [...prefixed, file, '--help']
        const help = await run(program, args, { env: { PATH: '/usr/bin:/bin' } })
        assert.match(help.stdout, new RegExp(command === 'proxy' ? '--sidecar' : '--'), `${prefixed.join(' ')} ${command}`)
      }
    }
  })

  it('writes the environment file once, mode 0600, and units that run this checkout with that Node; a second run changes nothing else', async () => {
    assert.equal((await stat(join(etc, 'physarum.env'))).mode & 0o777, 0o600)
    assert.equal(await readFile(join(etc, 'physarum.env'), 'utf8'), await readFile(join(ROOT, 'configs/physarum.env.example'), 'utf8'))
    const unit = await readFile(join(units, 'physarum-ping-monitor.service'), 'utf8')
    assert.match(unit, new RegExp(`^ExecStart=${prefix}/lib/physarum/node ${ROOT}/packages/ping-monitor/bin/ping-monitor\\.js `, 'm'))
    assert.match(unit, new RegExp(`^EnvironmentFile=${etc}/physarum\\.env$`, 'm'))
    const snapshot = async (): Promise<string[]> => [
      (await readdir(join(prefix, 'bin'))).sort().join(' '),
      ...await Promise.all(COMMANDS.map(async command => await readFile(join(prefix, 'bin', command), 'utf8'))),
      ...await Promise.all((await readdir(units)).sort().map(async file => `${file}: ${await readFile(join(units, file), 'utf8')}`))
    ]
    const first = await snapshot()
    // a second run keeps the operator's environment file
    await writeFile(join(etc, 'physarum.env'), 'PHYSARUM_PSK=kept\n')
    const again = await install()
    assert.equal(again.code, 0, again.stderr)
    assert.doesNotMatch(again.stderr, /warning: .*physarum\.env/)
    assert.equal(await readFile(join(etc, 'physarum.env'), 'utf8'), 'PHYSARUM_PSK=kept\n')
    assert.deepEqual(await snapshot(), first)
    assert.equal(await readFile(join(prefix, 'bin', 'node'), 'utf8'), OWN_NODE)
  })

  it('starts the first ping-monitor from its unit\'s command line on the example environment once its key is set, with the host\'s flags, and a SIGTERM ends it with the units\' success status', async () => {
    const example = await readFile(join(ROOT, 'configs/physarum.env.example'), 'utf8')
    const env: Record<string, string> = { PATH: '/usr/bin:/bin', HOME: dir, STATE_DIRECTORY: join(dir, 'state') }
    for (const line of example.split('\n')) {
      const match = /^([A-Z_]+)=(.*)$/.exec(line)
      if (match != null) {
        env[match[1]!] = match[2]!
      }
    }
    // this host's own flags, as docs/operations.md has an operator add them to the environment file
    env.PHYSARUM_PING_MONITOR_ARGS = '--listen /ip4/127.0.0.1/tcp/0 --metrics-listen 127.0.0.1:0'
    const unit = await readFile(join(units, 'physarum-ping-monitor.service'), 'utf8')
    const [program, ...args] = execStart(unit, env)
    assert.deepEqual(args.slice(-4), ['--listen', '/ip4/127.0.0.1/tcp/0', '--metrics-listen', '127.0.0.1:0'])
    // as installed, the file holds no key: the daemon says so instead of running an open overlay
    const keyless = await run(program!, args, { env }).then(() => ({ code: 0, stderr: '' }), (err: { code: number, stderr: string }) => err)
    assert.equal(keyless.code, 2, keyless.stderr)
    assert.match(keyless.stderr, /No pre-shared key: set PHYSARUM_PSK/)
    env.PHYSARUM_PSK = 'a passphrase set by the operator'
    const child = spawn(program!, args, { env, stdio: ['ignore', 'pipe', 'pipe'] })
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
      assert.equal(String(code), /^SuccessExitStatus=(\d+)$/m.exec(unit)?.[1], lines.join('\n'))
    } finally {
      child.kill('SIGKILL')
    }
  })

  it('warns when the environment file it keeps may be read by users other than root, and leaves its mode as it is', async () => {
    const file = join(etc, 'physarum.env')
    await chmod(file, 0o644)
    try {
      const loose = await install()
      assert.equal(loose.code, 0, loose.stderr)
      assert.match(loose.stderr, new RegExp(`^install\\.sh: warning: ${file} \\(mode 644\\) may be read by users other than its owner, and it holds the overlay's key: chmod 600 ${file}$`, 'm'))
      assert.equal((await stat(file)).mode & 0o777, 0o644)
    } finally {
      await chmod(file, 0o600)
    }
  })

  it('refuses to run as another user than root before it fetches or changes anything', async () => {
    const home = join(dir, 'nobody')
    await mkdir(home)
    await chmod(home, 0o777)
    const args = [join(ROOT, 'scripts/install.sh'), '--prefix', join(home, 'usr'), '--etc', join(home, 'etc'), '--units', join(home, 'units'), '--no-user']
    const refusal = await run('setpriv', [...AS_NOBODY, 'bash', ...args], { env: { PATH: '/usr/bin:/bin', HOME: home }, timeout: 30_000 })
      .then(({ stderr }) => ({ code: 0, stderr }), (err: { code: number, stderr: string }) => err)
    assert.equal(refusal.code, 1, refusal.stderr)
    assert.match(refusal.stderr, /^install\.sh: run it as root \(it checks what the units' users can read as user nobody, and creates the user physarum\)$/m)
    assert.deepEqual(await readdir(home), [])
  })

  it('takes relative --prefix, --etc and --units from where it is run, not from the checkout, and writes absolute paths', async () => {
    const cwd = join(dir, 'relative')
    await mkdir(cwd)
    const made = ['usr', 'etc', 'units']
    const there = made.filter(name => existsSync(join(ROOT, name)))
    const relative = await run('bash', [join(ROOT, 'scripts/install.sh'), '--prefix', 'usr', '--etc', 'etc', '--units', 'units', '--no-user'], { cwd, maxBuffer: 16 * 1024 * 1024 })
      .then(({ stderr }) => ({ code: 0, stderr }), (err: { code: number, stderr: string }) => err)
    try {
      assert.equal(relative.code, 0, relative.stderr)
      for (const name of made) {
        assert.ok(there.includes(name) || !existsSync(join(ROOT, name)), `${name} was made in the checkout`)
      }
      assert.deepEqual((await readdir(cwd)).sort(), ['etc', 'units', 'usr'])
      const unit = await readFile(join(cwd, 'units', 'physarum-proxy.service'), 'utf8')
      assert.match(unit, new RegExp(`^ExecStart=${cwd}/usr/lib/physarum/node `, 'm'))
      assert.match(unit, new RegExp(`^EnvironmentFile=${cwd}/etc/physarum\\.env$`, 'm'))
      // the command runs from anywhere
      const help = await run(join(cwd, 'usr', 'bin', 'proxy'), ['--help'], { cwd: '/', env: { PATH: '/usr/bin:/bin' } })
      assert.match(help.stdout, /--sidecar/)
    } finally {
      await Promise.all(made.filter(name => !there.includes(name)).map(async name => { await rm(join(ROOT, name), { recursive: true, force: true }) }))
    }
  })

  it('stops with what to do when an unprivileged user cannot read the dependencies, as under root\'s umask 027', async () => {
    const store = join(ROOT, 'node_modules', '.pnpm')
    const mode = (await stat(store)).mode & 0o7777
    await chmod(store, 0o750)
    try {
      const unreadable = await install()
      assert.equal(unreadable.code, 1, unreadable.stderr)
      assert.match(unreadable.stderr, new RegExp(`^install\\.sh: an unprivileged user \\(nobody, as the units' users\\) cannot run ping-monitor from ${ROOT}: .+$`, 'm'))
      assert.match(unreadable.stderr, new RegExp(`^install\\.sh: make the checkout and its folders readable by every user \\(chmod -R o\\+rX ${ROOT}, .*then run this again$`, 'm'))
      assert.doesNotMatch(unreadable.stderr, /installed;/)
    } finally {
      await chmod(store, mode)
    }
  })
})
