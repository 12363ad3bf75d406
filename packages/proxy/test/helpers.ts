import { once } from 'node:events'
import { createServer as createHttpServer, Server as HttpServerClass } from 'node:http'
import { connect } from 'node:net'
import { createMetricsRegistry, serviceTopic } from '@physarum/p2p'
import { createRegistryClient } from '@physarum/registry-service'
import { eventually, freePort, sampleRecord, silentLog, startClient, startNode, startRegistry, stopAll, TEST_PSK, TestEtcd } from '../../registry-service/test/helpers.ts'
import { startClientProxy } from '../src/client.ts'
import { startSidecar } from '../src/sidecar.ts'
import type { AddressInfo, Server as NetServer } from 'node:net'
import type { Server as HttpServer } from 'node:http'
import type { Multiaddr } from '@multiformats/multiaddr'
import type { PhysarumNode } from '@physarum/p2p'
import type { InProcessRegistry } from '../../registry-service/test/helpers.ts'
import type { ClientProxy, ClientProxyInit } from '../src/client.ts'
import type { Sidecar } from '../src/sidecar.ts'
import type { Registry } from 'prom-client'

export interface NamedServer {
  port: number
  server: HttpServer
}

/** An HTTP service on 127.0.0.1 that answers every request with its name. */
export async function startNamedServer (name: string): Promise<NamedServer> {
  const server = createHttpServer((_req, res) => { res.end(`${name}\n`) })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return { port: (server.address() as AddressInfo).port, server }
}

/** One instance of a service without Docker: its record in a registry over etcd, and a sidecar. */
export interface LocalInstance {
  etcd: TestEtcd
  /** The overlay's bootstrap node. */
  bootstrap: PhysarumNode
  registry: InProcessRegistry
  sidecar: Sidecar
  /** Stops the sidecar, the registry, the bootstrap node and etcd (not the service). */
  stop: () => Promise<void>
}

/**
 * Starts etcd, a bootstrap node and a registry-service holding the record of `service`
 * (`hash-<name>`, soft 50 ms, hard 1 s), and a sidecar named `name` in front of the HTTP service
 * listening on 127.0.0.1:`servicePort`.
 */
export async function startLocalInstance (service: string, name: string, servicePort: number): Promise<LocalInstance> {
  const etcd = await TestEtcd.start()
  const bootstrap = await startNode()
  const registry = await startRegistry(bootstrap, [etcd.endpoint], { openWrites: true })
  const admin = await startClient(bootstrap, { peers: [registry.node.multiaddrs()[0]!] })
  await admin.client.add(sampleRecord(service, { contentHash: `hash-${name}`, softRttMs: 50, hardRttMs: 1_000 }))
  await stopAll([admin.node])
  const sidecar = await startSidecar({
    psk: TEST_PSK,
    listen: ['/ip4/127.0.0.1/tcp/0'],
    bootstrap: [bootstrap.multiaddrs()[0]!.toString()],
    service,
    contentHash: `hash-${name}`,
    servicePort,
    instanceId: name,
    hostName: `${name}-host`
  }, silentLog)
  return {
    etcd,
    bootstrap,
    registry,
    sidecar,
    stop: async () => {
      await sidecar.stop(0)
      await registry.stop()
      await stopAll([bootstrap])
      await etcd.remove()
    }
  }
}

/** A service's own server behind a local instance, and a client proxy on a node of that overlay. */
export interface ProxiedService {
  instance: LocalInstance
  proxy: ClientProxy
  /** The proxy's node. */
  node: PhysarumNode
  metrics: Registry
  /** Stops the proxy, its node, the instance and the server. */
  stop: () => Promise<void>
}

/**
 * Starts `server` on a free port of 127.0.0.1 as the service `service` (startLocalInstance, the
 * sidecar named `name`), and a client proxy (startTestProxy with `init`) joined to that overlay.
 */
export async function startProxiedService (service: string, name: string, server: NetServer, init: Partial<ClientProxyInit> = {}): Promise<ProxiedService> {
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const instance = await startLocalInstance(service, name, (server.address() as AddressInfo).port)
  const node = await startNode({ bootstrap: [instance.bootstrap.multiaddrs()[0]!.toString()], dhtMode: 'client' })
  const { proxy, metrics } = await startTestProxy(node, instance.registry.node.multiaddrs()[0]!, init)
  return {
    instance,
    proxy,
    node,
    metrics,
    stop: async () => {
      await proxy.stop()
      await stopAll([node])
      await instance.stop()
      if (server instanceof HttpServerClass) {
        server.closeAllConnections()
      }
      server.close()
    }
  }
}

/** A named HTTP service with a sidecar in front of it. */
export interface NamedInstance {
  server: NamedServer
  sidecar: Sidecar
}

/**
 * A named HTTP service and its sidecar (instance id and host name `name`), listening on a free
 * port of 127.0.0.1 and joining through `bootstrap`. `announce(port)`, when given, is the address
 * peers are told instead: a relay to that port, which makes the instance far or lets it go silent.
 */
export async function startNamedInstance (init: { service: string, contentHash: string, name: string, bootstrap: PhysarumNode, announce?: (port: number) => Promise<string> }): Promise<NamedInstance> {
  const server = await startNamedServer(init.name)
  const port = await freePort()
  const sidecar = await startSidecar({
    psk: TEST_PSK,
    listen: [`/ip4/127.0.0.1/tcp/${port}`],
    ...(init.announce == null ? {} : { announce: [await init.announce(port)] }),
    bootstrap: [init.bootstrap.multiaddrs()[0]!.toString()],
    service: init.service,
    contentHash: init.contentHash,
    servicePort: server.port,
    instanceId: init.name,
    hostName: init.name
  }, silentLog)
  return { server, sidecar }
}

/** A client proxy on a free port of 127.0.0.1 that asks the registry-service at `registry`, with a metrics registry of its own. */
export async function startTestProxy (node: PhysarumNode, registry: Multiaddr, init: Partial<ClientProxyInit> = {}): Promise<{ proxy: ClientProxy, metrics: Registry }> {
  const metrics = createMetricsRegistry()
  const proxy = await startClientProxy({
    node,
    registry: createRegistryClient(node, { peers: [registry] }),
    metrics,
    log: silentLog
  }, { host: '127.0.0.1', port: 0, discoveryTimeoutMs: 1_000, ...init })
  return { proxy, metrics }
}

/** Waits until `node` finds `count` providers of the service topic of `contentHash` in the DHT. */
export async function waitForProviders (node: PhysarumNode, contentHash: string, count: number): Promise<void> {
  await eventually(`${count} instances to be found`, async () => {
    const found = []
    for await (const provider of node.discovery.findProviders(serviceTopic(contentHash), { signal: AbortSignal.timeout(1_000) })) {
      found.push(provider)
    }
    return found.length === count ? true : undefined
  }, 20_000)
}

/** One raw request to 127.0.0.1:`port`; everything it answered, once it closed the connection. */
export async function rawRequest (port: number, request: string): Promise<string> {
  const socket = connect(port, '127.0.0.1')
  let text = ''
  socket.on('data', (chunk: Buffer) => { text += chunk.toString('latin1') })
  socket.write(request)
  await once(socket, 'close')
  return text
}
