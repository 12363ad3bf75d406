import { createMetricsRegistry, createPhysarumNode, nodeOptions, startMetricsServer } from '@physarum/p2p'
import { NAME } from './constants.ts'
import { createPingMonitor } from './index.ts'
import { watchRefusals } from './refusals.ts'
import type { PingMonitorOptions } from './index.ts'
import type { PingMonitor } from './monitor.ts'
import type { DaemonNodeOptions, HostPort, Logger, MetricsServer, PhysarumNode } from '@physarum/p2p'
import type { Registry } from 'prom-client'

export interface ConnectionLimitFlags {
  /** --max-connections: most open connections in all. */
  maxConnections: number
  /** --inbound-rate: most inbound connections per second from one host. */
  inboundRate: number
  /** --max-pending: most inbound connections being set up at once. */
  maxPending: number
  /** --max-pending-per-ip: most of those from one IP address. */
  maxPendingPerIp: number
}

export interface PingMonitorDaemonConfig extends DaemonNodeOptions {
  metricsListen: HostPort
  limits: ConnectionLimitFlags
  monitor: PingMonitorOptions
  /** How long start-up waits for a bootstrap before going on without one (it keeps trying). */
  bootstrapWaitMs?: number
  /** The process's Registry (default: a new one with process metrics). */
  registry?: Registry
}

export interface PingMonitorDaemon {
  node: PhysarumNode
  monitor: PingMonitor
  metrics: MetricsServer
  registry: Registry
  /** Stops pinging, the node and the metrics server. */
  stop(): Promise<void>
}

/**
 * Starts a whole ping monitor: the node (DHT server), the monitor and the metrics server with
 * /metrics, /healthz and /peers. Unlike other daemons it does not fail when its own bootstraps
 * (other ping monitors) are unreachable: it is a bootstrap itself, so it warns and keeps dialing.
 */
export async function startPingMonitorDaemon (config: PingMonitorDaemonConfig, log: Logger, options: { signal?: AbortSignal } = {}): Promise<PingMonitorDaemon> {
  const registry = config.registry ?? createMetricsRegistry()
  const node = await createPhysarumNode({
    ...nodeOptions(config),
    dhtMode: 'server',
    hostName: config.monitor.hostName,
    role: NAME,
    requireBootstrap: false,
    connectionLimits: {
      maxConnections: config.limits.maxConnections,
      inboundConnectionThreshold: config.limits.inboundRate,
      maxIncomingPendingConnections: config.limits.maxPending
    },
    metricsRegistry: registry,
    log
  })
  const unwatch = watchRefusals(node.libp2p, { log: log.child({ component: 'limits' }), registry, hostName: config.monitor.hostName, limits: config.limits })

  try {
    await node.start(options)
  } catch (err) {
    unwatch()
    await node.stop().catch(() => {})
    throw listenError(err as NodeJS.ErrnoException, config.listen)
  }

  const monitor = createPingMonitor({ node, registry, logger: log.child({ component: 'monitor' }) }, config.monitor)
  let metrics: MetricsServer
  try {
    metrics = await startMetricsServer({
      listen: config.metricsListen,
      registry,
      health: () => {
        const bootstraps = node.libp2p.services.bootstrap.status()
        const pinging = monitor.health()
        return {
          ok: node.libp2p.status === 'started' && pinging.ok,
          peerId: node.peerId.toString(),
          connectedPeers: node.libp2p.getPeers().length,
          bootstraps,
          monitor: pinging
        }
      },
      routes: {
        '/peers': async (_req, res) => {
          const peers = await monitor.peers()
          res.writeHead(200, { 'content-type': 'application/json' })
            .end(JSON.stringify({ host: config.monitor.hostName, peerId: node.peerId.toString(), peers }, null, 2))
        }
      }
    })
  } catch (err) {
    unwatch()
    await node.stop()
    throw err
  }
  monitor.start()

  let stopped: Promise<void> | undefined
  // its own address among the bootstraps (an environment file shared by every host) is left out
  if (node.libp2p.services.bootstrap.status().length > 0) {
    node.libp2p.services.bootstrap.waitForFirst(config.bootstrapWaitMs ?? 15_000).then(
      () => { log.info({ bootstraps: node.libp2p.services.bootstrap.status().filter(s => s.connected).map(s => s.addr) }, 'joined the overlay through a bootstrap') },
      (err: Error) => {
        // a stop ends the wait too: nothing to warn of then
        if (stopped == null) {
          log.warn({ err: err.message }, 'no bootstrap reachable yet: serving as a bootstrap on our own and still dialing')
        }
      }
    )
  }

  return {
    node,
    monitor,
    metrics,
    registry,
    stop: async () => {
      stopped ??= (async () => {
        monitor.stop()
        unwatch()
        await node.stop()
        await metrics.close()
      })()
      await stopped
    }
  }
}

const LISTEN_FAILURES: Record<string, string> = {
  EADDRINUSE: 'is in use by another process',
  EADDRNOTAVAIL: 'is not an address of this host',
  EACCES: 'needs privileges this process lacks'
}

/**
 * libp2p reports addresses it could not listen on in one message with each error's stack; this
 * keeps one line per address, named by the flag.
 */
function listenError (err: NodeJS.ErrnoException, listen: string[]): Error {
  const failures = [...err.message.matchAll(/^\s*(\/\S+): \w*Error: listen (E[A-Z]+)/gm)]
    .map(([, addr, code]) => `${addr} ${LISTEN_FAILURES[code!] ?? `failed (${code})`}`)
  if (failures.length > 0) {
    return new Error(`--listen: ${failures.join('; ')}`)
  }
  if (err.code != null && LISTEN_FAILURES[err.code] != null) {
    return new Error(`An address in --listen (${listen.join(', ')}) ${LISTEN_FAILURES[err.code]}: ${err.message}`)
  }
  return new Error(err.message.split('\n')[0])
}
