import assert from 'node:assert/strict'
import { after, describe, it } from 'node:test'
import { eventually, startNode, stopAll } from './helpers.ts'
import type { PhysarumNode } from '../src/index.ts'

/** The peer ids found providing `topic` within `ms`. */
/**
 * The providers a lookup finds within `ms`; with `complete`, a lookup cut short by the deadline
 * fails instead (finding nothing then says nothing).
 */
async function providersOf (node: PhysarumNode, topic: string, ms = 2_000, complete = false): Promise<string[]> {
  const found: string[] = []
  try {
    for await (const provider of node.discovery.findProviders(topic, { signal: AbortSignal.timeout(ms) })) {
      found.push(provider.id.toString())
    }
  } catch (err) {
    if (complete || ((err as Error).name !== 'AbortError' && (err as Error).name !== 'TimeoutError')) {
      throw err
    }
  }
  return found
}

describe('discovery through one bootstrap', () => {
  const nodes: PhysarumNode[] = []
  after(async () => { await stopAll(nodes) })

  it('finds a provided topic from every other node, and forgets it once records expire', async () => {
    const validity = { provideValiditySeconds: 3 }
    const bootstrap = await startNode(validity)
    nodes.push(bootstrap)
    const addr = bootstrap.multiaddrs()[0]!.toString()
    const peers = await Promise.all([1, 2, 3, 4].map(async () => await startNode({ ...validity, bootstrap: [addr] })))
    nodes.push(...peers)
    const [provider, quitter, seeker, other] = peers as [PhysarumNode, PhysarumNode, PhysarumNode, PhysarumNode]

    const started = performance.now()
    await provider.discovery.provide('test:stays')
    await quitter.discovery.provide('test:goes')
    const provideMs = performance.now() - started

    for (const node of [seeker, other, bootstrap]) {
      assert.deepEqual(await eventually('the provider', async () => {
        const found = await providersOf(node, 'test:stays')
        return found.length > 0 ? found : undefined
      }), [provider.peerId.toString()])
    }
    const found = await eventually('the quitter', async () => {
      const ids = await providersOf(seeker, 'test:goes')
      return ids.length > 0 ? ids : undefined
    })
    assert.deepEqual(found, [quitter.peerId.toString()])
    assert.ok(provideMs < 5_000, `providing took ${provideMs} ms`)

    await quitter.discovery.stopProviding('test:goes')
    assert.deepEqual(quitter.discovery.topics(), [])
    await eventually('the stopped topic to expire', async () => {
      return (await providersOf(seeker, 'test:goes', 5_000, true)).length === 0 ? true : undefined
    }, 15_000, 500)

    // the topic still provided is provided again before it expires
    assert.deepEqual(await providersOf(other, 'test:stays'), [provider.peerId.toString()])
  })

  it('stops returning a provider that stopped, once its records expire', async () => {
    const validity = { provideValiditySeconds: 3 }
    const bootstrap = await startNode(validity)
    nodes.push(bootstrap)
    const addr = bootstrap.multiaddrs()[0]!.toString()
    const provider = await startNode({ ...validity, bootstrap: [addr] })
    const seeker = await startNode({ ...validity, bootstrap: [addr] })
    nodes.push(seeker)
    await provider.discovery.provide('test:crash')
    await eventually('the provider', async () => (await providersOf(seeker, 'test:crash')).length > 0 ? true : undefined)
    await provider.stop()
    await eventually('the stopped provider to expire', async () => {
      return (await providersOf(seeker, 'test:crash', 1_000)).length === 0 ? true : undefined
    }, 15_000, 500)
  })
})
