import assert from 'node:assert/strict'
import { join } from 'node:path'
import { after, before, describe, it, mock } from 'node:test'
import { loadOrCreateIdentity } from '@physarum/p2p'
import { allocate } from '../src/client.ts'
import { LABELS } from '../src/constants.ts'
import { DockerRuntime } from '../src/docker.ts'
import {
  buildServiceImage, containersOf, CRASHING_SERVER, ensureNodeImage, eventually, freePort, HELLO_SERVER, httpThroughSidecar, stopTestbed,
  startDocker, startEngineRelay, startImageRegistry, startOverlay, startTestAllocator, tempDir
} from './helpers.ts'
import type { TestDocker, TestImageRegistry, TestOverlay } from './helpers.ts'

/** Listens on its first start only: started again (same container, same files), it runs but never listens. */
const ONCE_SERVER = `
const fs = require('node:fs')
if (fs.existsSync('/tmp/started')) {
  setInterval(() => {}, 60_000)
} else {
  fs.writeFileSync('/tmp/started', '')
  require('node:http').createServer((req, res) => { res.end('once\\n') }).listen(Number(process.env.SERVICE_PORT), '127.0.0.1')
}
process.on('SIGTERM', () => { process.exit(0) })
`

describe('instance lifecycle', { timeout: 240_000 }, () => {
  let engine: TestDocker
  let images: TestImageRegistry
  let overlay: TestOverlay
  let state: { path: string, remove: () => Promise<void> }

  before(async () => {
    engine = await startDocker()
    images = await startImageRegistry()
    state = await tempDir('physarum-lifecycle')
    await ensureNodeImage(engine)
    const hello = await buildServiceImage(engine, images, 'hello', HELLO_SERVER)
    const crashing = await buildServiceImage(engine, images, 'crashing', CRASHING_SERVER)
    const once = await buildServiceImage(engine, images, 'once', ONCE_SERVER)
    overlay = await startOverlay()
    await overlay.register('hello-world-server', hello)
    await overlay.register('idle-server', hello, { contentHash: 'hash-idle' })
    await overlay.register('busy-server', hello, { contentHash: 'hash-busy' })
    await overlay.register('crashing-server', crashing)
    await overlay.register('once-server', once, { contentHash: 'hash-once' })
  })

  after(async () => {
    await stopTestbed({ overlay, engine, images, state })
  })

  it('restarts a killed service, which serves again', async () => {
    const dir = await tempDir('physarum-restart')
    const daemon = await startTestAllocator(engine, overlay, dir.path)
    try {
      const allocation = await allocate(overlay.client.libp2p, daemon.node.peerId, 'hello-world-server')
      const service = (await containersOf(engine, daemon.node.peerId.toString())).find(c => c.Labels[LABELS.role] === 'service')!
      const firstStart = (await engine.docker.getContainer(service.Id).inspect()).State.StartedAt
      await engine.docker.getContainer(service.Id).kill({ signal: 'SIGKILL' })
      // started again by the allocator (not by a Docker restart policy): a later start, the same container
      await eventually('the service to be restarted', async () => {
        const info = await engine.docker.getContainer(service.Id).inspect()
        return info.State.Running && info.RestartCount === 0 && info.State.StartedAt > firstStart ? true : undefined
      }, 15_000)
      const answer = await eventually('an answer after the restart', async () => await httpThroughSidecar(overlay.client, allocation.multiaddrs, '/again'), 15_000, 100)
      assert.equal(answer.status, 200)
      assert.equal(daemon.allocator.instances()[0]?.restarts, 1)
      assert.match(await daemon.registry.metrics(), /physarum_alloc_restarts_total\{service="hello-world-server",container="service"\} 1/)
    } finally {
      await daemon.stop()
      await dir.remove()
    }
  })

  it('restarts the containers that died while Docker\'s events were down, and /healthz follows the engine', async () => {
    const dir = await tempDir('physarum-events-down')
    const relay = await startEngineRelay(engine)
    const daemon = await startTestAllocator({ ...engine, host: relay.host }, overlay, dir.path)
    try {
      const first = await allocate(overlay.client.libp2p, daemon.node.peerId, 'hello-world-server')
      const containers = await containersOf(engine, daemon.node.peerId.toString())
      assert.equal(containers.length, 2)
      const health = `http://127.0.0.1:${daemon.metrics.address().port}/healthz`
      assert.equal((await fetch(health)).status, 200)
      // both die while the allocator hears nothing from the engine, as when the engine restarts
      relay.cut()
      await Promise.all(containers.map(async container => { await engine.docker.getContainer(container.Id).kill({ signal: 'SIGKILL' }) }))
      await eventually('both containers to be down', async () => (await containersOf(engine, daemon.node.peerId.toString())).every(c => c.State !== 'running') ? true : undefined)
      const down = await fetch(health)
      assert.equal(down.status, 503)
      assert.match(((await down.json()) as { docker: string }).docker, /The Docker engine does not answer/)
      assert.match(await daemon.registry.metrics(), /physarum_alloc_docker_up 0/)
      relay.restore()
      await eventually('/healthz to recover', async () => (await fetch(health)).status === 200 ? true : undefined, 10_000, 100)
      await eventually('both containers to run again', async () => (await containersOf(engine, daemon.node.peerId.toString())).every(c => c.State === 'running') ? true : undefined, 15_000)
      // the restarted sidecar listens on a new port: the allocator answers with it once it checked in
      // both containers came back in one restart, counted once against the restart limit
      await eventually('the sidecar to check in again', () => daemon.allocator.instances().every(i => i.checkedIn && i.restarts === 1) ? true : undefined, 15_000)
      const again = await allocate(overlay.client.libp2p, daemon.node.peerId, 'hello-world-server')
      assert.equal(again.peerId.toString(), first.peerId.toString(), 'the same instance, not a new one')
      assert.equal(daemon.allocator.instances().length, 1)
      const answer = await eventually('an answer after the restart', async () => await httpThroughSidecar(overlay.client, again.multiaddrs, '/again'), 15_000, 100)
      assert.equal(answer.status, 200)
      const metrics = await daemon.registry.metrics()
      assert.match(metrics, /physarum_alloc_docker_up 1/)
      assert.match(metrics, /physarum_alloc_restarts_total\{service="hello-world-server",container="service"\} 1/)
      assert.match(metrics, /physarum_alloc_restarts_total\{service="hello-world-server",container="sidecar"\} 1/)
    } finally {
      await daemon.stop()
      await relay.stop()
      await dir.remove()
    }
  })

  it('restarts a kept service that dies while its next run adopts the instances', async () => {
    const dir = await tempDir('physarum-adopt-die')
    // the same peer id and address in both runs: the kept sidecar checks in with the next one
    const run = { privateKey: await loadOrCreateIdentity(join(dir.path, 'identity.key')), listen: [`/ip4/127.0.0.1/tcp/${await freePort()}`], reconcileIntervalMs: 10 * 60_000 }
    const first = await startTestAllocator(engine, overlay, dir.path, { ...run, keepInstances: true })
    let second: Awaited<ReturnType<typeof startTestAllocator>> | undefined
    try {
      await allocate(overlay.client.libp2p, first.node.peerId, 'hello-world-server')
      const service = (await containersOf(engine, first.node.peerId.toString())).find(c => c.Labels[LABELS.role] === 'service')!
      await first.stop()
      const firstStart = (await engine.docker.getContainer(service.Id).inspect()).State.StartedAt
      // the service dies once the next run listed the containers (it runs then), before the
      // adoption knows its instance: its 'die' comes before the instance can take it
      const listed = mock.method(DockerRuntime.prototype, 'list', async function (this: DockerRuntime, label: string, value: string) {
        listed.mock.restore()
        const containers = await this.list(label, value)
        await engine.docker.getContainer(service.Id).kill({ signal: 'SIGKILL' })
        await engine.docker.getContainer(service.Id).wait()
        await new Promise(resolve => setTimeout(resolve, 500))
        return containers
      })
      second = await startTestAllocator(engine, overlay, dir.path, run)
      // long before the next reconcile (10 min here)
      await eventually('the service to be restarted', async () => {
        const info = await engine.docker.getContainer(service.Id).inspect()
        return info.State.Running && info.State.StartedAt > firstStart ? true : undefined
      }, 15_000)
    } finally {
      mock.restoreAll()
      await first.stop()
      await second?.stop()
      await dir.remove()
    }
  })

  it('removes the containers of an instance reaped while the engine did not answer, once it answers again', async () => {
    const dir = await tempDir('physarum-reap-down')
    const relay = await startEngineRelay(engine)
    const daemon = await startTestAllocator({ ...engine, host: relay.host }, overlay, dir.path, { idleTimeoutMs: 1_500 })
    const peer = daemon.node.peerId.toString()
    try {
      await allocate(overlay.client.libp2p, daemon.node.peerId, 'idle-server')
      relay.cut()
      // reaped, but kept (and counted) while its containers cannot be removed
      await eventually('the idle instance to be reaped', () => daemon.allocator.instances()[0]?.state === 'stopping' ? true : undefined, 15_000)
      assert.equal((await containersOf(engine, peer)).length, 2, 'its containers stay while the engine does not answer')
      relay.restore()
      await eventually('its containers to be removed', async () => (await containersOf(engine, peer)).length === 0 ? true : undefined, 15_000)
      await eventually('the instance gone with them', () => daemon.allocator.instances().length === 0 ? true : undefined, 5_000)
    } finally {
      await daemon.stop()
      await relay.stop()
      await dir.remove()
    }
  })

  it('gives up an instance whose restarted sidecar does not check in within the ready timeout', async () => {
    const dir = await tempDir('physarum-no-checkin')
    const daemon = await startTestAllocator(engine, overlay, dir.path, { readyTimeoutMs: 3_000 })
    const peer = daemon.node.peerId.toString()
    try {
      await allocate(overlay.client.libp2p, daemon.node.peerId, 'once-server')
      const containers = await containersOf(engine, peer)
      // both start again; the service does not listen any more, so the sidecar waits for it
      await Promise.all(containers.map(async container => { await engine.docker.getContainer(container.Id).kill({ signal: 'SIGKILL' }) }))
      await eventually('the instance to be given up', () => daemon.allocator.instances().length === 0 ? true : undefined, 20_000)
      await eventually('its containers to be removed', async () => (await containersOf(engine, peer)).length === 0 ? true : undefined, 15_000)
      assert.match(await daemon.registry.metrics(), /physarum_alloc_failed_instances_total\{service="once-server"\} 1/)
    } finally {
      await daemon.stop()
      await dir.remove()
    }
  })

  it('gives up on a service that dies at once every time, after the restart limit', async () => {
    const dir = await tempDir('physarum-giveup')
    const daemon = await startTestAllocator(engine, overlay, dir.path, { restart: { backoffMinMs: 50, backoffMaxMs: 200, maxRestarts: 3, windowMs: 60_000 } })
    try {
      await assert.rejects(allocate(overlay.client.libp2p, daemon.node.peerId, 'crashing-server'), (err: Error & { code: string }) => {
        assert.equal(err.code, 'INTERNAL')
        assert.match(err.message, /gave up/)
        return true
      })
      assert.match(await daemon.registry.metrics(), /physarum_alloc_failed_instances_total\{service="crashing-server"\} 1/)
      assert.match(await daemon.registry.metrics(), /physarum_alloc_restarts_total\{service="crashing-server",container="service"\} 3/)
      await eventually('the containers to be removed', async () => (await containersOf(engine, daemon.node.peerId.toString())).length === 0 ? true : undefined)
      await eventually('the instance to be forgotten', () => daemon.allocator.instances().length === 0 ? true : undefined)
    } finally {
      await daemon.stop()
      await dir.remove()
    }
  })

  it('drains an idle instance, but not one with a request in flight', async () => {
    const dir = await tempDir('physarum-idle')
    const daemon = await startTestAllocator(engine, overlay, dir.path, { idleTimeoutMs: 1_500, drainDelayMs: 200 })
    try {
      const idle = await allocate(overlay.client.libp2p, daemon.node.peerId, 'idle-server')
      const deaths = await engine.docker.getEvents({ filters: { event: ['die'], label: [`${LABELS.instance}=${idle.instanceId}`] } })
      const exits = new Map<string, string>()
      deaths.on('data', (chunk: Buffer) => {
        for (const line of chunk.toString().split('\n').filter(Boolean)) {
          const event = JSON.parse(line) as { Actor: { Attributes: Record<string, string> } }
          exits.set(event.Actor.Attributes[LABELS.role]!, event.Actor.Attributes.exitCode!)
        }
      })
      const busy = await allocate(overlay.client.libp2p, daemon.node.peerId, 'busy-server')
      let slowEnded = false
      const slow = httpThroughSidecar(overlay.client, busy.multiaddrs, '/slow?ms=8000', 30_000).finally(() => { slowEnded = true })
      await eventually('the idle instance to be removed', () => daemon.allocator.instances().some(i => i.id === idle.instanceId) ? undefined : true, 15_000)
      const idleContainers = (await containersOf(engine, daemon.node.peerId.toString())).filter(c => c.Labels[LABELS.instance] === idle.instanceId)
      assert.equal(idleContainers.length, 0)
      // the service was stopped, not killed: its SIGTERM handler ended it with 0, not SIGKILL's 137
      await eventually('both containers\' exits', () => exits.size === 2 ? true : undefined, 5_000)
      assert.deepEqual(Object.fromEntries(exits), { service: '0', sidecar: '143' })
      ;(deaths as unknown as { destroy: () => void }).destroy()
      assert.ok(!slowEnded, 'the idle instance went away while the slow request was still in flight')
      assert.ok(daemon.allocator.instances().some(i => i.id === busy.instanceId && i.state === 'ready'), 'the busy instance was reaped with a request in flight')
      const answer = await slow
      assert.equal(answer.status, 200)
      await eventually('the busy instance to be removed once idle', () => daemon.allocator.instances().some(i => i.id === busy.instanceId) ? undefined : true, 15_000)
      assert.match(await daemon.registry.metrics(), /physarum_alloc_reaps_total\{reason="idle"\} 2/)
    } finally {
      await daemon.stop()
      await dir.remove()
    }
  })
})
