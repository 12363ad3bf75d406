import { ALLOCATOR_TOPIC, createMetricsRegistry, createPhysarumNode, nodeOptions, startMetricsServer } from '@physarum/p2p'
import { createRegistryClient, DAEMON_STALE_IF_ERROR_MS } from '@physarum/registry-service'
import { Allocator } from './allocator.ts'
import { NAME } from './constants.ts'
import { DockerRuntime } from './docker.ts'
import { SidecarImageError } from './errors.ts'
import { ensureSidecarImage } from './sidecar-image.ts'
import type { AllocatorInit } from './allocator.ts'
import type { DaemonNodeOptions, HostPort, Logger, MetricsServer, PhysarumNode } from '@physarum/p2p'
import type { Registry } from 'prom-client'

export interface AllocatorDaemonConfig extends DaemonNodeOptions {
  metricsListen: HostPort
  /** unix:///path, tcp://host:port; else DOCKER_HOST, else the local socket. */
  dockerHost?: string
  nodeImage: string
  /** Use this sidecar image as it is instead of building one. */
  sidecarImage?: string
  sidecarEntry?: string
  /** Registry-services to ask instead of finding them through the DHT. */
  registryPeers?: string[]
  keepInstances: boolean
  hostName?: string
  allocator: Omit<AllocatorInit, 'sidecarImage' | 'restoreSidecarImage' | 'psk' | 'bootstrap'>
  registry?: Registry
}

export interface AllocatorDaemon {
  node: PhysarumNode
  allocator: Allocator
  metrics: MetricsServer
  registry: Registry
  sidecarImage: string
  stop(): Promise<void>
}

/** Starts a whole allocator: Docker, the sidecar image, the node, the allocator, the metrics server. */
export async function startAllocatorDaemon (config: AllocatorDaemonConfig, log: Logger, options: { signal?: AbortSignal } = {}): Promise<AllocatorDaemon> {
  const registry = config.registry ?? createMetricsRegistry()
  const runtime = new DockerRuntime(config.dockerHost)
  await runtime.ping()
  // at start, and again at a cold start that finds the image gone from the engine (the build ends with `signal`)
  const provideSidecarImage = async (signal?: AbortSignal): Promise<string> => {
    if (config.sidecarImage != null) {
      if (!await runtime.hasImage(config.sidecarImage)) {
        throw new SidecarImageError(`The sidecar image ${config.sidecarImage} (--sidecar-image) is not in the engine`)
      }
      return config.sidecarImage
    }
    const image = await ensureSidecarImage(runtime, { nodeImage: config.nodeImage, ...(config.sidecarEntry == null ? {} : { entry: config.sidecarEntry }), ...(signal == null ? {} : { signal }) })
    if (image.built) {
      log.info({ image: image.tag, nodeImage: config.nodeImage, bundle: image.bundleHash.slice(0, 12) }, 'built the sidecar image')
    }
    return image.tag
  }
  const sidecarImage = await provideSidecarImage(options.signal)

  const node = await createPhysarumNode({
    ...nodeOptions(config),
    dhtMode: 'server',
    role: NAME,
    ...(config.hostName == null ? {} : { hostName: config.hostName }),
    metricsRegistry: registry,
    log
  })
  await node.start(options)
  const registryClient = createRegistryClient(node, {
    ...(config.registryPeers == null || config.registryPeers.length === 0 ? {} : { peers: config.registryPeers }),
    trusted: config.allocator.registryIds ?? [],
    staleIfErrorMs: DAEMON_STALE_IF_ERROR_MS,
    // an Allocate answered by a running instance need not wait for a registry; a caller whose
    // record names another version makes the allocator read it fresh (Allocator#allocate)
    revalidateInBackground: true,
    log: log.child({ component: 'registry-client' })
  })
  const allocator = new Allocator({ node, runtime, registry: registryClient, logger: log.child({ component: 'allocator' }), metricsRegistry: registry }, {
    ...config.allocator,
    sidecarImage,
    restoreSidecarImage: provideSidecarImage,
    psk: config.psk,
    bootstrap: config.bootstrap
  })
  let metrics: MetricsServer
  try {
    await allocator.start()
    metrics = await startMetricsServer({
      listen: config.metricsListen,
      registry,
      health: async () => {
        const docker = await allocator.engineHealth()
        return { ok: node.libp2p.status === 'started' && docker === 'ok', peerId: node.peerId.toString(), instances: allocator.instances().length, docker }
      },
      routes: {
        '/instances': (_req, res) => {
          res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(allocator.instances(), null, 2))
        }
      }
    })
  } catch (err) {
    await allocator.stop({ keepInstances: true })
    await node.stop()
    throw err
  }
  node.discovery.provide(ALLOCATOR_TOPIC).catch((err: Error) => { log.warn({ err: err.message }, 'providing the allocator topic failed; the periodic reprovide will try again') })

  let stopped: Promise<void> | undefined
  return {
    node,
    allocator,
    metrics,
    registry,
    sidecarImage,
    stop: async () => {
      stopped ??= (async () => {
        await node.discovery.stopProviding(ALLOCATOR_TOPIC).catch(() => {})
        await allocator.stop({ keepInstances: config.keepInstances })
        await node.stop()
        await metrics.close()
      })()
      await stopped
    }
  }
}
