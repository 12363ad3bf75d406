import { createPhysarumNode, PreSharedKey } from '@physarum/p2p'
import { multiaddr } from '@multiformats/multiaddr'
import type { PhysarumNode } from '@physarum/p2p'

/**
 * Child process of bench/ping-monitor.ts (started with child_process.fork): runs `count` nodes of
 * createPhysarumNode, each bootstrapping to the monitors, so that the monitors' process holds only
 * the monitors. Talks to the parent over the IPC channel only (the passphrase comes that way, not
 * on argv), and exits when the channel closes: it never outlives the benchmark.
 *
 * parent -> child: PeersStart, then { type: 'stats' } any number of times, then { type: 'stop' }
 * child -> parent: PeersProgress while starting, PeersReady, PeersStats, { type: 'stopped' },
 *                  or PeersFailed at any time
 */

export interface PeersStart {
  type: 'start'
  /** This process's number, for host names. */
  index: number
  count: number
  passphrase: string
  /** The monitors' multiaddrs, with /p2p/. */
  bootstrap: string[]
  /** Nodes starting at once. */
  startConcurrency: number
  /** How long one node may take to reach every monitor. */
  connectTimeoutMs: number
}

export interface PeersProgress { type: 'progress', started: number }
export interface PeersReady { type: 'ready', started: number }
export interface PeersFailed { type: 'failed', message: string }
export interface PeersStats {
  type: 'stats'
  nodes: number
  /** Per monitor (in the order of `bootstrap`): how many of the nodes have a connection to it. */
  connected: number[]
  /** Disconnections from a monitor since the start (each monitor's counted together). */
  disconnects: number
}
export type PeersMessage = PeersProgress | PeersReady | PeersFailed | PeersStats | { type: 'stopped' }
export type PeersCommand = PeersStart | { type: 'stats' } | { type: 'stop' }

const nodes: PhysarumNode[] = []
let monitors: string[] = []
let disconnects = 0

function send (message: PeersMessage): void {
  process.send?.(message)
}

function connectedTo (node: PhysarumNode, peer: string): boolean {
  return node.libp2p.getConnections().some(c => c.remotePeer.toString() === peer && c.status === 'open')
}

async function startOne (init: PeersStart, i: number): Promise<void> {
  const node = await createPhysarumNode({
    psk: PreSharedKey.fromPassphrase(init.passphrase),
    listen: ['/ip4/127.0.0.1/tcp/0'],
    bootstrap: init.bootstrap,
    dhtMode: 'client',
    hostName: `bench-peer-${init.index}-${i}`,
    role: 'bench-peer',
    bootstrapTimeoutMs: init.connectTimeoutMs,
    connectionLimits: { maxConnections: 1000, inboundConnectionThreshold: 1000, maxIncomingPendingConnections: 1000 }
  })
  nodes.push(node)
  node.libp2p.addEventListener('peer:disconnect', (evt) => {
    if (monitors.includes(evt.detail.toString())) {
      disconnects++
    }
  })
  await node.start()
  // start() returns once one bootstrap is connected: wait for the others
  const deadline = performance.now() + init.connectTimeoutMs
  while (!monitors.every(m => connectedTo(node, m))) {
    if (performance.now() > deadline) {
      throw new Error(`peer ${init.index}-${i} reached ${monitors.filter(m => connectedTo(node, m)).length} of ${monitors.length} monitors in ${init.connectTimeoutMs} ms`)
    }
    await new Promise(resolve => setTimeout(resolve, 100))
  }
}

async function start (init: PeersStart): Promise<void> {
  monitors = init.bootstrap.map(addr => multiaddr(addr).getComponents().find(c => c.name === 'p2p')?.value ?? '')
  let next = 0
  let started = 0
  const worker = async (): Promise<void> => {
    while (next < init.count) {
      const i = next++
      await startOne(init, i)
      started++
      if (started % 10 === 0) {
        send({ type: 'progress', started })
      }
    }
  }
  await Promise.all(Array.from({ length: Math.max(1, init.startConcurrency) }, worker))
  send({ type: 'ready', started })
}

function stats (): PeersStats {
  return {
    type: 'stats',
    nodes: nodes.length,
    connected: monitors.map(m => nodes.filter(n => connectedTo(n, m)).length),
    disconnects
  }
}

async function stop (): Promise<void> {
  const timeout = new Promise(resolve => setTimeout(resolve, 10_000).unref())
  await Promise.race([Promise.allSettled(nodes.map(async n => { await n.stop() })), timeout])
}

if (process.send == null) {
  process.stderr.write('ping-peers.ts runs as a child process of bench/ping-monitor.ts (child_process.fork)\n')
  process.exit(2)
}
// the benchmark is gone (ended, killed, crashed): so are we
process.on('disconnect', () => { process.exit(0) })
process.on('message', (command: PeersCommand) => {
  switch (command.type) {
    case 'start':
      start(command).catch((err: Error) => { send({ type: 'failed', message: err.message }) })
      break
    case 'stats':
      send(stats())
      break
    case 'stop':
      void stop().finally(() => {
        send({ type: 'stopped' })
        process.disconnect()
      })
      break
  }
})
