import { spawn, execFile } from 'node:child_process'
import { once } from 'node:events'
import { connect, createServer } from 'node:net'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import Docker from 'dockerode'
import { pack } from 'tar-stream'
import { sweepLeftovers, unmountUnder } from '../../../test/leftovers.ts'
import { eventually, freePort, silentLog, startNode, startRegistry, stopAll, tempDir, TEST_PSK, TestEtcd } from '../../registry-service/test/helpers.ts'
import { createRegistryClient } from '@physarum/registry-service'
import { ALLOCATOR_TOPIC, sendBounded } from '@physarum/p2p'
import { HTTP_PROTOCOL, LABELS } from '../src/index.ts'
import { startAllocatorDaemon } from '../src/daemon.ts'
import type { AllocatorDaemon, AllocatorDaemonConfig } from '../src/daemon.ts'
import type { InProcessRegistry } from '../../registry-service/test/helpers.ts'
import type { RegistryClient, ServiceRecordInput } from '@physarum/registry-service'
import type { PhysarumNode } from '@physarum/p2p'
import type { PeerId } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'
import type { ChildProcess } from 'node:child_process'
import type { Socket } from 'node:net'

export { eventually, freePort, silentLog, startNode, stopAll, tempDir, TEST_PSK }

export const NODE_IMAGE = 'physarum/node:24'
const ROOT = new URL('../../../', import.meta.url).pathname
const run = promisify(execFile)

/** A Docker engine for one test file: DOCKER_HOST when set, else a private dockerd under /tmp. */
export interface TestDocker {
  host: string
  docker: Docker
  stop(): Promise<void>
}

export async function startDocker (): Promise<TestDocker> {
  const given = process.env.DOCKER_HOST
  if (given != null && given !== '') {
    const docker = new Docker(given.startsWith('unix://') ? { socketPath: given.slice(7) } : undefined)
    await docker.ping()
    return { host: given, docker, stop: async () => {} }
  }
  // what a killed run's engine left: its dockerd and containerd, its folder and the mounts there
  await sweepLeftovers('pd')
  // short: a unix socket path must stay under ~100 bytes; named after this run, so that a later
  // run finds it if this one is killed
  const dir = await mkdtemp(`/tmp/pd${process.pid}-`)
  const socket = join(dir, 'docker.sock')
  const child: ChildProcess = spawn('dockerd', [
    '--data-root', join(dir, 'data'), '--exec-root', join(dir, 'exec'), '-H', `unix://${socket}`,
    '--pidfile', join(dir, 'dockerd.pid'), '--bridge=none', '--iptables=false'
  ], { stdio: 'ignore' })
  const exited = once(child, 'exit')
  const docker = new Docker({ socketPath: socket })
  const stop = async (): Promise<void> => {
    if (child.exitCode == null && child.signalCode == null) {
      child.kill('SIGTERM')
      const timer = setTimeout(() => { child.kill('SIGKILL') }, 15_000)
      await exited
      clearTimeout(timer)
    }
    // dockerd leaves its network namespace mounted (nsfs) under the exec root
    await unmountUnder(dir)
    await rm(dir, { recursive: true, force: true }).catch(() => {})
  }
  try {
    await eventually('dockerd to answer', async () => {
      if (child.exitCode != null) {
        throw new Error(`dockerd exited with ${child.exitCode}`)
      }
      await docker.ping()
      return true
    }, 30_000, 100)
  } catch (err) {
    await stop()
    throw err
  }
  return { host: `unix://${socket}`, docker, stop }
}

/** Builds the local Node base image with scripts/build-node-image.sh when the engine lacks it. */
export async function ensureNodeImage (engine: TestDocker): Promise<void> {
  try {
    await engine.docker.getImage(NODE_IMAGE).inspect()
    return
  } catch {
    // built below
  }
  await run(join(ROOT, 'scripts/build-node-image.sh'), [NODE_IMAGE], { env: { ...process.env, DOCKER_HOST: engine.host } })
}

export interface RegistryUser {
  name: string
  password: string
}

/** Debian's docker-registry on 127.0.0.1:<free port> with its own storage folder. */
export interface TestImageRegistry {
  host: string
  /** The digest the registry holds for `repository:tag`, or undefined. */
  digest(repository: string, tag: string, user?: RegistryUser): Promise<string | undefined>
  stop(): Promise<void>
}

/** With `user`, the registry wants HTTP basic auth (an htpasswd file). */
export async function startImageRegistry (user?: RegistryUser): Promise<TestImageRegistry> {
  const dir = await mkdtemp(join(tmpdir(), 'physarum-image-registry-'))
  const port = await freePort()
  const host = `127.0.0.1:${port}`
  const auth: string[] = []
  if (user != null) {
    const htpasswd = join(dir, 'htpasswd')
    await writeFile(htpasswd, `${user.name}:${await bcrypt(user.password)}\n`)
    auth.push('auth:', '  htpasswd:', '    realm: test', `    path: ${htpasswd}`)
  }
  const config = join(dir, 'config.yml')
  await writeFile(config, [
    'version: 0.1',
    'log:',
    '  level: error',
    'storage:',
    '  filesystem:',
    `    rootdirectory: ${join(dir, 'data')}`,
    '  delete:',
    '    enabled: true',
    'http:',
    `  addr: ${host}`,
    ...auth,
    ''
  ].join('\n'))
  const child = spawn('docker-registry', ['serve', config], { stdio: 'ignore' })
  const exited = once(child, 'exit')
  const stop = async (): Promise<void> => {
    if (child.exitCode == null && child.signalCode == null) {
      child.kill('SIGKILL')
      await exited
    }
    await rm(dir, { recursive: true, force: true })
  }
  try {
    await eventually('docker-registry to answer', async () => {
      if (child.exitCode != null) {
        throw new Error(`docker-registry exited with ${child.exitCode}`)
      }
      const { status } = await fetch(`http://${host}/v2/`, { signal: AbortSignal.timeout(500) })
      return status === 200 || (user != null && status === 401) ? true : undefined
    }, 15_000)
  } catch (err) {
    await stop()
    throw err
  }
  const digest = async (repository: string, tag: string, as?: RegistryUser): Promise<string | undefined> => {
    const response = await fetch(`http://${host}/v2/${repository}/manifests/${tag}`, {
      method: 'HEAD',
      headers: {
        ...(as == null ? {} : { authorization: `Basic ${Buffer.from(`${as.name}:${as.password}`).toString('base64')}` }),
        accept: 'application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json'
      }
    })
    return response.ok ? response.headers.get('docker-content-digest') ?? undefined : undefined
  }
  return { host, digest, stop }
}

/**
 * A bcrypt hash for an htpasswd file (docker-registry takes bcrypt only). Node has no bcrypt:
 * Debian's python3 (3.11, crypt module over libxcrypt) makes it.
 */
async function bcrypt (password: string): Promise<string> {
  const child = spawn('/usr/bin/python3', ['-c', 'import crypt, sys; print(crypt.crypt(sys.stdin.read(), crypt.mksalt(crypt.METHOD_BLOWFISH)))'], { stdio: ['pipe', 'pipe', 'pipe'] })
  let out = ''
  child.stdout.on('data', (chunk: Buffer) => { out += chunk.toString() })
  child.stdin.end(password)
  const [code] = await once(child, 'close') as [number | null]
  const hash = out.trim()
  if (code !== 0 || !/^\$2[aby]\$/.test(hash)) {
    throw new Error('cannot make a bcrypt hash with /usr/bin/python3 (Debian\'s python3 with the crypt module is needed for the image registry auth test)')
  }
  return hash
}

async function follow (docker: Docker, stream: NodeJS.ReadableStream): Promise<Array<Record<string, unknown>>> {
  return await new Promise((resolve, reject) => {
    docker.modem.followProgress(stream, (err: Error | null, output: Array<Record<string, unknown>>) => {
      const failed = output?.find(event => event.error != null)
      if (err != null || failed != null) {
        reject(err ?? new Error(String(failed?.error)))
      } else {
        resolve(output)
      }
    })
  })
}

/** A hello-world HTTP service: GET /slow?ms=N answers after N ms; anything else at once. */
export const HELLO_SERVER = `
const http = require('node:http')
const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://x')
  const ms = Number(url.searchParams.get('ms') ?? 0)
  setTimeout(() => {
    res.writeHead(200, { 'content-type': 'text/plain' })
    res.end('Hello, world from ' + process.env.PHYSARUM_INSTANCE + ' ' + req.url + '\\n')
  }, url.pathname === '/slow' ? ms : 0)
})
server.listen(Number(process.env.SERVICE_PORT), '127.0.0.1')
process.on('SIGTERM', () => { server.close(); process.exit(0) })
`

/** A service that exits at once, every time. */
export const CRASHING_SERVER = 'console.error("crashing on purpose"); process.exit(3)\n'

/**
 * Builds an image FROM the Node base image running `source` as server.js, pushes it to `registry`
 * and returns `host/name@sha256:<digest>`, the reference a service record holds.
 */
export async function buildServiceImage (engine: TestDocker, registry: TestImageRegistry, name: string, source: string): Promise<string> {
  const tag = `${registry.host}/${name}:test`
  const tar = pack()
  tar.entry({ name: 'Dockerfile' }, `FROM ${NODE_IMAGE}\nCOPY server.js /app/server.js\nCMD ["node", "/app/server.js"]\n`)
  tar.entry({ name: 'server.js' }, source)
  tar.finalize()
  await follow(engine.docker, await engine.docker.buildImage(tar as unknown as NodeJS.ReadableStream, { t: tag, rm: true, pull: false }))
  const output = await follow(engine.docker, await engine.docker.getImage(tag).push({ authconfig: { username: '', password: '', serveraddress: registry.host } }))
  const digest = output.map(event => (event.aux as { Digest?: string } | undefined)?.Digest).find(d => d != null)
  if (digest == null) {
    throw new Error(`pushing ${tag} gave no digest`)
  }
  return `${registry.host}/${name}@${digest}`
}

/** An overlay for allocator tests: a bootstrap, etcd, a registry service and a client node. */
export interface TestOverlay {
  bootstrap: PhysarumNode
  etcd: TestEtcd
  registry: InProcessRegistry
  client: PhysarumNode
  registryClient: RegistryClient
  register(name: string, image: string, overrides?: Partial<ServiceRecordInput>): Promise<void>
  stop(): Promise<void>
}

export async function startOverlay (): Promise<TestOverlay> {
  const bootstrap = await startNode()
  const etcd = await TestEtcd.start()
  const registry = await startRegistry(bootstrap, [etcd.endpoint], { openWrites: true })
  const client = await startNode({ bootstrap: [bootstrap.multiaddrs()[0]!.toString()] })
  const registryClient = createRegistryClient(client, { peers: [registry.node.multiaddrs()[0]!], cacheTtlMs: 0 })
  return {
    bootstrap,
    etcd,
    registry,
    client,
    registryClient,
    register: async (name, image, overrides = {}) => {
      await registryClient.add({ name, contentHash: `hash-${name}`, image, softRttMs: 20, hardRttMs: 100, cpu: 0.25, memoryMb: 128, proxyClientMode: false, ...overrides })
    },
    stop: async () => {
      await stopAll([client])
      await registry.stop()
      await stopAll([bootstrap])
      await etcd.remove()
    }
  }
}

export type TestAllocatorOptions = Partial<AllocatorDaemonConfig['allocator']> & Pick<Partial<AllocatorDaemonConfig>, 'keepInstances' | 'sidecarImage' | 'registryPeers' | 'privateKey' | 'listen'>

/** An allocator daemon in this process, on 127.0.0.1, with fast lifecycle settings. */
export async function startTestAllocator (engine: TestDocker, overlay: TestOverlay, stateDir: string, options: TestAllocatorOptions = {}): Promise<AllocatorDaemon> {
  const { keepInstances, sidecarImage, registryPeers, privateKey, listen, ...allocator } = options
  return await startAllocatorDaemon({
    ...(sidecarImage == null ? {} : { sidecarImage }),
    ...(privateKey == null ? {} : { privateKey }),
    psk: TEST_PSK,
    listen: listen ?? ['/ip4/127.0.0.1/tcp/0'],
    bootstrap: [overlay.bootstrap.multiaddrs()[0]!.toString()],
    metricsListen: { host: '127.0.0.1', port: 0 },
    dockerHost: engine.host,
    nodeImage: NODE_IMAGE,
    registryPeers: registryPeers ?? [overlay.registry.node.multiaddrs()[0]!.toString()],
    keepInstances: keepInstances ?? false,
    hostName: 'test-host',
    allocator: {
      stateDir,
      maxInstances: 8,
      cpuBudget: 0,
      memoryBudgetMb: 0,
      readyTimeoutMs: 20_000,
      pullTimeoutMs: 60_000,
      idleTimeoutMs: 10 * 60_000,
      drainDelayMs: 100,
      statsIntervalMs: 200,
      restart: { backoffMinMs: 100, backoffMaxMs: 1_000, maxRestarts: 5, windowMs: 60_000 },
      rate: { perSecond: 50, burst: 100 },
      sidecarListen: ['/ip4/127.0.0.1/tcp/0'],
      sidecarLogLevel: 'warn',
      registryIds: [overlay.registry.node.peerId.toString()],
      ...allocator
    }
  }, silentLog)
}

/**
 * GET `path` through an instance's sidecar over /physarum/http/1.0.0, as raw HTTP/1.1 bytes (the
 * sidecar is a byte pipe): the status and body.
 */
export async function httpThroughSidecar (node: PhysarumNode, sidecar: PeerId | Multiaddr | Multiaddr[], path: string, timeoutMs = 10_000): Promise<{ status: number, body: string }> {
  const signal = AbortSignal.timeout(timeoutMs)
  const stream = await node.libp2p.dialProtocol(sidecar, HTTP_PROTOCOL, { signal })
  try {
    // read from the start: the answer may come before the request is even flushed
    const reading = (async () => {
      const chunks: Buffer[] = []
      for await (const chunk of stream) {
        chunks.push(Buffer.from(chunk.subarray()))
      }
      return chunks
    })()
    await sendBounded(stream, new TextEncoder().encode(`GET ${path} HTTP/1.1\r\nHost: service\r\nConnection: close\r\n\r\n`), { signal })
    // like curl, no half-close before the answer: Node's HTTP server drops a request whose client
    // closed its side before the response was written (httpAllowHalfOpen is off by default)
    const chunks = await Promise.race([reading, new Promise<never>((_resolve, reject) => {
      signal.addEventListener('abort', () => { reject(new Error(`no answer to ${path} within ${timeoutMs} ms`)) }, { once: true })
    })])
    await stream.close({ signal })
    const text = Buffer.concat(chunks).toString('utf8')
    const match = /^HTTP\/1\.1 (\d{3})/.exec(text)
    if (match == null) {
      throw new Error(`not an HTTP response: ${JSON.stringify(text.slice(0, 100))}`)
    }
    const bodyAt = text.indexOf('\r\n\r\n')
    return { status: Number(match[1]), body: decodeBody(text.slice(0, bodyAt), text.slice(bodyAt + 4)) }
  } catch (err) {
    stream.abort(err as Error)
    throw err
  }
}

function decodeBody (head: string, body: string): string {
  if (!/transfer-encoding: chunked/i.test(head)) {
    return body
  }
  let out = ''
  let rest = body
  for (;;) {
    const eol = rest.indexOf('\r\n')
    const size = parseInt(rest.slice(0, eol), 16)
    if (!(size > 0)) {
      return out
    }
    out += rest.slice(eol + 2, eol + 2 + size)
    rest = rest.slice(eol + 2 + size + 2)
  }
}

/**
 * A unix socket in front of the engine's whose connections a test can cut and let through again:
 * Docker's API and its event stream gone for a while, as when the engine restarts.
 */
export interface EngineRelay {
  /** What the allocator is given as its Docker host. */
  host: string
  /** Closes every connection through the relay and refuses new ones. */
  cut(): void
  /** Lets connections through again. */
  restore(): void
  stop(): Promise<void>
}

export async function startEngineRelay (engine: TestDocker): Promise<EngineRelay> {
  if (!engine.host.startsWith('unix://')) {
    throw new Error(`The engine relay needs a unix socket, not ${engine.host}`)
  }
  const target = engine.host.slice('unix://'.length)
  const dir = await mkdtemp('/tmp/pr-')
  const sockets = new Set<Socket>()
  let open = true
  const server = createServer(client => {
    if (!open) {
      client.destroy()
      return
    }
    const upstream = connect(target)
    const close = (): void => {
      client.destroy()
      upstream.destroy()
      sockets.delete(client)
      sockets.delete(upstream)
    }
    for (const socket of [client, upstream]) {
      sockets.add(socket)
      socket.on('error', close)
      socket.on('close', close)
    }
    client.pipe(upstream)
    upstream.pipe(client)
  })
  server.listen(join(dir, 'docker.sock'))
  await once(server, 'listening')
  const cut = (): void => {
    open = false
    for (const socket of sockets) {
      socket.destroy()
    }
  }
  return {
    host: `unix://${join(dir, 'docker.sock')}`,
    cut,
    restore: () => { open = true },
    stop: async () => {
      cut()
      await new Promise(resolve => server.close(resolve))
      await rm(dir, { recursive: true, force: true })
    }
  }
}

/**
 * A TCP relay in front of the image registry. Until `resume()`, a connection that starts receiving
 * a blob (the registry's application/octet-stream answers) passes nothing more (`stall`: a registry
 * that stops sending in the middle of a pull), or the blob a few bytes at a time (`trickle`: one
 * that keeps sending, too slowly for the pull to end).
 */
export interface RegistryRelay {
  /** host:port to put in image references instead of the registry's. */
  host: string
  /** Passes everything from now on, and closes the connections held (the engine connects again). */
  resume(): void
  stop(): Promise<void>
}

/** What a trickling relay passes of a blob, and how often. */
const TRICKLE_BYTES = 2_048
const TRICKLE_EVERY_MS = 200

export async function startRegistryRelay (images: TestImageRegistry, mode: 'stall' | 'trickle' = 'stall'): Promise<RegistryRelay> {
  const [registryHost, registryPort] = images.host.split(':') as [string, string]
  const sockets = new Set<Socket>()
  const held = new Set<Socket>()
  let stalled = true
  const relay: RegistryRelay = {
    host: '',
    resume: () => {
      stalled = false
      for (const socket of held) {
        socket.destroy()
      }
    },
    stop: async () => {
      for (const socket of sockets) {
        socket.destroy()
      }
      await new Promise(resolve => server.close(resolve))
    }
  }
  const server = createServer(client => {
    const upstream = connect(Number(registryPort), registryHost)
    let holding = false
    for (const socket of [client, upstream]) {
      sockets.add(socket)
      socket.on('error', () => { socket.destroy() })
      // a held connection stays open and silent when the registry's side ends
      socket.on('close', () => {
        sockets.delete(socket)
        if (socket === client || !holding) {
          client.destroy()
          upstream.destroy()
        }
      })
    }
    client.pipe(upstream)
    let trickled = Buffer.alloc(0)
    upstream.on('data', (chunk: Buffer) => {
      if (!holding && stalled && /content-type: application\/octet-stream/i.test(chunk.toString('latin1'))) {
        holding = true
        held.add(client)
        if (mode === 'trickle') {
          // the headers at once: the engine reports the blob's progress from its first bytes
          const body = chunk.indexOf('\r\n\r\n') + 4
          client.write(chunk.subarray(0, body))
          chunk = chunk.subarray(body)
          const timer = setInterval(() => {
            client.write(trickled.subarray(0, TRICKLE_BYTES))
            trickled = trickled.subarray(TRICKLE_BYTES)
          }, TRICKLE_EVERY_MS)
          client.on('close', () => { clearInterval(timer) })
        }
      }
      if (!holding) {
        client.write(chunk)
      } else if (mode === 'trickle') {
        trickled = Buffer.concat([trickled, chunk])
      }
    })
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  relay.host = `127.0.0.1:${(server.address() as { port: number }).port}`
  return relay
}

/** The containers carrying this allocator's label. */
export async function containersOf (engine: TestDocker, allocatorId: string): Promise<Docker.ContainerInfo[]> {
  return await engine.docker.listContainers({ all: true, filters: { label: [`${LABELS.allocator}=${allocatorId}`] } })
}

/**
 * Ends what a test file of allocations started, in order and each only if it started: the
 * overlay, every container a test allocator left, the image registry, the engine, the folder.
 */
export async function stopTestbed (parts: { overlay?: TestOverlay, engine?: TestDocker, images?: TestImageRegistry, state?: { remove(): Promise<void> } }): Promise<void> {
  const engine = parts.engine
  const steps = [
    async () => { await parts.overlay?.stop() },
    async () => { if (engine != null) await removeAllPhysarumContainers(engine) },
    async () => { await parts.images?.stop() },
    async () => { await engine?.stop() },
    async () => { await parts.state?.remove() }
  ]
  // each step runs whatever the one before did: a failed one must not leave dockerd running
  const failures: unknown[] = []
  for (const step of steps) {
    await step().catch((err: unknown) => { failures.push(err) })
  }
  if (failures.length > 0) {
    throw new AggregateError(failures, 'stopping the testbed failed')
  }
}

/**
 * Waits until `allocator` is found through the DHT from the overlay's client: an allocator
 * provides its topic in the background after it starts (an operator's has long done so).
 */
export async function waitForAllocator (overlay: TestOverlay, allocator: AllocatorDaemon): Promise<void> {
  await eventually('the allocator to be discoverable', async () => {
    for await (const provider of overlay.client.discovery.findProviders(ALLOCATOR_TOPIC, { signal: AbortSignal.timeout(2_000) })) {
      if (provider.id.equals(allocator.node.peerId)) {
        return true
      }
    }
    return undefined
  }, 20_000, 100)
}

/** Removes every container any test allocator left (by the io.physarum.allocator label). */
export async function removeAllPhysarumContainers (engine: TestDocker): Promise<void> {
  const containers = await engine.docker.listContainers({ all: true, filters: { label: [LABELS.allocator] } })
  await Promise.all(containers.map(async c => { await engine.docker.getContainer(c.Id).remove({ force: true }).catch(() => {}) }))
}

