import { createMetricsRegistry, createPhysarumNode, nodeOptions, startMetricsServer } from '@physarum/p2p'
import { createRegistryClient, DAEMON_STALE_IF_ERROR_MS } from '@physarum/registry-service'
import { startClientProxy } from './client.ts'
import { NAME } from './constants.ts'
import type { ClientProxy, ClientProxyInit } from './client.ts'
import type { DaemonNodeOptions, HostPort, Logger, MetricsServer, PhysarumNode } from '@physarum/p2p'
import type { Registry } from 'prom-client'

export interface ClientDaemonConfig extends DaemonNodeOptions {
  metricsListen: HostPort
  /** Registry-services to use instead of discovering them (multiaddrs with /p2p/). */
  registryPeers?: string[]
  /** The registry-services trusted with the records (empty: any). */
  registryIds?: string[]
  hostName?: string
  proxy: ClientProxyInit
}

export interface ClientDaemon {
  node: PhysarumNode
  proxy: ClientProxy
  metrics: MetricsServer
  registry: Registry
  stop(): Promise<void>
}

/** The client proxy as the CLI runs it: a node of the overlay, the HTTP entry, /metrics. */
export async function startClientDaemon (config: ClientDaemonConfig, log: Logger, options: { signal?: AbortSignal } = {}): Promise<ClientDaemon> {
  const registry = createMetricsRegistry()
  const node = await createPhysarumNode({
    ...nodeOptions(config),
    dhtMode: 'client',
    role: NAME,
    ...(config.hostName == null ? {} : { hostName: config.hostName }),
    metricsRegistry: registry,
    log
  })
  await node.start(options)
  const registryClient = createRegistryClient(node, {
    staleIfErrorMs: DAEMON_STALE_IF_ERROR_MS,
    // every request looks its record up: none waits for a registry for a record the proxy has
    revalidateInBackground: true,
    ...(config.registryPeers == null || config.registryPeers.length === 0 ? {} : { peers: config.registryPeers }),
    trusted: config.registryIds ?? [],
    log: log.child({ component: 'registry-client' })
  })
  let proxy: ClientProxy | undefined
  let metrics: MetricsServer
  try {
    proxy = await startClientProxy({ node, registry: registryClient, metrics: registry, log: log.child({ component: 'client-proxy' }) }, config.proxy)
    metrics = await startMetricsServer({
      listen: config.metricsListen,
      registry,
      health: () => ({ ok: node.libp2p.status === 'started', peerId: node.peerId.toString() })
    })
  } catch (err) {
    await proxy?.stop()
    await node.stop()
    throw err
  }
  let stopping: Promise<void> | undefined
  const started = proxy
  return {
    node,
    proxy: started,
    metrics,
    registry,
    stop: async () => {
      stopping ??= (async () => {
        await started.stop()
        await metrics.close()
        await node.stop()
      })()
      await stopping
    }
  }
}
