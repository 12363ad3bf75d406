import assert from 'node:assert/strict'
import { connect } from 'node:net'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { afterEach, describe, it } from 'node:test'
import { multiaddr } from '@multiformats/multiaddr'
import { createLogger, createPhysarumNode, loadOrCreateIdentity, PreSharedKey } from '@physarum/p2p'
import { pino } from 'pino'
import { DEFAULT_INBOUND_RATE, DEFAULT_MAX_PENDING_CONNECTIONS, DEFAULT_MAX_PENDING_PER_IP } from '../src/constants.ts'
import { startPingMonitorDaemon } from '../src/index.ts'
import { startDelayRelay, startNode, stopAll, TEST_PSK } from '../../p2p/test/helpers.ts'
import { byPeer, eventually, freePort, getJson, scrape, tempDir } from './helpers.ts'
import type { PeerReport, PingMonitorDaemon, PingMonitorDaemonConfig, PingMonitorHealth } from '../src/index.ts'
import type { Sample } from './helpers.ts'
import type { Connection, Stream, StreamMessageEvent } from '@libp2p/interface'
import type { Logger, PhysarumNode } from '@physarum/p2p'
import type { Socket } from 'node:net'

interface PeersBody { host: string, peerId: string, peers: PeerReport[] }

async function startDaemon (monitor: Partial<PingMonitorDaemonConfig['monitor']> = {}, limits: Partial<PingMonitorDaemonConfig['limits']> = {}, log: Logger = createLogger('ping-monitor', (process.env.TEST_LOG_LEVEL ?? 'silent') as 'silent'), config: Partial<PingMonitorDaemonConfig> = {}): Promise<PingMonitorDaemon & { metricsUrl: string, peersUrl: string }> {
  const daemon = await startPingMonitorDaemon({
    psk: TEST_PSK,
    listen: ['/ip4/127.0.0.1/tcp/0'],
    bootstrap: [],
    metricsListen: { host: '127.0.0.1', port: 0 },
    limits: { maxConnections: 100, inboundRate: 1_000, maxPending: 100, maxPendingPerIp: DEFAULT_MAX_PENDING_PER_IP, ...limits },
    monitor: { hostName: 'mon-test', intervalMs: 100, pingTimeoutMs: 500, concurrency: 8, forgetAfterMs: 1_500, ...monitor },
    ...config
  }, log)
  const base = `http://127.0.0.1:${daemon.metrics.address().port}`
  return Object.assign(daemon, { metricsUrl: `${base}/metrics`, peersUrl: `${base}/peers` })
}

/** physarum_ping_failures_total of one reason, by target_peer. */
function failures (samples: Sample[], reason: 'dial' | 'ping'): Map<string, Sample> {
  return byPeer(samples.filter(s => s.labels.reason === reason), 'physarum_ping_failures_total')
}

function median (values: number[]): number {
  const sorted = values.toSorted((a, b) => a - b)
  const mid = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}

describe('ping monitor in an overlay (in process, real nodes on 127.0.0.1)', () => {
  const daemons: PingMonitorDaemon[] = []
  const nodes: PhysarumNode[] = []
  const cleanups: Array<() => Promise<void> | void> = []
  afterEach(async () => {
    await stopAll(nodes.splice(0))
    await Promise.all(daemons.splice(0).map(async d => { await d.stop() }))
    for (const cleanup of cleanups.splice(0)) await cleanup()
  })

  it('reports every peer that joins, counts failed dials of one that stops, then forgets its series', async () => {
    const daemon = await startDaemon()
    daemons.push(daemon)
    const bootstrap = [daemon.node.multiaddrs()[0]!.toString()]
    const peers = await Promise.all([1, 2, 3].map(async i => await startNode({ hostName: `peer-${i}`, bootstrap })))
    nodes.push(...peers)
    const ids = peers.map(p => p.peerId.toString())

    const metrics = await eventually('an RTT series for each of the 3 peers', async () => {
      const samples = await scrape(daemon.metricsUrl)
      const rtt = byPeer(samples, 'physarum_ping_rtt_seconds')
      return ids.every(id => rtt.get(id)?.labels.target_host?.startsWith('peer-') === true) ? samples : undefined
    }, 10_000)
    const rtt = byPeer(metrics, 'physarum_ping_rtt_seconds')
    const ewma = byPeer(metrics, 'physarum_ping_rtt_ewma_seconds')
    for (const [i, id] of ids.entries()) {
      assert.deepEqual(rtt.get(id)!.labels, { host: 'mon-test', target_peer: id, target_host: `peer-${i + 1}` })
      // loopback: more than nothing, and in seconds: a millisecond figure would read as ~1, while
      // a first sample taken as peers start on a loaded machine can reach a tenth of a second
      assert.ok(rtt.get(id)!.value > 0 && rtt.get(id)!.value < 0.5, `RTT ${rtt.get(id)!.value} s`)
      assert.ok(ewma.get(id)!.value > 0 && ewma.get(id)!.value < 0.5, `EWMA ${ewma.get(id)!.value} s`)
    }
    assert.equal(metrics.find(s => s.name === 'physarum_connected_peers')?.value, 3)
    assert.ok(metrics.some(s => s.name.startsWith('libp2p_')), 'no libp2p metrics on the same registry')

    const body = await getJson<PeersBody>(daemon.peersUrl)
    assert.equal(body.peerId, daemon.node.peerId.toString())
    for (const [i, id] of ids.entries()) {
      const peer = body.peers.find(p => p.peerId === id)
      assert.ok(peer != null, `${id} missing from /peers`)
      assert.equal(peer.host, `peer-${i + 1}`)
      assert.equal(peer.connected, true)
      assert.ok(peer.addresses.some(a => a.startsWith('/ip4/127.0.0.1/tcp/')), JSON.stringify(peer.addresses))
      assert.ok(peer.lastRttMs! > 0 && peer.smoothedRttMs! > 0)
      assert.ok(Math.abs(Date.parse(peer.lastSeen) - Date.now()) < 5_000)
    }

    // the first peer stops: its connection closes and dialling it fails, the others keep answering
    const [gone, ...staying] = ids as [string, ...string[]]
    await peers[0]!.stop()
    const failed = await eventually('failed dials of the stopped peer', async () => {
      const samples = await scrape(daemon.metricsUrl)
      return (failures(samples, 'dial').get(gone)?.value ?? 0) >= 2 ? samples : undefined
    }, 5_000)
    for (const id of staying) {
      for (const reason of ['dial', 'ping'] as const) {
        assert.equal(failures(failed, reason).get(id)?.value, 0, `a peer still there had ${reason} failures: ${id}`)
      }
    }

    // past --forget-after (1.5 s), none of its series is left; the others' are
    const forgotten = await eventually('the stopped peer forgotten', async () => {
      const samples = await scrape(daemon.metricsUrl)
      return samples.some(s => s.labels.target_peer === gone) ? undefined : samples
    }, 5_000)
    for (const name of ['physarum_ping_rtt_seconds', 'physarum_ping_rtt_ewma_seconds', 'physarum_ping_failures_total']) {
      assert.deepEqual([...byPeer(forgotten, name).keys()].toSorted(), staying.toSorted(), name)
    }
    const after = await getJson<PeersBody>(daemon.peersUrl)
    assert.deepEqual(after.peers.map(p => p.peerId).toSorted(), staying.toSorted())
  })

  it('pings a peer back on a new connection at once, whatever its backoff, under the host name it announces now', async () => {
    // pings every 500 ms: the backoff after 7 failures, 64 intervals capped at 30 s and cut by up
    // to half at random, is 15 s at least, well beyond the 10 s a busy host may take to show the
    // peer back at once; the peer stays tracked through the failures (half a minute)
    const daemon = await startDaemon({ intervalMs: 500, forgetAfterMs: 120_000 })
    daemons.push(daemon)
    const dir = await tempDir('physarum-identity')
    cleanups.push(dir.remove)
    const privateKey = await loadOrCreateIdentity(join(dir.path, 'identity.key'))
    const bootstrap = [daemon.node.multiaddrs()[0]!.toString()]
    const before = await startNode({ hostName: 'before', privateKey, bootstrap })
    nodes.push(before)
    const id = before.peerId.toString()
    await eventually('an RTT series of the peer', async () => byPeer(await scrape(daemon.metricsUrl), 'physarum_ping_rtt_seconds').get(id)?.labels.target_host === 'before' ? true : undefined)

    // a clean stop: each ping dials it and fails at once, each failure doubling the wait before the
    // next (16 to 32 s for the first 7). After the 7th the monitor waits 15 to 30 s before the next try
    await before.stop()
    await eventually('7 failed pings', async () => (failures(await scrape(daemon.metricsUrl), 'dial').get(id)?.value ?? 0) >= 7 ? true : undefined, 45_000)
    const after = await startNode({ hostName: 'after', privateKey, bootstrap })
    nodes.push(after)
    const connected = performance.now()
    await eventually('the RTT series back, under the new name', async () => byPeer(await scrape(daemon.metricsUrl), 'physarum_ping_rtt_seconds').get(id)?.labels.target_host === 'after' ? true : undefined, 20_000, 20)
    const ms = performance.now() - connected
    // at once (the next round, then its ping and identify), not after the backoff (15 s or more)
    assert.ok(ms < 10_000, `the series came back ${ms.toFixed(0)} ms after the peer reconnected`)
  })

  it('counts a peer that closes its connection under a ping as one that left, not one that stopped answering', async () => {
    const lines: Array<{ level: number, msg: string, peer?: string }> = []
    const sink = new Writable({ write (chunk: Buffer, _encoding, done) { lines.push(...chunk.toString().split('\n').filter(Boolean).map(l => JSON.parse(l) as typeof lines[number])); done() } })
    // the ping timeout far beyond the stops: no ping here goes unanswered on an open connection
    const daemon = await startDaemon({ intervalMs: 100, pingTimeoutMs: 10_000, forgetAfterMs: 60_000 }, {}, pino({ level: 'info' }, sink))
    daemons.push(daemon)
    // peers 300 ms away (a relay holds each chunk 150 ms each way), so that a ping is in flight
    // as each stops; only the monitor dials them, through their relays
    const peers = await Promise.all([1, 2, 3].map(async i => await startNode({ hostName: `leaving-${i}` })))
    nodes.push(...peers)
    for (const peer of peers) {
      const relay = await startDelayRelay({ target: { port: Number(peer.multiaddrs()[0]!.getComponents().find(c => c.name === 'tcp')!.value) }, delayMs: 150 })
      cleanups.push(async () => { await relay.close() })
      await daemon.node.libp2p.dial(multiaddr(`/ip4/127.0.0.1/tcp/${relay.port}/p2p/${peer.peerId.toString()}`))
    }
    const ids = peers.map(p => p.peerId.toString())
    await eventually('an answer from each peer', () => ids.every(id => (daemon.node.rtt.get(id)?.samples ?? 0) > 0) ? true : undefined, 10_000)
    // each stops (a clean stop, as hl-cli's and a drained sidecar's) just as a ping to it starts
    const measure = daemon.node.measureRtt.bind(daemon.node)
    const stopping: Array<Promise<void>> = []
    daemon.node.measureRtt = async (peer, options) => {
      const index = peers.findIndex(p => p.peerId.equals(peer))
      if (index >= 0 && stopping[index] == null) {
        stopping[index] = peers[index]!.stop()
      }
      return await measure(peer, options)
    }
    await eventually('every peer stopped', () => stopping.filter(Boolean).length === peers.length ? true : undefined, 10_000)
    await Promise.all(stopping)
    const samples = await eventually('failed dials of every peer that left', async () => {
      const samples = await scrape(daemon.metricsUrl)
      return ids.every(id => (failures(samples, 'dial').get(id)?.value ?? 0) >= 1) ? samples : undefined
    }, 10_000)
    assert.deepEqual(ids.map(id => failures(samples, 'ping').get(id)?.value), ids.map(() => 0), 'a peer that left counted as one that stopped answering on its open connection')
    assert.deepEqual(lines.filter(l => l.level >= 40).map(l => l.msg), [])
  })

  it('answers /healthz 503 once the monitor makes no round for 3 intervals and a ping timeout', async () => {
    const daemon = await startDaemon()
    daemons.push(daemon)
    const peer = await startNode({ hostName: 'peer', bootstrap: [daemon.node.multiaddrs()[0]!.toString()] })
    nodes.push(peer)
    const health = daemon.metricsUrl.replace('/metrics', '/healthz')
    type Health = { ok: boolean, monitor: PingMonitorHealth }
    const healthy = await eventually('a round pinging the peer', async () => {
      const res = await fetch(health)
      const body = await res.json() as Health
      return res.status === 200 && body.monitor.rounds > 1 && daemon.node.rtt.get(peer.peerId.toString()) != null ? body : undefined
    })
    assert.equal(healthy.monitor.ok, true)

    daemon.monitor.stop()
    const stopped = performance.now()
    const unhealthy = await eventually('/healthz 503', async () => {
      const res = await fetch(health)
      return res.status === 503 ? await res.json() as Health : undefined
    }, 5_000)
    // 3 x 100 ms + 500 ms after the last round
    assert.ok(performance.now() - stopped > 500, `503 after ${(performance.now() - stopped).toFixed(0)} ms`)
    assert.equal(unhealthy.ok, false)
    assert.equal(unhealthy.monitor.ok, false)
  })

  it('warns of an unreached bootstrap when its wait ends, not when it is stopped before', async () => {
    // nothing listens there
    const unreached = `/ip4/127.0.0.1/tcp/${await freePort()}/p2p/12D3KooWT2jLeASWrZsL2d6RscxSQ3hmWVbMGeAYNV5QXTiKRkHQ`
    const start = async (bootstrapWaitMs?: number): Promise<{ daemon: PingMonitorDaemon, warnings: () => string[] }> => {
      const lines: Array<{ level: number, msg: string }> = []
      const sink = new Writable({ write (chunk: Buffer, _encoding, done) { lines.push(...chunk.toString().split('\n').filter(Boolean).map(l => JSON.parse(l) as typeof lines[number])); done() } })
      const daemon = await startDaemon({}, {}, pino({ level: 'info' }, sink), { bootstrap: [unreached], bootstrapWaitMs })
      daemons.push(daemon)
      return { daemon, warnings: () => lines.filter(l => l.level >= 40).map(l => l.msg) }
    }
    const waited = await start(200)
    await eventually('the warning once the wait ended', () => waited.warnings().some(m => m.startsWith('no bootstrap reachable yet')) ? true : undefined, 10_000)

    // stopped within the default wait of 15 s
    const stopped = await start()
    await stopped.daemon.stop()
    // whatever the stop set off has run
    await new Promise(resolve => setImmediate(resolve))
    assert.deepEqual(stopped.warnings(), [])
  })

  it('never shows a peer with another key or none, and still shows the right ones', async () => {
    const daemon = await startDaemon()
    daemons.push(daemon)
    const target = daemon.node.multiaddrs()[0]!.toString()
    const strangers = await Promise.all([PreSharedKey.fromPassphrase('another network'), null].map(async psk => {
      const stranger = await createPhysarumNode({ psk, listen: ['/ip4/127.0.0.1/tcp/0'], dhtMode: 'server', bootstrap: [target], bootstrapTimeoutMs: 1_500, hostName: 'stranger' })
      await assert.rejects(stranger.start(), { name: 'BootstrapUnreachableError' })
      await stranger.stop()
      return stranger.peerId.toString()
    }))
    const friend = await startNode({ hostName: 'friend', bootstrap: [target] })
    nodes.push(friend)
    // the friend appearing shows rounds ran after the strangers tried
    await eventually('the right-key peer in the metrics', async () => byPeer(await scrape(daemon.metricsUrl), 'physarum_ping_rtt_seconds').has(friend.peerId.toString()) ? true : undefined)
    const rounds = daemon.monitor.rounds
    await eventually('3 more rounds', () => daemon.monitor.rounds >= rounds + 3 ? true : undefined)

    const text = await (await fetch(daemon.metricsUrl)).text()
    const body = await getJson<PeersBody>(daemon.peersUrl)
    for (const id of strangers) {
      assert.ok(!text.includes(id), `${id} is in /metrics`)
      assert.ok(!body.peers.some(p => p.peerId === id), `${id} is in /peers`)
    }
    assert.ok(!text.includes('target_host="stranger"'))
    assert.deepEqual(body.peers.map(p => p.peerId), [friend.peerId.toString()])
  })

  /** Opens `count` plain TCP connections to the daemon's overlay port, one after another; closed after the test. */
  const connectRaw = async (daemon: PingMonitorDaemon, count: number): Promise<void> => {
    const port = Number(daemon.node.multiaddrs()[0]!.getComponents().find(c => c.name === 'tcp')!.value)
    const sockets: Socket[] = []
    cleanups.push(() => { for (const s of sockets) s.destroy() })
    for (let i = 0; i < count; i++) {
      const socket = connect(port, '127.0.0.1')
      socket.on('error', () => {})
      sockets.push(socket)
      // a refused connection may be reset before 'connect' is seen
      await new Promise(resolve => { socket.once('connect', resolve).once('close', resolve) })
    }
  }

  it('has a refusal count of 0 for every limit before any connection, so that increase() sees the first refusals', async () => {
    const daemon = await startDaemon()
    daemons.push(daemon)
    const refused = (await scrape(daemon.metricsUrl)).filter(s => s.name === 'physarum_connections_refused_total')
    assert.deepEqual(refused.map(s => [s.labels.reason, s.labels.host, s.value]).toSorted(),
      ['inbound-rate', 'max-connections', 'max-pending', 'max-pending-per-ip'].map(reason => [reason, 'mon-test', 0]))
  })

  it('logs and counts inbound connections a connection limit turns away', async () => {
    const lines: string[] = []
    const sink = new Writable({ write (chunk: Buffer, _encoding, done) { lines.push(...chunk.toString().split('\n').filter(Boolean)); done() } })
    const daemon = await startDaemon({}, { inboundRate: 2 }, pino({ level: 'info' }, sink))
    daemons.push(daemon)
    // plain TCP connections count like any dial, whatever their key
    await connectRaw(daemon, 6)
    const refused = await eventually('a refused connection counted', async () => {
      const sample = (await scrape(daemon.metricsUrl)).find(s => s.name === 'physarum_connections_refused_total' && s.labels.reason === 'inbound-rate')
      return sample != null && sample.value >= 1 ? sample : undefined
    })
    assert.ok(refused.value <= 4, `refused ${refused.value} of 6 with a rate of 2`)
    const warning = lines.map(l => JSON.parse(l) as { level: number, msg: string, reason?: string, remoteAddr?: string }).find(l => l.msg.startsWith('refused an inbound connection'))
    assert.ok(warning != null, `no log line: ${lines.join('\n')}`)
    assert.equal(warning.level, 40)
    assert.equal(warning.reason, 'inbound-rate')
    assert.match(warning.msg, /--inbound-rate/)
    assert.match(warning.remoteAddr ?? '', /^\/ip4\/127\.0\.0\.1\/tcp\//)
  })

  it('names the rate, not the connection count, when a full node refuses a host past its rate', async () => {
    const daemon = await startDaemon({}, { inboundRate: 2, maxConnections: 1 })
    daemons.push(daemon)
    // one peer fills the node
    nodes.push(await startNode({ bootstrap: [daemon.node.multiaddrs()[0]!.toString()] }))
    await eventually('the node full', () => daemon.node.libp2p.getConnections().length === 1 ? true : undefined)
    await connectRaw(daemon, 6)
    const counted = await eventually('six refusals counted', async () => {
      const samples = (await scrape(daemon.metricsUrl)).filter(s => s.name === 'physarum_connections_refused_total')
      const byReason: Record<string, number> = Object.fromEntries(samples.map(s => [s.labels.reason ?? '', s.value]))
      return samples.reduce((sum, sample) => sum + sample.value, 0) >= 6 ? byReason : undefined
    })
    // 2 a second from 127.0.0.1, the peer's dial one of them: at least 3 of the 6 were over the rate
    assert.ok((counted['inbound-rate'] ?? 0) >= 3, JSON.stringify(counted))
    assert.ok((counted['max-connections'] ?? 0) >= 1, JSON.stringify(counted))
  })

  it('lets a PSK peer in while another host keeps opening silent connections (default limits)', async () => {
    const daemon = await startDaemon({}, { inboundRate: DEFAULT_INBOUND_RATE, maxPending: DEFAULT_MAX_PENDING_CONNECTIONS })
    daemons.push(daemon)
    const port = Number(daemon.node.multiaddrs()[0]!.getComponents().find(c => c.name === 'tcp')!.value)
    // 80 connections a second from 127.0.0.2, under --inbound-rate, none of them sending a byte:
    // without a cap per address they fill --max-pending within 1.25 s and keep it full
    const silent: Socket[] = []
    const opener = setInterval(() => {
      for (let i = 0; i < 2; i++) {
        const socket = connect({ port, host: '127.0.0.1', localAddress: '127.0.0.2' })
        socket.on('error', () => {})
        silent.push(socket)
      }
    }, 25)
    cleanups.push(() => {
      clearInterval(opener)
      for (const socket of silent) socket.destroy()
    })
    await eventually(`${DEFAULT_MAX_PENDING_CONNECTIONS} silent connections opened`, () => silent.length >= DEFAULT_MAX_PENDING_CONNECTIONS ? true : undefined)

    // startNode fails unless its bootstrap (the monitor) accepts it within 5 s
    const peer = await startNode({ hostName: 'peer-beside-silence', bootstrap: [daemon.node.multiaddrs()[0]!.toString()] })
    nodes.push(peer)
    // the dialer is done first: the monitor may still be finishing its side of the upgrade
    await eventually('the peer connected at the monitor', () => daemon.node.libp2p.getConnections(peer.peerId).length > 0 ? true : undefined, 2_000)
    const refused: Record<string, number> = Object.fromEntries((await scrape(daemon.metricsUrl))
      .filter(s => s.name === 'physarum_connections_refused_total').map(s => [s.labels.reason ?? '', s.value]))
    assert.ok((refused['max-pending-per-ip'] ?? 0) >= 1, JSON.stringify(refused))
    assert.equal(refused['max-pending'] ?? 0, 0, 'one host filled --max-pending')
  })

  it('frees an address\'s --max-pending-per-ip slot when its upgrade ends, failed or done', async () => {
    const daemon = await startDaemon({}, { maxPendingPerIp: 1 })
    daemons.push(daemon)
    const bootstrap = [daemon.node.multiaddrs()[0]!.toString()]
    const port = Number(daemon.node.multiaddrs()[0]!.getComponents().find(c => c.name === 'tcp')!.value)
    // upgrades that fail: the connection goes away during the nonce exchange (while one is under
    // way, the next may be refused)
    for (let i = 0; i < 3; i++) {
      const socket = connect(port, '127.0.0.1')
      socket.on('error', () => {})
      await new Promise(resolve => { socket.once('connect', resolve).once('close', resolve) })
      socket.destroy()
    }
    // then upgrades that succeed, one after another from the same address: a slot never given
    // back would turn each later one away
    for (let i = 1; i <= 3; i++) {
      nodes.push(await startNode({ hostName: `one-at-a-time-${i}`, bootstrap }))
    }
    await eventually('3 peers at the monitor', () => daemon.node.libp2p.getPeers().length === 3 ? true : undefined, 2_000)
  })

  it('reports RTTs within max(0.5 ms, 5%) of an independent ping on a warm connection, near and far', async (t) => {
    // no timer rounds: the test starts each round itself, so the two measurements never overlap
    const daemon = await startDaemon({ intervalMs: 3_600_000, forgetAfterMs: 3_600_000, pingTimeoutMs: 2_000 })
    daemons.push(daemon)
    const near = await startNode({ hostName: 'near', bootstrap: [daemon.node.multiaddrs()[0]!.toString()] })
    nodes.push(near)
    // the far peer sits behind a relay adding 10 ms each way, and only the monitor dials it
    const far = await startNode({ hostName: 'far' })
    nodes.push(far)
    const relay = await startDelayRelay({ target: { port: Number(far.multiaddrs()[0]!.getComponents().find(c => c.name === 'tcp')!.value) }, delayMs: 10 })
    cleanups.push(async () => { await relay.close() })
    await daemon.node.libp2p.dial(multiaddr(`/ip4/127.0.0.1/tcp/${relay.port}/p2p/${far.peerId.toString()}`))

    const targets = [near, far].map(node => ({
      id: node.peerId.toString(),
      connection: daemon.node.libp2p.getConnections(node.peerId)[0]!,
      monitor: [] as number[],
      independent: [] as number[]
    }))
    let count = (await scrape(daemon.metricsUrl)).find(s => s.name === 'physarum_ping_rtt_distribution_seconds_count')?.value ?? 0
    for (let round = 0; round < 30; round++) {
      const expected = count + 2
      const before = targets.map(target => daemon.node.rtt.get(target.id)?.samples ?? 0)
      const independent: number[] = []
      // half the rounds measure independently first, half the monitor first: neither is always
      // the one right after the scrape
      if (round % 2 === 0) {
        for (const target of targets) independent.push(await independentRtt(target.connection))
      }
      daemon.monitor.tick()
      // polling the RTT table costs nothing; a scrape during the pings would delay them
      await eventually('a round of the monitor', () => targets.every((target, i) => (daemon.node.rtt.get(target.id)?.samples ?? 0) > before[i]!) ? true : undefined, 5_000, 1)
      if (round % 2 === 1) {
        for (const target of targets) independent.push(await independentRtt(target.connection))
      }
      const samples = await eventually('the round in /metrics', async () => {
        const samples = await scrape(daemon.metricsUrl)
        return samples.find(s => s.name === 'physarum_ping_rtt_distribution_seconds_count')?.value === expected ? samples : undefined
      }, 5_000, 5)
      count = expected
      const rtt = byPeer(samples, 'physarum_ping_rtt_seconds')
      for (const [i, target] of targets.entries()) {
        target.monitor.push(rtt.get(target.id)!.value * 1_000)
        target.independent.push(independent[i]!)
      }
    }
    for (const [i, target] of targets.entries()) {
      const reported = median(target.monitor)
      const measured = median(target.independent)
      const tolerance = Math.max(0.5, 0.05 * measured)
      t.diagnostic(`${['near', 'far'][i]}: monitor ${reported.toFixed(3)} ms, independent ${measured.toFixed(3)} ms (medians of ${target.monitor.length})`)
      assert.ok(Math.abs(reported - measured) <= tolerance,
        `${['near', 'far'][i]}: the monitor reported ${reported.toFixed(3)} ms, an independent ping measured ${measured.toFixed(3)} ms (medians; tolerance ${tolerance.toFixed(3)} ms)`)
    }
    assert.ok(median(targets[1]!.independent) >= 20, 'the relay did not delay')
    assert.equal(daemon.node.libp2p.getConnections(far.peerId).length, 1, 'the far peer got a second, direct connection')
  })
})

/**
 * One round trip of libp2p's ping protocol on `connection`, timed with performance.now(), in ms:
 * on a new stream (a stream answers for 10 s only) whose negotiation a first round trip paid for.
 */
async function independentRtt (connection: Connection): Promise<number> {
  const stream = await pingStream(connection)
  const roundTrip = async (): Promise<number> => {
    const probe = crypto.getRandomValues(new Uint8Array(32))
    const chunks: Uint8Array[] = []
    let length = 0
    const { promise, resolve, reject } = Promise.withResolvers<number>()
    const onMessage = (evt: StreamMessageEvent): void => {
      const data = evt.data.subarray()
      chunks.push(data)
      length += data.byteLength
      if (length >= 32) {
        const elapsed = performance.now() - start
        const echoed = Buffer.concat(chunks)
        if (echoed.equals(probe)) resolve(elapsed)
        else reject(new Error('wrong echo'))
      }
    }
    stream.addEventListener('message', onMessage)
    const timer = setTimeout(() => { reject(new Error('no echo within 2 s')) }, 2_000)
    const start = performance.now()
    stream.send(probe)
    try {
      return await promise
    } finally {
      clearTimeout(timer)
      stream.removeEventListener('message', onMessage)
    }
  }
  try {
    await roundTrip()
    return await roundTrip()
  } finally {
    await stream.close()
  }
}

/**
 * A new `/ipfs/ping/1.0.0` stream on `connection`. libp2p allows one per connection, and the DHT
 * pings each peer it meets before it adds it to its routing table: on a new connection that
 * ping's stream may still be open (seen on a loaded machine), so the test waits for it.
 */
async function pingStream (connection: Connection): Promise<Stream> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await connection.newStream('/ipfs/ping/1.0.0')
    } catch (err) {
      if ((err as Error).name !== 'TooManyOutboundProtocolStreamsError' || attempt === 100) {
        throw err
      }
      await new Promise(resolve => setTimeout(resolve, 20))
    }
  }
}
