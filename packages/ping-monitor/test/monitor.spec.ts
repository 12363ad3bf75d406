import assert from 'node:assert/strict'
import { Writable } from 'node:stream'
import { describe, it } from 'node:test'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { createLogger, RttTable } from '@physarum/p2p'
import { pino } from 'pino'
import { Registry } from 'prom-client'
import { createPingMonitor, DEFAULT_PING_TIMEOUT_MS } from '../src/index.ts'
import { eventually, parseMetrics } from './helpers.ts'
import type { MonitoredNode, PingMonitorInit } from '../src/index.ts'
import type { AbortOptions, PeerId } from '@libp2p/interface'
import type { Logger } from '@physarum/p2p'

const PEER_IDS = [
  '12D3KooWT2jLeASWrZsL2d6RscxSQ3hmWVbMGeAYNV5QXTiKRkHQ', '12D3KooWAU5c4hjMB2S3P26gcURZLQi1g76jzmZKVChuSYrSBBNq',
  '12D3KooWHgyiURdUrDRWQKk5dG3Sr4viycdFmVXJeViZp5kgqEao', '12D3KooWBxWwW9TKLBKaPZR49AbqAHtrfsmUcHatuKGK3NjCePVt',
  '12D3KooWQNt5RyL6zGrRDGe2hfZHEEJwSEzBDSrW3WBUCsmPjd7K', '12D3KooWQwNW4yb1oU3PSEdYEy8MkMLGa3EygeViRepu9dBnCq9G',
  '12D3KooWQQtYq3RW9jT1749mzez51iAMHJrkm7syf8vsHrAEM8f6', '12D3KooWN7JR16gq8c5MToPumdMP6hDVDV263i2fS5zt5eZSTFL9',
  '12D3KooWD1FGbR2a8sUmnsct6q5AULem6mL4R2vNqqhs5Sqmu6Ks', '12D3KooWFUcsYcaJW5mHSbBCA93g2wiKXwJgWHVScRfWctARqgw4'
].map(id => peerIdFromString(id))

type Measure = (peer: PeerId, options: AbortOptions) => Promise<number>

interface StubNode extends MonitoredNode {
  connected: PeerId[]
  agents: Map<string, string>
  /** Peer store reads, by peer. */
  reads: Map<string, number>
  /** What libp2p's identify does when a peer connects or pushes: its agent, then the event. */
  identify(peer: PeerId, agent: string): void
}

/** A node whose connected peers, announced agents and ping answers the test decides. */
function stubNode (measure: Measure): StubNode {
  const rtt = new RttTable()
  const connected: PeerId[] = []
  const agents = new Map<string, string>()
  const reads = new Map<string, number>()
  const events = new EventTarget()
  const stub = {
    connected,
    agents,
    reads,
    rtt,
    identify (peer: PeerId, agent: string) {
      agents.set(peer.toString(), agent)
      events.dispatchEvent(new CustomEvent('peer:identify', { detail: { peerId: peer, agentVersion: agent } }))
    },
    libp2p: {
      getPeers: () => [...connected],
      // one open connection to each connected peer
      getConnections: (peer?: PeerId) => connected.filter(p => peer == null || p.equals(peer))
        .map(remotePeer => ({ id: `to ${remotePeer.toString()}`, remotePeer, status: 'open', remoteAddr: multiaddr('/ip4/127.0.0.1/tcp/4001') })),
      peerStore: {
        get: (peer: PeerId) => {
          reads.set(peer.toString(), (reads.get(peer.toString()) ?? 0) + 1)
          const agent = agents.get(peer.toString())
          return Promise.resolve({ id: peer, addresses: [], protocols: [], tags: new Map(), metadata: new Map(agent == null ? [] : [['AgentVersion', new TextEncoder().encode(agent)]]) })
        }
      },
      addEventListener: events.addEventListener.bind(events),
      removeEventListener: events.removeEventListener.bind(events)
    },
    async measureRtt (peer: PeerId, options: AbortOptions = {}) {
      try {
        const ms = await measure(peer, options)
        rtt.record(peer.toString(), ms)
        return ms
      } catch (err) {
        rtt.recordFailure(peer.toString())
        throw err
      }
    }
  }
  return stub as unknown as StubNode
}

function setUp (measure: Measure, init: Partial<PingMonitorInit> = {}, logger: Logger = createLogger('test', 'silent')): { node: StubNode, registry: Registry, monitor: ReturnType<typeof createPingMonitor> } {
  const node = stubNode(measure)
  const registry = new Registry()
  // an interval no test reaches: the tests call tick() themselves
  const monitor = createPingMonitor({ node, registry, logger }, { hostName: 'mon', intervalMs: 3_600_000, maxSpacingMs: 0, ...init })
  return { node, registry, monitor }
}

async function samples (registry: Registry, name: string): Promise<Array<{ labels: Record<string, string>, value: number }>> {
  return parseMetrics(await registry.metrics()).filter(s => s.name === name)
}

/** Pings answered after `delayMs`: which peers and when they started, and how many were in flight. */
function answeringAfter (delayMs: number): { measure: Measure, pinged: string[], starts: number[], inFlight: () => number, most: () => number } {
  let inFlight = 0
  let most = 0
  const pinged: string[] = []
  const starts: number[] = []
  const measure: Measure = async (peer) => {
    pinged.push(peer.toString())
    starts.push(performance.now())
    most = Math.max(most, ++inFlight)
    await new Promise(resolve => setTimeout(resolve, delayMs))
    inFlight--
    return 1
  }
  return { measure, pinged, starts, inFlight: () => inFlight, most: () => most }
}

describe('ping monitor scheduling (stubbed node)', () => {
  it('pings every connected peer, never more than --concurrency at once', async () => {
    const pings = answeringAfter(5)
    const { node, monitor } = setUp(pings.measure, { concurrency: 3 })
    node.connected.push(...PEER_IDS)
    monitor.tick()
    await eventually('all peers pinged', () => pings.pinged.length === PEER_IDS.length ? true : undefined)
    monitor.stop()
    assert.equal(pings.most(), 3)
    assert.deepEqual(pings.pinged.toSorted(), PEER_IDS.map(String).toSorted())
  })

  it('pings one peer after another, each when the one before was answered', async () => {
    const pings = answeringAfter(1)
    const { node, monitor } = setUp(pings.measure, { intervalMs: 1_000, maxSpacingMs: 200 })
    node.connected.push(...PEER_IDS.slice(0, 5))
    const ticked = performance.now()
    monitor.tick()
    await eventually('5 pings answered', () => pings.starts.length === 5 && pings.inFlight() === 0 ? true : undefined)
    monitor.stop()
    assert.equal(pings.most(), 1, 'two pings in flight at once')
    // spread over 80% of 1 s, the fifth would wait until 4 x 160 - 80 ms after the tick at least
    assert.ok(pings.starts[4]! - ticked < 560, `the fifth ping started ${(pings.starts[4]! - ticked).toFixed(1)} ms after the tick`)
  })

  it('starts pings in parallel, spread over the interval, while slow answers keep the round behind', async () => {
    const pings = answeringAfter(100)
    const { node, monitor } = setUp(pings.measure, { intervalMs: 100, maxSpacingMs: 40 })
    node.connected.push(...PEER_IDS.slice(0, 5))
    // 5 peers in 80% of 100 ms: one every 16 ms, and a late ping lets the next catch up by at
    // most half of that. Timers never fire early, and a ping that waited for the one before
    // started 100 ms after it, so the i-th ping cannot start before i * 16 - 8 ms after the tick.
    const ticked = performance.now()
    monitor.tick()
    await eventually('5 pings answered', () => pings.starts.length === 5 && pings.inFlight() === 0 ? true : undefined)
    monitor.stop()
    assert.ok(pings.most() > 1, 'one ping at a time, behind the spread')
    const offsets = pings.starts.map(start => start - ticked)
    assert.ok(offsets.every((offset, i) => offset >= i * 16 - 8), `ping starts after the tick: ${offsets.map(o => o.toFixed(1)).join(', ')} ms`)
  })

  it('counts an unanswered ping as a failure after --ping-timeout, and never pings a peer twice at once', async () => {
    let calls = 0
    const { node, registry, monitor } = setUp(async (_peer, { signal }) => {
      calls++
      return await new Promise<number>((_resolve, reject) => {
        signal?.addEventListener('abort', () => { reject(signal.reason as Error) })
      })
    }, { pingTimeoutMs: 100 })
    node.connected.push(PEER_IDS[0]!)
    const started = Date.now()
    monitor.tick()
    monitor.tick()
    monitor.tick()
    const failures = await eventually('a failure', async () => {
      const failures = await samples(registry, 'physarum_ping_failures_total')
      return failures.some(s => s.value > 0) ? failures : undefined
    })
    monitor.stop()
    assert.ok(Date.now() - started >= 100, 'failed before the timeout')
    assert.equal(calls, 1)
    // on its open connection: reason="ping"
    assert.deepEqual(failures.map(s => [s.labels, s.value]), [
      [{ host: 'mon', target_peer: PEER_IDS[0]!.toString(), reason: 'ping' }, 1],
      [{ host: 'mon', target_peer: PEER_IDS[0]!.toString(), reason: 'dial' }, 0]
    ])
    assert.deepEqual(await samples(registry, 'physarum_ping_rtt_seconds'), [])
  })

  it('tries a peer that does not answer less and less often, after the peers that answer', async (t) => {
    // the waits at their longest: each is cut by up to half at random
    t.mock.method(Math, 'random', () => 0)
    const calls: string[] = []
    const dead = PEER_IDS[4]!
    const { node, monitor } = setUp((peer) => {
      calls.push(peer.toString())
      return peer.equals(dead) ? Promise.reject(new Error('no answer')) : Promise.resolve(1)
    }, { intervalMs: 1_000, concurrency: 1 })
    const alive = PEER_IDS[5]!
    node.connected.push(dead, alive)
    const round = async (at: number, expectedCalls: number): Promise<void> => {
      monitor.tick(performance.now() + at)
      await eventually(`${expectedCalls} pings (${calls.length} so far)`, () => calls.length === expectedCalls && monitor.pending === 0 ? true : undefined)
    }
    await round(0, 2) // both, the dead one first (no failure yet)
    await round(0, 4) // both again: one failure waits no extra interval
    assert.deepEqual(calls.slice(2), [alive.toString(), dead.toString()], 'the failing peer went first')
    await round(0, 5) // two failures: the dead one waits one interval
    await round(1_100, 7)
    await round(2_500, 8) // three failures: three intervals more
    await round(3_100, 10)
    monitor.stop()
    assert.equal(calls.filter(c => c === dead.toString()).length, 4)
    assert.equal(calls.filter(c => c === alive.toString()).length, 6)
  })

  it('keeps retrying, forgetting and watching its own health when the host\'s clock steps back', async (t) => {
    // the shortest waits: each is cut by up to half at random
    t.mock.method(Math, 'random', () => 0.999)
    const [dead, alive, leaves] = [PEER_IDS[6]!, PEER_IDS[7]!, PEER_IDS[8]!]
    const tries = new Map<string, number>()
    const { node, monitor } = setUp((peer) => {
      tries.set(peer.toString(), (tries.get(peer.toString()) ?? 0) + 1)
      return peer.equals(dead) || !node.connected.some(p => p.equals(peer)) ? Promise.reject(new Error('no answer')) : Promise.resolve(1)
    }, { intervalMs: 100, pingTimeoutMs: 200, forgetAfterMs: 500 })
    const triesOf = (peer: PeerId): number => tries.get(peer.toString()) ?? 0
    node.connected.push(dead, alive, leaves)
    monitor.start()
    await eventually('a failed ping, and its retry scheduled', () => triesOf(dead) >= 1 && triesOf(leaves) >= 1 ? true : undefined, 10_000, 5)
    // an hour back (an operator's date -s, NTP correcting a clock that ran ahead), between two
    // waits: eventually() reads the same clock
    const wall = Date.now.bind(Date)
    let stepMs = 3_600_000
    t.mock.method(Date, 'now', () => wall() - stepMs)
    node.connected.splice(node.connected.indexOf(leaves), 1)
    const before = triesOf(dead)
    // backoffs of 1, 2 and 4 intervals, halved: well within the wait, nowhere near the hour
    await eventually('3 more tries of the peer that fails', () => triesOf(dead) >= before + 3 ? true : undefined, 10_000)
    await eventually('the peer that left forgotten after --forget-after', async () => (await monitor.peers()).some(p => p.peerId === leaves.toString()) ? undefined : true, 10_000)
    assert.ok(triesOf(alive) > before, 'the answering peer is pinged too')
    assert.equal(monitor.health().ok, true)

    // the monitor stalls, and the clock steps back once more: /healthz must still say so
    monitor.stop()
    stepMs += 3_600_000
    await eventually('health not ok 3 intervals and a ping timeout after the last round', () => monitor.health().ok ? undefined : true, 10_000)
  })

  // at --concurrency 1 the retries' share, a quarter rounded up, is the one slot
  for (const [concurrency, silentCount] of [[4, 5], [1, 2]] as const) {
    it(`keeps measuring the answering peers when more peers than --concurrency go silent at once (--concurrency ${concurrency})`, async () => {
      const intervalMs = 100
      const [silent, answering] = [PEER_IDS.slice(0, silentCount), PEER_IDS.slice(5)]
      let silence = false
      // when each answering peer was last pinged, the longest gap since the silence began
      const lastPing = new Map<string, number>()
      let longestGap = 0
      const failed = new Set<string>()
      // retries in flight, by start; the most of them at once that started within half an
      // interval, none of which can have given its slot up yet
      const retries = new Map<string, number>()
      let mostHolding = 0
      const { node, monitor } = setUp(async (peer, { signal }) => {
        const key = peer.toString()
        if (silence && silent.some(p => p.equals(peer))) {
          const retry = failed.has(key)
          if (retry) {
            const now = performance.now()
            retries.set(key, now)
            mostHolding = Math.max(mostHolding, [...retries.values()].filter(at => now - at < intervalMs / 2).length)
          }
          try {
            return await new Promise<number>((_resolve, reject) => { signal!.addEventListener('abort', () => { reject(new Error('no answer')) }) })
          } finally {
            failed.add(key)
            retries.delete(key)
          }
        }
        if (silence) {
          const now = performance.now()
          longestGap = Math.max(longestGap, now - lastPing.get(key)!)
          lastPing.set(key, now)
        }
        await new Promise(resolve => setTimeout(resolve, 1))
        return 1
      }, { intervalMs, pingTimeoutMs: 3_000, concurrency })
      node.connected.push(...silent, ...answering)
      monitor.start()
      await eventually('every peer answered', () => node.connected.every(p => (node.rtt.get(p.toString())?.samples ?? 0) >= 2) ? true : undefined)
      const silenceAt = performance.now()
      for (const peer of answering) {
        lastPing.set(peer.toString(), silenceAt)
      }
      silence = true
      // over two timeouts: the silent peers' first pings time out, then their retries do
      await new Promise(resolve => setTimeout(resolve, 7_000))
      monitor.stop()
      for (const at of lastPing.values()) {
        longestGap = Math.max(longestGap, silenceAt + 7_000 - at)
      }
      assert.ok(failed.size === silent.length, `${failed.size} of the silent peers failed`)
      // every 100 ms; while the silent peers' pings hold every slot, up to an interval more each. A
      // busy host's timers may be late by most of a second; pings that waited for the slots the
      // silent peers held would go 3 s (the ping timeout) without one
      assert.ok(longestGap < 1_500, `an answering peer went ${longestGap.toFixed(0)} ms without a ping`)
      assert.equal(mostHolding, 1, 'retries holding a slot at once (a quarter of --concurrency, at least one)')
    })
  }

  it('puts an answer up to the default --ping-timeout in a bucket of its own, not in +Inf', async () => {
    const { node, registry, monitor } = setUp(() => Promise.resolve(DEFAULT_PING_TIMEOUT_MS * 0.8))
    node.connected.push(PEER_IDS[0]!)
    monitor.tick()
    await eventually('an answer', () => node.rtt.get(PEER_IDS[0]!.toString())?.samples === 1 ? true : undefined)
    monitor.stop()
    const buckets = new Map((await samples(registry, 'physarum_ping_rtt_distribution_seconds_bucket')).map(s => [s.labels.le, s.value]))
    const finite = [...buckets.keys()].filter(le => le !== '+Inf').map(Number)
    assert.equal(Math.max(...finite), DEFAULT_PING_TIMEOUT_MS / 1_000)
    assert.equal(buckets.get('2.5'), 0)
    assert.equal(buckets.get(String(DEFAULT_PING_TIMEOUT_MS / 1_000)), 1)
  })

  it('logs one line when a peer starts failing and one when it answers again, not one per failure', async () => {
    const lines: Array<{ level: number, msg: string, peer?: string }> = []
    const sink = new Writable({ write (chunk: Buffer, _encoding, done) { lines.push(...chunk.toString().split('\n').filter(Boolean).map(l => JSON.parse(l) as typeof lines[number])); done() } })
    const [silent, left] = [PEER_IDS[0]!, PEER_IDS[1]!]
    let answering = true
    const { node, monitor } = setUp(peer => answering && node.connected.some(p => p.equals(peer)) ? Promise.resolve(1) : Promise.reject(new Error('no answer')), {}, pino({ level: 'info' }, sink))
    node.connected.push(silent, left)
    const round = async (): Promise<void> => {
      const rounds = monitor.rounds
      monitor.tick()
      await eventually(`round ${rounds + 1} done`, () => monitor.pending === 0 ? true : undefined)
    }
    await round()
    answering = false
    node.connected.splice(1, 1)
    for (let i = 0; i < 4; i++) {
      await round()
    }
    answering = true
    await round()
    await round()
    monitor.stop()
    assert.equal(node.rtt.get(left.toString())?.consecutiveFailures, 6)
    assert.deepEqual(lines.filter(l => l.msg !== 'tracking peer').map(l => [l.level, l.msg, l.peer]), [
      [40, 'peer stopped answering pings on its open connection', silent.toString()],
      [30, 'peer unreachable: no connection, and the dial failed (it left, or its process died)', left.toString()],
      [30, 'peer answers again', silent.toString()]
    ])
  })

  it('labels series with the announced host name, moving them when identify tells another', async () => {
    const { node, registry, monitor } = setUp(() => Promise.resolve(2.5))
    const peer = PEER_IDS[1]!
    node.connected.push(peer)
    monitor.start()
    await eventually('a first sample', () => node.rtt.get(peer.toString())?.samples === 1 ? true : undefined)
    await eventually('the series', async () => (await samples(registry, 'physarum_ping_rtt_seconds')).length === 1 ? true : undefined)
    assert.deepEqual((await samples(registry, 'physarum_ping_rtt_seconds'))[0]!.labels, { host: 'mon', target_peer: peer.toString(), target_host: 'unknown' })

    node.identify(peer, 'physarum/0.1.0 allocator host=box-7')
    assert.deepEqual((await samples(registry, 'physarum_ping_rtt_seconds')).map(s => s.labels.target_host), ['box-7'])
    // a restart under another name: a new connection, identified again
    node.identify(peer, 'physarum/0.1.0 allocator host=box-8')
    monitor.tick()
    await eventually('a second sample', () => node.rtt.get(peer.toString())?.samples === 2 ? true : undefined)
    monitor.stop()
    const rtt = await samples(registry, 'physarum_ping_rtt_seconds')
    assert.deepEqual(rtt.map(s => s.labels.target_host), ['box-8'])
    assert.equal(rtt[0]!.value, 0.0025)
    assert.deepEqual((await samples(registry, 'physarum_ping_rtt_ewma_seconds')).map(s => s.labels.target_host), ['box-8'])
    const count = (await samples(registry, 'physarum_ping_rtt_distribution_seconds_count'))[0]
    assert.equal(count?.value, 2)
  })

  it('reads a peer\'s host name from the peer store once, also when it announces none', async () => {
    const { node, registry, monitor } = setUp(() => Promise.resolve(1))
    const [physarum, other] = [PEER_IDS[1]!, PEER_IDS[2]!]
    node.agents.set(physarum.toString(), 'physarum/0.1.0 proxy host=box-1')
    node.agents.set(other.toString(), 'go-libp2p/0.36.2')
    node.connected.push(physarum, other)
    for (let round = 1; round <= 5; round++) {
      monitor.tick()
      await eventually(`round ${round} answered`, () => node.rtt.get(other.toString())?.samples === round && node.rtt.get(physarum.toString())?.samples === round && monitor.pending === 0 ? true : undefined)
    }
    monitor.stop()
    assert.deepEqual(Object.fromEntries((await samples(registry, 'physarum_ping_rtt_seconds')).map(s => [s.labels.target_peer, s.labels.target_host])), {
      [physarum.toString()]: 'box-1', [other.toString()]: 'unknown'
    })
    assert.deepEqual(Object.fromEntries(node.reads), { [physarum.toString()]: 1, [other.toString()]: 1 })
  })

  it('keeps pinging a peer that left, counts its failures apart, and forgets it and its series after --forget-after', async () => {
    let answering = true
    const { node, registry, monitor } = setUp(() => answering ? Promise.resolve(1) : Promise.reject(new Error('connection refused')), { forgetAfterMs: 1_000 })
    const [stays, leaves] = [PEER_IDS[2]!, PEER_IDS[3]!]
    node.connected.push(stays, leaves)
    const t0 = performance.now()
    monitor.tick(t0)
    await eventually('both answered', () => node.rtt.get(leaves.toString())?.samples === 1 && node.rtt.get(stays.toString())?.samples === 1 ? true : undefined)

    answering = false
    node.connected.splice(1, 1)
    monitor.tick(t0 + 500)
    await eventually('failures of both', () => node.rtt.get(leaves.toString())?.failures === 1 && node.rtt.get(stays.toString())?.failures === 1 ? true : undefined)
    // the peer that left failed to be dialled; the one still connected did not answer on its connection
    const failures = new Map((await samples(registry, 'physarum_ping_failures_total')).map(s => [`${s.labels.target_peer} ${s.labels.reason}`, s.value]))
    const [gone, here] = [leaves.toString(), stays.toString()]
    assert.deepEqual([`${gone} dial`, `${gone} ping`, `${here} dial`, `${here} ping`].map(k => failures.get(k)), [1, 0, 0, 1])
    assert.equal((await monitor.peers()).length, 2)
    // no RTT while the pings fail (a graph shows a gap, not the last good value); when they last answered, still
    for (const name of ['physarum_ping_rtt_seconds', 'physarum_ping_rtt_ewma_seconds']) {
      assert.deepEqual(await samples(registry, name), [], name)
    }
    assert.equal((await samples(registry, 'physarum_ping_last_success_timestamp_seconds')).length, 2)

    // past --forget-after: only the connected peer is left, in every series
    monitor.tick(performance.now() + 1_001)
    monitor.stop()
    assert.deepEqual((await monitor.peers()).map(p => p.peerId), [stays.toString()])
    assert.equal(node.rtt.get(leaves.toString()), undefined)
    for (const name of ['physarum_ping_failures_total', 'physarum_ping_last_success_timestamp_seconds']) {
      assert.deepEqual([...new Set((await samples(registry, name)).map(s => s.labels.target_peer))], [stays.toString()], name)
    }
    assert.equal((await samples(registry, 'physarum_ping_tracked_peers'))[0]?.value, 1)
  })

  it('leaves no RTT entry for a peer forgotten while its ping was running', async () => {
    let answer: ((ms: number) => void) | undefined
    let slow = false
    const { node, monitor } = setUp(() => slow ? new Promise<number>(resolve => { answer = resolve }) : Promise.resolve(1), { forgetAfterMs: 1_000 })
    const leaves = PEER_IDS[3]!
    node.connected.push(leaves)
    const t0 = performance.now()
    monitor.tick(t0)
    await eventually('a first answer', () => node.rtt.get(leaves.toString())?.samples === 1 ? true : undefined)
    slow = true
    node.connected.splice(0, 1)
    monitor.tick(t0 + 500)
    await eventually('a ping under way', () => answer)
    // forgotten while that ping runs; it answers afterwards
    monitor.tick(performance.now() + 1_001)
    assert.deepEqual(await monitor.peers(), [])
    answer!(2)
    await new Promise(resolve => setTimeout(resolve, 20))
    monitor.stop()
    assert.equal(node.rtt.get(leaves.toString()), undefined)
  })
})
