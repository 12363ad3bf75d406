import assert from 'node:assert/strict'
import { once } from 'node:events'
import { connect } from 'node:net'
import { afterEach, describe, it } from 'node:test'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { tcp } from '@libp2p/tcp'
import { createLibp2p } from 'libp2p'
import { createPhysarumNode, NONCE_LENGTH, pskProtector } from '../src/index.ts'
import { startNode, stopAll, TEST_PSK } from './helpers.ts'
import type { PhysarumNode } from '../src/index.ts'
import type { Libp2p } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'
import type { Socket } from 'node:net'

/** libp2p's own limit for a whole inbound upgrade, which used to be the only one. */
const LIBP2P_UPGRADE_TIMEOUT_MS = 10_000

/**
 * Opens a plain TCP connection to `addr`, sends `bytes` (if any) and nothing more, and answers how
 * many ms passed until the node closed it; Infinity when it was still open after `giveUpMs`.
 */
async function msUntilClosed (addr: Multiaddr, bytes: Uint8Array | undefined, giveUpMs = 15_000): Promise<number> {
  const port = Number(addr.getComponents().find(c => c.name === 'tcp')!.value)
  const socket = connect(port, '127.0.0.1')
  socket.on('error', () => {})
  // the node's nonce arrives at once: read and drop it
  socket.resume()
  await once(socket, 'connect')
  const start = performance.now()
  if (bytes != null) {
    socket.write(bytes)
  }
  // a reset is a close too: events.once would reject on the 'error' before it
  const closed = new Promise<number>(resolve => { socket.once('close', () => { resolve(performance.now() - start) }) })
  const { promise: givenUp, resolve } = Promise.withResolvers<number>()
  const timer = setTimeout(() => { resolve(Infinity) }, giveUpMs)
  try {
    return await Promise.race([closed, givenUp])
  } finally {
    clearTimeout(timer)
    socket.destroy()
  }
}

describe('inbound connections that stall before or during the upgrade', () => {
  const bare: Libp2p[] = []
  const nodes: PhysarumNode[] = []
  afterEach(async () => {
    await Promise.all(bare.splice(0).map(async node => { await node.stop() }))
    await stopAll(nodes.splice(0))
  })

  it('closes a silent socket and one that sends part of the nonce within the protector\'s handshake timeout', async () => {
    // a bare node, to set the protector's timeout: libp2p's upgrader passes its own 10 s signal
    const node = await createLibp2p({
      addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
      transports: [tcp()],
      connectionEncrypters: [noise()],
      streamMuxers: [yamux()],
      connectionProtector: pskProtector({ psk: TEST_PSK, handshakeTimeoutMs: 500 })
    })
    bare.push(node)
    const addr = node.getMultiaddrs()[0]!
    const [silent, partial] = await Promise.all([
      msUntilClosed(addr, undefined),
      msUntilClosed(addr, crypto.getRandomValues(new Uint8Array(NONCE_LENGTH - 4)))
    ])
    // 0.5 s set; anything near libp2p's 10 s is the old behaviour
    for (const [what, ms] of [['silent', silent], ['part of the nonce', partial]] as const) {
      assert.ok(ms >= 400 && ms < LIBP2P_UPGRADE_TIMEOUT_MS / 2, `${what}: closed after ${ms.toFixed(0)} ms, set to 500 ms`)
    }
  })

  it('closes, with the daemons\' settings, a silent socket and one that stops after the nonce well before libp2p\'s 10 s', async () => {
    const node = await startNode()
    nodes.push(node)
    const addr = node.listenAddrs()[0]!
    // a whole nonce passes the protector (it cannot tell a wrong key): the upgrade's own deadline
    // must end what follows
    const [silent, afterNonce] = await Promise.all([
      msUntilClosed(addr, undefined),
      msUntilClosed(addr, crypto.getRandomValues(new Uint8Array(NONCE_LENGTH)))
    ])
    assert.ok(silent < 0.8 * LIBP2P_UPGRADE_TIMEOUT_MS, `silent: closed after ${silent.toFixed(0)} ms`)
    assert.ok(afterNonce < 0.8 * LIBP2P_UPGRADE_TIMEOUT_MS, `after the nonce: closed after ${afterNonce.toFixed(0)} ms`)
  })
  it('lets a PSK peer in, with the daemons\' defaults, while another host holds every unfinished connection its rate allows', async () => {
    // the limits every daemon but the ping-monitor runs with: no connectionLimits of its own
    const node = await createPhysarumNode({ psk: TEST_PSK, listen: ['/ip4/127.0.0.1/tcp/0'], dhtMode: 'server', hostName: 'target' })
    nodes.push(node)
    await node.start()
    const port = Number(node.listenAddrs()[0]!.getComponents().find(c => c.name === 'tcp')!.value)
    // 127.0.0.2 opens connections that send a nonce and then nothing, 20 a second, for 8 s
    const sockets: Socket[] = []
    const opening = setInterval(() => {
      const socket = connect({ port, host: '127.0.0.1', localAddress: '127.0.0.2' })
      socket.on('error', () => {})
      socket.on('connect', () => { socket.write(crypto.getRandomValues(new Uint8Array(NONCE_LENGTH))) })
      sockets.push(socket)
    }, 50)
    try {
      await new Promise(resolve => setTimeout(resolve, 6_000))
      // past the point where each of those is held to its deadline: a peer with the key joins
      const peer = await startNode({ bootstrap: [node.multiaddrs()[0]!.toString()], dhtMode: 'client', bootstrapTimeoutMs: 5_000 })
      nodes.push(peer)
      assert.equal(peer.libp2p.getConnections(node.peerId).length, 1)
    } finally {
      clearInterval(opening)
      for (const socket of sockets) {
        socket.destroy()
      }
    }
  })
})
