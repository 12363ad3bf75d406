import { join } from 'node:path'
import { checkPeerAddresses, ConfigError, launchDaemon, nodeAnnouncement, nodeOptions, runCli, formatDuration, parseDuration, parseNumber, resolveNodeConfig, withNodeOptions } from '@physarum/p2p'
import { multiaddr } from '@multiformats/multiaddr'
import { trustedRegistries, withRegistryTrust } from '@physarum/registry-service'
import { hideBin } from 'yargs/helpers'
import {
  ALLOC_PROTOCOL, ALLOC_RPC_TIMEOUT_MS, CHECKIN_PROTOCOL, DEFAULT_DRAIN_DELAY_MS, DRAIN_IN_FLIGHT_MAX_MS, DEFAULT_IDLE_TIMEOUT_MS, DEFAULT_MAX_INSTANCES, DEFAULT_MAX_RESTARTS, DEFAULT_METRICS_PORT,
  DEFAULT_NODE_IMAGE, DEFAULT_P2P_PORT, DEFAULT_PULL_TIMEOUT_MS, DEFAULT_RATE_BURST, DEFAULT_RATE_PER_SECOND, DEFAULT_READY_TIMEOUT_MS, DEFAULT_RESTART_BACKOFF_MAX_MS,
  DEFAULT_RESTART_BACKOFF_MIN_MS, DEFAULT_RESTART_WINDOW_MS, DEFAULT_STATS_INTERVAL_MS, LABEL_PREFIX, MAX_READY_TIMEOUT_MS, NAME, STREAM_STALL_MS
} from './constants.ts'
import { startAllocatorDaemon } from './daemon.ts'
import { dockerOptions } from './docker.ts'
import type { AllocatorDaemonConfig } from './daemon.ts'
import type { NodeArgs, NodeConfig } from '@physarum/p2p'
import type { RegistryTrustArgs } from '@physarum/registry-service'
import type { Argv } from 'yargs'

const DEFAULTS = { name: NAME, p2pPort: DEFAULT_P2P_PORT, metricsPort: DEFAULT_METRICS_PORT }

/** Printed on stdout once per listen address, besides the JSON logs. */
export const LISTENING_LINE = `${NAME} listening:`
export const METRICS_LINE = `${NAME} metrics:`

interface AllocatorArgs extends NodeArgs, RegistryTrustArgs {
  'docker-host'?: string
  'node-image': string
  'sidecar-image'?: string
  'sidecar-entry'?: string
  'sidecar-listen'?: string[]
  'sidecar-announce'?: string[]
  'network-mode': string
  'max-instances': string
  'cpu-budget': string
  'memory-budget': string
  'ready-timeout': string
  'pull-timeout': string
  'idle-timeout': string
  'drain-delay': string
  'stats-interval': string
  'restart-backoff-min': string
  'restart-backoff-max': string
  'max-restarts': string
  'restart-window': string
  'rate-limit': string
  'rate-burst': string
  'keep-instances'?: boolean
  registry?: string[]
  hostname?: string
}

export const command = '$0'
export const describe = 'Run an allocator: start service instances on demand with Docker and look after them'

export function builder (argv: Argv): Argv<AllocatorArgs> {
  return withRegistryTrust(withNodeOptions(argv, DEFAULTS))
    .option('docker-host', { type: 'string', describe: 'Docker engine: unix:///path/docker.sock or tcp://host:port, on this host: its containers mount folders of this host\'s state folder [default: DOCKER_HOST, else /var/run/docker.sock]' })
    .option('node-image', { type: 'string', default: DEFAULT_NODE_IMAGE, describe: 'Node base image of the sidecar image (scripts/build-node-image.sh builds a local one)' })
    .option('sidecar-image', { type: 'string', describe: 'Use this sidecar image as it is [default: build physarum/sidecar:<version> from the proxy package when missing or different]' })
    .option('sidecar-entry', { type: 'string', describe: 'The proxy CLI entry bundled into the sidecar image [default: the proxy package of this workspace]' })
    .option('sidecar-listen', { type: 'string', array: true, describe: 'Multiaddr the sidecars listen on (repeatable) [default: /ip4/0.0.0.0/tcp/0]' })
    .option('sidecar-announce', { type: 'string', array: true, describe: 'Multiaddr the sidecars announce instead, forwarded to the fixed port of --sidecar-listen (repeatable; needs --max-instances 1)' })
    .option('network-mode', { type: 'string', default: 'host', choices: ['host', 'bridge'], describe: 'host: both containers on the host\'s network; bridge: the sidecar on Docker\'s bridge network, its overlay port published on a free host port, the service in its network namespace' })
    .option('max-instances', { type: 'string', default: String(DEFAULT_MAX_INSTANCES), describe: 'Most instances on this host' })
    .option('cpu-budget', { type: 'string', default: '0', describe: 'CPU cores all instances may reserve together (records\' cpu); 0: no limit' })
    .option('memory-budget', { type: 'string', default: '0', describe: 'Memory in MiB all instances may reserve together (records\' memoryMb); 0: no limit' })
    .option('ready-timeout', { type: 'string', default: formatDuration(DEFAULT_READY_TIMEOUT_MS), describe: `How long a new instance may take to check in (answered TIMEOUT past it), and a restarted sidecar to check in again or a restarted service to listen again (the instance is given up past it); at most ${formatDuration(MAX_READY_TIMEOUT_MS)}, the rest of the callers' ${formatDuration(ALLOC_RPC_TIMEOUT_MS)} Allocate deadline being for the pull and the containers' start` })
    .option('pull-timeout', { type: 'string', default: formatDuration(DEFAULT_PULL_TIMEOUT_MS), describe: `How long an image pull may take, however slowly it progresses (the cold start fails with IMAGE past it, and the next Allocate pulls again); one that makes no progress for ${formatDuration(STREAM_STALL_MS)} fails sooner` })
    .option('idle-timeout', { type: 'string', default: formatDuration(DEFAULT_IDLE_TIMEOUT_MS), describe: 'An instance with no request for this long and none in flight is drained' })
    .option('drain-delay', { type: 'string', default: formatDuration(DEFAULT_DRAIN_DELAY_MS), describe: `Between "stop providing" and stopping a drained instance; requests its sidecar still reports in flight then get up to ${formatDuration(DRAIN_IN_FLIGHT_MAX_MS)} more` })
    .option('stats-interval', { type: 'string', default: formatDuration(DEFAULT_STATS_INTERVAL_MS), describe: 'How often the sidecars report their stats' })
    .option('restart-backoff-min', { type: 'string', default: formatDuration(DEFAULT_RESTART_BACKOFF_MIN_MS), describe: 'First wait before restarting an exited container (doubles each time)' })
    .option('restart-backoff-max', { type: 'string', default: formatDuration(DEFAULT_RESTART_BACKOFF_MAX_MS), describe: 'Longest wait before a restart' })
    .option('max-restarts', { type: 'string', default: String(DEFAULT_MAX_RESTARTS), describe: 'Restarts of one instance within --restart-window; one more exit and it is removed' })
    .option('restart-window', { type: 'string', default: formatDuration(DEFAULT_RESTART_WINDOW_MS), describe: 'The window of --max-restarts' })
    .option('rate-limit', { type: 'string', default: String(DEFAULT_RATE_PER_SECOND), describe: 'Allocate requests per second one peer may make (answered RATE_LIMITED past it for a backoff, twice the last each time the peer empties its burst again)' })
    .option('rate-burst', { type: 'string', default: String(DEFAULT_RATE_BURST), describe: 'Allocate requests one peer may make at once' })
    .option('keep-instances', { type: 'boolean', describe: 'On SIGTERM, leave the instances running (the next start adopts them); a cold start under way is ended and removed all the same' })
    .option('registry', { type: 'string', array: true, describe: 'Multiaddr (with /p2p/) of a registry-service to ask (repeatable) [default: found through the DHT]' })
    .option('hostname', { type: 'string', describe: 'The host name announced to peers [default: the OS host name]' })
    .group(['docker-host', 'node-image', 'sidecar-image', 'sidecar-entry', 'sidecar-listen', 'sidecar-announce', 'network-mode'], 'Docker:')
    .group(['max-instances', 'cpu-budget', 'memory-budget'], 'Capacity:')
    .group(['ready-timeout', 'pull-timeout', 'idle-timeout', 'drain-delay', 'stats-interval', 'restart-backoff-min', 'restart-backoff-max', 'max-restarts', 'restart-window', 'keep-instances'], 'Lifecycle:')
    .group(['rate-limit', 'rate-burst', 'registry', 'registry-id', 'hostname'], 'Other:')
    .example('PHYSARUM_PSK=... $0 -bootstrap /ip4/10.0.0.1/tcp/4001/p2p/12D3KooW...', 'Run an allocator on this host (Docker on /var/run/docker.sock, metrics on :9101)')
    .example('scripts/build-node-image.sh && PHYSARUM_PSK=... $0 --node-image physarum/node:24 -bootstrap ...', 'Without an image registry: build a local Node base image first')
    .epilogue([
      'Durations take a unit: 500ms, 10s, 10m, 1h, 1m30s (a bare number other than 0 is refused: it could be seconds or milliseconds).',
      '',
      `Protocols: ${ALLOC_PROTOCOL} (Allocate{service, the caller's content hash, sidecars to avoid} -> the sidecar's peer id, multiaddrs, the instance's content hash and cold-start phases, or NOT_FOUND, CAPACITY, IMAGE, TIMEOUT, RATE_LIMITED, BAD_REQUEST, UNAVAILABLE, INTERNAL; a running instance answers only when it runs the version the record names, and the record is read fresh before a cold start and when the caller's version differs) and ${CHECKIN_PROTOCOL} (the sidecars' Ready and Stats). The allocator provides the physarum:allocator topic.`,
      '',
      `Containers carry ${LABEL_PREFIX}* labels naming the allocator (its peer id: keep --identity across restarts), service and instance; the allocator never touches others. The PSK reaches the sidecar as a read-only mounted file, never in argv or env. <state-dir>/instances holds those files.`,
      '',
      'HTTP on --metrics-listen: GET /metrics (physarum_alloc_instances{service,state}, physarum_alloc_allocations_total{outcome}, physarum_alloc_cold_start_seconds{phase}, physarum_alloc_restarts_total, physarum_alloc_reaps_total, physarum_alloc_failed_instances_total, physarum_alloc_capacity_used/limit{resource}, physarum_alloc_docker_up, process and libp2p metrics), GET /healthz (503 while the Docker engine does not answer), GET /instances (JSON).',
      '',
      'Exit codes: 2 for a usage error, 1 for a failure (a stop past its deadline too), 128+n after signal n: 143 after SIGTERM, the usual stop.'
    ].join('\n'))
    .strictOptions()
}

/**
 * The sidecars' listen and announce addresses. A fixed port fits one sidecar at a time, and an
 * announced address only makes sense for a fixed port forwarded to it.
 */
function sidecarAddresses (listen: string[] = [], announce: string[] = [], maxInstances: string): { sidecarListen?: string[], sidecarAnnounce?: string[] } {
  const port = (flag: string, addr: string): number => {
    let components
    try {
      components = multiaddr(addr).getComponents()
    } catch {
      throw new ConfigError(`${flag}: ${JSON.stringify(addr)} is not a multiaddr (e.g. /ip4/0.0.0.0/tcp/0)`)
    }
    const tcp = components.find(c => c.name === 'tcp')
    if (tcp == null) {
      throw new ConfigError(`${flag}: ${addr} has no /tcp/<port>`)
    }
    // what every sidecar would refuse (exit 2), failing every cold start while the allocator ran on
    const names = components.map(c => c.name)
    if (flag === '--sidecar-listen' && (names.length !== 2 || !['ip4', 'ip6'].includes(names[0]!))) {
      throw new ConfigError(`${flag}: ${addr} is not an IP and TCP port, all a sidecar listens on (e.g. /ip4/0.0.0.0/tcp/0)`)
    }
    if (names.includes('p2p')) {
      throw new ConfigError(`${flag}: ${addr} names a peer id; give the address alone, each sidecar adds its own`)
    }
    return Number(tcp.value)
  }
  const fixed = listen.filter(addr => port('--sidecar-listen', addr) !== 0)
  // a sidecar runs with no capability (docs/operations.md): a port below 1024 is not its to take
  const privileged = listen.find(addr => port('--sidecar-listen', addr) > 0 && port('--sidecar-listen', addr) < 1024)
  if (privileged != null) {
    throw new ConfigError(`--sidecar-listen: ${privileged} has a port below 1024, which a sidecar (no capabilities) cannot listen on: give one from 1024`)
  }
  announce.forEach(addr => port('--sidecar-announce', addr))
  if (fixed.length > 0 && Number(maxInstances) !== 1) {
    throw new ConfigError(`--sidecar-listen: ${fixed[0]} has a fixed port, which only one sidecar can listen on: give --max-instances 1`)
  }
  if (announce.length > 0 && fixed.length === 0) {
    throw new ConfigError('--sidecar-announce: needs a --sidecar-listen with a fixed port for the announced address to forward to')
  }
  return { ...(listen.length === 0 ? {} : { sidecarListen: listen }), ...(announce.length === 0 ? {} : { sidecarAnnounce: announce }) }
}

async function resolveConfig (args: AllocatorArgs, env: NodeJS.ProcessEnv): Promise<{ node: NodeConfig, daemon: AllocatorDaemonConfig }> {
  const allocator = {
    stateDir: '',
    maxInstances: parseNumber('--max-instances', args['max-instances'], 1, true),
    cpuBudget: parseNumber('--cpu-budget', args['cpu-budget'], 0),
    memoryBudgetMb: parseNumber('--memory-budget', args['memory-budget'], 0, true),
    readyTimeoutMs: parseDuration('--ready-timeout', args['ready-timeout'], 100),
    pullTimeoutMs: parseDuration('--pull-timeout', args['pull-timeout'], 1_000),
    idleTimeoutMs: parseDuration('--idle-timeout', args['idle-timeout'], 100),
    drainDelayMs: parseDuration('--drain-delay', args['drain-delay'], 0),
    statsIntervalMs: parseDuration('--stats-interval', args['stats-interval'], 10),
    restart: {
      backoffMinMs: parseDuration('--restart-backoff-min', args['restart-backoff-min'], 1),
      backoffMaxMs: parseDuration('--restart-backoff-max', args['restart-backoff-max'], 1),
      maxRestarts: parseNumber('--max-restarts', args['max-restarts'], 0, true),
      windowMs: parseDuration('--restart-window', args['restart-window'], 1)
    },
    rate: { perSecond: parseNumber('--rate-limit', args['rate-limit'], 0.001), burst: parseNumber('--rate-burst', args['rate-burst'], 1, true) },
    networkMode: args['network-mode'] === 'bridge' ? 'bridge' as const : 'host' as const,
    ...sidecarAddresses(args['sidecar-listen'], args['sidecar-announce'], args['max-instances']),
    // the allocator's own, set below: resolveNodeConfig reads and checks the flag and the variable
    sidecarLogLevel: 'info',
    registryIds: trustedRegistries(args, env)
  }
  if (allocator.idleTimeoutMs <= allocator.statsIntervalMs) {
    throw new ConfigError(`--idle-timeout: ${args['idle-timeout']} is not longer than --stats-interval ${args['stats-interval']}: between two reports an instance in use would look idle`)
  }
  if (allocator.readyTimeoutMs > MAX_READY_TIMEOUT_MS) {
    throw new ConfigError(`--ready-timeout: ${args['ready-timeout']} is longer than ${formatDuration(MAX_READY_TIMEOUT_MS)}: a cold start answers within the ${formatDuration(ALLOC_RPC_TIMEOUT_MS)} deadline of its caller's Allocate, pull and containers' start included, or the caller gets the call's timeout instead of the reason`)
  }
  if (allocator.restart.backoffMaxMs < allocator.restart.backoffMinMs) {
    throw new ConfigError(`--restart-backoff-max: ${args['restart-backoff-max']} is shorter than --restart-backoff-min ${args['restart-backoff-min']}`)
  }
  if (allocator.networkMode === 'bridge' && (allocator.sidecarListen != null || allocator.sidecarAnnounce != null)) {
    throw new ConfigError('--network-mode bridge publishes each sidecar on a free host port at the allocator\'s own addresses: --sidecar-listen and --sidecar-announce are for host networking')
  }
  // an empty name would reach the engine as one, and come back as an image it does not have
  for (const flag of ['node-image', 'sidecar-image', 'sidecar-entry'] as const) {
    if (args[flag]?.trim() === '') {
      throw new ConfigError(`--${flag}: must not be empty`)
    }
  }
  const dockerHost = args['docker-host'] ?? env.DOCKER_HOST
  // a typo is a usage error, told before the node starts, not a failure of the engine's first call
  dockerOptions(dockerHost)
  checkPeerAddresses('--registry', args.registry ?? [])
  const node = await resolveNodeConfig(args, env, DEFAULTS)
  if (allocator.networkMode === 'bridge' && node.listen.every(addr => /^\/ip4\/127\.|^\/ip6\/::1\//.test(addr))) {
    throw new ConfigError(`--network-mode bridge: the sidecars cannot reach the allocator on loopback (--listen ${node.listen.join(' ')}): listen on another address too`)
  }
  if (args['keep-instances'] === true) {
    if (args.ephemeral === true) {
      throw new ConfigError('--keep-instances: the kept instances are adopted by the next run with the same identity, which --ephemeral does not keep')
    }
    const free = node.listen.find(addr => multiaddr(addr).getComponents().some(c => c.name === 'tcp' && c.value === '0'))
    if (free != null) {
      throw new ConfigError(`--keep-instances: the kept instances' sidecars check in again at the allocator's address of before the restart, which a free port (--listen ${free}) does not keep: listen on a fixed port [default: ${DEFAULT_P2P_PORT}]`)
    }
  }
  allocator.stateDir = node.stateDir
  // the variable read again here took an environment file's empty PHYSARUM_LOG_LEVEL= as a level,
  // which every sidecar refused: every cold start failed while the allocator itself ran
  allocator.sidecarLogLevel = node.logLevel
  return {
    node,
    daemon: {
      ...nodeOptions(node),
      metricsListen: node.metricsListen,
      ...dockerHost == null ? {} : { dockerHost },
      nodeImage: args['node-image'],
      ...(args['sidecar-image'] == null ? {} : { sidecarImage: args['sidecar-image'] }),
      ...(args['sidecar-entry'] == null ? {} : { sidecarEntry: args['sidecar-entry'] }),
      registryPeers: args.registry ?? [],
      keepInstances: args['keep-instances'] === true,
      ...(args.hostname == null ? {} : { hostName: args.hostname }),
      allocator
    }
  }
}

export async function handler (args: AllocatorArgs): Promise<void> {
  await launchDaemon({
    name: NAME,
    resolve: async () => {
      const config = await resolveConfig(args, process.env)
      return { config, logLevel: config.node.logLevel, warnings: config.node.warnings }
    },
    start: async (config, log, options) => await startAllocatorDaemon(config.daemon, log, options),
    shutdownDeadlineMs: 30_000,
    announce: (daemon, config) => {
      const node = nodeAnnouncement(daemon.node, daemon.metrics.address(), config.node)
      return {
        log: {
          ...node,
          stateDir: join(config.daemon.allocator.stateDir, 'instances'),
          sidecarImage: daemon.sidecarImage,
          instances: daemon.allocator.instances().length,
          maxInstances: config.daemon.allocator.maxInstances
        },
        stdout: [...node.addrs.map(addr => `${LISTENING_LINE} ${addr}`), `${METRICS_LINE} ${node.metrics}`]
      }
    }
  })
}

await runCli(NAME, { command, describe, builder, handler }, hideBin(process.argv))
