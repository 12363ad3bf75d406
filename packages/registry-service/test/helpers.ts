import { execFile, spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { readFileSync } from 'node:fs'
import { connect, createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { promisify } from 'node:util'
import { Etcd3 } from 'etcd3'
import { pino } from 'pino'
import { Registry } from 'prom-client'
import { eventually, freePort, startNode, stopAll, tempDir, TEST_PSK } from '../../p2p/test/helpers.ts'
import { createRegistryClient, KEY_PREFIX } from '../src/index.ts'
import { createRegistryService } from '../src/service.ts'
import { RegistryStore } from '../src/store.ts'
import type { RegistryClient, RegistryClientOptions, ServiceRecordInput } from '../src/index.ts'
import type { RegistryService } from '../src/service.ts'
import type { PhysarumNode } from '@physarum/p2p'
import type { ChildProcess } from 'node:child_process'
import type { AddressInfo, Socket } from 'node:net'

export { eventually, freePort, startNode, stopAll, tempDir, TEST_PSK }

/** The passphrase of the test network: the same key as TEST_PSK of the p2p tests. */
export const TEST_PASSPHRASE = 'physarum-test-network'
export const BIN = new URL('../bin/registry-service.js', import.meta.url).pathname
/** Fast elections: a test cluster recovers from a lost leader in a few hundred ms. */
export const FAST_ETCD_ENV = { ETCD_HEARTBEAT_INTERVAL: '25', ETCD_ELECTION_TIMEOUT: '250' }

export const silentLog = pino({ level: 'silent' })

/** A valid record; `overrides` may make it invalid on purpose. */
export function sampleRecord (name: string, overrides: Partial<ServiceRecordInput> & Record<string, unknown> = {}): ServiceRecordInput {
  return {
    name,
    contentHash: `hash-${name.replace(/[^a-z0-9]/g, '')}`,
    image: `127.0.0.1:5000/${name.split(':')[0]!}@sha256:${'ab'.repeat(32)}`,
    softRttMs: 20,
    hardRttMs: 100,
    cpu: 0.5,
    memoryMb: 128,
    proxyClientMode: true,
    ...overrides
  }
}

/** PEM files made by makeTestCertificates. */
export interface TestCertificates {
  ca: string
  serverCert: string
  serverKey: string
  clientCert: string
  clientKey: string
}

/** A CA, a server certificate for 127.0.0.1 and a client certificate signed by it, in `dir`. */
export async function makeTestCertificates (dir: string): Promise<TestCertificates> {
  const openssl = async (...args: string[]): Promise<void> => { await promisify(execFile)('openssl', args, { cwd: dir }) }
  const newKey = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes']
  await openssl('req', '-x509', ...newKey, '-keyout', 'ca-key.pem', '-out', 'ca.pem', '-days', '1', '-subj', '/CN=physarum test CA')
  for (const [name, extensions] of [['server', 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth'], ['client', 'extendedKeyUsage=clientAuth']] as const) {
    await writeFile(join(dir, `${name}.ext`), `${extensions}\n`)
    await openssl('req', ...newKey, '-keyout', `${name}-key.pem`, '-out', `${name}.csr`, '-subj', `/CN=${name}`)
    await openssl('x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca-key.pem', '-CAcreateserial', '-out', `${name}.pem`, '-days', '1', '-extfile', `${name}.ext`)
  }
  const path = (name: string): string => join(dir, name)
  return { ca: path('ca.pem'), serverCert: path('server.pem'), serverKey: path('server-key.pem'), clientCert: path('client.pem'), clientKey: path('client-key.pem') }
}

/**
 * One etcd on free loopback ports with a temporary data folder, started directly (not through the
 * code under test). `stop()` ends it and keeps the data; `remove()` ends it and deletes the folder.
 * With `tls` it serves https:// and takes only clients with a certificate its CA signed.
 */
export class TestEtcd {
  readonly dir: string
  readonly clientPort: number
  readonly peerPort: number
  readonly tls?: TestCertificates
  #child?: ChildProcess

  private constructor (dir: string, clientPort: number, peerPort: number, tls?: TestCertificates) {
    this.dir = dir
    this.clientPort = clientPort
    this.peerPort = peerPort
    if (tls != null) {
      this.tls = tls
    }
  }

  static async start (options: { tls?: TestCertificates } = {}): Promise<TestEtcd> {
    const dir = await mkdtemp(join(tmpdir(), 'physarum-etcd-'))
    const etcd = new TestEtcd(dir, await freePort(), await freePort(), options.tls)
    try {
      await etcd.start()
    } catch (err) {
      await etcd.remove()
      throw err
    }
    return etcd
  }

  get endpoint (): string {
    return `${this.tls == null ? 'http' : 'https'}://127.0.0.1:${this.clientPort}`
  }

  /** A client of this etcd (with the client certificate when it serves TLS); the caller closes it. */
  client (auth?: { username: string, password: string }): Etcd3 {
    const tls = this.tls
    return new Etcd3({
      hosts: this.endpoint,
      ...(auth == null ? {} : { auth }),
      ...(tls == null ? {} : { credentials: { rootCertificate: readFileSync(tls.ca), certChain: readFileSync(tls.clientCert), privateKey: readFileSync(tls.clientKey) } })
    })
  }

  async start (): Promise<void> {
    const peer = `http://127.0.0.1:${this.peerPort}`
    const child = spawn('etcd', [
      '--name', 'test', '--data-dir', join(this.dir, 'data'),
      '--listen-client-urls', this.endpoint, '--advertise-client-urls', this.endpoint,
      '--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer, '--initial-cluster', `test=${peer}`,
      '--heartbeat-interval', '25', '--election-timeout', '250', '--logger', 'zap', '--log-outputs', join(this.dir, 'etcd.log'),
      ...(this.tls == null ? [] : ['--cert-file', this.tls.serverCert, '--key-file', this.tls.serverKey, '--trusted-ca-file', this.tls.ca, '--client-cert-auth'])
    ], { stdio: 'ignore' })
    this.#child = child
    await eventually(`etcd on ${this.endpoint}`, async () => {
      if (child.exitCode != null) {
        throw new Error(`etcd exited with ${child.exitCode}`)
      }
      if (this.tls != null) {
        // fetch() has no client certificate to show
        const client = this.client()
        try {
          await client.maintenance.status({ deadline: Date.now() + 500 })
          return true
        } finally {
          client.close()
        }
      }
      const response = await fetch(`${this.endpoint}/health`, { signal: AbortSignal.timeout(500) })
      return ((await response.json()) as { health?: string }).health === 'true' ? true : undefined
    }, 20_000)
  }

  async stop (signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const child = this.#child
    if (child != null && child.exitCode === null && child.signalCode === null) {
      const exited = once(child, 'exit')
      child.kill(signal)
      await exited
    }
  }

  /**
   * Freezes etcd (SIGSTOP): connections stay open, nothing answers. Resolves once every thread
   * has stopped: on a busy machine etcd went on answering for a few milliseconds after kill().
   */
  async pause (): Promise<void> {
    const child = this.#child
    if (child?.pid == null) {
      throw new Error('etcd is not running')
    }
    child.kill('SIGSTOP')
    const tasks = `/proc/${child.pid}/task`
    // the state is the field after the command name, which ends at the last ')'
    const stopped = async (task: string): Promise<boolean> => {
      const stat = await readFile(join(tasks, task, 'stat'), 'utf8')
      return /^\)\s+[Tt]/.test(stat.slice(stat.lastIndexOf(')')))
    }
    await eventually('every etcd thread to stop', async () => (await Promise.all((await readdir(tasks)).map(stopped))).every(Boolean) ? true : undefined, 5_000, 1)
  }

  resume (): void {
    this.#child?.kill('SIGCONT')
  }

  async remove (): Promise<void> {
    this.resume()
    await this.stop()
    await rm(this.dir, { recursive: true, force: true })
  }
}

/** Every key and its mod revision under the registry's prefix, and the store's revision. */
export async function etcdSnapshot (endpoint: string): Promise<{ revision: string, keys: Record<string, string> }> {
  const client = new Etcd3({ hosts: endpoint })
  try {
    const response = await client.getAll().prefix(KEY_PREFIX).exec()
    return {
      revision: response.header.revision,
      keys: Object.fromEntries(response.kvs.map(kv => [kv.key.toString(), `${kv.mod_revision}:${kv.value.toString()}`]))
    }
  } finally {
    client.close()
  }
}

export interface ResettingRelay {
  endpoint: string
  /** Resets the client's connection instead of passing on the `nth` answer etcd starts from now on (1: the next). */
  cutAnswer(nth: number): void
  /** How many answers it cut. */
  readonly cuts: number
  close(): Promise<void>
}

/**
 * A TCP relay in front of etcd that passes every request through and, once told to, resets the
 * client's connection when etcd starts an answer, so that a write reaches etcd and its answer never
 * reaches the client. It reads etcd's HTTP/2 frames: the HEADERS frame that opens a stream's
 * answer is the sign.
 */
export async function startResettingRelay (etcdPort: number): Promise<ResettingRelay> {
  const sockets = new Set<Socket>()
  let untilCut = 0
  let cuts = 0
  const server = createServer((client) => {
    const target = connect({ host: '127.0.0.1', port: etcdPort })
    for (const socket of [client, target]) {
      sockets.add(socket)
      socket.on('close', () => { sockets.delete(socket) })
      socket.on('error', () => { client.destroy(); target.destroy() })
    }
    client.pipe(target)
    // etcd's side: the frames seen so far, each passed on whole, and the streams answered on it
    let pending = Buffer.alloc(0)
    let lastStream = 0
    target.on('data', (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk])
      while (pending.length >= 9) {
        const length = pending.readUIntBE(0, 3)
        if (pending.length < 9 + length) {
          break
        }
        const type = pending[3]!
        const stream = pending.readUInt32BE(5) & 0x7fffffff
        if (type === 0x1 && stream > lastStream) {
          lastStream = stream
          if (untilCut > 0 && --untilCut === 0) {
            cuts++
            client.resetAndDestroy()
            target.destroy()
            return
          }
        }
        client.write(pending.subarray(0, 9 + length))
        pending = pending.subarray(9 + length)
      }
    })
    target.on('end', () => { client.end() })
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return {
    endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    cutAnswer: (nth) => { untilCut = nth },
    get cuts () { return cuts },
    close: async () => {
      for (const socket of sockets) {
        socket.destroy()
      }
      await new Promise<void>(resolve => { server.close(() => { resolve() }) })
    }
  }
}

export interface InProcessRegistry {
  node: PhysarumNode
  service: RegistryService
  store: RegistryStore
  registry: Registry
  stop(): Promise<void>
}

/** A registry service in this process: a node bootstrapped to `bootstrap`, serving `endpoints`. */
export async function startRegistry (bootstrap: PhysarumNode, endpoints: string[], init: { admins?: string[], openWrites?: boolean, timeoutMs?: number } = {}): Promise<InProcessRegistry> {
  const node = await startNode({ bootstrap: [bootstrap.multiaddrs()[0]!.toString()] })
  const store = new RegistryStore({ endpoints, ...(init.timeoutMs == null ? {} : { timeoutMs: init.timeoutMs }) })
  const registry = new Registry()
  const service = createRegistryService({ node, store, logger: silentLog, registry }, { admins: init.admins ?? [], openWrites: init.openWrites ?? false })
  await service.start()
  return {
    node,
    service,
    store,
    registry,
    stop: async () => {
      await service.stop()
      await node.stop()
      store.close()
    }
  }
}

/** A client node bootstrapped to `bootstrap`, and a registry client on it. */
export async function startClient (bootstrap: PhysarumNode, options: RegistryClientOptions = {}): Promise<{ node: PhysarumNode, client: RegistryClient }> {
  const node = await startNode({ bootstrap: [bootstrap.multiaddrs()[0]!.toString()], dhtMode: 'client' })
  return { node, client: createRegistryClient(node, options) }
}

/** The environment for a spawned CLI: this one's, without any physarum settings. */
export function cleanEnv (): Record<string, string> {
  return Object.fromEntries(Object.entries(process.env).filter(([key, value]) => value != null && !/^(PHYSARUM_|P2P_|ETCD_)/.test(key))) as Record<string, string>
}

/** A registry-service process in its own process group (so its etcd dies with it on kill()). */
export class Cli {
  readonly child: ChildProcess
  readonly lines: string[] = []
  readonly exited: Promise<[number | null, NodeJS.Signals | null]>

  constructor (args: string[], env: Record<string, string>) {
    this.child = spawn(process.execPath, [BIN, ...args], {
      env: { ...cleanEnv(), PHYSARUM_PSK: TEST_PASSPHRASE, PHYSARUM_LOG_LEVEL: 'info', ...FAST_ETCD_ENV, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true
    })
    this.exited = once(this.child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>
    for (const stream of [this.child.stdout!, this.child.stderr!]) {
      createInterface({ input: stream }).on('line', line => { this.lines.push(line) })
    }
  }

  /** The first line matching `pattern`, once printed; fails when the process exits first. */
  async line (pattern: RegExp, timeoutMs = 30_000): Promise<RegExpExecArray> {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      for (const line of this.lines) {
        const match = pattern.exec(line)
        if (match != null) {
          return match
        }
      }
      if (this.child.exitCode != null || this.child.signalCode != null) {
        throw new Error(`registry-service exited (${this.child.exitCode ?? this.child.signalCode}) before printing ${pattern}: ${this.lines.slice(-5).join('\n')}`)
      }
      if (Date.now() > deadline) {
        throw new Error(`registry-service printed nothing matching ${pattern} within ${timeoutMs} ms: ${this.lines.slice(-5).join('\n')}`)
      }
      await new Promise(resolve => setTimeout(resolve, 50))
    }
  }

  /** Sends `signal` to the whole process group: the registry-service and its etcd. */
  async kill (signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    if (this.child.exitCode == null && this.child.signalCode == null) {
      try {
        process.kill(-this.child.pid!, signal)
      } catch {
        // gone already
      }
      await this.exited
    } else if (signal === 'SIGKILL') {
      try {
        process.kill(-this.child.pid!, 'SIGKILL')
      } catch {
        // the group is gone
      }
    }
  }

  /** Its exit code, once it exited by itself; killed (with its etcd) and a failure when it runs past `timeoutMs`. */
  async ended (timeoutMs = 30_000): Promise<number | null> {
    let timer: NodeJS.Timeout | undefined
    const late = new Promise<'late'>(resolve => { timer = setTimeout(() => { resolve('late') }, timeoutMs) })
    try {
      const outcome = await Promise.race([this.exited, late])
      if (outcome === 'late') {
        await this.kill('SIGKILL')
        throw new Error(`registry-service still ran after ${timeoutMs} ms: ${this.lines.slice(-5).join('\n')}`)
      }
      return outcome[0]
    } finally {
      clearTimeout(timer)
    }
  }

  /** Stops the registry-service the way an operator does (SIGTERM) and returns its exit code. */
  async stop (): Promise<number | null> {
    if (this.child.exitCode == null && this.child.signalCode == null) {
      this.child.kill('SIGTERM')
    }
    const [code] = await this.exited
    return code
  }
}
