import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { eventually, sampleRecord, startClient, startNode, startRegistry, stopAll, TestEtcd } from '../../registry-service/test/helpers.ts'
import { startDelayRelay } from '../../p2p/test/helpers.ts'
import { STALL_PING_TIMEOUT_MS, STALL_PROBE_AFTER_MS } from '../src/constants.ts'
import { startNamedInstance, startTestProxy, waitForProviders } from './helpers.ts'
import type { PhysarumNode } from '@physarum/p2p'
import type { InProcessRegistry } from '../../registry-service/test/helpers.ts'
import type { DelayRelay } from '../../p2p/test/helpers.ts'
import type { ClientProxy } from '../src/client.ts'
import type { NamedInstance } from './helpers.ts'
import type { Registry } from 'prom-client'

const SERVICE = 'silent-server'
const CONTENT_HASH = 'hash-silent'

describe('client proxy: an instance whose host goes silent', { timeout: 120_000 }, () => {
  let etcd: TestEtcd
  let bootstrap: PhysarumNode
  let registry: InProcessRegistry
  let proxyNode: PhysarumNode
  let proxy: ClientProxy
  let metrics: Registry
  const instances: NamedInstance[] = []
  const relays: DelayRelay[] = []

  const send = async (method: string, signal?: AbortSignal): Promise<{ status: number, body: string }> => {
    const response = await fetch(`http://127.0.0.1:${proxy.port}/${SERVICE}/`, { method, ...(signal == null ? {} : { signal }) })
    return { status: response.status, body: await response.text() }
  }
  const get = async (signal?: AbortSignal): Promise<{ status: number, body: string }> => await send('GET', signal)

  /** An instance peers reach only through a relay that adds `delayMs` each way (and can go silent). */
  const startInstance = async (name: string, delayMs: number): Promise<DelayRelay> => {
    let relay: DelayRelay | undefined
    instances.push(await startNamedInstance({
      service: SERVICE,
      contentHash: CONTENT_HASH,
      name,
      bootstrap,
      announce: async (port) => {
        relay = await startDelayRelay({ target: { port }, delayMs })
        relays.push(relay)
        return `/ip4/127.0.0.1/tcp/${relay.port}`
      }
    }))
    return relay!
  }

  before(async () => {
    etcd = await TestEtcd.start()
    bootstrap = await startNode()
    registry = await startRegistry(bootstrap, [etcd.endpoint], { openWrites: true })
    const admin = await startClient(bootstrap, { peers: [registry.node.multiaddrs()[0]!] })
    await admin.client.add(sampleRecord(SERVICE, { contentHash: CONTENT_HASH, softRttMs: 50, hardRttMs: 1_000 }))
    await stopAll([admin.node])
    proxyNode = await startNode({ bootstrap: [bootstrap.multiaddrs()[0]!.toString()], dhtMode: 'client' })
    const started = await startTestProxy(proxyNode, registry.node.multiaddrs()[0]!)
    proxy = started.proxy
    metrics = started.metrics
  })

  after(async () => {
    await proxy?.stop()
    await Promise.all(instances.map(async ({ sidecar }) => { await sidecar.stop(0) }))
    await Promise.all(relays.map(async relay => { await relay.close() }))
    await registry?.stop()
    await stopAll([proxyNode, bootstrap].filter(node => node != null))
    await etcd?.remove()
    for (const { server } of instances) {
      server.server.closeAllConnections()
      server.server.close()
    }
  })

  it('sends requests to another instance within seconds, after a ping the silent one does not answer', async (t) => {
    const near = await startInstance('near', 0)
    await startInstance('far', 10)
    // both known before the first request: a proxy that found only one would keep to it until its refresh
    await waitForProviders(proxyNode, CONTENT_HASH, 2)
    await eventually('requests to reach the near instance', async () => (await get().catch(() => undefined))?.body === 'near\n' ? true : undefined, 30_000, 200)

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
})
