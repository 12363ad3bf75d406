import assert from 'node:assert/strict'
import { after, describe, it } from 'node:test'
import { multiaddr } from '@multiformats/multiaddr'
import { sendBounded } from '../src/index.ts'
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

/** The RTT `connection`'s Yamux muxer knows, in whole ms; -1 until it was pinged. */
function muxerRtt (connection: Connection): number {
  return (connection as Connection & { muxer: { rtt: number } }).muxer.rtt
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
    const warned: Array<Record<string, unknown>> = []
    const checker = await startNode({ hostName: 'checker', liveness: { intervalMs: 200, timeoutMs }, log: { warn: (fields) => { warned.push(fields) } } })
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
    assert.deepEqual(warned, [{ peer: silent.peerId.toString(), timeoutMs }], 'the daemon\'s log says it, once')

    assert.equal(toAnswering.status, 'open')
    const pingsBefore = answeringPings.count
    await new Promise(resolve => setTimeout(resolve, 600))
    assert.ok(answeringPings.count > pingsBefore, 'the answering peer is still checked')
    assert.equal(toAnswering.status, 'open')
  })

  it('pings a new connection at once, so the muxers know the RTT that grows a stream\'s receive window', async () => {
    const delayMs = 25
    const initialWindow = 256 * 1024
    const receiver = await startNode({ hostName: 'receiver', ...QUIET })
    const sender = await startNode({ hostName: 'sender', ...QUIET })
    nodes.push(receiver, sender)
    const relay = await startDelayRelay({ target: { port: Number(receiver.multiaddrs()[0]!.getComponents().find(c => c.name === 'tcp')!.value) }, delayMs })
    relays.push(relay)
    const protocol = '/physarum-test/upload/1.0.0'
    const received = Promise.withResolvers<{ bytes: number, window: number }>()
    await receiver.libp2p.handle(protocol, async (stream) => {
      let bytes = 0
      for await (const chunk of stream) {
        bytes += chunk.byteLength
      }
      received.resolve({ bytes, window: (stream as unknown as { recvWindow: number }).recvWindow })
      await stream.close()
    })

    const toReceiver = await sender.libp2p.dial(multiaddr(`/ip4/127.0.0.1/tcp/${relay.port}/p2p/${receiver.peerId.toString()}`))
    // neither node measures the other, and their liveness rounds are an hour away
    const toSender = await eventually('both muxers to know the RTT', () => {
      const connection = receiver.libp2p.getConnections(sender.peerId)[0]
      return connection != null && muxerRtt(connection) >= 0 && muxerRtt(toReceiver) >= 0 ? connection : undefined
    }, 2_000, 10)
    assert.ok(muxerRtt(toSender) >= 2 * delayMs, `the receiver's muxer knows an RTT of ${muxerRtt(toSender)} ms`)
    assert.equal(receiver.rtt.get(sender.peerId.toString()), undefined, 'liveness pings are no RTT samples')

    const total = 4 * 1024 * 1024
    const stream = await toReceiver.newStream(protocol)
    for (let sent = 0; sent < total; sent += 64 * 1024) {
      await sendBounded(stream, new Uint8Array(64 * 1024))
    }
    await stream.close()
    const { bytes, window } = await received.promise
    assert.equal(bytes, total)
    assert.ok(window > initialWindow, `the receiving stream's window stayed at ${window} bytes`)
  })
})
