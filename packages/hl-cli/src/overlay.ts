import { BootstrapUnreachableError, checkPeerAddresses, createPhysarumNode, formatDuration, hostNameFromAgent, nodeOptions, parseDuration, resolveNodeConfig, RpcFailureError, withNodeOptions, withOtherKeyHint } from '@physarum/p2p'
import { createRegistryClient, isAmbiguous, trustedRegistries, withRegistryTrust } from '@physarum/registry-service'
import { pino } from 'pino'
import { DEFAULT_TIMEOUT_MS, NAME } from './constants.ts'
import { UsageError } from './errors.ts'
import type { PeerId } from '@libp2p/interface'
import type { LogLevel, NodeArgs, NodeConfig, NodeDefaults, PhysarumNode } from '@physarum/p2p'
import type { RegistryClient, RegistryTrustArgs } from '@physarum/registry-service'
import type { Logger } from 'pino'
import type { Argv } from 'yargs'

// a command's own lines are its output: libp2p's and the client's notes only when they warn
export const NODE_DEFAULTS: NodeDefaults = { name: NAME, p2pPort: 0, metricsPort: 0, logLevel: 'warn' }

/** The options of every command that talks to the overlay. */
export interface OverlayArgs extends NodeArgs, RegistryTrustArgs {
  /** --timeout, in milliseconds */
  timeout: number
  registry?: string[]
  json?: boolean
}

export function withOverlayOptions<T> (yargs: Argv<T>): Argv<T & OverlayArgs> {
  return withRegistryTrust(withNodeOptions(yargs, NODE_DEFAULTS))
    .option('timeout', {
      type: 'string',
      default: formatDuration(DEFAULT_TIMEOUT_MS),
      coerce: (text: string) => parseDuration('--timeout', text, 1),
      describe: 'How long to wait for a bootstrap peer, and for the overlay to answer (15s, 500ms)'
    })
    .option('registry', { type: 'string', array: true, describe: 'Multiaddr (with /p2p/<peer id>) or peer id of a registry-service to use instead of finding one through the DHT (repeatable)' })
    .option('json', { type: 'boolean', describe: 'Print JSON on stdout, for scripts' })
    .group(['timeout', 'registry', 'registry-id'], 'Overlay options:')
    // a command has no metrics server
    .hide('metrics-listen')
}

export interface Overlay {
  node: PhysarumNode
  client: RegistryClient
  config: NodeConfig
  log: Logger
  close(): Promise<void>
}

/** The logger of a command: JSON lines on stderr, at the level of --log-level or PHYSARUM_LOG_LEVEL. */
export function cliLogger (level: LogLevel): Logger {
  return pino({ name: NAME, level, redact: { paths: ['psk', 'password', '*.password'], censor: '[redacted]' } }, pino.destination(2))
}

/** The node configuration of hl-cli: flags > env > defaults, with its persistent identity. */
export async function resolveCliNodeConfig (args: NodeArgs, env: Record<string, string | undefined>): Promise<NodeConfig> {
  return await resolveNodeConfig(args, env, NODE_DEFAULTS)
}

/**
 * Joins the overlay as a DHT client with hl-cli's identity and returns a registry client on it.
 * `fallbackBootstraps` (an image-conf's PerfConf.Bootstraps) count when no -bootstrap is given.
 */
export async function openOverlay (args: OverlayArgs, env: Record<string, string | undefined>, fallbackBootstraps: string[] = []): Promise<Overlay> {
  checkPeerAddresses('--registry', args.registry ?? [], { peerIdAlone: true })
  const trusted = trustedRegistries(args, env)
  const config = await resolveCliNodeConfig(args, env)
  const bootstrap = config.bootstrap.length > 0 ? config.bootstrap : fallbackBootstraps
  if (bootstrap.length === 0) {
    throw new UsageError('No bootstrap peer: give -bootstrap <multiaddr with /p2p/<peer id>> or set PHYSARUM_BOOTSTRAP (or PerfConf.Bootstraps in the image-conf.json)')
  }
  const log = cliLogger(config.logLevel)
  for (const warning of config.warnings) {
    log.warn(warning)
  }
  const node = await createPhysarumNode({
    ...nodeOptions(config),
    bootstrap,
    dhtMode: 'client',
    role: NAME,
    bootstrapTimeoutMs: args.timeout
  })
  try {
    await node.start()
  } catch (err) {
    if (err instanceof BootstrapUnreachableError) {
      throw withOtherKeyHint(err)
    }
    throw err
  }
  const client = createRegistryClient(node, {
    cacheTtlMs: 0,
    discoveryTimeoutMs: Math.min(args.timeout, 10_000),
    ...(args.registry == null || args.registry.length === 0 ? {} : { peers: args.registry }),
    trusted,
    log
  })
  return {
    node,
    client,
    config,
    log,
    close: async () => { await node.stop() }
  }
}

/**
 * Why a write ended without telling whether it was carried out (the caller's --timeout ran out,
 * the last registry tried did not answer, or its etcd did not answer in time), or undefined when
 * `err` says it was not.
 */
export function unansweredWrite (err: unknown, timeoutMs: number): string | undefined {
  if ((err as Error).name === 'TimeoutError') {
    return `no answer within --timeout (${formatDuration(timeoutMs)})`
  }
  return isAmbiguous(err) ? (err as Error).message : undefined
}

/** A registry's refusal, told so that the user knows what to do. */
export function explainRegistryError (err: unknown, self: PeerId | undefined): Error {
  if (err instanceof RpcFailureError && err.code === 'UNAUTHORIZED') {
    return new RpcFailureError(err.code, `The registry refused the write: ${err.message}. This hl-cli's peer id is ${self?.toString() ?? '(see hl-cli id)'}: start registry-service with --admin <that id>, or use the identity it knows (--identity)`)
  }
  return err as Error
}

export interface PeerSummary {
  peerId: string
  host?: string
  role?: string
  agent?: string
  rttMs?: number
}

/** What the peer store knows of `peer`: its announced host and role. */
export async function describePeer (node: PhysarumNode, peer: PeerId, rttMs?: number): Promise<PeerSummary> {
  let agent: string | undefined
  try {
    const stored = await node.libp2p.peerStore.get(peer)
    const bytes = stored.metadata.get('AgentVersion')
    agent = bytes == null ? undefined : new TextDecoder().decode(bytes)
  } catch {
    // not in the peer store
  }
  const host = hostNameFromAgent(agent)
  const role = agent?.startsWith('physarum/') === true ? agent.split(' ')[1] : undefined
  return {
    peerId: peer.toString(),
    ...(host == null ? {} : { host }),
    ...(role == null ? {} : { role }),
    ...(agent == null ? {} : { agent }),
    ...(rttMs == null ? {} : { rttMs: Math.round(rttMs * 100) / 100 })
  }
}

/** Runs `fn` on every item, at most `limit` at a time, keeping the order. */
export async function mapLimit<T, R> (items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length)
  let next = 0
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const i = next++
      results[i] = await fn(items[i]!)
    }
  }))
  return results
}
