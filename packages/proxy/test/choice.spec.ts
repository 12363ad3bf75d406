import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { ALLOCATOR_TOPIC, createMetricsRegistry, handleRpc, RpcFailureError } from '@physarum/p2p'
import { multiaddr } from '@multiformats/multiaddr'
import { allocRpc } from '@physarum/allocator/client'
import { startDelayRelay } from '../../p2p/test/helpers.ts'
import { eventually, freePort, sampleRecord, silentLog, startNode, stopAll } from '../../registry-service/test/helpers.ts'
import { startClientProxy } from '../src/client.ts'
import { startNamedInstance, waitForProviders } from './helpers.ts'
import type { AllocateRequest, AllocateResponse } from '@physarum/allocator/client'
import type { PhysarumNode } from '@physarum/p2p'
import type { ServiceRecord } from '@physarum/registry-service'
import type { ClientProxy, ClientProxyInit } from '../src/client.ts'
import type { DelayRelayInit } from '../../p2p/test/helpers.ts'
import type { Server as HttpServer } from 'node:http'
import type { Registry } from 'prom-client'

/** An instance behind a relay whose delay (each way) the test may change. */
interface FarInstance {
  peerId: string
  /** Its address through the relay, as an allocator answers it. */
  multiaddr: string
  relay: DelayRelayInit
  /** The service's own server. */
  server: HttpServer
}

/** A node that provides the allocator topic and answers Allocate with `answer`, behind a relay of `delayMs` each way. */
interface FakeAllocator {
  calls: AllocateRequest[]
}

/**
 * A bootstrap node, a proxy node, and a client proxy whose registry is a stub holding `record`
 * (the test may replace it). What a test starts is stopped by `stop`, even when the test failed.
 */
async function overlay (record: ServiceRecord, init: Partial<ClientProxyInit> = {}): Promise<{
  record: { current: ServiceRecord }
  proxy: ClientProxy
  metrics: Registry
  proxyNode: PhysarumNode
  instance: (name: string, delayMs: number, contentHash?: string, acceptDelayMs?: number) => Promise<FarInstance>
  allocator: (delayMs: number, answer: (request: AllocateRequest) => Promise<AllocateResponse>) => Promise<FakeAllocator>
  get: () => Promise<{ status: number, body: string, retryAfter: string | null }>
  closerAllocations: () => Promise<Record<string, number>>
  stop: () => Promise<void>
}> {
  const cleanup: Array<() => Promise<void>> = []
  const bootstrap = await startNode()
  cleanup.push(async () => { await stopAll([bootstrap]) })
  const proxyNode = await startNode({ bootstrap: [bootstrap.multiaddrs()[0]!.toString()], dhtMode: 'client' })
  cleanup.push(async () => { await stopAll([proxyNode]) })
  const held = { current: record }
  const metrics = createMetricsRegistry()
  const proxy = await startClientProxy({ node: proxyNode, registry: { get: async () => await Promise.resolve(held.current) }, metrics, log: silentLog }, {
    host: '127.0.0.1', port: 0, discoveryTimeoutMs: 500, ...init
  })
  cleanup.push(async () => { await proxy.stop() })
  return {
    record: held,
    proxy,
    metrics,
    proxyNode,
    instance: async (name, delayMs, contentHash = record.contentHash, acceptDelayMs) => {
      const relay: DelayRelayInit = { target: { port: 0 }, delayMs, ...(acceptDelayMs == null ? {} : { acceptDelayMs }) }
      let close = async (): Promise<void> => {}
      let relayPort = 0
      const started = await startNamedInstance({
        service: record.name,
        contentHash,
        name,
        bootstrap,
        announce: async (port) => {
          relay.target.port = port
          const running = await startDelayRelay(relay)
          close = async () => { await running.close() }
          relayPort = running.port
          return `/ip4/127.0.0.1/tcp/${running.port}`
        }
      })
      cleanup.push(async () => {
        await started.sidecar.stop(0)
        await close()
        started.server.server.closeAllConnections()
        started.server.server.close()
      })
      const peerId = started.sidecar.node.peerId.toString()
      return { peerId, multiaddr: `/ip4/127.0.0.1/tcp/${relayPort}/p2p/${peerId}`, relay, server: started.server.server }
    },
    allocator: async (delayMs, answer) => {
      const port = await freePort()
      const relay = await startDelayRelay({ target: { port }, delayMs })
      const node = await startNode({ listen: [`/ip4/127.0.0.1/tcp/${port}`], announce: [`/ip4/127.0.0.1/tcp/${relay.port}`], bootstrap: [bootstrap.multiaddrs()[0]!.toString()] })
      cleanup.push(async () => {
        await stopAll([node])
        await relay.close()
      })
      const calls: AllocateRequest[] = []
      await handleRpc(node.libp2p, allocRpc, async (request) => {
        calls.push(request)
        return await answer(request)
      }, { log: node.libp2p.logger.forComponent('test:allocator') })
      await node.discovery.provide(ALLOCATOR_TOPIC)
      await eventually('the allocator to be found', async () => {
        for await (const provider of proxyNode.discovery.findProviders(ALLOCATOR_TOPIC, { signal: AbortSignal.timeout(1_000) })) {
          if (provider.id.equals(node.peerId)) {
            return true
          }
        }
        return undefined
      }, 20_000, 100)
      return { calls }
    },
    get: async () => {
      const response = await fetch(`http://127.0.0.1:${proxy.port}/${record.name}/`)
      return { status: response.status, body: (await response.text()).trim(), retryAfter: response.headers.get('retry-after') }
    },
    closerAllocations: async () => Object.fromEntries((await metrics.metrics()).split('\n')
      .filter(line => line.startsWith('physarum_proxy_closer_allocations_total{'))
      .map(line => [/outcome="([^"]+)"/.exec(line)![1]!, Number(line.split(' ').at(-1))])),
    stop: async () => {
      for (const step of cleanup.reverse()) {
        await step().catch(() => {})
      }
    }
  }
}

/** What an allocator answers when it runs `instance` (of version `contentHash`). */
function allocated (instance: FarInstance, contentHash: string, reused = true): AllocateResponse {
  return {
    allocated: {
      peerId: instance.peerId,
      multiaddrs: [instance.multiaddr],
      instanceId: instance.peerId,
      reused,
      contentHash,
      phases: { pullMs: 0, createMs: 0, startMs: 0, readyMs: 0, totalMs: 0 }
    }
  }
}

function serviceRecord (name: string, init: { contentHash: string, softRttMs: number, hardRttMs: number }): ServiceRecord {
  return { ...sampleRecord(name, init), createdAt: '', updatedAt: '' } as ServiceRecord
}

describe('client proxy: which instance it chooses', { timeout: 120_000 }, () => {
  it('stops choosing an instance that moved beyond the hard RTT once a refresh measures it there', async () => {
    const record = serviceRecord('moved-server', { contentHash: 'hash-moved', softRttMs: 100, hardRttMs: 300 })
    const o = await overlay(record, { refreshIntervalMs: 1_000 })
    try {
      const near = await o.instance('near', 0)
      await o.instance('next', 20)
      await waitForProviders(o.proxyNode, record.contentHash, 2)
      await eventually('the near instance to answer', async () => (await o.get()).body === 'near' ? true : undefined, 20_000, 100)
      // now about 2 s away, beyond hard; its smoothed RTT (from samples of about 1 ms) rises past
      // hard in one step, and was then kept at its old figure for good
      near.relay.delayMs = 1_000
      const body = await eventually('the next instance to answer', async () => {
        const { body } = await o.get()
        return body === 'next' ? body : undefined
      }, 15_000, 200)
      assert.equal(body, 'next')
      assert.equal((await o.get()).body, 'next')
    } finally {
      await o.stop()
    }
  })

  it('serves the only instance, beyond hard, that an allocator answers with, and asks again once a refresh measured it there', async () => {
    const record = serviceRecord('far-server', { contentHash: 'hash-far', softRttMs: 50, hardRttMs: 100 })
    const refreshIntervalMs = 1_000
    const o = await overlay(record, { refreshIntervalMs })
    try {
      // about 200 ms away; the one the allocator answers with later is not found on the service topic
      const far = await o.instance('far', 100)
      const near = await o.instance('near', 0, 'hash-not-looked-up')
      let answer = far
      const allocator = await o.allocator(0, async () => await Promise.resolve(allocated(answer, record.contentHash)))
      const started = performance.now()
      let requests = 0
      while (performance.now() - started < 3_000) {
        assert.deepEqual(await o.get(), { status: 200, body: 'far', retryAfter: null })
        requests++
        await new Promise(resolve => setTimeout(resolve, 100))
      }
      // not one allocation per request: one per refresh at most
      const elapsed = performance.now() - started
      assert.ok(allocator.calls.length <= 1 + Math.ceil(elapsed / refreshIntervalMs), `${allocator.calls.length} allocations for ${requests} requests in ${Math.round(elapsed)} ms`)
      // an allocator now has a nearer one: asked again, as the far one was measured beyond hard
      answer = near
      await eventually('the nearer instance to answer', async () => (await o.get()).body === 'near' ? true : undefined, 10_000, 100)
    } finally {
      await o.stop()
    }
  })

  /**
   * An instance not on the service topic, so that only the allocation's own measurement gives its
   * RTT, answered by an allocator; the proxy connected to it first or not. Its RTT is known soon.
   */
  const measuredOnceAllocated = async (record: ServiceRecord, connected: boolean): Promise<void> => {
    const o = await overlay(record)
    try {
      const far = await o.instance('far', 10, 'hash-not-looked-up')
      if (connected) {
        await o.proxyNode.libp2p.dial(multiaddr(far.multiaddr))
      }
      await o.allocator(0, async () => await Promise.resolve(allocated(far, record.contentHash)))
      assert.deepEqual(await o.get(), { status: 200, body: 'far', retryAfter: null })
      const rttMs = await eventually('the instance to be measured', () => o.proxy.instanceOf(record.name)?.rttMs, 5_000, 50)
      assert.ok(rttMs >= 20 && rttMs <= record.hardRttMs, `${rttMs} ms`)
    } finally {
      await o.stop()
    }
  }

  it('measures the instance an allocator answers with against a hard RTT that is not a whole number of ms', async () => {
    // the registry takes RTTs such as 300.5 ms; a deadline of a fraction of a ms made every ping
    // fail. Connected already: a dial by peer id alone may take longer than the hard RTT
    await measuredOnceAllocated(serviceRecord('fraction-server', { contentHash: 'hash-fraction', softRttMs: 100.5, hardRttMs: 300.5 }), true)
  })

  it('measures the instance an allocator answers with once its connection is open, however long the dial', async () => {
    // not connected: the allocation's address is the way there
    await measuredOnceAllocated(serviceRecord('dialled-server', { contentHash: 'hash-dialled', softRttMs: 100, hardRttMs: 300 }), false)
  })

  it('keeps an instance rested that failed while a background allocation was under way, when the allocator answers with it', async () => {
    const record = serviceRecord('rested-server', { contentHash: 'hash-rested', softRttMs: 20, hardRttMs: 1_000 })
    // time for a first answer through the relay on a busy host, not only for its round trip
    const o = await overlay(record, { upstreamTimeoutMs: 2_000 })
    // the allocation answers once the instance rested, however long its requests took to time out
    const { promise: rested, resolve: release } = Promise.withResolvers<void>()
    try {
      // about 40 ms away, beyond soft: a closer instance is asked for as it is first chosen
      const slow = await o.instance('slow', 20)
      const allocator = await o.allocator(0, async (request) => {
        if (request.avoidPeers.includes(slow.peerId)) {
          throw new RpcFailureError('CAPACITY', 'no room (test)')
        }
        await rested
        return allocated(slow, record.contentHash)
      })
      await waitForProviders(o.proxyNode, record.contentHash, 1)
      assert.equal((await o.get()).body, 'slow')
      // the allocation is under way: the allocator was asked, with no instance to avoid yet
      await eventually('the closer allocation to be asked for', () => allocator.calls.length === 1 ? true : undefined, 10_000, 20)
      // its service hangs: requests in a row time out, and it rests, while the allocation runs
      slow.server.removeAllListeners('request')
      assert.deepEqual((await Promise.all([o.get(), o.get(), o.get()])).map(r => r.status), [504, 504, 504])
      assert.equal(o.proxy.instanceOf(record.name), undefined)
      release()
      await eventually('the allocator to answer', async () => (await o.closerAllocations()).reused === 1 ? true : undefined, 10_000, 50)
      assert.equal(o.proxy.instanceOf(record.name), undefined)
    } finally {
      release()
      await o.stop()
    }
  })

  it('gives an allocation of a version since replaced to its own requests only', async () => {
    const record = serviceRecord('versioned-server', { contentHash: 'hash-v1', softRttMs: 50, hardRttMs: 1_000 })
    const o = await overlay(record)
    try {
      // not found on the service topics: only the allocator's answers lead to them
      const v1 = await o.instance('v1', 0, 'hash-v1-hidden')
      const v2 = await o.instance('v2', 0, 'hash-v2-hidden')
      // version 2 takes longer to start: version 1's answer comes first
      const allocator = await o.allocator(0, async (request) => {
        const first = request.contentHash === 'hash-v1'
        await new Promise(resolve => setTimeout(resolve, first ? 1_000 : 3_000))
        return first ? allocated(v1, 'hash-v1', false) : allocated(v2, 'hash-v2', false)
      })
      const first = o.get()
      await eventually('the first allocation to be asked for', () => allocator.calls.length === 1 ? true : undefined, 5_000, 20)
      o.record.current = { ...record, contentHash: 'hash-v2' }
      const second = o.get()
      assert.equal((await first).body, 'v1')
      // the version-1 instance is not chosen for the next request, which waits for version 2
      assert.equal((await o.get()).body, 'v2')
      assert.equal((await second).body, 'v2')
      assert.equal((await o.get()).body, 'v2')
      assert.deepEqual(allocator.calls.map(call => call.contentHash), ['hash-v1', 'hash-v2'])
    } finally {
      await o.stop()
    }
  })

  it('serves a cold request from an instance whose new connection took longer than the hard RTT to open, allocating nothing', async () => {
    // a hard RTT of a second: the proxy waits four of them for the late dial, seconds of slack on a
    // busy host, where 300 ms left it hundreds of ms
    const record = serviceRecord('slow-dial-server', { contentHash: 'hash-slow-dial', softRttMs: 200, hardRttMs: 1_000 })
    const o = await overlay(record)
    try {
      // its round trips are short, but its connections take twice the hard RTT to open, as a dial's
      // five or so round trips do for an instance a little farther than a fifth of the hard RTT
      await o.instance('slow-dial', 0, record.contentHash, 2_000)
      const allocator = await o.allocator(0, async () => await Promise.reject(new RpcFailureError('CAPACITY', 'full')))
      await waitForProviders(o.proxyNode, record.contentHash, 1)
      assert.deepEqual(await o.get(), { status: 200, body: 'slow-dial', retryAfter: null })
      assert.equal(allocator.calls.length, 0)
    } finally {
      await o.stop()
    }
  })

  it('answers a failed cold start\'s 503 at once for a while, longer after each failure, until a new version', async () => {
    const record = serviceRecord('full-server', { contentHash: 'hash-full', softRttMs: 50, hardRttMs: 1_000 })
    const o = await overlay(record)
    try {
      // not found on the service topic: only the allocator's answer leads to it
      const late = await o.instance('late', 0, 'hash-full-hidden')
      let room = false
      const allocator = await o.allocator(0, async (request) => await (room
        ? Promise.resolve(allocated(late, request.contentHash, false))
        : Promise.reject(new RpcFailureError('CAPACITY', 'no room (test)'))))
      const first = await o.get()
      assert.equal(first.status, 503)
      assert.match(first.body, /allocation failed .*CAPACITY: no room \(test\)/)
      // clients that retry at once get the same answer, and no allocator is asked again
      const held = await Promise.all([o.get(), o.get(), o.get()])
      assert.deepEqual(held, Array.from({ length: 3 }, () => ({ ...first, retryAfter: '1' })))
      assert.equal(allocator.calls.length, 1)
      await new Promise(resolve => setTimeout(resolve, 1_100))
      assert.equal((await o.get()).status, 503)
      assert.equal(allocator.calls.length, 2)
      // the second failure in a row holds twice as long
      assert.deepEqual(await o.get(), { ...first, retryAfter: '2' })
      assert.equal(allocator.calls.length, 2)
      // a new version is looked for and allocated at once
      room = true
      o.record.current = { ...record, contentHash: 'hash-full-v2' }
      assert.deepEqual(await o.get(), { status: 200, body: 'late', retryAfter: null })
      assert.deepEqual(allocator.calls.map(call => call.contentHash), ['hash-full', 'hash-full', 'hash-full-v2'])
    } finally {
      await o.stop()
    }
  })

  it('allocates at the nearest of all the allocators it finds, not of the first few the DHT gives', async () => {
    const record = serviceRecord('nearest-server', { contentHash: 'hash-nearest', softRttMs: 50, hardRttMs: 300 })
    const o = await overlay(record)
    try {
      const instance = await o.instance('started', 0, 'hash-not-looked-up')
      const answer = async (): Promise<AllocateResponse> => await Promise.resolve(allocated(instance, record.contentHash, false))
      // the DHT gives providers in the order they provided: the nearest provides last, after more
      // allocators than a lookup once measured (8), each about 50 ms away
      const far = await Promise.all(Array.from({ length: 9 }, async () => await o.allocator(25, answer)))
      const near = await o.allocator(0, answer)
      assert.deepEqual(await o.get(), { status: 200, body: 'started', retryAfter: null })
      assert.equal(near.calls.length, 1)
      assert.deepEqual(far.map(allocator => allocator.calls.length), new Array(9).fill(0))
    } finally {
      await o.stop()
    }
  })

  it('asks for no closer instance while no allocator is nearer than the instance in use', async () => {
    const record = serviceRecord('closer-server', { contentHash: 'hash-closer', softRttMs: 20, hardRttMs: 1_000 })
    const o = await overlay(record, { closerIntervalMs: 500 })
    try {
      // about 40 ms away, beyond soft; the only allocator is about 200 ms away
      await o.instance('beyond-soft', 20)
      const farther = await o.instance('farther', 100, 'hash-not-looked-up')
      const allocator = await o.allocator(100, async () => await Promise.resolve(allocated(farther, record.contentHash, false)))
      await waitForProviders(o.proxyNode, record.contentHash, 1)
      // requests until two background rounds found no nearer allocator (each looks allocators up
      // and pings them: how many fit in a given time depends on the host's load), or one asked
      const bodies = new Set<string>()
      await eventually('two rounds that found no nearer allocator', async () => {
        bodies.add((await o.get()).body)
        return allocator.calls.length > 0 || ((await o.closerAllocations()).none_nearer ?? 0) >= 2 ? true : undefined
      }, 20_000, 100)
      assert.deepEqual([...bodies], ['beyond-soft'])
      assert.equal(allocator.calls.length, 0)
    } finally {
      await o.stop()
    }
  })
})
