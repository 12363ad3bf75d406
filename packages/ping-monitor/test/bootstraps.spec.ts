import assert from 'node:assert/strict'
import { after, describe, it } from 'node:test'
import { join } from 'node:path'
import { peerIdFromPrivateKey, peerIdFromString } from '@libp2p/peer-id'
import { loadOrCreateIdentity } from '@physarum/p2p'
import { startNode, stopAll } from '../../p2p/test/helpers.ts'
import { eventually, freePort, getJson, spawnMonitor, tempDir } from './helpers.ts'
import type { SpawnedMonitor } from './helpers.ts'
import type { PeerReport } from '../src/index.ts'
import type { PhysarumNode } from '@physarum/p2p'

async function peersOf (monitor: SpawnedMonitor): Promise<PeerReport[]> {
  return (await getJson<{ peers: PeerReport[] }>(monitor.metricsUrl.replace('/metrics', '/peers'))).peers
}

describe('two redundant bootstraps', () => {
  const monitors: SpawnedMonitor[] = []
  const nodes: PhysarumNode[] = []
  after(async () => {
    await stopAll(nodes)
    await Promise.all(monitors.map(async m => await m.stop('SIGKILL')))
  })

  it('a peer joining through the second still finds a topic provided through the first after the first dies', async () => {
    const first = await spawnMonitor(['--hostname', 'mon-1', '--interval', '250ms'])
    monitors.push(first)
    const second = await spawnMonitor(['--hostname', 'mon-2', '--interval', '250ms', '-bootstrap', first.addrs[0]!])
    monitors.push(second)
    // the second joined the first: each measures the other
    await eventually('the bootstraps to know each other', async () => {
      const [ofFirst, ofSecond] = await Promise.all([peersOf(first), peersOf(second)])
      return ofFirst.some(p => p.peerId === second.peerId && p.host === 'mon-2' && p.lastRttMs != null) &&
        ofSecond.some(p => p.peerId === first.peerId && p.host === 'mon-1') ? true : undefined
    }, 10_000)

    // the provider knows only the first
    const provider = await startNode({ hostName: 'provider', bootstrap: [first.addrs[0]!] })
    nodes.push(provider)
    // through the first, the DHT leads it to the second, which will hold the provider record too
    await provider.libp2p.peerRouting.findPeer(peerIdFromString(second.peerId), { signal: AbortSignal.timeout(10_000) })
    const topic = `physarum:test:${crypto.randomUUID()}`
    await provider.discovery.provide(topic, { signal: AbortSignal.timeout(10_000) })

    const killed = await first.stop('SIGKILL')
    assert.equal(killed.signal, 'SIGKILL')

    const joiner = await startNode({ hostName: 'joiner', bootstrap: [second.addrs[0]!] })
    nodes.push(joiner)
    const found = await eventually('the provider through the second bootstrap', async () => {
      for await (const peer of joiner.discovery.findProviders(topic, { signal: AbortSignal.timeout(3_000) })) {
        if (peer.id.equals(provider.peerId)) {
          return peer
        }
      }
      return undefined
    }, 15_000, 200)
    assert.ok(found.multiaddrs.length > 0, 'the provider record has no addresses')
    // the overlay still works: the joiner reaches the provider it found
    assert.ok(await joiner.measureRtt(provider.peerId, { signal: AbortSignal.timeout(5_000) }) > 0)
    // and the surviving bootstrap measures both
    await eventually('the second bootstrap to measure the newcomers', async () => {
      const peers = await peersOf(second)
      return [provider, joiner].every(n => peers.some(p => p.peerId === n.peerId.toString() && p.lastRttMs != null)) ? true : undefined
    }, 10_000)
  })
  it('does not say it joined through a bootstrap when the only one given is its own address', async () => {
    const dir = await tempDir('pm-self')
    try {
      const identity = join(dir.path, 'identity.key')
      const port = await freePort()
      const self = `/ip4/127.0.0.1/tcp/${port}/p2p/${peerIdFromPrivateKey(await loadOrCreateIdentity(identity)).toString()}`
      // the environment file every host shares names this host's monitor too
      const monitor = await spawnMonitor(['--identity', identity, '--listen', `/ip4/127.0.0.1/tcp/${port}`], { PHYSARUM_BOOTSTRAP: self })
      monitors.push(monitor)
      assert.equal(monitor.peerId, self.split('/p2p/')[1])
      // what it says of its bootstraps comes right after the start-up lines
      await new Promise(resolve => setTimeout(resolve, 1_000))
      assert.doesNotMatch(monitor.output(), /joined the overlay/)
    } finally {
      await dir.remove()
    }
  })
})
