import { hostname } from 'node:os'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { identify, identifyPush } from '@libp2p/identify'
import { kadDHT, passthroughMapper } from '@libp2p/kad-dht'
import { ping } from '@libp2p/ping'
import { prometheusMetrics } from '@libp2p/prometheus-metrics'
import { tcp } from '@libp2p/tcp'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p } from 'libp2p'
import { bootstrapper } from './bootstrap.ts'
import { DEFAULT_BOOTSTRAP_TIMEOUT_MS, DEFAULT_PROVIDE_VALIDITY_S, IDENTIFY_PUSH_DEBOUNCE_MS, INBOUND_UPGRADE_TIMEOUT_MS, KAD_PROTOCOL, LIVENESS_INTERVAL_MS, LIVENESS_TIMEOUT_MS, MAX_EARLY_STREAMS, MAX_INCOMING_PENDING_CONNECTIONS, PEER_STORE_SWEEP_INTERVAL_MS } from './constants.ts'
import { discovery } from './discovery.ts'
import { ConfigError } from './errors.ts'
import { Liveness } from './liveness.ts'
import { withCheapFrameLengths } from './noise-frames.ts'
import { peerStoreSweep } from './peer-store-sweep.ts'
import { pskProtector } from './protector.ts'
import { RttTable } from './rtt.ts'
import { RttMeter } from './rtt-meter.ts'
import { useLazyWindowUpdates } from './yamux-window.ts'
import type { Bootstrapper } from './bootstrap.ts'
import type { Discovery } from './discovery.ts'
import type { LivenessInit } from './liveness.ts'
import type { PeerStoreSweep } from './peer-store-sweep.ts'
import type { PreSharedKey } from './psk.ts'
import type { RttEntry } from './rtt.ts'
import type { Identify, IdentifyPush } from '@libp2p/identify'
import type { AbortOptions, Libp2p, Listener, PeerId, PrivateKey } from '@libp2p/interface'
import type { KadDHT } from '@libp2p/kad-dht'
import type { Ping } from '@libp2p/ping'
import type { Multiaddr } from '@multiformats/multiaddr'
import type { Registry } from 'prom-client'

export const PHYSARUM_VERSION = '0.1.0'

export interface ConnectionLimits {
  /** Most open connections in all (libp2p's default: 300). */
  maxConnections?: number
  /** Most inbound connections per second from one host (libp2p's default: 5). */
  inboundConnectionThreshold?: number
  /** Most inbound connections still being upgraded (libp2p's default: 10). */
  maxIncomingPendingConnections?: number
}

export interface PhysarumNodeInit {
  /** The overlay's key, or null for an open overlay (only when the operator said --no-psk). */
  psk: PreSharedKey | null
  /** The node's identity; a new one each start when absent. */
  privateKey?: PrivateKey
  /** Listen multiaddrs (default: every IPv4 interface, a free port). */
  listen?: string[]
  /**
   * The addresses peers are told to dial instead of the listen addresses (through identify and
   * provider records), e.g. a port forwarded to this node.
   */
  announce?: string[]
  /** Bootstrap multiaddrs, dialed at start and kept connected. */
  bootstrap?: string[]
  /** Daemons answer DHT queries ('server'); short-lived tools need not ('client'). */
  dhtMode: 'server' | 'client'
  /** Announced to peers through identify's agent version (the ping monitor's target_host). */
  hostName?: string
  /** What this node is (ping-monitor, allocator, ...), announced beside the host name. */
  role?: string
  /** How long `start()` waits for the first bootstrap before failing. */
  bootstrapTimeoutMs?: number
  /**
   * Whether `start()` fails when no bootstrap answers in time (default true). A bootstrap node
   * itself passes false: it serves the overlay while it keeps dialing its fellow bootstraps.
   */
  requireBootstrap?: boolean
  /** How long other peers keep this node's provider records, in seconds. */
  provideValiditySeconds?: number
  /** How often provided topics are provided again. */
  reprovideIntervalMs?: number
  connectionLimits?: ConnectionLimits
  /** How often connections are checked, and how long they may take to answer (default 30 s each). */
  liveness?: Partial<LivenessInit>
  /**
   * How long libp2p's peer store keeps a record of a peer it no longer hears of (libp2p's
   * defaults: maxPeerAge 6 h, maxAddressAge 1 h), and how often expired ones are dropped
   * (PEER_STORE_SWEEP_INTERVAL_MS); tests shorten them.
   */
  peerStore?: { maxPeerAgeMs?: number, maxAddressAgeMs?: number, sweepIntervalMs?: number }
  /** libp2p's own metrics go to this Registry (one per process). */
  metricsRegistry?: Registry
  /**
   * The daemon's log: each connection liveness aborts is said there (a warning), where libp2p's
   * own log says it only under DEBUG.
   */
  log?: { warn: (fields: Record<string, unknown>, message: string) => void }
}

// a type, not an interface: libp2p's ServiceMap needs an index signature
export type PhysarumServices = {
  identify: Identify
  identifyPush: IdentifyPush
  ping: Ping
  dht: KadDHT
  bootstrap: Bootstrapper
  discovery: Discovery
  peerStoreSweep: PeerStoreSweep
}

/** A libp2p node of the physarum overlay, with discovery and RTT measurement. */
export interface PhysarumNode {
  readonly libp2p: Libp2p<PhysarumServices>
  readonly peerId: PeerId
  readonly discovery: Discovery
  readonly rtt: RttTable
  /**
   * Starts listening and waits until a bootstrap is connected (when any was given and
   * `requireBootstrap` is not false); fails with BootstrapUnreachableError otherwise, and with
   * `signal`'s reason when it aborts that wait (the node is stopped again either way).
   */
  start(options?: AbortOptions): Promise<void>
  stop(): Promise<void>
  /**
   * The addresses peers are told to dial, each with /p2p/<peer id>: the `announce` addresses
   * when given, else the listen addresses.
   */
  multiaddrs(): Multiaddr[]
  /**
   * Where this node listens, whatever it announces, each with /p2p/<peer id> (wildcards expanded
   * to the host's interfaces): for processes on the same host, such as an allocator's sidecars.
   */
  listenAddrs(): Multiaddr[]
  /** One ping round trip to a connected or dialable `peer` in ms, recorded in `rtt`. */
  measureRtt(peer: PeerId, options?: AbortOptions): Promise<number>
  /**
   * Calls `listener` with each peer whose connection liveness aborted because it answered no ping
   * in time (a host gone silent: no FIN, no RST); returns a function that stops the calls.
   */
  onSilentPeer(listener: (peer: PeerId) => void): () => void
}

/**
 * What a host name may be: 1 to 253 characters (DNS's longest name), no spaces and no control
 * characters. A peer chooses what it announces, and its name becomes a Prometheus label (one
 * series each) and a line of hl-cli status: a megabyte or a terminal's escape codes are no name.
 */
// eslint-disable-next-line no-control-regex
const HOST_NAME = /^[^\s\u0000-\u001f\u007f-\u009f]{1,253}$/
const AGENT_HOST = /\bhost=(\S+)/

/** `host` when it may be announced as this host's name (HOST_NAME); else a ConfigError naming --hostname. */
export function checkHostName (host: string): string {
  if (!HOST_NAME.test(host)) {
    throw new ConfigError(`--hostname: ${JSON.stringify(host)} must be a name of 1 to 253 characters without spaces or control characters`)
  }
  return host
}

export function agentVersion (role: string, host: string): string {
  return `physarum/${PHYSARUM_VERSION} ${role} host=${host}`
}

/** The host name a physarum peer announced in its identify agent version, if any. */
export function hostNameFromAgent (agent: string | undefined): string | undefined {
  const host = agent == null || !agent.startsWith('physarum/') ? undefined : AGENT_HOST.exec(agent)?.[1]
  return host != null && HOST_NAME.test(host) ? host : undefined
}

function parseAddrs (flag: string, addrs: string[]): Multiaddr[] {
  return addrs.map(addr => {
    try {
      return multiaddr(addr)
    } catch (err) {
      throw new ConfigError(`${flag}: ${JSON.stringify(addr)} is not a multiaddr (${(err as Error).message})`)
    }
  })
}

export async function createPhysarumNode (init: PhysarumNodeInit): Promise<PhysarumNode> {
  useLazyWindowUpdates()
  const listen = parseAddrs('--listen', init.listen ?? ['/ip4/0.0.0.0/tcp/0']).map(String)
  const bootstrapAddrs = parseAddrs('--bootstrap', init.bootstrap ?? [])
  const host = checkHostName(init.hostName ?? hostname())
  const provideValidity = init.provideValiditySeconds ?? DEFAULT_PROVIDE_VALIDITY_S

  const libp2p = await createLibp2p({
    start: false,
    ...(init.privateKey == null ? {} : { privateKey: init.privateKey }),
    nodeInfo: { userAgent: agentVersion(init.role ?? 'node', host) },
    addresses: { listen, ...(init.announce == null || init.announce.length === 0 ? {} : { announce: parseAddrs('--announce', init.announce).map(String) }) },
    transports: [tcp()],
    connectionEncrypters: [withCheapFrameLengths(noise())],
    // the RTT meter pings through Yamux and must be the muxer's only pinger; liveness goes
    // through it (Yamux's keep-alive only logs a failed ping) and, like the keep-alive, pings
    // each new connection at once for the RTT that grows Yamux's receive windows
    streamMuxers: [yamux({ maxEarlyStreams: MAX_EARLY_STREAMS, enableKeepAlive: false })],
    ...(init.psk == null ? {} : { connectionProtector: pskProtector({ psk: init.psk }) }),
    peerStore: {
      ...(init.peerStore?.maxPeerAgeMs == null ? {} : { maxPeerAge: init.peerStore.maxPeerAgeMs }),
      ...(init.peerStore?.maxAddressAgeMs == null ? {} : { maxAddressAge: init.peerStore.maxAddressAgeMs })
    },
    connectionManager: { inboundUpgradeTimeout: INBOUND_UPGRADE_TIMEOUT_MS, maxIncomingPendingConnections: MAX_INCOMING_PENDING_CONNECTIONS, ...init.connectionLimits },
    // a ping stream per connection each time; Liveness checks with Yamux pings (docs/decisions.md)
    connectionMonitor: { enabled: false },
    ...(init.metricsRegistry == null
      ? {}
      : { metrics: prometheusMetrics({ registry: init.metricsRegistry, preserveExistingMetrics: true, collectDefaultMetrics: false }) }),
    services: {
      identify: identify(),
      // peers hear of a protocol handled or dropped (a sidecar that stops serving) within IDENTIFY_PUSH_DEBOUNCE_MS
      identifyPush: identifyPush({ debounce: IDENTIFY_PUSH_DEBOUNCE_MS }),
      // /ipfs/ping/1.0.0 for libp2p tools and peers that check liveness with streams
      ping: ping(),
      dht: kadDHT({
        protocol: KAD_PROTOCOL,
        clientMode: init.dhtMode === 'client',
        // the default mapper drops private and loopback addresses: a LAN overlay then finds
        // providers it cannot dial
        peerInfoMapper: passthroughMapper,
        // kad-dht 16 reads no `providers` options: records other peers stored expire only on the
        // reprovider's sweep (every `interval`), so they are served for up to validity + interval
        reprovide: { validity: provideValidity * 1000, threshold: Math.floor(provideValidity * 500), interval: Math.max(1000, Math.floor(provideValidity * 250)) }
      }),
      bootstrap: bootstrapper({ addrs: bootstrapAddrs }),
      discovery: discovery({
        reprovideIntervalMs: init.reprovideIntervalMs ?? Math.floor(provideValidity * 500),
        bootstrapPeers: bootstrapAddrs.flatMap(addr => addr.getComponents().find(c => c.name === 'p2p')?.value ?? [])
      }),
      peerStoreSweep: peerStoreSweep({ intervalMs: init.peerStore?.sweepIntervalMs ?? PEER_STORE_SWEEP_INTERVAL_MS })
    }
  })

  const listeners = new Set<Listener>()
  libp2p.addEventListener('transport:listening', (event) => { listeners.add(event.detail) })
  libp2p.addEventListener('transport:close', (event) => { listeners.delete(event.detail) })
  const rtt = new RttTable()
  const meter = new RttMeter(libp2p, rtt)
  const livenessInit = { intervalMs: LIVENESS_INTERVAL_MS, timeoutMs: LIVENESS_TIMEOUT_MS, ...init.liveness }
  const liveness = new Liveness(libp2p, meter, livenessInit)
  const { log } = init
  if (log != null) {
    liveness.onSilentPeer(peer => { log.warn({ peer: peer.toString(), timeoutMs: livenessInit.timeoutMs }, 'a peer answered no liveness ping in time: its connection was aborted') })
  }
  return {
    libp2p,
    peerId: libp2p.peerId,
    discovery: libp2p.services.discovery,
    rtt,
    async start (options) {
      await libp2p.start()
      liveness.start()
      if (init.dhtMode === 'server') {
        await libp2p.services.dht.setMode('server')
      }
      if (init.requireBootstrap === false) {
        return
      }
      try {
        await libp2p.services.bootstrap.waitForFirst(init.bootstrapTimeoutMs ?? DEFAULT_BOOTSTRAP_TIMEOUT_MS, options)
      } catch (err) {
        liveness.stop()
        await libp2p.stop()
        throw err
      }
    },
    async stop () {
      liveness.stop()
      await libp2p.stop()
    },
    multiaddrs () {
      return libp2p.getMultiaddrs()
    },
    listenAddrs () {
      return [...listeners].flatMap(listener => listener.getAddrs()).map(addr => addr.encapsulate(`/p2p/${libp2p.peerId.toString()}`))
    },
    async measureRtt (peer, options) {
      return await meter.measure(peer, options)
    },
    onSilentPeer (listener) {
      return liveness.onSilentPeer(listener)
    }
  }
}

export type { RttEntry }
