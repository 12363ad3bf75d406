import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { closeSync, openSync } from 'node:fs'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import Docker from 'dockerode'
import { pack } from 'tar-stream'
import { cleanEnv, eventually, freePort, TEST_PASSPHRASE } from '../../registry-service/test/helpers.ts'
import type { ChildProcess } from 'node:child_process'

export { eventually, freePort, TEST_PASSPHRASE }

export const ROOT = new URL('../../../', import.meta.url).pathname
export const BIN = new URL('../bin/hl-cli.js', import.meta.url).pathname
export const DEMOS = join(ROOT, 'demos')

export interface CliResult {
  code: number | null
  stdout: string
  stderr: string
}

/**
 * Runs the real CLI to its end: `node bin/hl-cli.js ...args`, with this environment minus any
 * physarum settings, plus `env` (the PSK only ever through PHYSARUM_PSK). Killed after `timeoutMs`.
 */
export async function runCli (args: string[], env: Record<string, string> = {}, options: { stdin?: string, timeoutMs?: number } = {}): Promise<CliResult> {
  const child = spawn(process.execPath, [BIN, ...args], {
    env: { ...cleanEnv(), ...env },
    stdio: [options.stdin == null ? 'ignore' : 'pipe', 'pipe', 'pipe']
  })
  let stdout = ''
  let stderr = ''
  child.stdout!.on('data', (chunk: Buffer) => { stdout += chunk.toString() })
  child.stderr!.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
  child.stdin?.end(options.stdin)
  const timer = setTimeout(() => { child.kill('SIGKILL') }, options.timeoutMs ?? 120_000)
  try {
    const [code] = await once(child, 'close') as [number | null]
    return { code, stdout, stderr }
  } finally {
    clearTimeout(timer)
  }
}

async function stopChild (child: ChildProcess | undefined, deadlineMs = 20_000): Promise<void> {
  if (child == null || child.exitCode != null || child.signalCode != null) {
    return
  }
  const exited = once(child, 'exit')
  child.kill('SIGTERM')
  const timer = setTimeout(() => { child.kill('SIGKILL') }, deadlineMs)
  await exited
  clearTimeout(timer)
}

/**
 * A private dockerd: data, state and socket in a temporary
 * folder, no bridge, no iptables rules. Its socket path stays short (unix sockets: ~100 bytes).
 */
export class TestDocker {
  readonly dir: string
  readonly docker: Docker
  #child?: ChildProcess

  private constructor (dir: string) {
    this.dir = dir
    this.docker = new Docker({ socketPath: this.socket })
  }

  get socket (): string {
    return join(this.dir, 'docker.sock')
  }

  get host (): string {
    return `unix://${this.socket}`
  }

  static async start (): Promise<TestDocker> {
    const engine = new TestDocker(await mkdtemp('/tmp/hlc-docker-'))
    try {
      await engine.#start()
    } catch (err) {
      await engine.remove()
      throw err
    }
    return engine
  }

  async #start (): Promise<void> {
    const log = join(this.dir, 'dockerd.log')
    const out = openSync(log, 'a')
    const child = spawn('dockerd', [
      '--data-root', join(this.dir, 'data'), '--exec-root', join(this.dir, 'exec'), '-H', this.host,
      '--pidfile', join(this.dir, 'dockerd.pid'), '--bridge=none', '--iptables=false'
    ], { stdio: ['ignore', out, out] })
    closeSync(out)
    this.#child = child
    await eventually('dockerd', async () => {
      if (child.exitCode != null) {
        throw new Error(`dockerd exited with ${child.exitCode}; see ${log}`)
      }
      await this.docker.ping()
      return true
    }, 30_000, 100)
  }

  /** Builds the local Node base image with scripts/build-node-image.sh. */
  async buildNodeImage (tag = 'physarum/node:24'): Promise<void> {
    const child = spawn('bash', [join(ROOT, 'scripts/build-node-image.sh'), tag], { env: { ...process.env, DOCKER_HOST: this.host }, stdio: ['ignore', 'ignore', 'pipe'] })
    let stderr = ''
    child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
    const [code] = await once(child, 'exit') as [number | null]
    if (code !== 0) {
      throw new Error(`scripts/build-node-image.sh failed (${code}): ${stderr}`)
    }
  }

  /**
   * The demos' base image name (`node:24-slim`) for the local Node image, which cannot be pulled
   * here: physarum/node:24 plus /usr/bin/env (busybox), so `#!/usr/bin/env node` scripts run.
   */
  async tagDemoBase (base = 'physarum/node:24', tag = 'node:24-slim'): Promise<void> {
    const tar = pack()
    tar.entry({ name: 'Dockerfile' }, `FROM ${base}\nCOPY env /usr/bin/env\n`)
    tar.entry({ name: 'env', mode: 0o755 }, await readFile('/bin/busybox'))
    tar.finalize()
    const stream = await this.docker.buildImage(Readable.from(tar), { t: tag, rm: true })
    const messages = await new Promise<Array<{ error?: string }>>((resolve, reject) => {
      this.docker.modem.followProgress(stream, (err: Error | null, out: Array<{ error?: string }>) => { if (err != null) { reject(err) } else { resolve(out) } })
    })
    const failed = messages.find(m => m.error != null)
    if (failed != null) {
      throw new Error(`building ${tag} failed: ${failed.error}`)
    }
  }

  async stop (): Promise<void> {
    await stopChild(this.#child)
  }

  async remove (): Promise<void> {
    await this.stop()
    // dockerd leaves its default network namespace (exec/netns/default, an nsfs mount) behind
    const mounts = (await readFile('/proc/self/mounts', 'utf8')).split('\n').map(line => line.split(' ')[1] ?? '')
      .filter(path => path.startsWith(`${this.dir}/`)).sort().reverse()
    for (const path of mounts) {
      const child = spawn('umount', ['-l', path], { stdio: 'ignore' })
      await once(child, 'exit')
    }
    await rm(this.dir, { recursive: true, force: true })
  }
}

/** Debian's docker-registry on 127.0.0.1:<free port>, storage in a temporary folder, no auth. */
export class TestImageRegistry {
  readonly dir: string
  readonly port: number
  #child?: ChildProcess

  private constructor (dir: string, port: number) {
    this.dir = dir
    this.port = port
  }

  get host (): string {
    return `127.0.0.1:${this.port}`
  }

  /** With `user`, the registry wants HTTP basic auth (an htpasswd file, bcrypt through Python's crypt). */
  static async start (user?: { name: string, password: string }): Promise<TestImageRegistry> {
    const registry = new TestImageRegistry(await mkdtemp(join(tmpdir(), 'hlc-registry-')), await freePort())
    try {
      await registry.#start(user)
    } catch (err) {
      await registry.remove()
      throw err
    }
    return registry
  }

  async #start (user?: { name: string, password: string }): Promise<void> {
    const config = join(this.dir, 'config.yml')
    const auth: string[] = []
    if (user != null) {
      const htpasswd = join(this.dir, 'htpasswd')
      await writeFile(htpasswd, `${user.name}:${await bcrypt(user.password)}\n`)
      auth.push('auth:', '  htpasswd:', '    realm: test', `    path: ${htpasswd}`)
    }
    await writeFile(config, [
      'version: 0.1',
      'log:',
      '  level: warn',
      'storage:',
      '  filesystem:',
      `    rootdirectory: ${join(this.dir, 'storage')}`,
      'http:',
      `  addr: ${this.host}`,
      ...auth,
      ''
    ].join('\n'))
    const child = spawn('docker-registry', ['serve', config], { stdio: 'ignore' })
    this.#child = child
    await eventually('docker-registry', async () => {
      if (child.exitCode != null) {
        throw new Error(`docker-registry exited with ${child.exitCode}`)
      }
      const { status } = await fetch(`http://${this.host}/v2/`, { signal: AbortSignal.timeout(500) })
      return status === 200 || (user != null && status === 401) ? true : undefined
    }, 15_000, 100)
  }

  /** The digest the registry holds for `repository:tag`, or undefined. */
  async digest (repository: string, tag: string, user?: { name: string, password: string }): Promise<string | undefined> {
    const response = await fetch(`http://${this.host}/v2/${repository}/manifests/${tag}`, {
      method: 'HEAD',
      headers: {
        ...(user == null ? {} : { authorization: `Basic ${Buffer.from(`${user.name}:${user.password}`).toString('base64')}` }),
        accept: 'application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json'
      }
    })
    return response.ok ? response.headers.get('docker-content-digest') ?? undefined : undefined
  }

  async remove (): Promise<void> {
    await stopChild(this.#child)
    await rm(this.dir, { recursive: true, force: true })
  }
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
  const [code] = await once(child, 'exit') as [number | null]
  const hash = out.trim()
  if (code !== 0 || !/^\$2[aby]\$/.test(hash)) {
    throw new Error('cannot make a bcrypt hash with /usr/bin/python3 (Debian\'s python3 with the crypt module is needed for the image registry auth test)')
  }
  return hash
}
