import assert from 'node:assert/strict'
import { after, describe, it } from 'node:test'
import { createPhysarumNode, hostNameFromAgent, PreSharedKey } from '../src/index.ts'
import { eventually, startNode, stopAll, TEST_PSK } from './helpers.ts'
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
    // milliseconds, not seconds or microseconds
    assert.ok(rtt > 0 && rtt < 1_000, `RTT on loopback was ${rtt} ms`)
    assert.equal(b.rtt.get(a.peerId.toString())?.samples, 1)
    // identify may finish after the first ping
    const agent = await eventually('identify to tell b the agent of a', async () => {
      const peer = await b.libp2p.peerStore.get(a.peerId)
      const bytes = peer.metadata.get('AgentVersion')
      return bytes == null ? undefined : new TextDecoder().decode(bytes)
    })
    assert.equal(hostNameFromAgent(agent), 'host-a')
  })

  it('takes no host name with control characters or longer than a DNS name from a peer', async () => {
    assert.equal(hostNameFromAgent('physarum/1.0.0 allocator host=box-1'), 'box-1')
    assert.equal(hostNameFromAgent('physarum/1.0.0 allocator host=\u001b[2Jbox'), undefined)
    assert.equal(hostNameFromAgent('physarum/1.0.0 allocator host=box\u009b31m'), undefined)
    assert.equal(hostNameFromAgent(`physarum/1.0.0 allocator host=${'a'.repeat(254)}`), undefined)
    assert.equal(hostNameFromAgent('other/1.0 host=box-1'), undefined)
    // nor announces one itself
    for (const hostName of ['box\u0007', 'a'.repeat(254), 'two words', '']) {
      await assert.rejects(createPhysarumNode({ psk: PreSharedKey.fromPassphrase('a network'), hostName, listen: ['/ip4/127.0.0.1/tcp/0'], dhtMode: 'client' }), { name: 'ConfigError', message: /^--hostname: / })
    }
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

  it('says to check the key when its dials fail as they do against another key, and only then', async () => {
    const listener = await startNode()
    nodes.push(listener)
    const open = await startNode({ psk: null })
    nodes.push(open)
    const hint = /\. Check the bootstrap address, and that the pre-shared key is the overlay's: with another key no connection can finish$/
    const cases: Array<[string, PreSharedKey | null, string, boolean]> = [
      // the handshake after the nonces may wait for the peer's upgrade deadline (5 s) before it fails
      ['another key', PreSharedKey.fromPassphrase('another network'), listener.multiaddrs()[0]!.toString(), true],
      ['no key', null, listener.multiaddrs()[0]!.toString(), true],
      ['a bootstrap without a key', TEST_PSK, open.multiaddrs()[0]!.toString(), true],
      ['another peer id at the address', TEST_PSK, listener.multiaddrs()[0]!.toString().replace(/\/p2p\/.*$/, `/p2p/${open.peerId.toString()}`), false]
    ]
    await Promise.all(cases.map(async ([what, psk, target, hinted]) => {
      const node = await createPhysarumNode({ psk, listen: ['/ip4/127.0.0.1/tcp/0'], dhtMode: 'client', bootstrap: [target], bootstrapTimeoutMs: 8_000 })
      await assert.rejects(node.start(), (err: Error) => {
        assert.equal(err.name, 'BootstrapUnreachableError', what)
        assert.match(err.message, /^No bootstrap peer could be reached within 8000 ms: .*\((?!no answer yet)/, what)
        assert.equal(hint.test(err.message), hinted, `${what}: ${err.message}`)
        return true
      })
      await node.stop()
    }))
  })

  it('reaches its bootstrap with the first dial, once the transports have started', async () => {
    const bootstrap = await startNode()
    nodes.push(bootstrap)
    const node = await startNode({ bootstrap: [bootstrap.libp2p.getMultiaddrs()[0]!.toString()], dhtMode: 'client' })
    nodes.push(node)
    assert.deepEqual(node.libp2p.services.bootstrap.status().map(s => [s.connected, s.attempts, s.lastError]), [[true, 1, undefined]])
  })

  it('backs off from a bootstrap that drops it at once, as from one that does not answer', async () => {
    const bootstrap = await startNode()
    nodes.push(bootstrap)
    // a bootstrap that prunes every new connection
    bootstrap.libp2p.addEventListener('peer:connect', (evt) => { void bootstrap.libp2p.hangUp(evt.detail).catch(() => {}) })
    const node = await startNode({ bootstrap: [bootstrap.libp2p.getMultiaddrs()[0]!.toString()], dhtMode: 'client', requireBootstrap: false })
    nodes.push(node)
    // redialed after 0.25, 0.5, 1, 2, 4 s (give or take a quarter) instead of every 0.25 s: the
    // handshakes of 6 s stay a handful, where resetting after each connection made about 24
    await new Promise(resolve => setTimeout(resolve, 6_000))
    const attempts = node.libp2p.services.bootstrap.status()[0]!.attempts
    assert.ok(attempts >= 2 && attempts <= 7, `${attempts} dials in 6 s`)
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
      // a refused connection is no sign of another key
      assert.doesNotMatch(err.message, /pre-shared key/)
      return true
    })
  })
})
