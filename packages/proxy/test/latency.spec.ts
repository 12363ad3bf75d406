import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import {
  buildServiceImage, ensureNodeImage, eventually, HELLO_SERVER, startDocker, startImageRegistry, startNode, startOverlay,
  startTestAllocator, stopAll, stopTestbed, tempDir, waitForAllocator
} from '../../allocator/test/helpers.ts'
import { startDelayRelay } from '../../p2p/test/helpers.ts'
import { startNamedInstance, startTestProxy, waitForProviders } from './helpers.ts'
import type { TestDocker, TestImageRegistry, TestOverlay } from '../../allocator/test/helpers.ts'
import type { AllocatorDaemon } from '@physarum/allocator'
import type { PhysarumNode } from '@physarum/p2p'
import type { ClientProxy } from '../src/client.ts'
import type { DelayRelay } from '../../p2p/test/helpers.ts'
import type { NamedInstance } from './helpers.ts'
import type { Registry } from 'prom-client'

const SERVICE = 'latency-server'
const CONTENT_HASH = 'hash-latency'
/** A service whose only instance the allocator runs, and which stops answering in time. */
const HUNG_SERVICE = 'hung-alloc-server'
/** Each way through the relay: the far instance is about 120 ms away, the near one about 1 ms. */
const DELAY_MS = 60
const SOFT_MS = 50

describe('client proxy choosing by RTT', { timeout: 300_000 }, () => {
  let engine: TestDocker
  let images: TestImageRegistry
  let overlay: TestOverlay
  let daemon: AllocatorDaemon
  let state: { path: string, remove: () => Promise<void> }
  let proxyNode: PhysarumNode
  let proxy: ClientProxy
  let metrics: Registry
  let relay: DelayRelay
  const instances: NamedInstance[] = []
  const proxies: ClientProxy[] = []

  const get = async (): Promise<string> => {
    const response = await fetch(`http://127.0.0.1:${proxy.port}/${SERVICE}/`)
    const body = await response.text()
    assert.equal(response.status, 200, body)
    return body
  }
  const closerAllocations = async (): Promise<string[]> => (await metrics.metrics()).split('\n')
    .filter(line => line.startsWith(`physarum_proxy_closer_allocations_total{service="${SERVICE}"`))

  const startInstance = async (name: string, announce?: (port: number) => Promise<string>): Promise<void> => {
    instances.push(await startNamedInstance({ service: SERVICE, contentHash: CONTENT_HASH, name, bootstrap: overlay.bootstrap, ...(announce == null ? {} : { announce }) }))
  }

  before(async () => {
    engine = await startDocker()
    images = await startImageRegistry()
    state = await tempDir('physarum-latency')
    await ensureNodeImage(engine)
    const image = await buildServiceImage(engine, images, 'hello-latency', HELLO_SERVER)
    overlay = await startOverlay()
    await overlay.register(SERVICE, image, { contentHash: CONTENT_HASH, softRttMs: SOFT_MS, hardRttMs: 2_000 })
    await overlay.register(HUNG_SERVICE, image, { contentHash: 'hash-hung-alloc', softRttMs: SOFT_MS, hardRttMs: 2_000 })
    daemon = await startTestAllocator(engine, overlay, state.path)
    await waitForAllocator(overlay, daemon)
    await startInstance('near')
    await startInstance('far', async (port) => {
      relay = await startDelayRelay({ target: { port }, delayMs: DELAY_MS })
      return `/ip4/127.0.0.1/tcp/${relay.port}`
    })
    // like the proxy daemon, a DHT client: the sidecars' DHT walks never dial it directly
    proxyNode = await startNode({ bootstrap: [overlay.bootstrap.multiaddrs()[0]!.toString()], dhtMode: 'client' })
    await waitForProviders(proxyNode, CONTENT_HASH, 2)
    const started = await startTestProxy(proxyNode, overlay.registry.node.multiaddrs()[0]!)
    proxy = started.proxy
    metrics = started.metrics
  })

  after(async () => {
    await Promise.all([proxy, ...proxies].map(async one => { await one?.stop() }))
    await Promise.all(instances.map(async ({ sidecar }) => { await sidecar.stop(0) }))
    await relay?.close()
    for (const { server } of instances) {
      server.server.closeAllConnections()
      server.server.close()
    }
    await stopAll([proxyNode])
    await daemon?.stop()
    await stopTestbed({ overlay, engine, images, state })
  })

  it('sends requests to the nearer of two instances', async () => {
    for (let i = 0; i < 5; i++) {
      assert.equal(await get(), 'near\n')
    }
    const far = instances[1]!.sidecar.node.peerId.toString()
    const farRtt = proxyNode.rtt.get(far)?.smoothedMs ?? 0
    assert.ok(farRtt >= 2 * DELAY_MS, `far RTT ${farRtt} ms`)
    assert.ok((proxyNode.rtt.get(instances[0]!.sidecar.node.peerId.toString())?.smoothedMs ?? Infinity) < SOFT_MS)
    assert.deepEqual(await closerAllocations(), [])
  })

  it('uses the far one within hard when the near one is gone, and asks once for a closer one', async () => {
    await instances[0]!.sidecar.stop(0)
    // far within hard, until the background allocation (on the allocator of this host, about
    // 1 ms away) is up and takes over
    const bodies = [await get()]
    assert.equal(bodies[0], 'far\n')
    await eventually('the closer instance serves', async () => {
      bodies.push(await get())
      return bodies.at(-1)!.startsWith('Hello, world') ? true : undefined
    }, 30_000, 50)
    assert.ok(bodies.length > 2, bodies.join(''))
    assert.ok(bodies.slice(0, -1).every(body => body === 'far\n'), bodies.join(''))
    assert.deepEqual(await closerAllocations(), [`physarum_proxy_closer_allocations_total{service="${SERVICE}",outcome="started"} 1`])
    assert.equal(daemon.allocator.instances().filter(i => i.service === SERVICE).length, 1)
  })

  it('has a hung service\'s only instance replaced: the allocator is told to avoid it', async () => {
    // a proxy that gives an instance 500 ms to answer
    const strict = (await startTestProxy(proxyNode, overlay.registry.node.multiaddrs()[0]!, { upstreamTimeoutMs: 500 })).proxy
    proxies.push(strict)
    const fetchHung = async (path: string): Promise<{ status: number, body: string }> => {
      const response = await fetch(`http://127.0.0.1:${strict.port}/${HUNG_SERVICE}${path}`)
      return { status: response.status, body: await response.text() }
    }
    const first = await fetchHung('/')
    const hungId = /^Hello, world from (\S+) /.exec(first.body)?.[1]
    assert.ok(first.status === 200 && hungId != null, first.body)

    // requests in a row that it does not answer in time (it takes 3 s): the proxy leaves it, and
    // the allocator on its host, told to avoid it, starts another rather than answer with it
    assert.deepEqual((await Promise.all([fetchHung('/slow?ms=3000'), fetchHung('/slow?ms=3000'), fetchHung('/slow?ms=3000')])).map(({ status }) => status), [504, 504, 504])
    const next = await fetchHung('/')
    assert.equal(next.status, 200, next.body)
    const nextId = /^Hello, world from (\S+) /.exec(next.body)?.[1]
    assert.ok(nextId != null && nextId !== hungId, `answered by ${nextId ?? next.body}, the instance left was ${hungId}`)
    assert.deepEqual(daemon.allocator.instances().filter(i => i.service === HUNG_SERVICE).map(i => i.id).sort(), [hungId, nextId].sort())
  })
})
