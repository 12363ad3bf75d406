import assert from 'node:assert/strict'
import { after, describe, it } from 'node:test'
import { multiaddr } from '@multiformats/multiaddr'
import { eventually, startDelayRelay, startNode, stopAll } from './helpers.ts'
import type { DelayRelay } from './helpers.ts'
import type { PhysarumNode } from '../src/index.ts'

const DELAY_MS = 150

describe('RTT meter (Yamux pings between real nodes, through a delaying relay on 127.0.0.1)', () => {
  const nodes: PhysarumNode[] = []
  const relays: DelayRelay[] = []
  after(async () => {
    await stopAll(nodes)
    await Promise.all(relays.map(async relay => { await relay.close() }))
  })

  it('keeps a ping its caller gave up on: the late answer leaves the connection open, the next measurement waits for it', async () => {
    const far = await startNode({ hostName: 'far' })
    const near = await startNode({ hostName: 'near' })
    nodes.push(far, near)
    const relay = await startDelayRelay({ target: { port: Number(far.multiaddrs()[0]!.getComponents().find(c => c.name === 'tcp')!.value) }, delayMs: DELAY_MS })
    relays.push(relay)
    const connection = await near.libp2p.dial(multiaddr(`/ip4/127.0.0.1/tcp/${relay.port}/p2p/${far.peerId.toString()}`))
    const key = far.peerId.toString()

    const first = await near.measureRtt(far.peerId, { signal: AbortSignal.timeout(5_000) })
    assert.ok(first >= 2 * DELAY_MS && first < 2 * DELAY_MS + 200, `first RTT ${first} ms through a relay holding ${DELAY_MS} ms each way`)
    assert.ok(!Number.isInteger(first), `RTT ${first} ms is in whole milliseconds`)

    // the caller gives up after 50 ms; the answer comes about 250 ms later
    await assert.rejects(near.measureRtt(far.peerId, { signal: AbortSignal.timeout(50) }), (err: Error) => err.name === 'TimeoutError')
    await new Promise(resolve => setTimeout(resolve, 100))
    // its own round trip, sent once the abandoned ping was answered: not that ping's answer
    const second = await near.measureRtt(far.peerId, { signal: AbortSignal.timeout(5_000) })
    assert.ok(second >= 2 * DELAY_MS, `the measurement after an abandoned ping took ${second} ms, under the relay's ${2 * DELAY_MS} ms`)

    // a Yamux muxer aborts its connection on an answer to a ping it stopped waiting for
    await new Promise(resolve => setTimeout(resolve, 2 * DELAY_MS))
    assert.equal(connection.status, 'open')
    assert.deepEqual(near.libp2p.getConnections(far.peerId).map(c => c.id), [connection.id])
    assert.ok(await near.measureRtt(far.peerId, { signal: AbortSignal.timeout(5_000) }) >= 2 * DELAY_MS)
    const entry = near.rtt.get(key)
    assert.equal(entry?.samples, 3)
    assert.equal(entry.failures, 1)
  })

  it('measures on a peer\'s new connection, not behind the ping stuck on its old one gone silent', async () => {
    const far = await startNode({ hostName: 'far' })
    const near = await startNode({ hostName: 'near' })
    nodes.push(far, near)
    const relay = await startDelayRelay({ target: { port: Number(far.multiaddrs()[0]!.getComponents().find(c => c.name === 'tcp')!.value) }, delayMs: 0 })
    relays.push(relay)
    const old = await near.libp2p.dial(multiaddr(`/ip4/127.0.0.1/tcp/${relay.port}/p2p/${far.peerId.toString()}`))
    await near.measureRtt(far.peerId, { signal: AbortSignal.timeout(5_000) })

    // the far host vanishes without a FIN or RST: the old connection stays open, its ping unanswered
    relay.hold()
    await assert.rejects(near.measureRtt(far.peerId, { signal: AbortSignal.timeout(200) }), (err: Error) => err.name === 'TimeoutError')
    // and comes back with the same identity, dialing anew
    const fresh = await far.libp2p.dial(near.multiaddrs()[0]!, { force: true })
    const ids = await eventually('the new connection beside the old one', () => {
      const open = near.libp2p.getConnections(far.peerId).filter(c => c.status === 'open').map(c => c.id)
      return open.length === 2 ? open : undefined
    })
    assert.ok(ids.includes(old.id))

    // liveness (30 s) has not aborted the old connection: the meter passes it by
    for (let i = 0; i < 3; i++) {
      const ms = await near.measureRtt(far.peerId, { signal: AbortSignal.timeout(2_000) })
      assert.ok(ms < 1_000, `RTT ${ms} ms on loopback`)
    }
    assert.equal(old.status, 'open')
    assert.equal(fresh.status, 'open')
    assert.equal(near.rtt.get(far.peerId.toString())?.samples, 4)
  })

  it('fails at once for a peer it cannot reach, and counts the failure', async () => {
    const node = await startNode({ hostName: 'alone' })
    const gone = await startNode({ hostName: 'gone' })
    nodes.push(node)
    await node.libp2p.peerStore.merge(gone.peerId, { multiaddrs: gone.multiaddrs() })
    await gone.stop()
    // the dial is refused: an error of its own, long before the caller's timeout
    await assert.rejects(node.measureRtt(gone.peerId, { signal: AbortSignal.timeout(5_000) }), (err: Error) => err.name !== 'TimeoutError' && err.message.length > 0)
    assert.equal(node.rtt.get(gone.peerId.toString())?.failures, 1)
  })
})
