import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { eventually, sampleRecord, startClient, startNode, startRegistry, stopAll, TestEtcd } from '../../registry-service/test/helpers.ts'
import { HTTP_PROTOCOL } from '@physarum/allocator/client'
import { startDelayRelay } from '../../p2p/test/helpers.ts'
import { INSTANCE_REFRESH_MS, STALL_PING_TIMEOUT_MS, STALL_PROBE_AFTER_MS, TIMEOUTS_BEFORE_REST } from '../src/constants.ts'
import { startNamedInstance, startTestProxy, waitForProviders } from './helpers.ts'
import type { PhysarumNode, PhysarumNodeInit } from '@physarum/p2p'
import type { InProcessRegistry } from '../../registry-service/test/helpers.ts'
import type { DelayRelay } from '../../p2p/test/helpers.ts'
import type { ClientProxy, ClientProxyInit } from '../src/client.ts'
import type { NamedInstance } from './helpers.ts'
import type { Registry } from 'prom-client'

const SERVICE = 'silent-server'
const CONTENT_HASH = 'hash-silent'
/** The idle case's service, with a proxy of its own. */
const IDLE_SERVICE = 'idle-server'
const IDLE_CONTENT_HASH = 'hash-idle'
/** The hung service's case, with a proxy of its own. */
const HUNG_SERVICE = 'hung-server'
const HUNG_CONTENT_HASH = 'hash-hung'
/** The case of a request that waits for a new stream, with a proxy of its own. */
const FRESH_SERVICE = 'fresh-server'
const FRESH_CONTENT_HASH = 'hash-fresh'
/** The case of an instance whose first dial is slower than the hard RTT, with a proxy of its own. */
const SLOW_DIAL_SERVICE = 'slow-dial-server'
const SLOW_DIAL_CONTENT_HASH = 'hash-slow-dial'
/**
 * The far instances' relay delay, each way: about 100 ms of round trip above the near ones', which
 * no noisy first sample of a near instance (behind its new connection's identify and DHT streams)
 * makes up for, so the proxy ranks the near one first; within the services' hard RTT (1 s).
 */
const FAR_DELAY_MS = 50
/**
 * The refresh of the proxies whose tests need not wait for the default one: should a first
 * measurement rank the far instance first all the same, the near one is measured again within
 * seconds, not at INSTANCE_REFRESH_MS (30 s), most of `reach`'s wait.
 */
const QUICK_REFRESH_MS = 2_000

describe('client proxy: an instance whose host goes silent', { timeout: 120_000 }, () => {
  let etcd: TestEtcd
  let bootstrap: PhysarumNode
  let registry: InProcessRegistry
  let proxyNode: PhysarumNode
  let proxy: ClientProxy
  let metrics: Registry
  const instances: NamedInstance[] = []
  const relays: DelayRelay[] = []
  const proxies: ClientProxy[] = []
  const nodes: PhysarumNode[] = []

  const sendTo = async (through: ClientProxy, service: string, method: string, signal?: AbortSignal): Promise<{ status: number, body: string }> => {
    const response = await fetch(`http://127.0.0.1:${through.port}/${service}/`, { method, ...(signal == null ? {} : { signal }) })
    return { status: response.status, body: await response.text() }
  }
  const send = async (method: string, signal?: AbortSignal): Promise<{ status: number, body: string }> => await sendTo(proxy, SERVICE, method, signal)
  const get = async (signal?: AbortSignal): Promise<{ status: number, body: string }> => await send('GET', signal)

  /**
   * An instance peers reach only through a relay that adds `delayMs` each way (and can go silent),
   * its connections held `acceptDelayMs` before they go through, if given.
   */
  const startInstance = async (name: string, delayMs: number, service = SERVICE, contentHash = CONTENT_HASH, acceptDelayMs?: number): Promise<{ relay: DelayRelay, instance: NamedInstance }> => {
    let relay: DelayRelay | undefined
    const instance = await startNamedInstance({
      service,
      contentHash,
      name,
      bootstrap,
      announce: async (port) => {
        relay = await startDelayRelay({ target: { port }, delayMs, ...(acceptDelayMs == null ? {} : { acceptDelayMs }) })
        relays.push(relay)
        return `/ip4/127.0.0.1/tcp/${relay.port}`
      }
    })
    instances.push(instance)
    return { relay: relay!, instance }
  }

  /** A client proxy on a node of its own (a DHT client, like the proxy daemon), stopped after the tests. */
  const startOwnProxy = async (nodeInit: Partial<PhysarumNodeInit> = {}, init: Partial<ClientProxyInit> = {}): Promise<{ node: PhysarumNode, proxy: ClientProxy, metrics: Registry }> => {
    const node = await startNode({ bootstrap: [bootstrap.multiaddrs()[0]!.toString()], dhtMode: 'client', ...nodeInit })
    nodes.push(node)
    const started = await startTestProxy(node, registry.node.multiaddrs()[0]!, init)
    proxies.push(started.proxy)
    return { node, ...started }
  }

  /**
   * Waits until `through` sends the requests for `service` to the instance named `name`: on a busy
   * host the first ping of an instance can go unanswered within the hard RTT, and the proxy then
   * knows it once a ping in the background was answered within it, or else at its next refresh.
   * Timed out, it says what the last request got.
   */
  const reach = async (through: ClientProxy, service: string, name: string): Promise<void> => {
    await eventually(`requests to reach ${name}`, async () => {
      const got = await sendTo(through, service, 'GET').catch((err: Error) => err)
      if (got instanceof Error || got.body !== `${name}\n`) {
        throw new Error(`the last request got ${got instanceof Error ? `${got.name}: ${got.message}` : `${got.status} ${JSON.stringify(got.body)}`}`)
      }
      return true
    }, INSTANCE_REFRESH_MS + 15_000, 200)
  }

  before(async () => {
    etcd = await TestEtcd.start()
    bootstrap = await startNode()
    registry = await startRegistry(bootstrap, [etcd.endpoint], { openWrites: true })
    const admin = await startClient(bootstrap, { peers: [registry.node.multiaddrs()[0]!] })
    await admin.client.add(sampleRecord(SERVICE, { contentHash: CONTENT_HASH, softRttMs: 50, hardRttMs: 1_000 }))
    await admin.client.add(sampleRecord(IDLE_SERVICE, { contentHash: IDLE_CONTENT_HASH, softRttMs: 50, hardRttMs: 1_000 }))
    await admin.client.add(sampleRecord(HUNG_SERVICE, { contentHash: HUNG_CONTENT_HASH, softRttMs: 50, hardRttMs: 1_000 }))
    await admin.client.add(sampleRecord(FRESH_SERVICE, { contentHash: FRESH_CONTENT_HASH, softRttMs: 50, hardRttMs: 1_000 }))
    await admin.client.add(sampleRecord(SLOW_DIAL_SERVICE, { contentHash: SLOW_DIAL_CONTENT_HASH, softRttMs: 50, hardRttMs: 1_000 }))
    await stopAll([admin.node])
    ;({ node: proxyNode, proxy, metrics } = await startOwnProxy({}, { refreshIntervalMs: QUICK_REFRESH_MS }))
  })

  after(async () => {
    await Promise.all(proxies.map(async one => { await one.stop() }))
    await Promise.all(instances.map(async ({ sidecar }) => { await sidecar.stop(0) }))
    await Promise.all(relays.map(async relay => { await relay.close() }))
    await registry?.stop()
    await stopAll([...nodes, bootstrap].filter(node => node != null))
    await etcd?.remove()
    for (const { server } of instances) {
      server.server.closeAllConnections()
      server.server.close()
    }
  })

  it('sends requests to another instance within seconds, after a ping the silent one does not answer', async (t) => {
    const { relay: near } = await startInstance('near', 0)
    await startInstance('far', FAR_DELAY_MS)
    // both known before the first request: a proxy that found only one would keep to it until its refresh
    await waitForProviders(proxyNode, CONTENT_HASH, 2)
    await reach(proxy, SERVICE, 'near')

    near.hold()
    const heldAt = performance.now()
    // these wait on the silent host: they show the proxy that requests get no answer there
    const waitingGet = get()
    const stuck = new AbortController()
    let postSettled = false
    const waitingPost = send('POST', stuck.signal).catch((err: Error) => err).finally(() => { postSettled = true })
    // until the ping has failed, requests still go to the near instance and wait with the first
    const answered = await eventually('a request answered by the far instance', async () => {
      const attempt = await get(AbortSignal.timeout(1_000)).catch(() => undefined)
      return attempt?.status === 200 && attempt.body === 'far\n' ? performance.now() - heldAt : undefined
    }, 20_000, 100)
    // the stall shows after STALL_PROBE_AFTER_MS, the next round sends the ping, and it fails after its timeout
    t.diagnostic(`the far instance answered ${answered.toFixed(0)} ms after the near one went silent`)
    assert.ok(answered < 2 * STALL_PROBE_AFTER_MS + STALL_PING_TIMEOUT_MS + 5_000, `the far instance answered ${answered.toFixed(0)} ms after the near one went silent`)
    for (let i = 0; i < 5; i++) {
      assert.deepEqual(await get(), { status: 200, body: 'far\n' })
    }
    const pings = (await metrics.metrics()).split('\n').filter(line => line.startsWith(`physarum_proxy_upstream_failures_total{service="${SERVICE}",stage="ping"}`))
    assert.deepEqual(pings.map(line => line.split(' ')[1]), ['1'])

    // the GET that waited went to the other instance; the POST, which must not be sent twice, still waits
    assert.deepEqual(await waitingGet, { status: 200, body: 'far\n' })
    assert.equal(postSettled, false)
    stuck.abort()
    assert.equal((await waitingPost as Error).name, 'AbortError')
  })

  it('sends a GET waiting for a new stream to the silent host to another instance, not to a 504', async (t) => {
    // kept streams close at once: the GET after the silence waits for a stream being opened
    const started = await startOwnProxy({}, { idleStreamTimeoutMs: 200, refreshIntervalMs: QUICK_REFRESH_MS })
    const { relay: near, instance: nearInstance } = await startInstance('fresh-near', 0, FRESH_SERVICE, FRESH_CONTENT_HASH)
    await startInstance('fresh-far', FAR_DELAY_MS, FRESH_SERVICE, FRESH_CONTENT_HASH)
    await waitForProviders(started.node, FRESH_CONTENT_HASH, 2)
    await reach(started.proxy, FRESH_SERVICE, 'fresh-near')
    const nearPeer = nearInstance.sidecar.node.peerId
    await eventually('the kept streams to the near instance closed', () => started.node.libp2p.getConnections(nearPeer).flatMap(c => c.streams).some(s => s.protocol === HTTP_PROTOCOL) ? undefined : true, 5_000, 50)

    near.hold()
    const heldAt = performance.now()
    assert.deepEqual(await sendTo(started.proxy, FRESH_SERVICE, 'GET'), { status: 200, body: 'fresh-far\n' })
    const answered = performance.now() - heldAt
    t.diagnostic(`answered by the far instance ${answered.toFixed(0)} ms after the near one went silent`)
    assert.ok(answered < 2 * STALL_PROBE_AFTER_MS + STALL_PING_TIMEOUT_MS + 5_000, `answered after ${answered.toFixed(0)} ms`)
  })

  it('finds an instance whose first dial took longer than the hard RTT within seconds, not at the next refresh', async (t) => {
    // the default refresh: the near instance must be found before it
    const started = await startOwnProxy()
    // well beyond the far instance's dial (five or so of its 100 ms round trips), which answers the
    // first request, and well within the 5 s the near one's measurement waits for its dial
    const acceptDelayMs = 2_000
    await startInstance('slow-dial-near', 0, SLOW_DIAL_SERVICE, SLOW_DIAL_CONTENT_HASH, acceptDelayMs)
    await startInstance('slow-dial-far', FAR_DELAY_MS, SLOW_DIAL_SERVICE, SLOW_DIAL_CONTENT_HASH)
    await waitForProviders(started.node, SLOW_DIAL_CONTENT_HASH, 2)
    const get = async (): Promise<{ status: number, body: string }> => await sendTo(started.proxy, SLOW_DIAL_SERVICE, 'GET')

    // the near instance's new connection is not up within the hard RTT of the first lookup
    assert.deepEqual(await get(), { status: 200, body: 'slow-dial-far\n' })
    const firstAt = performance.now()
    const reached = await eventually('requests to reach the near instance', async () => (await get()).body === 'slow-dial-near\n' ? performance.now() - firstAt : undefined, INSTANCE_REFRESH_MS - 10_000, 100)
    t.diagnostic(`the near instance answered ${reached.toFixed(0)} ms after the first request, its connection held ${acceptDelayMs} ms`)
    assert.deepEqual(await get(), { status: 200, body: 'slow-dial-near\n' })
  })

  it('leaves an idle instance whose host went silent once liveness aborts its connection', async (t) => {
    // a proxy whose node checks its connections every second, with a service of its own. Its
    // timeout is no event-loop pause of a busy host (every node of the test runs in this process):
    // liveness that aborted a healthy connection to the near instance rested it for 30 s, beyond
    // reach's wait, and one that aborted the far one's would count a second failure below
    const livenessTimeoutMs = 4_000
    const started = await startOwnProxy({ liveness: { intervalMs: 1_000, timeoutMs: livenessTimeoutMs } }, { refreshIntervalMs: QUICK_REFRESH_MS })
    const { relay: near } = await startInstance('idle-near', 0, IDLE_SERVICE, IDLE_CONTENT_HASH)
    const { instance: far } = await startInstance('idle-far', FAR_DELAY_MS, IDLE_SERVICE, IDLE_CONTENT_HASH)
    await waitForProviders(started.node, IDLE_CONTENT_HASH, 2)
    await reach(started.proxy, IDLE_SERVICE, 'idle-near')

    // no request meanwhile: no stall to probe, only liveness sees the silence
    near.hold()
    const heldAt = performance.now()
    // a liveness round within a second, then its ping's timeout: about 5 s (with no liveness, an
    // idle proxy would never leave it)
    const left = await eventually('the proxy to leave the silent instance', () => started.proxy.instanceOf(IDLE_SERVICE)?.peerId.equals(far.sidecar.node.peerId) === true ? performance.now() - heldAt : undefined, 20_000, 20)
    t.diagnostic(`the silent instance was left ${left.toFixed(0)} ms after it went silent, with no request`)
    const failures = (await started.metrics.metrics()).split('\n').filter(line => line.startsWith(`physarum_proxy_upstream_failures_total{service="${IDLE_SERVICE}"`))
    assert.deepEqual(failures, [`physarum_proxy_upstream_failures_total{service="${IDLE_SERVICE}",stage="liveness"} 1`])

    // a POST goes to the far instance at once: before, it went to the silent one first, whose new
    // connection took about 6 s to fail to dial (and before liveness gave up, a POST waited the
    // 30 s upstream timeout, as it still does)
    assert.deepEqual(await sendTo(started.proxy, IDLE_SERVICE, 'POST', AbortSignal.timeout(4_000)), { status: 200, body: 'idle-far\n' })
  })

  it('leaves an instance whose service hangs once requests in a row get no answer in time, not after one', async (t) => {
    const upstreamTimeoutMs = 500
    const started = await startOwnProxy({}, { upstreamTimeoutMs, refreshIntervalMs: QUICK_REFRESH_MS })
    const { instance: near } = await startInstance('hung-near', 0, HUNG_SERVICE, HUNG_CONTENT_HASH)
    // nearer than the other tests' far instances: its answer, on a new stream, must come within
    // the upstream timeout; the quick refresh ranks the near one first should one sample not
    await startInstance('hung-far', 10, HUNG_SERVICE, HUNG_CONTENT_HASH)
    await waitForProviders(started.node, HUNG_CONTENT_HASH, 2)
    const get = async (): Promise<{ status: number, body: string }> => await sendTo(started.proxy, HUNG_SERVICE, 'GET')
    await reach(started.proxy, HUNG_SERVICE, 'hung-near')
    // the near service accepts requests and never answers them; its host and sidecar answer pings
    const answer = near.server.server.listeners('request')
    const hang = (): void => {
      near.server.server.removeAllListeners('request')
      near.server.server.on('request', () => {})
    }
    const failures = async (): Promise<string[]> => (await started.metrics.metrics()).split('\n').filter(line => line.startsWith(`physarum_proxy_upstream_failures_total{service="${HUNG_SERVICE}"`))

    // one slow request, then answers again: the instance stays the one used
    hang()
    assert.equal((await get()).status, 504)
    near.server.server.removeAllListeners('request')
    for (const listener of answer) {
      near.server.server.on('request', listener as () => void)
    }
    assert.deepEqual(await get(), { status: 200, body: 'hung-near\n' })

    // requests in a row with no answer: the instance is left, the next request goes to the far one
    hang()
    const timedOut = await Promise.all([get(), get(), get()])
    assert.deepEqual(timedOut.map(({ status }) => status), [504, 504, 504])
    assert.deepEqual(await failures(), [`physarum_proxy_upstream_failures_total{service="${HUNG_SERVICE}",stage="timeout"} 1`])
    assert.deepEqual(await get(), { status: 200, body: 'hung-far\n' })
    t.diagnostic(`left after ${TIMEOUTS_BEFORE_REST} requests in a row timed out`)
  })
})
