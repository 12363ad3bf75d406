import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { startDelayRelay } from '../../p2p/test/helpers.ts'
import { HTTP_PROTOCOL } from '@physarum/allocator/client'
import { eventually, startNode, stopAll } from '../../registry-service/test/helpers.ts'
import { startLocalInstance, startNamedInstance, startNamedServer, startTestProxy, waitForProviders } from './helpers.ts'
import type { PeerId } from '@libp2p/interface'
import type { PhysarumNode } from '@physarum/p2p'
import type { ClientProxy } from '../src/client.ts'
import type { DelayRelay } from '../../p2p/test/helpers.ts'
import type { LocalInstance, NamedInstance, NamedServer } from './helpers.ts'
import type { Registry } from 'prom-client'

const SERVICE = 'scaled-server'
/** startLocalInstance names the record's version after its sidecar. */
const CONTENT_HASH = 'hash-near-0'
/** Each way through the relay: the far instance is about 200 ms away (within the record's hard 1 s), far beyond a near one's RTT however busy the machine. */
const DELAY_MS = 100
const IDENTIFY_PUSH_PROTOCOL = '/ipfs/id/push/1.0.0'
/** Kept streams close soon: a request after a pause opens a new one. */
const IDLE_STREAM_MS = 300

describe('client proxy: instances that stopped since it measured them', { timeout: 120_000 }, () => {
  let first: NamedServer
  let local: LocalInstance
  let relay: DelayRelay
  let proxyNode: PhysarumNode
  let proxy: ClientProxy
  let metrics: Registry
  const others: NamedInstance[] = []

  const get = async (init: RequestInit = {}): Promise<{ status: number, body: string }> => {
    const response = await fetch(`http://127.0.0.1:${proxy.port}/${SERVICE}/`, init)
    return { status: response.status, body: await response.text() }
  }
  const failures = async (): Promise<string[]> => (await metrics.metrics()).split('\n')
    .filter(line => /^physarum_proxy_(upstream_failures|retries)_total\{/.test(line) && line.includes(`service="${SERVICE}"`))
  const httpStreams = (peer: PeerId): number => proxyNode.libp2p.getConnections(peer)
    .flatMap(c => c.streams)
    .filter(s => s.protocol === HTTP_PROTOCOL && s.status === 'open').length

  before(async () => {
    first = await startNamedServer('near-0')
    local = await startLocalInstance(SERVICE, 'near-0', first.port)
    for (const name of ['near-1', 'near-2', 'near-3']) {
      others.push(await startNamedInstance({ service: SERVICE, contentHash: CONTENT_HASH, name, bootstrap: local.bootstrap }))
    }
    others.push(await startNamedInstance({
      service: SERVICE,
      contentHash: CONTENT_HASH,
      name: 'far',
      bootstrap: local.bootstrap,
      announce: async (port) => {
        relay = await startDelayRelay({ target: { port }, delayMs: DELAY_MS })
        return `/ip4/127.0.0.1/tcp/${relay.port}`
      }
    }))
    proxyNode = await startNode({ bootstrap: [local.bootstrap.multiaddrs()[0]!.toString()], dhtMode: 'client' })
    await waitForProviders(proxyNode, CONTENT_HASH, 5)
    ;({ proxy, metrics } = await startTestProxy(proxyNode, local.registry.node.multiaddrs()[0]!, { idleStreamTimeoutMs: IDLE_STREAM_MS }))
  })

  after(async () => {
    await proxy?.stop()
    await Promise.all(others.map(async ({ sidecar }) => { await sidecar.stop(0) }))
    await relay?.close()
    for (const named of [first, ...others.map(other => other.server)]) {
      named?.server.closeAllConnections()
      named?.server.close()
    }
    await stopAll([proxyNode])
    await local?.stop()
  })

  it('sends a request with a body to another instance when no stream to its instance opens', async () => {
    const served = await get()
    assert.equal(served.status, 200, served.body)
    assert.match(served.body, /^near-\d\n$/)
    const chosen = proxy.instanceOf(SERVICE)!.peerId
    const sidecar = [local.sidecar, ...others.map(other => other.sidecar)].find(one => one.node.peerId.equals(chosen))!
    // within its idle time, not the longer one Node's server hints (5 s, less undici's 2 s)
    await eventually('the kept stream closed', () => httpStreams(chosen) === 0 ? true : undefined, 2_000, 50)
    // its connection stays open, but it takes no more streams; the proxy's node takes no identify
    // push here (as from a peer that sends none), so it has not heard that the protocol went
    await proxyNode.libp2p.unhandle(IDENTIFY_PUSH_PROTOCOL)
    await sidecar.node.libp2p.unhandle(HTTP_PROTOCOL)
    const posted = await get({ method: 'POST', body: 'a body nothing has read yet' })
    assert.equal(posted.status, 200, posted.body)
    assert.match(posted.body, /^near-\d\n$/)
    assert.notEqual(posted.body, served.body)
    assert.deepEqual(await failures(), [
      `physarum_proxy_upstream_failures_total{service="${SERVICE}",stage="stream"} 1`,
      `physarum_proxy_retries_total{service="${SERVICE}"} 1`
    ])
  })

  it('forgets the instances whose connections closed, so the one left serves instead of a 502 after four dead ones', async () => {
    const before = await failures()
    // all five were measured by that first lookup, the far one last
    const near = [local.sidecar, ...others.slice(0, 3).map(other => other.sidecar)]
    const farRtt = proxyNode.rtt.get(others[3]!.sidecar.node.peerId.toString())?.smoothedMs ?? 0
    assert.ok(near.every(sidecar => (proxyNode.rtt.get(sidecar.node.peerId.toString())?.smoothedMs ?? Infinity) < farRtt), `far RTT ${farRtt} ms`)

    // scaled down: every near instance stops, the far one stays
    await Promise.all(near.map(async sidecar => { await sidecar.stop(0) }))
    await eventually('the proxy\'s node sees the near instances go', () =>
      near.every(sidecar => proxyNode.libp2p.getConnections(sidecar.node.peerId).length === 0) ? true : undefined, 10_000, 50)
    const after = await get()
    assert.equal(after.status, 200, after.body)
    assert.equal(after.body, 'far\n')
    assert.deepEqual(await failures(), before, 'no request was tried on a stopped instance')
    const rtt = (await metrics.metrics()).split('\n').filter(line => line.startsWith(`physarum_proxy_upstream_rtt_seconds{service="${SERVICE}"`))
    assert.equal(rtt.length, 1)
    assert.ok(Number(rtt[0]!.split(' ')[1]) * 1000 >= 2 * DELAY_MS, `the gauge is the far instance's RTT: ${rtt[0]}`)
  })
})
