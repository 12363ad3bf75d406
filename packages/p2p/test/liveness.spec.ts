import assert from 'node:assert/strict'
import { after, describe, it } from 'node:test'
import { multiaddr } from '@multiformats/multiaddr'
import { eventually, startDelayRelay, startNode, stopAll } from './helpers.ts'
import type { DelayRelay } from './helpers.ts'
import type { PhysarumNode } from '../src/index.ts'
import type { Connection } from '@libp2p/interface'

/** Counts the pings sent on `connection` through its Yamux muxer, whoever sends them. */
function countPings (connection: Connection): { readonly count: number } {
  const muxer = (connection as Connection & { muxer: { ping: () => Promise<number> } }).muxer
  const ping = muxer.ping.bind(muxer)
  const counter = { count: 0 }
  muxer.ping = async () => {
    counter.count++
    return await ping()
  }
  return counter
}

/** A node that checks nothing itself while a test runs. */
const QUIET = { liveness: { intervalMs: 3_600_000 } }

describe('liveness (Yamux pings instead of ping streams, between real nodes on 127.0.0.1)', () => {
  const nodes: PhysarumNode[] = []
  const relays: DelayRelay[] = []
  after(async () => {
    await stopAll(nodes)
    await Promise.all(relays.map(async relay => { await relay.close() }))
  })

  it('pings a connection that answered nothing for an interval, and none that answered measurements', async () => {
    // liveness pings a connection that answered nothing for half the interval: 1 s, so a pause of
    // the loaded machine between two measurements below does not pass for silence
    const checker = await startNode({ hostName: 'checker', liveness: { intervalMs: 2_000, timeoutMs: 5_000 } })
    const peer = await startNode({ hostName: 'peer', ...QUIET })
    nodes.push(checker, peer)
    const connection = await checker.libp2p.dial(peer.multiaddrs()[0]!)
    const pings = countPings(connection)

    // idle: a liveness ping every interval, each answered
    await eventually('two liveness pings', () => pings.count >= 2 ? true : undefined, 10_000)
    assert.equal(connection.status, 'open')
    assert.equal(checker.libp2p.getConnections().length, 1)
    assert.equal(checker.rtt.get(peer.peerId.toString()), undefined, 'liveness pings are no RTT samples')

    // measured every 50 ms: the answers show the connection alive, so liveness sends nothing (it
    // would after 1 s without an answer)
    const before = pings.count
    let measured = 0
    for (const stopAt = performance.now() + 1_500; performance.now() < stopAt; measured++) {
      await checker.measureRtt(peer.peerId, { signal: AbortSignal.timeout(5_000) })
      await new Promise(resolve => setTimeout(resolve, 50))
    }
    assert.equal(pings.count - before, measured, `${pings.count - before} pings for ${measured} measurements`)
    assert.equal(checker.rtt.get(peer.peerId.toString())?.samples, measured)
  })

  it('aborts a connection whose peer went silent once its ping is unanswered for the timeout, tells listeners, and keeps the others', async () => {
    const timeoutMs = 1_000
    const checker = await startNode({ hostName: 'checker', liveness: { intervalMs: 200, timeoutMs } })
    const silent = await startNode({ hostName: 'silent', ...QUIET })
    const answering = await startNode({ hostName: 'answering', ...QUIET })
    nodes.push(checker, silent, answering)
    const relay = await startDelayRelay({ target: { port: Number(silent.multiaddrs()[0]!.getComponents().find(c => c.name === 'tcp')!.value) }, delayMs: 0 })
    relays.push(relay)
    const toSilent = await checker.libp2p.dial(multiaddr(`/ip4/127.0.0.1/tcp/${relay.port}/p2p/${silent.peerId.toString()}`))
    const toAnswering = await checker.libp2p.dial(answering.multiaddrs()[0]!)
    const silentPings = countPings(toSilent)
    const answeringPings = countPings(toAnswering)
    const told: string[] = []
    checker.onSilentPeer(peer => { told.push(peer.toString()) })
    await eventually('liveness pings on both connections', () => silentPings.count >= 2 && answeringPings.count >= 2 ? true : undefined, 10_000)
    assert.deepEqual(told, [])

    relay.hold()
    const heldAt = performance.now()
    await eventually('the silent peer\'s connection to be aborted', () => toSilent.status === 'aborted' ? true : undefined, 10_000, 10)
    const tookMs = performance.now() - heldAt
    // a liveness ping went out at most an interval after the hold and waited its whole timeout
    assert.ok(tookMs >= timeoutMs - 50, `aborted ${tookMs.toFixed(0)} ms after the peer went silent, before the ${timeoutMs} ms timeout`)
    assert.deepEqual(checker.libp2p.getConnections(silent.peerId), [])
    assert.deepEqual(told, [silent.peerId.toString()], 'listeners hear of the silent peer, once')

    assert.equal(toAnswering.status, 'open')
    const pingsBefore = answeringPings.count
    await new Promise(resolve => setTimeout(resolve, 600))
    assert.ok(answeringPings.count > pingsBefore, 'the answering peer is still checked')
    assert.equal(toAnswering.status, 'open')
  })
})
