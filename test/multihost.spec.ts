import assert from 'node:assert/strict'
import { execFile, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { createWriteStream } from 'node:fs'
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { promisify } from 'node:util'
import type { ChildProcess } from 'node:child_process'
import { sweepLeftovers, unmountUnder } from './leftovers.ts'

const ROOT = new URL('../', import.meta.url).pathname
const run = promisify(execFile)
const NODE_IMAGE = 'physarum/node:24'
const SERVICE = 'hello-world-server'
/** The test's own network: a bridge in the core namespace; nothing of it exists outside the namespaces. */
const NET = '10.213.0'
const CORE_IP = `${NET}.1`
const ALLOCATOR_PORT = 4001
const SIDECAR_PORT = 4300

/**
 * A host: a network namespace on the bridge, with its own dockerd and allocator. A far host is
 * reached through a delay relay in the core namespace: its allocator and sidecars announce the
 * relay's address (`face`), so every peer that dials them crosses the relay.
 */
interface Host {
  name: string
  ns: string
  ip: string
  face: string
  delayMs: number
  /** Its allocator runs the containers on Docker's bridge network (--network-mode bridge). */
  bridge: boolean
  dir: string
  docker: string
  dockerd?: Daemon
  allocator?: Daemon
}

/** Polls `check` until it returns a value. */
async function eventually<T> (what: string, check: () => Promise<T | undefined>, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await check().catch(() => undefined)
    if (value !== undefined) {
      return value
    }
    if (Date.now() > deadline) {
      throw new Error(`gave up waiting for ${what} after ${timeoutMs} ms`)
    }
    await new Promise(resolve => setTimeout(resolve, 250))
  }
}

/** A process started in a namespace, its output in <logs>/<name>.log, its lines kept for waiting. */
class Daemon {
  readonly child: ChildProcess
  readonly exited: Promise<unknown>
  #output = ''
  readonly #waiters = new Set<() => void>()

  readonly name: string

  constructor (name: string, ns: string, argv: string[], env: Record<string, string>, logs: string) {
    this.name = name
    this.child = spawn('nsenter', [`--net=/var/run/netns/${ns}`, ...argv], { env, stdio: ['ignore', 'pipe', 'pipe'], detached: true })
    this.exited = once(this.child, 'exit')
    const log = createWriteStream(join(logs, `${name}.log`))
    for (const stream of [this.child.stdout!, this.child.stderr!]) {
      stream.on('data', (chunk: Buffer) => {
        log.write(chunk)
        this.#output += chunk.toString('utf8')
        this.#waiters.forEach(wake => { wake() })
      })
    }
    this.child.on('exit', () => { log.end(); this.#waiters.forEach(wake => { wake() }) })
  }

  /** The first match of `pattern` in the output (lines: use ^ and $ with the m flag). */
  async match (pattern: RegExp, timeoutMs = 60_000): Promise<RegExpExecArray> {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const found = pattern.exec(this.#output)
      if (found != null) {
        return found
      }
      if (this.child.exitCode != null || this.child.signalCode != null) {
        throw new Error(`${this.name} exited (${this.child.exitCode ?? this.child.signalCode}) before printing ${pattern}:\n${this.#output.slice(-2_000)}`)
      }
      if (Date.now() > deadline) {
        throw new Error(`${this.name} printed nothing like ${pattern} within ${timeoutMs} ms:\n${this.#output.slice(-2_000)}`)
      }
      await new Promise<void>(resolve => {
        const wake = (): void => { this.#waiters.delete(wake); clearTimeout(timer); resolve() }
        const timer = setTimeout(wake, 500)
        this.#waiters.add(wake)
      })
    }
  }

  /** `signal` to the process, then SIGKILL to its whole group after `graceMs`. */
  async stop (signal: NodeJS.Signals = 'SIGTERM', graceMs = 30_000): Promise<void> {
    if (this.child.exitCode == null && this.child.signalCode == null) {
      this.child.kill(signal)
      const timer = setTimeout(() => { this.#killGroup() }, graceMs)
      await this.exited
      clearTimeout(timer)
    }
    // what the process started and left (an etcd, a containerd) goes with it
    this.#killGroup()
  }

  #killGroup (): void {
    try {
      process.kill(-this.child.pid!, 'SIGKILL')
    } catch {
      // the group is gone
    }
  }
}

/**
 * Three hosts on one machine, as the issue asks: network namespaces this test creates, joined by
 * a bridge, each with its own dockerd (started in the namespace with nsenter) and allocator. The
 * core namespace holds what the hosts share: the ping-monitor, the registry-service with its etcd,
 * the image registry, the delay relays, and the user's proxy. Host a is next to the proxy; b is
 * 10 ms away each way and c 100 ms. Every daemon runs as its own CLI process, the PSK in its
 * environment only.
 */
describe('three hosts in network namespaces', { timeout: 600_000 }, () => {
  const prefix = `phm${process.pid}`
  const core = `${prefix}-core`
  const namespaces: string[] = []
  const daemons: Daemon[] = []
  let dir: string
  let logs: string
  let env: Record<string, string>
  let bootstrap: string
  const hosts: Host[] = [
    { name: 'a', ip: `${NET}.2`, face: `${NET}.2`, delayMs: 0, bridge: true },
    { name: 'b', ip: `${NET}.3`, face: `${NET}.12`, delayMs: 10, bridge: false },
    { name: 'c', ip: `${NET}.4`, face: `${NET}.13`, delayMs: 100, bridge: false }
  ].map(host => ({ ...host, ns: `${prefix}-${host.name}`, dir: '', docker: '' }))

  const start = (name: string, ns: string, argv: string[]): Daemon => {
    const daemon = new Daemon(name, ns, argv, env, logs)
    daemons.push(daemon)
    return daemon
  }
  const ip = async (...args: string[]): Promise<void> => { await run('ip', args) }
  const cli = (pkg: string): string[] => [process.execPath, join(ROOT, `packages/${pkg}/bin/${pkg}.js`)]
  /** The last lines of every log: what a failed assertion shows. */
  const tails = async (): Promise<string> => {
    const parts = []
    for (const file of (await readdir(logs).catch(() => [])).sort()) {
      const text = await readFile(join(logs, file), 'utf8')
      parts.push(`--- ${file}\n${text.split('\n').slice(-12).join('\n')}`)
    }
    return parts.join('\n')
  }
  /** GET through the proxy, from inside the core namespace (where it listens on 127.0.0.1). */
  const get = async (path: string): Promise<{ status: number, headers: Record<string, string>, body: string }> => {
    const { stdout } = await run('nsenter', [`--net=/var/run/netns/${core}`, 'curl', '-sS', '-i', '--max-time', '120', `http://127.0.0.1:4200${path}`])
    const [head = '', ...rest] = stdout.split('\r\n\r\n')
    const [statusLine = '', ...headerLines] = head.split('\r\n')
    const headers = Object.fromEntries(headerLines.map(line => [line.slice(0, line.indexOf(':')).toLowerCase(), line.slice(line.indexOf(':') + 1).trim()]))
    return { status: Number(statusLine.split(' ')[1]), headers, body: rest.join('\r\n\r\n') }
  }
  /** The names of the service's containers on a host's engine. */
  const containers = async (host: Host): Promise<string[]> => {
    const { stdout } = await run('docker', ['-H', host.docker, 'ps', '--filter', `label=io.physarum.service=${SERVICE}`, '--format', '{{.Names}}'])
    return stdout.split('\n').filter(Boolean).sort()
  }

  before(async () => {
    // what a killed run of this file left: its namespaces, processes, containers and folder
    await sweepLeftovers('phm')
    // short: dockerd's unix socket path must stay under ~100 bytes; named after this run, so
    // that a later run finds it if this one is killed
    dir = await mkdtemp(`/tmp/${prefix}-`)
    logs = join(dir, 'logs')
    await run('mkdir', ['-p', logs])
    env = {
      PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin',
      HOME: dir,
      PHYSARUM_PSK: `multihost-${randomBytes(16).toString('hex')}`,
      PHYSARUM_LOG_LEVEL: 'info'
    }

    // the network: a bridge in the core namespace, one veth per host, the far hosts' faces on the bridge
    for (const ns of [core, ...hosts.map(h => h.ns)]) {
      await ip('netns', 'add', ns)
      namespaces.push(ns)
      await ip('-n', ns, 'link', 'set', 'lo', 'up')
    }
    await ip('-n', core, 'link', 'add', 'br0', 'type', 'bridge')
    await ip('-n', core, 'addr', 'add', `${CORE_IP}/24`, 'dev', 'br0')
    await ip('-n', core, 'link', 'set', 'br0', 'up')
    for (const host of hosts) {
      await ip('-n', core, 'link', 'add', `v-${host.name}`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', host.ns)
      await ip('-n', core, 'link', 'set', `v-${host.name}`, 'master', 'br0', 'up')
      await ip('-n', host.ns, 'addr', 'add', `${host.ip}/24`, 'dev', 'eth0')
      await ip('-n', host.ns, 'link', 'set', 'eth0', 'up')
      if (host.face !== host.ip) {
        await ip('-n', core, 'addr', 'add', `${host.face}/24`, 'dev', 'br0')
      }
    }

    // a Docker engine per host, inside its namespace: its host-network containers are on that host
    // host a's containers go on Docker's bridge network (docker0 and its NAT rules stay inside the
    // namespace), the others' on the host network
    for (const host of hosts) {
      host.dir = join(dir, host.name)
      host.docker = `unix://${host.dir}/docker.sock`
      host.dockerd = start(`dockerd-${host.name}`, host.ns, ['dockerd', '--data-root', join(host.dir, 'data'), '--exec-root', join(host.dir, 'exec'),
        '-H', host.docker, '--pidfile', join(host.dir, 'dockerd.pid'), '--insecure-registry', `${NET}.0/24`,
        ...(host.bridge ? [] : ['--bridge=none', '--iptables=false'])])
    }
    const images = join(dir, 'images')
    await writeFile(join(dir, 'registry.yml'), `version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: ${images}\nhttp:\n  addr: ${CORE_IP}:5000\n`)
    start('docker-registry', core, ['docker-registry', 'serve', join(dir, 'registry.yml')])
    const monitor = start('ping-monitor', core, [...cli('ping-monitor'), '--ephemeral', '--listen', `/ip4/${CORE_IP}/tcp/4001`,
      '--metrics-listen', '127.0.0.1:9100', '--hostname', 'core'])
    bootstrap = (await monitor.match(/^ping-monitor listening: (\S+)$/m))[1]!
    env.PHYSARUM_BOOTSTRAP = bootstrap

    await Promise.all(hosts.map(async (host) => {
      for (let attempt = 0; ; attempt++) {
        try {
          await run('docker', ['-H', host.docker, 'version'])
          break
        } catch (err) {
          if (attempt > 150 || host.dockerd!.child.exitCode != null) {
            throw new Error(`dockerd of host ${host.name} does not answer: ${(err as Error).message}\n${await tails()}`, { cause: err })
          }
          await new Promise(resolve => setTimeout(resolve, 200))
        }
      }
      await run(join(ROOT, 'scripts/build-node-image.sh'), [NODE_IMAGE], { env: { ...process.env, DOCKER_HOST: host.docker } })
    }))

    const hlState = join(dir, 'hl-cli')
    const { stdout: admin } = await run(process.execPath, [...cli('hl-cli').slice(1), 'id', '--state-dir', hlState], { env })
    const registry = start('registry-service', core, [...cli('registry-service'), '--state-dir', join(dir, 'registry'), '--ephemeral',
      '--new-etcd-cluster', '--etcd-ip', '127.0.0.1', '--listen', `/ip4/${CORE_IP}/tcp/4002`, '--metrics-listen', '127.0.0.1:9102', '--admin', admin.trim()])

    for (const host of hosts.filter(h => h.face !== h.ip)) {
      const relay = start(`relay-${host.name}`, core, [process.execPath, join(ROOT, 'packages/proxy/test/delay-relay.ts'), '--listen-host', host.face,
        '--target-host', host.ip, '--ports', `${ALLOCATOR_PORT},${SIDECAR_PORT}`, '--delay-ms', String(host.delayMs)])
      await relay.match(/^relaying$/m)
    }
    await registry.match(/^registry-service listening: /m)

    for (const host of hosts) {
      const far = host.face !== host.ip
      host.allocator = start(`allocator-${host.name}`, host.ns, [...cli('allocator'), '--ephemeral', '--state-dir', join(host.dir, 'allocator'),
        '--docker-host', host.docker, '--node-image', NODE_IMAGE, '--hostname', `host-${host.name}`, '--metrics-listen', '127.0.0.1:9101',
        '--listen', `/ip4/${host.ip}/tcp/${ALLOCATOR_PORT}`,
        ...(far
          ? ['--announce', `/ip4/${host.face}/tcp/${ALLOCATOR_PORT}`, '--sidecar-listen', `/ip4/${host.ip}/tcp/${SIDECAR_PORT}`,
              '--sidecar-announce', `/ip4/${host.face}/tcp/${SIDECAR_PORT}`, '--max-instances', '1']
          : ['--network-mode', 'bridge'])])
    }
    for (const host of hosts) {
      // a far host's allocator tells the overlay its relay's address only
      const [, listening] = await host.allocator!.match(/^allocator listening: (\S+)$/m, 120_000)
      assert.match(listening!, new RegExp(`^/ip4/${host.face}/tcp/${ALLOCATOR_PORT}/p2p/\\w+$`))
    }

    // hl-cli builds on host a's engine and pushes to the image registry on the bridge
    const added = await run('nsenter', [`--net=/var/run/netns/${core}`, ...cli('hl-cli'), 'add', join(ROOT, 'demos/helloworld/image-conf.json'),
      join(ROOT, 'demos/helloworld'), `${CORE_IP}:5000/hello:1.0`, SERVICE, '--from', NODE_IMAGE, '--state-dir', hlState, '--json'],
    { env: { ...env, DOCKER_HOST: hosts[0]!.docker } })
    assert.match(added.stdout, /"digest": ?"sha256:/)
    // hl-cli built there: an allocator must pull from the registry like any other host
    await run('docker', ['-H', hosts[0]!.docker, 'rmi', `${CORE_IP}:5000/hello:1.0`])

    const proxy = start('proxy', core, [...cli('proxy'), '4200', '--ephemeral', '--listen', `/ip4/${CORE_IP}/tcp/0`, '--metrics-listen', '127.0.0.1:9103'])
    await proxy.match(/"msg":"proxy started"/)
  })

  after(async () => {
    // newest first: the proxy and the allocators (which remove their containers) before the engines
    for (const daemon of [...daemons].reverse()) {
      await daemon.stop()
    }
    for (const ns of namespaces) {
      await ip('netns', 'del', ns).catch(() => {})
    }
    if (dir != null) {
      // dockerd leaves its network namespace mounted under its exec root
      await unmountUnder(dir)
      await rm(dir, { recursive: true, force: true })
    }
  })

  it('serves from the host next to the proxy, and from the next nearest once that host stops', async () => {
    // the allocators provide their topic in the background right after they start: the first
    // request goes out once the overlay finds all three, or the proxy would choose among fewer
    await eventually('the overlay to find the three allocators', async () => {
      const { stdout } = await run('nsenter', [`--net=/var/run/netns/${core}`, ...cli('hl-cli'), 'status', '--json'], { env })
      const { allocators } = JSON.parse(stdout) as { allocators: unknown[] }
      return allocators.length === hosts.length ? true : undefined
    }, 60_000)
    const first = await get(`/${SERVICE}`)
    assert.equal(first.status, 200, `${first.body}\n${await tails()}`)
    assert.match(first.body, /Hello, world/)
    assert.ok(Number(first.headers['x-physarum-cold-start-ms']) > 0, JSON.stringify(first.headers))
    const [a, b, c] = hosts as [Host, Host, Host]
    const onA = await containers(a)
    assert.equal(onA.length, 2, `the service and its sidecar run on host a, next to the proxy\n${await tails()}`)
    assert.deepEqual([await containers(b), await containers(c)], [[], []], await tails())
    // on the bridge network: the sidecar's overlay port published on the host, the service inside
    // the sidecar's network namespace
    const sidecar = onA.find(name => name.endsWith('-sidecar'))!
    const { stdout: ports } = await run('docker', ['-H', a.docker, 'port', sidecar])
    assert.match(ports, /^4001\/tcp -> 0\.0\.0\.0:\d+$/m)
    const { stdout: mode } = await run('docker', ['-H', a.docker, 'inspect', '-f', '{{.HostConfig.NetworkMode}}', onA.find(name => name.endsWith('-service'))!])
    assert.match(mode, /^container:\w+$/m)

    // the sidecar dies: the allocator starts it again and restarts the service into its new
    // network namespace; the same instance serves again
    await run('docker', ['-H', a.docker, 'kill', sidecar])
    await eventually('the sidecar to check in again', async () => {
      const { stdout } = await run('nsenter', [`--net=/var/run/netns/${a.ns}`, 'curl', '-sf', 'http://127.0.0.1:9101/instances'])
      const [instance] = JSON.parse(stdout) as Array<{ restarts: number, checkedIn: boolean }>
      return instance != null && instance.restarts === 1 && instance.checkedIn ? true : undefined
    }, 30_000)
    const again = await get(`/${SERVICE}`)
    assert.equal(again.status, 200, `${again.body}\n${await tails()}`)
    assert.match(again.body, /Hello, world/)
    assert.deepEqual(await containers(a), onA, 'no new instance')

    // host a goes down: its allocator dies, then its engine with the instance
    await a.allocator!.stop('SIGKILL')
    await a.dockerd!.stop('SIGTERM')

    const second = await get(`/${SERVICE}`)
    assert.equal(second.status, 200, `${second.body}\n${await tails()}`)
    assert.match(second.body, /Hello, world/)
    assert.ok(Number(second.headers['x-physarum-cold-start-ms']) > 0, 'a new instance was started')
    assert.equal((await containers(b)).length, 2, `host b (20 ms) serves now, not host c (200 ms)\n${await tails()}`)
    assert.deepEqual(await containers(c), [])

    const warm = await get(`/${SERVICE}`)
    assert.equal(warm.status, 200)
    assert.equal(warm.headers['x-physarum-cold-start-ms'], undefined)
  })
})

