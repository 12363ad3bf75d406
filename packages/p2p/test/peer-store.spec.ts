import { describe, it } from 'node:test'
import { eventually, startNode, stopAll } from './helpers.ts'
import type { PhysarumNode } from '../src/index.ts'

/**
 * The keys of the records in `node`'s peer store, read from its datastore: asking the peer store
 * itself drops an expired record as it reads it, which is what is under test.
 */
async function storedPeers (node: PhysarumNode): Promise<string[]> {
  const { datastore } = (node.libp2p as unknown as { components: { datastore: { queryKeys: (query: { prefix: string }) => AsyncIterable<{ toString: () => string }> } } }).components
  const keys: string[] = []
  for await (const key of datastore.queryKeys({ prefix: '/peers/' })) {
    keys.push(key.toString())
  }
  return keys
}

describe('peer store', () => {
  it('drops the record of a peer gone for longer than the peer store keeps one, unread', async () => {
    const nodes: PhysarumNode[] = []
    try {
      const kept = await startNode({ peerStore: { maxPeerAgeMs: 2_000, maxAddressAgeMs: 2_000, sweepIntervalMs: 200 } })
      nodes.push(kept)
      const gone = await startNode({ bootstrap: [kept.multiaddrs()[0]!.toString()] })
      nodes.push(gone)
      const key = `/peers/${gone.peerId.toCID().toString()}`
      await eventually('the peer to be recorded', async () => (await storedPeers(kept)).includes(key) ? true : undefined)
      await gone.stop()
      // nothing reads it once the DHT's traffic about the peer is over: only a sweep drops it
      await eventually('its record to be dropped', async () => (await storedPeers(kept)).includes(key) ? undefined : true, 10_000, 100)
    } finally {
      await stopAll(nodes)
    }
  })
})
