import yargs from 'yargs'
import { dashedPassphrase, strictArguments } from './cli.ts'
import { ConfigError, InvalidPskError, MissingPskError } from './errors.ts'
import { createLogger } from './logging.ts'
import { PHYSARUM_VERSION } from './node.ts'
import { onShutdown } from './shutdown.ts'
import type { NodeConfig } from './cli.ts'
import type { Logger, LogLevel } from './logging.ts'
import type { HostPort } from './metrics.ts'
import type { PhysarumNode } from './node.ts'
import type { ArgumentsCamelCase, Argv, CommandModule } from 'yargs'

/** Ends the process with `code` after one line on stderr: the message, never a stack. */
export function exitWithError (name: string, code: number, message: string): never {
  process.stderr.write(`${name}: ${message}\n`)
  process.exit(code)
}

/** Exit code 2 for what the operator gave wrong (flags, environment, key files), 1 otherwise. */
export function exitCodeOf (err: unknown): 1 | 2 {
  return err instanceof ConfigError || err instanceof InvalidPskError || err instanceof MissingPskError ? 2 : 1
}

/** The URL of a metrics server's /metrics, IPv6 hosts in brackets. */
export function metricsUrl (address: HostPort): string {
  const host = address.host.includes(':') ? `[${address.host}]` : address.host
  return `http://${host}:${address.port}/metrics`
}

/**
 * What a daemon's start-up line says of its node: its peer id, the addresses to give peers, its
 * /metrics, where the key and the identity came from (never the key), its bootstraps.
 */
export function nodeAnnouncement (node: Pick<PhysarumNode, 'peerId' | 'multiaddrs'>, metrics: HostPort, config: NodeConfig): { peerId: string, addrs: string[], metrics: string, pskSource: NodeConfig['pskSource'], identity: string, bootstrap: string[] } {
  return {
    peerId: node.peerId.toString(),
    addrs: node.multiaddrs().map(String),
    metrics: metricsUrl(metrics),
    pskSource: config.pskSource,
    identity: config.identityPath ?? 'ephemeral',
    bootstrap: config.bootstrap
  }
}

export interface DaemonLaunch<C, D extends { stop(): Promise<void> }> {
  /** Log name and the prefix of error lines. */
  name: string
  /** Flags and environment to a validated configuration (usage errors throw ConfigError). */
  resolve: () => Promise<{ config: C, logLevel: LogLevel, warnings: string[] }>
  /**
   * Starts the daemon. `signal` aborts when SIGTERM or SIGINT comes during the start: a start that
   * may wait long (a join) stops what it started and rejects; one that ignores it is stopped once
   * it is done.
   */
  start: (config: C, log: Logger, options: { signal: AbortSignal }) => Promise<D>
  /** What the "started" log line carries, and lines for stdout (addresses others need). */
  announce: (daemon: D, config: C) => { log: Record<string, unknown>, stdout?: string[] }
  /** How long shutdown may take before the process exits anyway. */
  shutdownDeadlineMs?: number
}

/**
 * The life of every daemon's process: resolve the configuration (exit 2 on a usage error, 1 on
 * another failure, the message only), log the warnings, start, stop once on SIGTERM/SIGINT, and
 * announce what started.
 */
export async function launchDaemon<C, D extends { stop(): Promise<void> }> (launch: DaemonLaunch<C, D>): Promise<D> {
  let resolved: Awaited<ReturnType<typeof launch.resolve>>
  try {
    resolved = await launch.resolve()
  } catch (err) {
    exitWithError(launch.name, exitCodeOf(err), (err as Error).message)
  }
  const log = createLogger(launch.name, resolved.logLevel)
  for (const warning of resolved.warnings) {
    log.warn(warning)
  }
  // a stop during the start (a join may wait minutes) stops what started, as one after it: the
  // node, an etcd and its pid file are not left behind by a process killed by the signal
  const stopped = new AbortController()
  const starting = launch.start(resolved.config, log, { signal: stopped.signal })
  onShutdown([{
    name: launch.name,
    run: async () => {
      // ends a start under way (nothing once it is done)
      stopped.abort(new Error('stopped during the start'))
      await (await starting.catch(() => undefined))?.stop()
    }
  }], { log, deadlineMs: launch.shutdownDeadlineMs ?? 10_000 })
  let daemon: D | undefined
  try {
    daemon = await starting
  } catch (err) {
    if (!stopped.signal.aborted) {
      log.error({ err: (err as Error).message }, 'start failed')
      log.flush()
      exitWithError(launch.name, 1, (err as Error).message)
    }
  }
  if (daemon == null || stopped.signal.aborted) {
    // stopped during the start: the shutdown under way ends the process
    return await new Promise<never>(() => {})
  }
  const { log: details, stdout } = launch.announce(daemon, resolved.config)
  log.info({ version: PHYSARUM_VERSION, ...details }, `${launch.name} started`)
  if (stdout != null && stdout.length > 0) {
    // a reader that left (| grep -m1 listening) does not take the daemon down
    process.stdout.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code !== 'EPIPE') {
        log.warn({ err: err.message }, 'writing to stdout failed')
      }
    })
    process.stdout.write(stdout.map(line => `${line}\n`).join(''))
  }
  return daemon
}

/**
 * Runs a one-command CLI: --help and --version, and exit 2 with the reason for a usage error
 * that yargs finds, 1 for an error the handler throws.
 */
export async function runCli<A> (name: string, module: { command: string, describe: string, builder: (argv: Argv) => Argv<A>, handler: (args: ArgumentsCamelCase<A>) => Promise<void> }, argv: string[]): Promise<void> {
  const dashed = dashedPassphrase(argv)
  if (dashed != null) {
    exitWithError(name, 2, dashed)
  }
  // a flag of one value given twice (a drop-in adding a second --psk) would be joined into one
  // value no other host has: refused instead, without its values (one may be the key)
  const builder = (command: Argv): Argv<A> => strictArguments(module.builder(command), 0).check((parsed) => {
    // yargs' types leave getOptions out
    const options = (command as unknown as { getOptions: () => { key: Record<string, unknown>, array: string[] } }).getOptions()
    const arrays = new Set(options.array)
    const repeated = Object.keys(options.key).filter(key => !arrays.has(key) && Array.isArray(parsed[key]))
    if (repeated.length > 0) {
      throw new Error(`${repeated.map(key => `--${key}`).join(', ')}: given more than once; it takes one value`)
    }
    return true
  })
  await yargs(argv)
    .scriptName(name)
    .command({ ...module, builder } as unknown as CommandModule)
    .version(PHYSARUM_VERSION)
    .help()
    .alias('help', 'h')
    .wrap(Math.min(120, process.stdout.columns ?? 100))
    .fail((message, err) => {
      // yargs' own validation gives a message; an error thrown by the handler is a failure
      if (message == null && err != null) {
        exitWithError(name, 1, err.message)
      }
      exitWithError(name, 2, `${message ?? err?.message}\nRun ${name} --help for the options.`)
    })
    .parseAsync()
}
