import { multiaddr } from '@multiformats/multiaddr'
import { checkPeerAddresses, ConfigError, launchDaemon, metricsUrl, formatDuration, nodeOptions, parseDuration, parseNumber, parsePort, resolveNodeConfig, runCli, withNodeOptions } from '@physarum/p2p'
import { DEFAULT_STATS_INTERVAL_MS } from '@physarum/allocator/client'
import { trustedRegistries, withRegistryTrust } from '@physarum/registry-service'
import { hideBin } from 'yargs/helpers'
import {
  DEFAULT_COLD_START_TIMEOUT_MS, DEFAULT_DISCOVERY_TIMEOUT_MS, DEFAULT_MAX_PENDING, DEFAULT_METRICS_PORT, DEFAULT_P2P_PORT, DEFAULT_UPSTREAM_TIMEOUT_MS, NAME
} from './constants.ts'
import { startSidecar } from './sidecar.ts'
import { startClientDaemon } from './client-daemon.ts'
import type { ClientDaemonConfig } from './client-daemon.ts'
import type { SidecarConfig } from './sidecar.ts'
import type { NodeArgs } from '@physarum/p2p'
import type { RegistryTrustArgs } from '@physarum/registry-service'
import type { Argv } from 'yargs'

const DEFAULTS = { name: NAME, p2pPort: DEFAULT_P2P_PORT, metricsPort: DEFAULT_METRICS_PORT }

interface ProxyArgs extends NodeArgs, RegistryTrustArgs {
  port?: string
  sidecar?: boolean
  service?: string
  'content-hash'?: string
  'service-port'?: string
  allocator?: string
  instance?: string
  'stats-interval'?: string
  'client-port'?: string
  hostname?: string
  'max-pending'?: string
  'cold-start-timeout'?: string
  'upstream-timeout'?: string
  'discovery-timeout'?: string
  registry?: string[]
}

export const command = '$0 [port]'
export const describe = 'Run the client proxy (HTTP on 127.0.0.1:<port>) or, with --sidecar, the sidecar next to a service instance'

export function builder (argv: Argv): Argv<ProxyArgs> {
  return withRegistryTrust(withNodeOptions(argv, DEFAULTS))
    .positional('port', { type: 'string', describe: 'Client mode: the local HTTP port on 127.0.0.1 (4200 in the docs)' })
    .option('max-pending', { type: 'string', describe: `Client: requests that may wait for one service's cold start; more get 503 with Retry-After [default: ${DEFAULT_MAX_PENDING}]` })
    .option('cold-start-timeout', { type: 'string', describe: `Client: how long a request waits for a cold start before 504, with a unit (30s, 500ms) [default: ${formatDuration(DEFAULT_COLD_START_TIMEOUT_MS)}]` })
    .option('upstream-timeout', { type: 'string', describe: `Client: how long an instance may take to start its response before 504, and a client may pause while sending a request body before 408, with a unit [default: ${formatDuration(DEFAULT_UPSTREAM_TIMEOUT_MS)}]` })
    .option('discovery-timeout', { type: 'string', describe: `Client: how long one lookup of instances or allocators in the DHT may take, with a unit [default: ${formatDuration(DEFAULT_DISCOVERY_TIMEOUT_MS)}]` })
    .option('registry', { type: 'string', array: true, describe: 'Client: multiaddr with /p2p/ of a registry-service to use instead of discovering one (repeatable)' })
    .group(['max-pending', 'cold-start-timeout', 'upstream-timeout', 'discovery-timeout', 'registry'], 'Client mode:')
    .describe('registry-id', 'Peer id of a registry-service trusted with the records (repeatable; env PHYSARUM_REGISTRY_IDS, space separated): one found through the DHT with another id is not asked. Both modes: a sidecar passes it to its --client-port client proxy, and an allocator passes its own --registry-id to every sidecar [default: any member of the overlay]')
    .option('sidecar', { type: 'boolean', describe: 'Run as the sidecar of one service instance (the allocator starts it)' })
    .option('service', { type: 'string', describe: 'Sidecar: the service name' })
    .option('content-hash', { type: 'string', describe: 'Sidecar: the service\'s content hash; the sidecar provides physarum:service:<content hash>' })
    .option('service-port', { type: 'string', describe: 'Sidecar: the service listens on 127.0.0.1:<service-port> (env SERVICE_PORT)' })
    .option('allocator', { type: 'string', describe: 'Sidecar: multiaddr with /p2p/<peer id> of the allocator to check in with' })
    .option('instance', { type: 'string', describe: 'Sidecar: the instance id the allocator gave' })
    .option('stats-interval', { type: 'string', describe: `Sidecar: time between two stats reports to the allocator, with a unit [default: ${formatDuration(DEFAULT_STATS_INTERVAL_MS)}]` })
    .option('hostname', { type: 'string', describe: 'The host name announced to peers [default: the OS host name]' })
    .option('client-port', { type: 'string', describe: 'Sidecar: also serve the client proxy on 127.0.0.1:<client-port> for the service\'s own calls (the record\'s ProxyClientMode; the service sees it as PROXY_PORT)' })
    .group(['sidecar', 'service', 'content-hash', 'service-port', 'allocator', 'instance', 'stats-interval', 'client-port'], 'Sidecar mode:')
    .epilogue([
      'Client mode: GET 127.0.0.1:<port>/<service>/<path> goes to <path> on the nearest instance of <service> (the /<service> prefix is stripped here), started on the nearest allocator when none is within the record\'s hard RTT. Errors are JSON: 400 bad path or name, or a request that is not valid HTTP/1.1 (no Host, or two), 404 unknown service, 408 a request head not sent whole within 60 s, or nothing of the request body for --upstream-timeout, 417 an Expect other than 100-continue, 421 a Host header other than 127.0.0.1, [::1] or localhost (what a web page has a browser send through DNS rebinding), 431 a request head past Node\'s header size limit, 501 CONNECT, or a request body in a transfer coding other than chunked, 503 no instance and allocation failed (or too many waiting), 504 timeout, 502 the instance broke or answered with a response that is not HTTP.',
      '',
      'The client proxy keeps its identity (its peer id) in <state-dir>/identity.key unless --identity or --ephemeral says otherwise; a sidecar uses the key its allocator gives with --identity, and a new identity at every start without one.',
      '',
      'Each mode refuses the other\'s options. The sidecar serves no metrics (many run on one host; their allocator reports on them): --metrics-listen is for client mode.',
      '',
      'Sidecar mode: serves /physarum/http/1.0.0 streams as byte pipes to the service on 127.0.0.1:<service-port>, checks in with its allocator on /physarum/checkin/1.0.0 as soon as it listens and the service accepts connections, provides its service topic, reports stats (idle time, requests in flight) and drains on the allocator\'s request or on SIGTERM (stops providing, finishes requests in flight, and resets those still in flight after its grace of 9 s, so that their clients see them fail).',
      '',
      'Exit codes: 2 for a usage error, 1 for a failure (a stop past its deadline too), 128+n after signal n: 143 after SIGTERM, the usual stop.'
    ].join('\n'))
    .strictOptions()
}

async function resolveSidecarConfig (args: ProxyArgs, env: NodeJS.ProcessEnv): Promise<{ sidecar: SidecarConfig, logLevel: Awaited<ReturnType<typeof resolveNodeConfig>>['logLevel'], warnings: string[] }> {
  refuseOtherMode(args)
  const service = args.service
  if (service == null || service === '') {
    throw new ConfigError('--service: missing: the sidecar needs the name of its service')
  }
  const servicePort = parsePort('--service-port', args['service-port'] ?? env.SERVICE_PORT, 1, 'the port the service listens on (or env SERVICE_PORT)')
  checkPeerAddresses('--allocator', args.allocator == null ? [] : [args.allocator])
  const allocator = args.allocator == null ? undefined : multiaddr(args.allocator)
  if (allocator != null && (args.instance ?? '') === '') {
    throw new ConfigError('--instance: missing: the allocator knows its sidecars by instance id, and gives --instance with --allocator')
  }
  const clientPort = args['client-port'] == null ? undefined : parsePort('--client-port', args['client-port'], 1)
  // the client proxy would take the service's port (or fail on it): the sidecar would check in on
  // its own client proxy accepting connections, and pipe every request into it
  if (clientPort === servicePort) {
    throw new ConfigError(`--client-port: ${clientPort} is the service's port (--service-port): the client proxy needs a port of its own`)
  }
  const interval = parseDuration('--stats-interval', args['stats-interval'] ?? formatDuration(DEFAULT_STATS_INTERVAL_MS), 10)
  // a sidecar's identity is its allocator's to give (--identity): without one it writes no key
  const node = await resolveNodeConfig({ ...args, ephemeral: args.identity == null ? true : args.ephemeral }, env, DEFAULTS)
  return {
    logLevel: node.logLevel,
    warnings: node.warnings,
    sidecar: {
      ...nodeOptions(node),
      service,
      contentHash: args['content-hash'] ?? service,
      servicePort,
      ...(allocator == null ? {} : { allocator }),
      instanceId: args.instance ?? '',
      statsIntervalMs: interval,
      ...(clientPort == null ? {} : { clientPort }),
      registryIds: trustedRegistries(args, env),
      ...(args.hostname == null ? {} : { hostName: args.hostname })
    }
  }
}

function positiveMs (flag: string, value: string | undefined, fallback: number): number {
  return parseDuration(`--${flag}`, value ?? formatDuration(fallback), 1)
}

const CLIENT_ONLY = ['max-pending', 'cold-start-timeout', 'upstream-timeout', 'discovery-timeout', 'registry', 'metrics-listen'] as const
const SIDECAR_ONLY = ['service', 'content-hash', 'service-port', 'allocator', 'instance', 'stats-interval', 'client-port'] as const

/** A flag of the other mode would be ignored: refused instead, naming it. */
function refuseOtherMode (args: ProxyArgs): void {
  const sidecar = args.sidecar === true
  const other = sidecar ? CLIENT_ONLY.find(flag => args[flag] != null) : SIDECAR_ONLY.find(flag => args[flag] != null)
  if (other != null) {
    throw new ConfigError(sidecar ? `--${other}: a client mode option, not for --sidecar` : `--${other}: a sidecar option: add --sidecar, or leave it out for the client proxy`)
  }
  if (sidecar && args.port != null) {
    throw new ConfigError(`<port>: ${JSON.stringify(args.port)}: the sidecar serves no local port of its own (--client-port serves the client proxy to its service)`)
  }
}

async function resolveClientConfig (args: ProxyArgs, env: NodeJS.ProcessEnv): Promise<{ client: ClientDaemonConfig, logLevel: Awaited<ReturnType<typeof resolveNodeConfig>>['logLevel'], warnings: string[] }> {
  refuseOtherMode(args)
  const port = parsePort('<port>', args.port, 0, `the client proxy's local HTTP port: run ${NAME} <port>, e.g. ${NAME} 4200`)
  checkPeerAddresses('--registry', args.registry ?? [])
  const maxPending = parseNumber('--max-pending', args['max-pending'] ?? String(DEFAULT_MAX_PENDING), 1, true)
  const proxy = {
    host: '127.0.0.1',
    port,
    maxPending,
    coldStartTimeoutMs: positiveMs('cold-start-timeout', args['cold-start-timeout'], DEFAULT_COLD_START_TIMEOUT_MS),
    upstreamTimeoutMs: positiveMs('upstream-timeout', args['upstream-timeout'], DEFAULT_UPSTREAM_TIMEOUT_MS),
    discoveryTimeoutMs: positiveMs('discovery-timeout', args['discovery-timeout'], DEFAULT_DISCOVERY_TIMEOUT_MS)
  }
  const node = await resolveNodeConfig(args, env, DEFAULTS)
  return {
    logLevel: node.logLevel,
    warnings: node.warnings,
    client: {
      ...nodeOptions(node),
      metricsListen: node.metricsListen,
      registryPeers: args.registry ?? [],
      registryIds: trustedRegistries(args, env),
      ...(args.hostname == null ? {} : { hostName: args.hostname }),
      proxy
    }
  }
}

export async function handler (args: ProxyArgs): Promise<void> {
  if (args.sidecar !== true) {
    await launchDaemon({
      name: NAME,
      resolve: async () => {
        const config = await resolveClientConfig(args, process.env)
        return { config, logLevel: config.logLevel, warnings: config.warnings }
      },
      start: async (config, log, options) => await startClientDaemon(config.client, log, options),
      shutdownDeadlineMs: 9_500,
      announce: (daemon) => ({
        log: {
          peerId: daemon.node.peerId.toString(),
          http: `http://127.0.0.1:${daemon.proxy.port}/`,
          metrics: metricsUrl(daemon.metrics.address())
        }
      })
    })
    return
  }
  await launchDaemon({
    name: `${NAME}-sidecar`,
    resolve: async () => {
      const config = await resolveSidecarConfig(args, process.env)
      return { config, logLevel: config.logLevel, warnings: config.warnings }
    },
    start: async (config, log, options) => {
      const sidecar = await startSidecar(config.sidecar, log, options)
      // stopped the way an operator stops it: no allocator would ever remove it
      void sidecar.disowned.then(() => { process.kill(process.pid, 'SIGTERM') })
      return sidecar
    },
    shutdownDeadlineMs: 9_500,
    announce: (sidecar, config) => ({
      log: {
        peerId: sidecar.node.peerId.toString(),
        addrs: sidecar.node.multiaddrs().map(String),
        service: config.sidecar.service,
        servicePort: config.sidecar.servicePort,
        instance: config.sidecar.instanceId
      }
    })
  })
}

await runCli(NAME, { command, describe, builder, handler }, hideBin(process.argv))
