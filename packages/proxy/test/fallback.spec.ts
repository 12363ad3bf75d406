import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { createRegistryClient } from '@physarum/registry-service'
import { createMetricsRegistry } from '@physarum/p2p'
import {
  buildServiceImage, ensureNodeImage, eventually, HELLO_SERVER, silentLog, startDocker, startImageRegistry, startOverlay,
  startTestAllocator, stopTestbed, tempDir, waitForAllocator
} from '../../allocator/test/helpers.ts'
import { startRegistry } from '../../registry-service/test/helpers.ts'
import { startDelayRelay } from '../../p2p/test/helpers.ts'
import { startClientProxy } from '../src/client.ts'
import type { DelayRelay } from '../../p2p/test/helpers.ts'
import type { InProcessRegistry } from '../../registry-service/test/helpers.ts'
import type { TestDocker, TestImageRegistry, TestOverlay } from '../../allocator/test/helpers.ts'
import type { AllocatorDaemon } from '@physarum/allocator'
import type { ClientProxy } from '../src/client.ts'
import type { Registry } from 'prom-client'

/**
 * The allocator asks a registry-service of its own, whose etcd it reaches through a relay the
 * test cuts; the proxy asks the overlay's registry-service, which keeps answering.
 */
describe('a new version while the allocator reaches no registry', { timeout: 240_000 }, () => {
  let engine: TestDocker
  let images: TestImageRegistry
  let image: string
  let overlay: TestOverlay
  let etcdRelay: DelayRelay
  let etcdPort: number
  let allocatorRegistry: InProcessRegistry
  let daemon: AllocatorDaemon
  let state: { path: string, remove: () => Promise<void> }
  let proxy: ClientProxy
  let metrics: Registry

  before(async () => {
    engine = await startDocker()
    images = await startImageRegistry()
    state = await tempDir('physarum-fallback')
    await ensureNodeImage(engine)
    image = await buildServiceImage(engine, images, 'hello', HELLO_SERVER)
    overlay = await startOverlay()
    etcdPort = Number(new URL(overlay.etcd.endpoint).port)
    etcdRelay = await startDelayRelay({ target: { port: etcdPort }, delayMs: 0 })
    allocatorRegistry = await startRegistry(overlay.bootstrap, [`http://127.0.0.1:${etcdRelay.port}`], { timeoutMs: 1_000 })
    await overlay.register('fallback-server', image, { contentHash: 'hash-f1', hardRttMs: 1_000 })
    daemon = await startTestAllocator(engine, overlay, state.path, { registryPeers: [allocatorRegistry.node.multiaddrs()[0]!.toString()] })
    await waitForAllocator(overlay, daemon)
    metrics = createMetricsRegistry()
    const registry = createRegistryClient(overlay.client, { peers: [overlay.registry.node.multiaddrs()[0]!], cacheTtlMs: 500 })
    proxy = await startClientProxy({ node: overlay.client, registry, metrics, log: silentLog }, {
      host: '127.0.0.1', port: 0, discoveryTimeoutMs: 500, coldStartTimeoutMs: 60_000, closerIntervalMs: 500
    })
  })

  after(async () => {
    await proxy?.stop()
    await daemon?.stop()
    await allocatorRegistry?.stop()
    await etcdRelay?.close()
    await stopTestbed({ overlay, engine, images, state })
  })

  it('serves the version running meanwhile, asks again in the background, and moves to the new one once the registry answers', async () => {
    const instanceOf = async (): Promise<string> => {
      const response = await fetch(`http://127.0.0.1:${proxy.port}/fallback-server/`)
      assert.equal(response.status, 200)
      return /^Hello, world from (\S+) /.exec(await response.text())![1]!
    }
    const first = await instanceOf()

    await etcdRelay.close()
    await overlay.register('fallback-server', image, { contentHash: 'hash-f2', hardRttMs: 1_000 })
    await sleep(600)
    // the proxy holds the new record; the allocator cannot read it and answers with what it runs
    for (let i = 0; i < 5; i++) {
      assert.equal(await instanceOf(), first)
      await sleep(600)
    }
    const asked = (await metrics.metrics()).split('\n')
      .filter(line => /^physarum_proxy_(cold_starts|closer_allocations)_total\{service="fallback-server",outcome="reused"\}/.test(line))
      .reduce((sum, line) => sum + Number(line.split(' ').at(-1)), 0)
    assert.ok(asked >= 2, `the proxy asked again for the new version ${asked} times`)
    assert.deepEqual(daemon.allocator.instances().map(i => [i.id, i.contentHash]), [[first, 'hash-f1']])

    etcdRelay = await startDelayRelay({ target: { port: etcdPort }, delayMs: 0, listen: { port: etcdRelay.port } })
    const second = await eventually('an instance of the new version', async () => {
      const answering = await instanceOf()
      return answering !== first ? answering : undefined
    }, 60_000, 300)
    const hashes = Object.fromEntries(daemon.allocator.instances().map(i => [i.id, i.contentHash]))
    assert.deepEqual(hashes, { [first]: 'hash-f1', [second]: 'hash-f2' })
    for (let i = 0; i < 3; i++) {
      assert.equal(await instanceOf(), second)
    }
  })
})
