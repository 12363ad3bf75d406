import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { availableParallelism } from 'node:os'
import { after, before, describe, it } from 'node:test'
import { pack } from 'tar-stream'
import { allocate } from '../src/client.ts'
import { LABELS, MAX_AVOID_PEERS, SERVICE_PIDS_LIMIT, SIDECAR_PIDS_LIMIT } from '../src/constants.ts'
import { DockerRuntime } from '../src/docker.ts'
import { ensureSidecarImage } from '../src/sidecar-image.ts'
import {
  buildServiceImage, containersOf, ensureNodeImage, HELLO_SERVER, httpThroughSidecar, NODE_IMAGE, stopTestbed, startDocker,
  startImageRegistry, startOverlay, startRegistryRelay, startTestAllocator, tempDir, TEST_PSK
} from './helpers.ts'
import type { TestDocker, TestImageRegistry, TestOverlay } from './helpers.ts'
import type { AllocatorDaemon } from '../src/daemon.ts'

/** Capability numbers of linux/capability.h. */
const CAP_CHOWN = 0n
const CAP_NET_BIND_SERVICE = 10n
const CAP_NET_RAW = 13n

/** The fields of /proc/<pid>/status, by name. */
async function processStatus (pid: number): Promise<Record<string, string>> {
  const text = await readFile(`/proc/${pid}/status`, 'utf8')
  return Object.fromEntries(text.split('\n').filter(Boolean).map(line => [line.slice(0, line.indexOf(':')), line.slice(line.indexOf(':') + 1).trim()]))
}

describe('Allocate', { timeout: 240_000 }, () => {
  let engine: TestDocker
  let images: TestImageRegistry
  let overlay: TestOverlay
  let daemon: AllocatorDaemon
  let state: { path: string, remove: () => Promise<void> }
  let helloImage: string

  before(async () => {
    engine = await startDocker()
    images = await startImageRegistry()
    state = await tempDir('physarum-alloc')
    await ensureNodeImage(engine)
    helloImage = await buildServiceImage(engine, images, 'hello', HELLO_SERVER)
    overlay = await startOverlay()
    await overlay.register('hello-world-server', helloImage)
    await overlay.register('other-server', helloImage, { contentHash: 'hash-other' })
    await overlay.register('missing-image', `${images.host}/nothing@sha256:${'0'.repeat(64)}`)
    // more cores than the host has: the engine refuses to run the service's container
    await overlay.register('too-big', helloImage, { contentHash: 'hash-big', cpu: 64 })
    await overlay.register('versioned-server', helloImage, { contentHash: 'hash-v1' })
    daemon = await startTestAllocator(engine, overlay, state.path)
  })

  after(async () => {
    await daemon?.stop()
    await stopTestbed({ overlay, engine, images, state })
  })

  it('starts a registered service and its sidecar, which answers HTTP for it', async () => {
    const allocation = await allocate(overlay.client.libp2p, daemon.node.peerId, 'hello-world-server')
    assert.equal(allocation.reused, false)
    assert.ok(allocation.multiaddrs.length > 0)
    assert.ok(allocation.phases.totalMs > 0 && allocation.phases.readyMs >= 0, JSON.stringify(allocation.phases))

    const containers = await containersOf(engine, daemon.node.peerId.toString())
    assert.deepEqual(containers.map(c => c.Labels[LABELS.role]).sort(), ['service', 'sidecar'])
    assert.ok(containers.every(c => c.State === 'running' && c.Labels[LABELS.service] === 'hello-world-server' && c.Labels[LABELS.instance] === allocation.instanceId))

    const answer = await httpThroughSidecar(overlay.client, allocation.multiaddrs, '/hello?x=1')
    assert.equal(answer.status, 200)
    assert.match(answer.body, new RegExp(`^Hello, world from ${allocation.instanceId} /hello\\?x=1`))

    // the key reaches the sidecar as a mounted file, never in its arguments or environment
    const secret = TEST_PSK.toSwarmKey().trim().split('\n').at(-1)!
    for (const container of containers) {
      const info = await engine.docker.getContainer(container.Id).inspect()
      // the test engine logs with json-file, Docker's default, which rotates only when asked
      assert.deepEqual(info.HostConfig.LogConfig, { Type: 'json-file', Config: { 'max-size': '10m', 'max-file': '3' } })
      assert.equal(info.HostConfig.PidsLimit, container.Labels[LABELS.role] === 'sidecar' ? SIDECAR_PIDS_LIMIT : SERVICE_PIDS_LIMIT)
      const visible = JSON.stringify([info.Args, info.Config.Env, info.Config.Cmd, info.Config.Entrypoint])
      assert.ok(!visible.includes(secret), 'the PSK is visible in a container\'s argv or env')
      assert.doesNotMatch(visible, /--psk\b|PHYSARUM_PSK|P2P_PSK/)
    }
    const sidecar = await engine.docker.getContainer(containers.find(c => c.Labels[LABELS.role] === 'sidecar')!.Id).inspect()
    assert.ok(sidecar.Mounts.some(m => m.Destination === '/run/physarum' && m.RW === false))
    // what the kernel gives each container's first process (the engine is on this host)
    const service = await engine.docker.getContainer(containers.find(c => c.Labels[LABELS.role] === 'service')!.Id).inspect()
    const serviceStatus = await processStatus(service.State.Pid)
    assert.equal(serviceStatus.NoNewPrivs, '1')
    const serviceCaps = BigInt(`0x${serviceStatus.CapEff!}`)
    assert.equal(serviceCaps & (1n << CAP_NET_RAW), 0n, 'a service on the host network can open raw sockets')
    assert.equal(serviceCaps & (1n << CAP_NET_BIND_SERVICE), 0n, 'a service can take the host\'s ports below 1024')
    assert.notEqual(serviceCaps & (1n << CAP_CHOWN), 0n, 'the service keeps the rest of Docker\'s default set')
    // the sidecar has no capability, its root filesystem is read-only, and it runs as the allocator's user
    const sidecarStatus = await processStatus(sidecar.State.Pid)
    assert.deepEqual([sidecarStatus.CapEff, sidecarStatus.NoNewPrivs, sidecarStatus.Uid!.split('\t')[0]], ['0000000000000000', '1', String(process.getuid!())])
    assert.equal(sidecar.HostConfig.ReadonlyRootfs, true)
    // its client proxy (ProxyClientMode) trusts the registries the allocator trusts
    assert.ok(sidecar.Args.join(' ').includes(`--registry-id ${overlay.registry.node.peerId.toString()}`), sidecar.Args.join(' '))
  })

  it('shares one instance among 20 concurrent Allocate requests', async () => {
    const before = daemon.allocator.instances().filter(i => i.service === 'other-server').length
    assert.equal(before, 0)
    const answers = await Promise.all(Array.from({ length: 20 }, async () => await allocate(overlay.client.libp2p, daemon.node.peerId, 'other-server')))
    assert.equal(new Set(answers.map(a => a.instanceId)).size, 1)
    assert.equal(answers.filter(a => !a.reused).length, 1)
    assert.equal(daemon.allocator.instances().filter(i => i.service === 'other-server').length, 1)
    const containers = (await containersOf(engine, daemon.node.peerId.toString())).filter(c => c.Labels[LABELS.service] === 'other-server')
    assert.equal(containers.length, 2)
    // a later request gets the running instance
    const again = await allocate(overlay.client.libp2p, daemon.node.peerId, 'other-server')
    assert.equal(again.instanceId, answers[0]!.instanceId)
    assert.equal(again.reused, true)
  })

  it('starts another instance for a caller that names the running one to avoid', async () => {
    const running = await allocate(overlay.client.libp2p, daemon.node.peerId, 'other-server')
    assert.equal(running.reused, true)
    // a caller found that instance failing (a hung service still answers its pings)
    const fresh = await allocate(overlay.client.libp2p, daemon.node.peerId, 'other-server', { avoid: [running.peerId.toString()] })
    assert.equal(fresh.reused, false)
    assert.notEqual(fresh.instanceId, running.instanceId)
    assert.notEqual(fresh.peerId.toString(), running.peerId.toString())
    assert.equal(daemon.allocator.instances().filter(i => i.service === 'other-server').length, 2)
    const answer = await httpThroughSidecar(overlay.client, fresh.multiaddrs, '/')
    assert.match(answer.body, new RegExp(`^Hello, world from ${fresh.instanceId}`))
    // avoiding one of the two: the other answers, nothing new starts
    const other = await allocate(overlay.client.libp2p, daemon.node.peerId, 'other-server', { avoid: [fresh.peerId.toString()] })
    assert.deepEqual([other.reused, other.instanceId], [true, running.instanceId])
    assert.equal(daemon.allocator.instances().filter(i => i.service === 'other-server').length, 2)

    const tooMany = Array.from({ length: MAX_AVOID_PEERS + 1 }, () => running.peerId.toString())
    await assert.rejects(allocate(overlay.client.libp2p, daemon.node.peerId, 'other-server', { avoid: tooMany }), (err: Error & { code: string }) => {
      assert.equal(err.code, 'BAD_REQUEST')
      assert.match(err.message, new RegExp(`at most ${MAX_AVOID_PEERS} instances to avoid`))
      return true
    })
  })

  it('answers NOT_FOUND, IMAGE and BAD_REQUEST and leaves nothing running', async () => {
    const before = (await containersOf(engine, daemon.node.peerId.toString())).length
    const instances = daemon.allocator.instances().length
    await assert.rejects(allocate(overlay.client.libp2p, daemon.node.peerId, 'no-such-service'), { name: 'RpcFailureError', code: 'NOT_FOUND' })
    await assert.rejects(allocate(overlay.client.libp2p, daemon.node.peerId, 'missing-image'), (err: Error & { code: string }) => {
      assert.equal(err.code, 'IMAGE')
      assert.match(err.message, /nothing/)
      return true
    })
    // more cores than the host has: no host with this allocator's cores can run it, before any pull
    await assert.rejects(allocate(overlay.client.libp2p, daemon.node.peerId, 'too-big'), (err: Error & { code: string }) => {
      assert.equal(err.code, 'CAPACITY')
      assert.match(err.message, new RegExp(`too-big needs 64 CPU cores; this host has ${availableParallelism()}`))
      return true
    })
    await assert.rejects(allocate(overlay.client.libp2p, daemon.node.peerId, 'Not A Name!'), { name: 'RpcFailureError', code: 'BAD_REQUEST' })
    await assert.rejects(allocate(overlay.client.libp2p, daemon.node.peerId, ''), { name: 'RpcFailureError', code: 'BAD_REQUEST' })
    assert.equal((await containersOf(engine, daemon.node.peerId.toString())).length, before)
    assert.equal(daemon.allocator.instances().length, instances)
    const metrics = await daemon.registry.metrics()
    assert.match(metrics, /physarum_alloc_allocations_total\{outcome="NOT_FOUND"\} 1/)
    assert.match(metrics, /physarum_alloc_allocations_total\{outcome="IMAGE"\} 1/)
  })

  it('answers an instance of the version registered now, not of the one before', async () => {
    const first = await allocate(overlay.client.libp2p, daemon.node.peerId, 'versioned-server')
    assert.deepEqual([first.reused, first.contentHash], [false, 'hash-v1'])
    await overlay.register('versioned-server', helloImage, { contentHash: 'hash-v2' })
    // a caller that holds the new record: the allocator's copy (cached for 10 s) is read again at once
    const second = await allocate(overlay.client.libp2p, daemon.node.peerId, 'versioned-server', { contentHash: 'hash-v2' })
    assert.deepEqual([second.reused, second.contentHash], [false, 'hash-v2'])
    assert.notEqual(second.instanceId, first.instanceId)
    const hashes = Object.fromEntries(daemon.allocator.instances().filter(i => i.service === 'versioned-server').map(i => [i.id, i.contentHash]))
    assert.deepEqual(hashes, { [first.instanceId]: 'hash-v1', [second.instanceId]: 'hash-v2' })
    const again = await allocate(overlay.client.libp2p, daemon.node.peerId, 'versioned-server')
    assert.deepEqual([again.reused, again.instanceId], [true, second.instanceId])
  })

  it('pulls an image by digest that the engine lacks', async () => {
    const image = await buildServiceImage(engine, images, 'pulled', HELLO_SERVER.replace('Hello, world', 'Pulled'))
    await overlay.register('pulled-server', image, { contentHash: 'hash-pulled' })
    await engine.docker.getImage(image.replace(/@.*/, ':test')).remove({ force: true })
    await assert.rejects(engine.docker.getImage(image).inspect())
    const allocation = await allocate(overlay.client.libp2p, daemon.node.peerId, 'pulled-server')
    assert.ok(allocation.phases.pullMs > 0)
    await engine.docker.getImage(image).inspect()
    const answer = await httpThroughSidecar(overlay.client, allocation.multiaddrs, '/')
    assert.match(answer.body, /^Pulled from/)
  })

  it('gives up a pull that makes no progress with IMAGE, and pulls again on the next Allocate', async () => {
    const image = await buildServiceImage(engine, images, 'stalled', HELLO_SERVER.replace('Hello, world', 'Stalled'))
    await engine.docker.getImage(image.replace(/@.*/, ':test')).remove({ force: true })
    const relay = await startRegistryRelay(images)
    const dir = await tempDir('physarum-alloc-stall')
    const impatient = await startTestAllocator(engine, overlay, dir.path, { pullStallMs: 1_500 })
    try {
      await overlay.register('stalled-server', image.replace(images.host, relay.host), { contentHash: 'hash-stalled' })
      await assert.rejects(allocate(overlay.client.libp2p, impatient.node.peerId, 'stalled-server'), (err: Error & { code: string }) => {
        assert.equal(err.code, 'IMAGE')
        assert.match(err.message, /no progress for 1500 ms: the engine or the registry stopped sending/)
        return true
      })
      assert.equal(impatient.allocator.instances().length, 0)
      relay.resume()
      const allocation = await allocate(overlay.client.libp2p, impatient.node.peerId, 'stalled-server')
      const answer = await httpThroughSidecar(overlay.client, allocation.multiaddrs, '/')
      assert.match(answer.body, /^Stalled from/)
    } finally {
      await impatient.stop()
      await relay.stop()
      await dir.remove()
    }
  })

  it('gives up with IMAGE a pull that keeps progressing but has not finished within --pull-timeout', async () => {
    // a layer of about 300 KB, 10 KB/s through the relay: half a minute to pull
    const padding = `// ${randomBytes(300_000).toString('base64')}\n`
    const image = await buildServiceImage(engine, images, 'trickled', HELLO_SERVER + padding)
    await engine.docker.getImage(image.replace(/@.*/, ':test')).remove({ force: true })
    const relay = await startRegistryRelay(images, 'trickle')
    const dir = await tempDir('physarum-alloc-trickle')
    const bounded = await startTestAllocator(engine, overlay, dir.path, { pullStallMs: 1_500, pullTimeoutMs: 4_000, sidecarImage: daemon.sidecarImage })
    try {
      await overlay.register('trickled-server', image.replace(images.host, relay.host), { contentHash: 'hash-trickled' })
      const began = performance.now()
      await assert.rejects(allocate(overlay.client.libp2p, bounded.node.peerId, 'trickled-server'), (err: Error & { code: string }) => {
        assert.equal(err.code, 'IMAGE')
        assert.match(err.message, /Pulling .*trickled@sha256:[0-9a-f]{64} failed: not finished within 4s \(--pull-timeout\): too slow a registry, or too large an image/)
        return true
      })
      const tookMs = performance.now() - began
      assert.ok(tookMs < 4_000 + 5_000, `answered after ${Math.round(tookMs)} ms`)
      assert.equal(bounded.allocator.instances().length, 0)
      await assert.rejects(engine.docker.getImage(image).inspect())
    } finally {
      await bounded.stop()
      await relay.stop()
      await dir.remove()
    }
  })

  it('answers TIMEOUT as soon as the ready timeout passes, even for a service that ignores SIGTERM', async () => {
    // node as a container's PID 1 ignores SIGTERM unless it handles it: a graceful stop waits 10 s
    const deaf = await buildServiceImage(engine, images, 'deaf', 'setInterval(() => {}, 60_000)\n')
    await overlay.register('deaf-server', deaf, { contentHash: 'hash-deaf' })
    const dir = await tempDir('physarum-alloc-deaf')
    const impatient = await startTestAllocator(engine, overlay, dir.path, { readyTimeoutMs: 2_000, sidecarImage: daemon.sidecarImage })
    try {
      const began = performance.now()
      await assert.rejects(allocate(overlay.client.libp2p, impatient.node.peerId, 'deaf-server'), { name: 'RpcFailureError', code: 'TIMEOUT' })
      const tookMs = performance.now() - began
      // the instance was never handed out: nothing to finish, its containers are killed at once
      assert.ok(tookMs < 2_000 + 5_000, `answered after ${Math.round(tookMs)} ms`)
      assert.equal((await containersOf(engine, impatient.node.peerId.toString())).length, 0)
      assert.equal(impatient.allocator.instances().length, 0)
    } finally {
      await impatient.stop()
      await dir.remove()
    }
  })

  it('answers CAPACITY when the host is full', async () => {
    const small = await tempDir('physarum-alloc-small')
    const full = await startTestAllocator(engine, overlay, small.path, { maxInstances: 1 })
    try {
      await allocate(overlay.client.libp2p, full.node.peerId, 'hello-world-server')
      await assert.rejects(allocate(overlay.client.libp2p, full.node.peerId, 'other-server'), { name: 'RpcFailureError', code: 'CAPACITY' })
      assert.equal(full.allocator.instances().length, 1)
    } finally {
      await full.stop()
      await small.remove()
    }
    assert.equal((await containersOf(engine, full.node.peerId.toString())).length, 0, 'a stopped allocator removes its instances')
  })

  it('answers RATE_LIMITED over the wire to a peer past its rate, and serves other peers', async () => {
    const dir = await tempDir('physarum-alloc-rate')
    const strict = await startTestAllocator(engine, overlay, dir.path, { rate: { perSecond: 0.2, burst: 2 } })
    try {
      // a name nobody registered: each allowed request is answered NOT_FOUND without starting anything
      for (let i = 0; i < 2; i++) {
        await assert.rejects(allocate(overlay.client.libp2p, strict.node.peerId, 'nobody-registered-this'), { name: 'RpcFailureError', code: 'NOT_FOUND' })
      }
      await assert.rejects(allocate(overlay.client.libp2p, strict.node.peerId, 'nobody-registered-this'), (err: Error & { code: string }) => {
        assert.equal(err.code, 'RATE_LIMITED')
        assert.match(err.message, /try again in \d+ s/)
        return true
      })
      // the limit is per peer: the bootstrap node has its own
      await assert.rejects(allocate(overlay.bootstrap.libp2p, strict.node.peerId, 'nobody-registered-this'), { name: 'RpcFailureError', code: 'NOT_FOUND' })
    } finally {
      await strict.stop()
      await dir.remove()
    }
  })

  it('builds the sidecar image again when a cold start finds it gone from the engine', async () => {
    await overlay.register('after-prune', helloImage, { contentHash: 'hash-after-prune' })
    // as `docker image prune -a` does while no instance runs
    await engine.docker.getImage(daemon.sidecarImage).remove({ force: true })
    await assert.rejects(engine.docker.getImage(daemon.sidecarImage).inspect())
    const allocation = await allocate(overlay.client.libp2p, daemon.node.peerId, 'after-prune')
    assert.equal(allocation.reused, false)
    await engine.docker.getImage(daemon.sidecarImage).inspect()
    const answer = await httpThroughSidecar(overlay.client, allocation.multiaddrs, '/')
    assert.match(answer.body, new RegExp(`^Hello, world from ${allocation.instanceId}`))
  })

  it('builds the sidecar image again FROM another --node-image, not keeps the one built FROM the last', async () => {
    // another base: the node image with a label of its own, which an image built FROM it inherits
    const tar = pack()
    tar.entry({ name: 'Dockerfile' }, `FROM ${NODE_IMAGE}\nLABEL io.physarum.test-base="other"\n`)
    tar.finalize()
    await new Promise((resolve, reject) => {
      void engine.docker.buildImage(tar as unknown as NodeJS.ReadableStream, { t: 'physarum/node-other:test', pull: false }).then(stream => {
        engine.docker.modem.followProgress(stream, (err: Error | null) => { if (err == null) { resolve(undefined) } else { reject(err) } })
      }, reject)
    })
    const runtime = new DockerRuntime(engine.host)
    const tag = 'physarum/sidecar-base:test'
    const first = await ensureSidecarImage(runtime, { nodeImage: NODE_IMAGE, tag })
    const again = await ensureSidecarImage(runtime, { nodeImage: NODE_IMAGE, tag })
    const other = await ensureSidecarImage(runtime, { nodeImage: 'physarum/node-other:test', tag })
    assert.deepEqual([first.built, again.built, other.built], [true, false, true])
    assert.equal((await runtime.imageLabels(tag))?.['io.physarum.test-base'], 'other')
  })

  it('answers INTERNAL naming --sidecar-image when the image given is gone, and leaves no container', async () => {
    await engine.docker.getImage(daemon.sidecarImage).tag({ repo: 'physarum/sidecar-given', tag: 'test' })
    const dir = await tempDir('physarum-alloc-given')
    const given = await startTestAllocator(engine, overlay, dir.path, { sidecarImage: 'physarum/sidecar-given:test' })
    try {
      await engine.docker.getImage('physarum/sidecar-given:test').remove()
      await assert.rejects(allocate(overlay.client.libp2p, given.node.peerId, 'hello-world-server'), (err: Error & { code: string }) => {
        assert.equal(err.code, 'INTERNAL')
        assert.match(err.message, /The sidecar image physarum\/sidecar-given:test \(--sidecar-image\) is not in the engine/)
        return true
      })
      assert.equal(given.allocator.instances().length, 0)
      assert.equal((await containersOf(engine, given.node.peerId.toString())).length, 0)
    } finally {
      await given.stop()
      await dir.remove()
    }
  })
})
