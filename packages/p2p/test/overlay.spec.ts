import assert from 'node:assert/strict'
import { after, describe, it } from 'node:test'
import { createPhysarumNode, hostNameFromAgent, PreSharedKey } from '../src/index.ts'
import { eventually, startNode, stopAll } from './helpers.ts'
import type { PhysarumNode } from '../src/index.ts'

describe('overlay membership by pre-shared key', () => {
  const nodes: PhysarumNode[] = []
  after(async () => { await stopAll(nodes) })

  it('connects and pings peers that share the key, and announces the host name', async () => {
    const a = await startNode({ hostName: 'host-a' })
    nodes.push(a)
    const b = await startNode({ bootstrap: [a.multiaddrs()[0]!.toString()] })
    nodes.push(b)
    assert.equal(b.libp2p.getConnections(a.peerId).length, 1)
    const rtt = await b.measureRtt(a.peerId)
    assert.ok(rtt > 0 && rtt < 100, `RTT on loopback was ${rtt} ms`)
    assert.equal(b.rtt.get(a.peerId.toString())?.samples, 1)
    // identify may finish after the first ping
    const agent = await eventually('identify to tell b the agent of a', async () => {
      const peer = await b.libp2p.peerStore.get(a.peerId)
      const bytes = peer.metadata.get('AgentVersion')
      return bytes == null ? undefined : new TextDecoder().decode(bytes)
    })
    assert.equal(hostNameFromAgent(agent), 'host-a')
  })

  it('tells peers only its announced address, and still knows where it listens', async () => {
    const listener = await startNode()
    nodes.push(listener)
    // as behind a NAT: peers are told a forwarded address (on loopback here, where nothing listens)
    const forwarded = '/ip4/127.0.0.2/tcp/9'
    const node = await startNode({ announce: [forwarded], bootstrap: [listener.multiaddrs()[0]!.toString()] })
    nodes.push(node)
    const id = node.peerId.toString()
    assert.deepEqual(node.multiaddrs().map(String), [`${forwarded}/p2p/${id}`])
    const [listening] = node.listenAddrs().map(String)
    assert.match(listening ?? '', new RegExp(`^/ip4/127\\.0\\.0\\.1/tcp/[1-9][0-9]*/p2p/${id}$`))
    // identify told the peer the announced address only
    const told = await eventually('identify to reach the listener', async () => {
      const seen = await listener.libp2p.peerStore.get(node.peerId).catch(() => undefined)
      return seen != null && seen.addresses.length > 0 ? seen.addresses.map(a => a.multiaddr.toString()) : undefined
    })
    assert.deepEqual(told, [forwarded])
  })

  it('refuses a peer with another key, or with none, and keeps serving the right ones', async () => {
    const listener = await startNode()
    nodes.push(listener)
    const target = listener.multiaddrs()[0]!.toString()

    for (const psk of [PreSharedKey.fromPassphrase('another network'), null]) {
      const stranger = await createPhysarumNode({ psk, listen: ['/ip4/127.0.0.1/tcp/0'], dhtMode: 'client', bootstrap: [target], bootstrapTimeoutMs: 1_500 })
      await assert.rejects(stranger.start(), { name: 'BootstrapUnreachableError' })
      await stranger.stop()
      assert.equal(listener.libp2p.getPeers().length, 0, `a peer with psk=${String(psk)} got in`)
    }

    const friend = await startNode({ bootstrap: [target] })
    nodes.push(friend)
    assert.ok(await friend.measureRtt(listener.peerId) > 0)
  })

  it('fails to start with a clear error when no bootstrap answers', async () => {
    const node = await createPhysarumNode({
      psk: PreSharedKey.fromPassphrase('physarum-test-network'),
      listen: ['/ip4/127.0.0.1/tcp/0'],
      dhtMode: 'client',
      // a port nothing listens on: the range's first port on loopback, with a made-up peer id
      bootstrap: ['/ip4/127.0.0.1/tcp/1/p2p/12D3KooWGRUVh5JLWYmmzTZ3wE8p2Bch4JPWgGa2s2DCWVxo4pEx'],
      bootstrapTimeoutMs: 1_000
    })
    await assert.rejects(node.start(), (err: Error) => {
      assert.equal(err.name, 'BootstrapUnreachableError')
      assert.match(err.message, /127\.0\.0\.1\/tcp\/1/)
      return true
    })
  })
})
