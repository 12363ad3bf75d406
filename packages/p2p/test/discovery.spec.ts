import assert from 'node:assert/strict'
import { after, describe, it } from 'node:test'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { sha256 } from 'multiformats/hashes/sha2'
import { topicCid } from '../src/index.ts'
import { eventually, startDelayRelay, startNode, stopAll } from './helpers.ts'
import type { DelayRelay } from './helpers.ts'
import type { PhysarumNode } from '../src/index.ts'

/** A provide the node's content routing started: its key and, once it settled, how. */
interface Provide {
  key: string
  outcome?: PromiseSettledResult<void>
  settled: Promise<unknown>
}

/** Records every provide `node` starts through its content routing (the DHT), by whomever. */
function recordProvides (node: PhysarumNode): Provide[] {
  const routing = node.libp2p.contentRouting
  const provide = routing.provide.bind(routing)
  const provides: Provide[] = []
  routing.provide = async (cid, options) => {
    const started = provide(cid, options)
    const record: Provide = { key: cid.toString(), settled: Promise.allSettled([started]).then(([outcome]) => { record.outcome = outcome }) }
    provides.push(record)
    await started
  }
  return provides
}

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

    // the topic still provided is provided again before it expires: a lookup that finished finds
    // it (one a busy host cut short at its deadline is asked again; it says nothing)
    assert.deepEqual(await eventually('a lookup of the topic still provided to finish', async () => await providersOf(other, 'test:stays', 5_000, true)), [provider.peerId.toString()])
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
      return (await providersOf(seeker, 'test:crash', 5_000, true)).length === 0 ? true : undefined
    }, 15_000, 500)
  })
})

describe('stopping a topic', () => {
  const nodes: PhysarumNode[] = []
  const relays: DelayRelay[] = []
  after(async () => {
    await stopAll(nodes)
    await Promise.all(relays.map(async relay => { await relay.close() }))
  })

  it('aborts the provides of that topic in flight, the caller\'s and the reprovides, and no other topic\'s', async () => {
    const bootstrap = await startNode()
    nodes.push(bootstrap)
    // 100 ms each round trip to the bootstrap: a provide (a second or so) stays in flight well
    // beyond the reprovide interval
    const relay = await startDelayRelay({ target: { port: Number(bootstrap.multiaddrs()[0]!.getComponents().find(c => c.name === 'tcp')!.value) }, delayMs: 50 })
    relays.push(relay)
    const provider = await startNode({ bootstrap: [`/ip4/127.0.0.1/tcp/${relay.port}/p2p/${bootstrap.peerId.toString()}`], reprovideIntervalMs: 100 })
    nodes.push(provider)
    const provides = recordProvides(provider)
    const goes = topicCid('test:goes').toString()
    const kept = topicCid('test:kept').toString()

    const keptCaller = provider.discovery.provide('test:kept')
    const caller = provider.discovery.provide('test:goes')
    const inFlight = (key: string): Provide[] => provides.filter(p => p.key === key && p.outcome == null)
    await eventually('a reprovide of each topic in flight beside the callers\' provides', () => inFlight(goes).length >= 2 && inFlight(kept).length >= 2 ? true : undefined)
    const stopped = inFlight(goes)
    const going = inFlight(kept)
    const startedBeforeStop = provides.filter(p => p.key === goes).length
    await provider.discovery.stopProviding('test:goes')

    // the caller asked for the stop: its provide ends, without an error
    await caller
    await Promise.all(stopped.map(async p => { await p.settled }))
    for (const { outcome } of stopped) {
      assert.ok(outcome?.status === 'rejected', 'a provide of the stopped topic went on')
      assert.equal((outcome.reason as Error).name, 'AbortError')
    }
    // the other topic's provides go on and reach the bootstrap
    await keptCaller
    await Promise.all(going.map(async p => { await p.settled }))
    assert.deepEqual(going.map(p => p.outcome?.status), going.map(() => 'fulfilled'))
    assert.equal(provides.filter(p => p.key === goes).length, startedBeforeStop, 'the stopped topic was provided again')
    assert.deepEqual(provider.discovery.topics(), ['test:kept'])
  })

  it('stops a topic whose provide was called just before, in the same turn', async () => {
    const node = await startNode({ reprovideIntervalMs: 100 })
    nodes.push(node)
    const provides = recordProvides(node)
    const caller = node.discovery.provide('test:at-once')
    await node.discovery.stopProviding('test:at-once')
    await caller
    assert.deepEqual(node.discovery.topics(), [])
    const started = provides.length
    await new Promise(resolve => setTimeout(resolve, 400))
    assert.equal(provides.length, started, 'the stopped topic was provided again')
  })

  it('keys a topic as CIDv1(raw, sha256 of the topic), as every version of physarum did', async () => {
    assert.equal(topicCid('physarum:allocator').toString(), CID.createV1(raw.code, await sha256.digest(new TextEncoder().encode('physarum:allocator'))).toString())
  })
})
