import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { closeSync, existsSync, fstatSync, mkdirSync, openSync, readdirSync, readFileSync, readSync } from 'node:fs'
import { copyFile, readFile, rm, stat, truncate, writeFile } from 'node:fs/promises'
import { get as httpGet } from 'node:http'
import { connect } from 'node:net'
import { dirname, join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import {
  DEFAULT_ETCD_AUTO_COMPACTION_MS, DEFAULT_ETCD_CLUSTER_TOKEN, ETCD_LEFTOVER_RELEASE_MS, ETCD_LOG_CHECK_MS, ETCD_LOG_MAX_BYTES, ETCD_RESTART_MAX_MS, ETCD_RESTART_MIN_MS, ETCD_STABLE_MS, ETCD_START_TIMEOUT_MS, ETCD_STOP_TIMEOUT_MS
} from './constants.ts'
import { childEnv } from './child-env.ts'
import { EtcdStartError } from './errors.ts'
import type { Logger } from '@physarum/p2p'
import type { ChildProcess } from 'node:child_process'

export interface EtcdProcessInit {
  /** The etcd binary (default: `etcd` from PATH). */
  bin?: string
  /** The member's name in the cluster. */
  name: string
  dataDir: string
  /** The address etcd listens on and advertises to clients and peers. */
  ip: string
  clientPort: number
  peerPort: number
  /** `name=peerURL,...` (default: this member alone, for a new cluster). */
  initialCluster?: string
  clusterState: 'new' | 'existing'
  clusterToken?: string
  /** How long etcd keeps the revisions a write replaced before it compacts them (default DEFAULT_ETCD_AUTO_COMPACTION_MS; 0: never). */
  autoCompactionMs?: number
  /** etcd's own output goes here (default: <dataDir>.log). */
  logFile?: string
  /** Past this size the log file is copied to <logFile>.1 and emptied (default ETCD_LOG_MAX_BYTES). */
  logMaxBytes?: number
  /** How often its size is checked (default ETCD_LOG_CHECK_MS). */
  logCheckMs?: number
  /** The running etcd's pid, to stop one left over by a killed registry-service (default: <dataDir>.pid). */
  pidFile?: string
  /** The environment etcd's own settings (ETCD_* variables) come from; nothing else of it passes but PATH, HOME and the locale. */
  env?: Record<string, string | undefined>
  log: Logger
  restartMinMs?: number
  restartMaxMs?: number
}

export interface EtcdStatus {
  running: boolean
  pid?: number
  /** How many times it was restarted after dying. */
  restarts: number
  clientUrl: string
  peerUrl: string
}

/**
 * The flags a registry-service gives its etcd. etcd refuses to start when its environment sets one
 * of them too (ETCD_DATA_DIR beside --data-dir), even to an empty value.
 */
export const ETCD_FLAGS = [
  'name', 'data-dir', 'listen-client-urls', 'advertise-client-urls', 'listen-peer-urls', 'initial-advertise-peer-urls', 'initial-cluster',
  'initial-cluster-state', 'initial-cluster-token', 'auto-compaction-mode', 'auto-compaction-retention', 'logger'
] as const

/** The environment variable etcd reads a flag from: ETCD_DATA_DIR for data-dir. */
export function etcdEnvName (flag: string): string {
  return `ETCD_${flag.toUpperCase().replaceAll('-', '_')}`
}

/** The environment etcd gets: its own ETCD_* settings, and what it needs to find programs and home. */
const ETCD_ENV = /^(ETCD_\w+|PATH|HOME|LANG|LC_\w+|TZ)$/

/** How much of the end of etcd's log is read for its last words. */
const LAST_WORDS_BYTES = 16 * 1024

/** The last `bytes` of a file, as text. */
function tailOf (path: string, bytes: number): string {
  const fd = openSync(path, 'r')
  try {
    const size = fstatSync(fd).size
    const buffer = Buffer.alloc(Math.min(size, bytes))
    const read = readSync(fd, buffer, 0, buffer.length, size - buffer.length)
    return buffer.subarray(0, read).toString('utf8')
  } finally {
    closeSync(fd)
  }
}

/** Whether a TCP connection to ip:port is accepted within a second. */
async function listening (ip: string, port: number): Promise<boolean> {
  return await new Promise<boolean>(resolve => {
    const socket = connect({ host: ip, port, timeout: 1_000 })
    socket.once('connect', () => {
      socket.destroy()
      resolve(true)
    })
    socket.once('timeout', () => {
      socket.destroy()
      resolve(false)
    })
    socket.once('error', () => { resolve(false) })
  })
}

/** Where an etcd's pid is kept (to stop one left over by a killed registry-service). */
function pidFileOf (init: Pick<EtcdProcessInit, 'dataDir' | 'pidFile'>): string {
  return init.pidFile ?? `${init.dataDir}.pid`
}

/**
 * Makes etcd's ports ready for this member, before it joins a cluster or starts: ends an etcd a
 * killed registry-service left running on them (by its pid file), and refuses ports something
 * else listens on. Debian's etcd-server starts an etcd on 127.0.0.1:2379: it would answer the
 * health check while this etcd failed to bind, and the registry-service would take it for its own
 * and turn its login on.
 */
export async function clearEtcdPorts (init: Pick<EtcdProcessInit, 'dataDir' | 'pidFile' | 'ip' | 'clientPort' | 'peerPort' | 'log'>): Promise<void> {
  // a killed etcd's threads may hold its sockets a little after its main thread is gone
  const waitUntil = Date.now() + (await stopLeftover(init) ? ETCD_LEFTOVER_RELEASE_MS : 0)
  for (const [flag, port] of [['--etcd-client-port', init.clientPort], ['--etcd-peer-port', init.peerPort]] as const) {
    while (await listening(init.ip, port) && Date.now() < waitUntil) {
      await sleep(50)
    }
    if (await listening(init.ip, port)) {
      throw new EtcdStartError(`something already listens on ${hostUrl(init.ip, port)}, where this registry-service's etcd is to listen (another etcd? Debian's etcd-server starts one on 127.0.0.1:2379 and 2380): stop it, or give ${flag}`)
    }
  }
}

/** The registry-service that runs etcd `pid` as its child, if one does (not a leftover then). */
function supervisorOf (pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    // the parent's pid is the second field after the command name, which ends at the last ')'
    const parent = Number(stat.slice(stat.lastIndexOf(')') + 1).trim().split(/\s+/)[1])
    // its script (node's first argument) is the registry-service's bin: not a shell or a test runner that names it
    const script = readFileSync(`/proc/${parent}/cmdline`, 'utf8').split('\0')[1] ?? ''
    return parent !== process.pid && /(^|\/)registry-service(\.js)?$/.test(script) ? parent : undefined
  } catch {
    return undefined
  }
}

/**
 * A killed registry-service leaves its etcd running on the ports: ended by the pid it wrote.
 * Whether there was one. An etcd that a registry-service still runs (a second start on the same
 * state folder) is refused instead: killed, it would be restarted by the first at once.
 */
async function stopLeftover (init: Pick<EtcdProcessInit, 'dataDir' | 'pidFile' | 'log'>): Promise<boolean> {
  const pidFile = pidFileOf(init)
  let pid: number
  try {
    pid = Number((await readFile(pidFile, 'utf8')).trim())
  } catch {
    return false
  }
  let stopped = false
  let cmdline = ''
  try {
    cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8')
  } catch {
    // not running any more
  }
  if (Number.isInteger(pid) && pid > 0 && cmdline.includes(init.dataDir) && cmdline.includes('etcd')) {
    const supervisor = supervisorOf(pid)
    if (supervisor != null) {
      throw new EtcdStartError(`another registry-service (pid ${supervisor}) runs the etcd of ${init.dataDir} (pid ${pid}): stop it first, or give this one another --state-dir or --etcd-data-dir`)
    }
    init.log.warn({ pid }, 'stopping an etcd left over by an earlier run')
    stopped = true
    try {
      process.kill(pid, 'SIGKILL')
    } catch {
      // it ended meanwhile
    }
    const deadline = Date.now() + 5_000
    while (Date.now() < deadline && existsSync(`/proc/${pid}`) && !readFileSync(`/proc/${pid}/stat`, 'utf8').includes(') Z')) {
      await sleep(50)
    }
  }
  await rm(pidFile, { force: true })
  return stopped
}

export function hostUrl (ip: string, port: number): string {
  return `http://${ip.includes(':') ? `[${ip}]` : ip}:${port}`
}

/**
 * Whether `dataDir` holds an etcd member already (then the initial-cluster flags are ignored): its
 * write-ahead log, which is where etcd looks too: in ETCD_WAL_DIR when `env` (etcd's) sets it, else
 * in `member/wal`. An etcd that could not reach the cluster it was to join leaves `member/` with
 * a database but no log behind, and would fail the same way on every start: `discardFailedJoin`
 * removes it.
 */
export function hasEtcdData (dataDir: string, env: Record<string, string | undefined> = {}): boolean {
  const walDir = env.ETCD_WAL_DIR == null || env.ETCD_WAL_DIR === '' ? join(dataDir, 'member', 'wal') : env.ETCD_WAL_DIR
  try {
    return readdirSync(walDir).some(name => name.endsWith('.wal'))
  } catch {
    return false
  }
}

/**
 * Removes what an etcd that never joined left in `dataDir` (see hasEtcdData, given etcd's `env`);
 * true if there was some.
 */
export async function discardFailedJoin (dataDir: string, env: Record<string, string | undefined> = {}): Promise<boolean> {
  const member = join(dataDir, 'member')
  // a member whose log is in ETCD_WAL_DIR, looked for in member/wal, would lose its database
  if (hasEtcdData(dataDir, env) || !existsSync(member)) {
    return false
  }
  await rm(member, { recursive: true, force: true })
  return true
}

/**
 * Runs the etcd binary as a child process and keeps it running: when it dies it is started again
 * after a backoff (doubling from 250 ms to 30 s, back to the start once it ran 30 s), with the same
 * data folder. `stop()` ends it (SIGTERM, then SIGKILL after 10 s) and ends the supervision.
 */
export class EtcdProcess {
  readonly clientUrl: string
  readonly peerUrl: string
  readonly #init: EtcdProcessInit
  readonly #log: Logger
  readonly #logFile: string
  readonly #pidFile: string
  #child?: ChildProcess
  #stopping = false
  #restarts = 0
  #backoffMs: number
  #restartTimer?: NodeJS.Timeout
  #logTimer?: NodeJS.Timeout
  /** Whether the last trim of the log failed (said once, not at every check). */
  #trimFailed = false
  /** Whether a trim is under way: a check meanwhile would copy the file again, maybe emptied, over <log>.1. */
  #trimming = false

  constructor (init: EtcdProcessInit) {
    this.#init = init
    this.#log = init.log
    this.clientUrl = hostUrl(init.ip, init.clientPort)
    this.peerUrl = hostUrl(init.ip, init.peerPort)
    this.#logFile = init.logFile ?? `${init.dataDir}.log`
    this.#pidFile = pidFileOf(init)
    this.#backoffMs = init.restartMinMs ?? ETCD_RESTART_MIN_MS
  }

  status (): EtcdStatus {
    return {
      running: this.#child?.exitCode === null && this.#child.signalCode === null,
      ...(this.#child?.pid == null ? {} : { pid: this.#child.pid }),
      restarts: this.#restarts,
      clientUrl: this.clientUrl,
      peerUrl: this.peerUrl
    }
  }

  #args (): string[] {
    const init = this.#init
    const compaction = init.autoCompactionMs ?? DEFAULT_ETCD_AUTO_COMPACTION_MS
    const settings: Record<typeof ETCD_FLAGS[number], string | undefined> = {
      name: init.name,
      'data-dir': init.dataDir,
      'listen-client-urls': this.clientUrl,
      'advertise-client-urls': this.clientUrl,
      'listen-peer-urls': this.peerUrl,
      'initial-advertise-peer-urls': this.peerUrl,
      'initial-cluster': init.initialCluster ?? `${init.name}=${this.peerUrl}`,
      'initial-cluster-state': init.clusterState,
      'initial-cluster-token': init.clusterToken ?? DEFAULT_ETCD_CLUSTER_TOKEN,
      'auto-compaction-mode': compaction === 0 ? undefined : 'periodic',
      'auto-compaction-retention': compaction === 0 ? undefined : `${compaction}ms`,
      logger: 'zap'
    }
    return ETCD_FLAGS.flatMap(flag => settings[flag] == null ? [] : [`--${flag}`, settings[flag]])
  }

  /**
   * Starts etcd and waits until it answers /health; throws EtcdStartError with etcd's last words.
   * The caller has cleared the ports first (clearEtcdPorts), before any join. When `signal` aborts
   * the wait (a stop of the registry-service), etcd is stopped and the signal's reason thrown.
   */
  async start (timeoutMs = ETCD_START_TIMEOUT_MS, signal?: AbortSignal): Promise<void> {
    this.#stopping = false
    mkdirSync(dirname(this.#init.dataDir), { recursive: true })
    await this.#trimLog()
    clearInterval(this.#logTimer)
    this.#logTimer = setInterval(() => {
      if (!this.#trimming) {
        this.#trimming = true
        void this.#trimLog().finally(() => { this.#trimming = false })
      }
    }, this.#init.logCheckMs ?? ETCD_LOG_CHECK_MS)
    this.#logTimer.unref()
    const child = this.#spawn()
    let spawnError: Error | undefined
    const exited = new Promise<'exited'>(resolve => {
      child.once('exit', () => { resolve('exited') })
      child.once('error', (err) => {
        spawnError = err
        resolve('exited')
      })
    })
    const deadline = Date.now() + timeoutMs
    while (Date.now() < deadline) {
      if (signal?.aborted === true) {
        await this.stop()
        signal.throwIfAborted()
      }
      const outcome = await Promise.race([exited, this.#healthy().then(ok => ok ? 'healthy' as const : 'waiting' as const)])
      if (outcome === 'healthy') {
        this.#log.info({ pid: child.pid, clientUrl: this.clientUrl, peerUrl: this.peerUrl, name: this.#init.name }, 'etcd is healthy')
        return
      }
      if (outcome === 'exited' || this.#stopping) {
        // no restarts for an etcd that never came up: the caller hears why instead
        this.endSupervision()
        if (spawnError != null) {
          throw new EtcdStartError(`etcd (${this.#init.bin ?? 'etcd'}) could not be started: ${spawnError.message}${(spawnError as NodeJS.ErrnoException).code === 'ENOENT' ? '; install etcd (Debian: etcd-server) or give --etcd-bin' : ''}`)
        }
        throw new EtcdStartError(`etcd (${this.#init.bin ?? 'etcd'}) exited with ${child.exitCode ?? child.signalCode} before it was healthy: ${this.#lastWords()}`)
      }
      await Promise.race([sleep(100), exited])
    }
    await this.stop()
    throw new EtcdStartError(`etcd at ${this.clientUrl} was not healthy within ${timeoutMs} ms (for a member joining, the cluster needs a quorum): ${this.#lastWords()}`)
  }

  /** Starts etcd with only its own settings and what finds programs from the environment (never the overlay's key). */
  #spawn (): ChildProcess {
    const env = childEnv(this.#init.env ?? {}, name => ETCD_ENV.test(name))
    const fd = openSync(this.#logFile, 'a')
    let child: ChildProcess
    try {
      child = spawn(this.#init.bin ?? 'etcd', this.#args(), { stdio: ['ignore', fd, fd], env })
    } finally {
      closeSync(fd)
    }
    this.#child = child
    const startedAt = Date.now()
    child.once('error', (err: NodeJS.ErrnoException) => {
      this.#log.error({ err: err.message, bin: this.#init.bin ?? 'etcd' }, err.code === 'ENOENT' ? 'etcd binary not found: install etcd-server or give --etcd-bin' : 'etcd could not be started')
    })
    if (child.pid != null) {
      void writeFile(this.#pidFile, `${child.pid}\n`).catch(() => {})
    }
    // 'close' rather than 'exit': a restart that could not even start etcd (its binary gone in
    // an upgrade) emits 'error' and 'close' only, and is tried again too
    child.once('close', (code, signal) => {
      if (this.#child === child) {
        // a file system gone read-only fails the removal: etcd is still to be restarted, and this
        // process, which may serve through the other members, must not die of it
        rm(this.#pidFile, { force: true }).catch((err: Error) => {
          this.#log.warn({ err: err.message, file: this.#pidFile }, 'etcd\'s pid file could not be removed')
        })
      }
      if (this.#stopping || this.#child !== child) {
        return
      }
      if (Date.now() - startedAt > ETCD_STABLE_MS) {
        this.#backoffMs = this.#init.restartMinMs ?? ETCD_RESTART_MIN_MS
      }
      this.#log.warn({ code, signal, restartInMs: this.#backoffMs, lastWords: this.#lastWords() }, 'etcd died; restarting it')
      this.#restartLater()
    })
    return child
  }

  #restartLater (): void {
    const delay = this.#backoffMs
    this.#backoffMs = Math.min(delay * 2, this.#init.restartMaxMs ?? ETCD_RESTART_MAX_MS)
    this.#restartTimer = setTimeout(() => {
      if (this.#stopping) {
        return
      }
      this.#restarts++
      try {
        this.#spawn()
      } catch (err) {
        // its log file could not be opened: no etcd this time, another try later
        this.#log.error({ err: (err as Error).message, restartInMs: this.#backoffMs }, 'etcd could not be started; trying again')
        this.#restartLater()
      }
    }, delay)
  }

  // node:http rather than fetch: fetch refuses "bad ports" (22, 25, ...) that etcd may be given
  async #healthy (): Promise<boolean> {
    return await new Promise<boolean>(resolve => {
      const request = httpGet(`${this.clientUrl}/health`, { timeout: 1_000 }, response => {
        let body = ''
        response.setEncoding('utf8')
        response.on('data', (chunk: string) => { body += chunk })
        response.on('end', () => {
          try {
            resolve((JSON.parse(body) as { health?: string }).health === 'true')
          } catch {
            resolve(false)
          }
        })
        response.on('error', () => { resolve(false) })
      })
      request.on('timeout', () => { request.destroy() })
      request.on('error', () => { resolve(false) })
    })
  }


  #lastWords (): string {
    try {
      const lines = tailOf(this.#logFile, LAST_WORDS_BYTES).trim().split('\n').slice(-3)
      return lines.map(line => {
        try {
          const entry = JSON.parse(line) as { msg?: string, error?: string }
          return [entry.msg, entry.error].filter(Boolean).join(': ')
        } catch {
          return line
        }
      }).join(' | ') + ` (full log: ${this.#logFile})`
    } catch {
      return `(no output; log file ${this.#logFile})`
    }
  }

  /**
   * No more restarts: first thing on shutdown, as systemd (or a Ctrl-C) signals etcd together
   * with the registry-service, and its exit is no failure then.
   */
  endSupervision (): void {
    this.#stopping = true
    clearTimeout(this.#restartTimer)
    clearInterval(this.#logTimer)
  }

  /**
   * Keeps etcd's log file below its size: past it, the file is copied to <log>.1 and emptied.
   * etcd appends (the file is opened with O_APPEND), so its next line starts the emptied file;
   * what it writes between the copy and the emptying is lost.
   */
  async #trimLog (): Promise<void> {
    const file = this.#logFile
    try {
      if ((await stat(file)).size <= (this.#init.logMaxBytes ?? ETCD_LOG_MAX_BYTES)) {
        return
      }
      await copyFile(file, `${file}.1`)
      await truncate(file, 0)
      this.#trimFailed = false
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT' && !this.#trimFailed) {
        this.#trimFailed = true
        this.#log.warn({ err: (err as Error).message, file }, 'etcd\'s log file could not be kept to its size')
      }
    }
  }

  /** Ends etcd and its supervision. */
  async stop (): Promise<void> {
    this.endSupervision()
    const child = this.#child
    if (child == null || child.exitCode !== null || child.signalCode !== null) {
      return
    }
    const exited = once(child, 'exit')
    child.kill('SIGTERM')
    const timer = setTimeout(() => { child.kill('SIGKILL') }, ETCD_STOP_TIMEOUT_MS)
    await exited
    clearTimeout(timer)
    await rm(this.#pidFile, { force: true })
    this.#log.info('etcd stopped')
  }
}
