import { hostname } from 'node:os'
import { checkHostName, launchDaemon, nodeAnnouncement, nodeOptions, runCli, formatDuration, parseDuration, parseNumber, resolveNodeConfig, withNodeOptions } from '@physarum/p2p'
import { hideBin } from 'yargs/helpers'
import {
  DEFAULT_CONCURRENCY, DEFAULT_FORGET_AFTER_MS, DEFAULT_INBOUND_RATE, DEFAULT_INTERVAL_MS, DEFAULT_MAX_CONNECTIONS,
  DEFAULT_MAX_PENDING_CONNECTIONS, DEFAULT_MAX_PENDING_PER_IP, DEFAULT_METRICS_PORT, DEFAULT_P2P_PORT, DEFAULT_PING_TIMEOUT_MS, NAME,
  REFUSAL_LOG_INTERVAL_MS, REFUSAL_LOG_LINES
} from './constants.ts'
import { startPingMonitorDaemon } from './daemon.ts'
import type { PingMonitorDaemonConfig } from './daemon.ts'
import type { NodeArgs } from '@physarum/p2p'
import type { Argv } from 'yargs'

const DEFAULTS = { name: NAME, p2pPort: DEFAULT_P2P_PORT, metricsPort: DEFAULT_METRICS_PORT, ipv6: true }

/** Printed on stdout once per listen address, besides the JSON logs: what others pass to -bootstrap. */
export const LISTENING_LINE = `${NAME} listening:`
/** Printed on stdout once the metrics server listens. */
export const METRICS_LINE = `${NAME} metrics:`

interface MonitorArgs extends NodeArgs {
  interval: string
  'ping-timeout': string
  concurrency: string
  'forget-after': string
  hostname?: string
  'max-connections': string
  'inbound-rate': string
  'max-pending': string
  'max-pending-per-ip': string
}

export const command = '$0'
export const describe = 'Run the overlay\'s bootstrap node and measure the RTT to every peer for Prometheus'

export function builder (argv: Argv): Argv<MonitorArgs> {
  return withNodeOptions(argv, DEFAULTS)
    .option('interval', { type: 'string', default: formatDuration(DEFAULT_INTERVAL_MS), describe: 'How often every peer is pinged (a Yamux ping frame on its connection, answered by its muxer)' })
    .option('ping-timeout', { type: 'string', default: formatDuration(DEFAULT_PING_TIMEOUT_MS), describe: 'A ping not answered within this counts as a failure. A peer that keeps failing is due again at most 1, 2, 4, 8... intervals after its last failure, never more than 30 s after it (each wait cut by up to half at random, so that peers that failed together do not retry together); retries hold at most a quarter of the --concurrency slots (one when that is less), and like any ping each gives its slot up once unanswered for an --interval' })
    .option('concurrency', { type: 'string', default: String(DEFAULT_CONCURRENCY), describe: 'Most pings holding a slot at once (pings go one after another; more start only when slow answers would make a round overrun). A ping unanswered for an --interval gives its slot up while it waits for --ping-timeout, so that peers gone silent together do not hold up the others' })
    .option('forget-after', { type: 'string', default: formatDuration(DEFAULT_FORGET_AFTER_MS), describe: 'Remove the series of a peer neither connected nor answering for this long' })
    .option('hostname', { type: 'string', describe: 'This monitor\'s name: the "host" label of its metrics, and the host name it announces to peers [default: the OS host name]' })
    .option('max-connections', { type: 'string', default: String(DEFAULT_MAX_CONNECTIONS), describe: 'Most open connections in all (libp2p\'s default: 300)' })
    .option('inbound-rate', { type: 'string', default: String(DEFAULT_INBOUND_RATE), describe: 'Most inbound connections per second from one IP address (libp2p\'s default: 5); many peers behind one address need more' })
    .option('max-pending', { type: 'string', default: String(DEFAULT_MAX_PENDING_CONNECTIONS), describe: 'Most inbound connections being set up (key exchange) at once (libp2p\'s default: 10)' })
    .group(['interval', 'ping-timeout', 'concurrency', 'forget-after', 'hostname'], 'Monitor options:')
    .option('max-pending-per-ip', { type: 'string', default: String(DEFAULT_MAX_PENDING_PER_IP), describe: 'Most of those from one IP address, so that one host cannot hold them all with connections that send nothing; many peers behind one address starting at once may need more' })
    .group(['max-connections', 'inbound-rate', 'max-pending', 'max-pending-per-ip'], `Connection limits (a refused peer is logged as a warning, one line per address and limit and at most ${REFUSAL_LOG_LINES} in all per ${REFUSAL_LOG_INTERVAL_MS / 1_000} s, then one counting the rest):`)
    .example('PHYSARUM_PSK=... $0', 'Start the first bootstrap on TCP 4001, metrics on :9100')
    .example('PHYSARUM_PSK=... $0 -bootstrap /ip4/10.0.0.1/tcp/4001/p2p/12D3KooW...', 'Start a second, redundant bootstrap that joins the first')
    .epilogue([
      'Durations take a unit: 500ms, 10s, 10m, 1h, 1m30s (a bare number other than 0 is refused: it could be seconds or milliseconds).',
      '',
      `At start, stdout gets one line "${LISTENING_LINE} <multiaddr>/p2p/<peer id>" per listen address (the addresses other nodes pass to -bootstrap) and one line "${METRICS_LINE} http://<host>:<port>/metrics"; everything else is JSON log lines (pino).`,
      '',
      'HTTP on --metrics-listen: GET /metrics (Prometheus: physarum_ping_rtt_seconds, physarum_ping_rtt_ewma_seconds and physarum_ping_last_success_timestamp_seconds {host, target_peer, target_host}, physarum_ping_rtt_distribution_seconds, physarum_ping_failures_total{host, target_peer, reason} (reason "ping": unanswered on a connection still open, a peer gone silent, worth an alert; "dial": no connection and the dial failed, as for every peer that left, until --forget-after; a peer that closes its connection during a ping, as one that stops does, is a "dial" failure once the next ping\'s dial fails), physarum_connected_peers, physarum_ping_tracked_peers (the connected peers and those gone for less than --forget-after), physarum_connections_refused_total{host, reason}, process and libp2p metrics); GET /healthz (503 when the node stopped, or no round of pings could all start for 3 intervals and a ping timeout); GET /peers (JSON: every peer with its addresses, last and smoothed RTT in ms, last seen).',
      '',
      `The identity is kept in <state-dir>/identity.key unless --identity or --ephemeral says otherwise. A bootstrap given with -bootstrap that does not answer is logged and dialed again; the monitor serves the overlay meanwhile.`,
      '',
      'Exit codes: 2 for a usage error, 1 for a failure (a stop past its deadline too), 128+n after signal n: 143 after SIGTERM, the usual stop.'
    ].join('\n'))
    .strictOptions()
}

/** Everything the flags and environment say, validated; throws ConfigError naming the flag. */
async function resolveConfig (args: MonitorArgs, env: NodeJS.ProcessEnv): Promise<{ daemon: PingMonitorDaemonConfig, node: Awaited<ReturnType<typeof resolveNodeConfig>> }> {
  const monitor = {
    intervalMs: parseDuration('--interval', args.interval, 1),
    pingTimeoutMs: parseDuration('--ping-timeout', args['ping-timeout'], 1),
    concurrency: parseNumber('--concurrency', args.concurrency, 1, true),
    forgetAfterMs: parseDuration('--forget-after', args['forget-after'], 1),
    hostName: checkHostName(args.hostname ?? hostname())
  }
  const limits = {
    maxConnections: parseNumber('--max-connections', args['max-connections'], 1, true),
    inboundRate: parseNumber('--inbound-rate', args['inbound-rate'], 1, true),
    maxPending: parseNumber('--max-pending', args['max-pending'], 1, true),
    maxPendingPerIp: parseNumber('--max-pending-per-ip', args['max-pending-per-ip'], 1, true)
  }
  const node = await resolveNodeConfig(args, env, DEFAULTS)
  return {
    node,
    daemon: {
      ...nodeOptions(node),
      metricsListen: node.metricsListen,
      limits,
      monitor
    }
  }
}

export async function handler (args: MonitorArgs): Promise<void> {
  await launchDaemon({
    name: NAME,
    resolve: async () => {
      const config = await resolveConfig(args, process.env)
      return { config, logLevel: config.node.logLevel, warnings: config.node.warnings }
    },
    start: async (config, log, options) => await startPingMonitorDaemon(config.daemon, log, options),
    announce: (daemon, config) => {
      const node = nodeAnnouncement(daemon.node, daemon.metrics.address(), config.node)
      return {
        log: {
          ...node,
          host: config.daemon.monitor.hostName,
          intervalMs: config.daemon.monitor.intervalMs,
          pingTimeoutMs: config.daemon.monitor.pingTimeoutMs,
          concurrency: config.daemon.monitor.concurrency,
          forgetAfterMs: config.daemon.monitor.forgetAfterMs,
          limits: config.daemon.limits
        },
        stdout: [...node.addrs.map(addr => `${LISTENING_LINE} ${addr}`), `${METRICS_LINE} ${node.metrics}`]
      }
    }
  })
}

await runCli(NAME, { command, describe, builder, handler }, hideBin(process.argv))
