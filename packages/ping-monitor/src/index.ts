/**
 * @packageDocumentation
 *
 * The ping monitor: the overlay's bootstrap node (DHT server, well-known TCP port 4001), which pings
 * every connected peer once per interval and exposes the round-trip times on /metrics for
 * Prometheus (`physarum_ping_rtt_seconds{host, target_peer, target_host}` and friends) and as JSON
 * on GET /peers. `createPingMonitor` builds the pinging part from the components it needs;
 * `startPingMonitorDaemon` wires a whole daemon (node, monitor, metrics server), as the CLI does.
 */

import { DEFAULT_CONCURRENCY, DEFAULT_FORGET_AFTER_MS, DEFAULT_INTERVAL_MS, DEFAULT_MAX_SPACING_MS, DEFAULT_PING_TIMEOUT_MS } from './constants.ts'
import { PingMonitor } from './monitor.ts'
import type { Logger, RttTable } from '@physarum/p2p'
import type { AbortOptions, Libp2p, PeerId } from '@libp2p/interface'
import type { Registry } from 'prom-client'

export interface PingMonitorInit {
  /** The monitor's own name: the constant `host` label of its metrics. */
  hostName: string
  /** How often every peer is pinged. */
  intervalMs: number
  /** A ping not answered within this counts as a failure. */
  pingTimeoutMs: number
  /**
   * Most pings holding a slot at once; retries to failing peers hold a quarter at most, and a ping
   * unanswered for an interval gives its slot up (see PingMonitor).
   */
  concurrency: number
  /** A peer neither connected nor answering for this long is forgotten, with its series. */
  forgetAfterMs: number
  /**
   * While a round is behind, its pings start in parallel at most this far apart (0: all at once,
   * up to `concurrency`).
   */
  maxSpacingMs: number
}

/** `PingMonitorInit` with defaults for everything but the host name. */
export type PingMonitorOptions = Partial<PingMonitorInit> & Pick<PingMonitorInit, 'hostName'>

/** What the monitor needs of a physarum node (a `PhysarumNode` has it all). */
export interface MonitoredNode {
  libp2p: Pick<Libp2p, 'getPeers' | 'getConnections' | 'peerStore' | 'addEventListener' | 'removeEventListener'>
  rtt: Pick<RttTable, 'get' | 'delete'>
  measureRtt(peer: PeerId, options?: AbortOptions): Promise<number>
}

export interface PingMonitorComponents {
  node: MonitoredNode
  /** The process's one Registry: the monitor's metrics are added to it. */
  registry: Registry
  logger: Logger
}

/** One peer in GET /peers. Times are ISO 8601; RTTs in milliseconds, null before the first answer. */
export interface PeerReport {
  peerId: string
  /** The host name the peer announced, or "unknown". */
  host: string
  /** The addresses the peer listens on, as far as this node knows them. */
  addresses: string[]
  /** The remote addresses of the open connections to the peer. */
  connectedVia: string[]
  connected: boolean
  lastRttMs: number | null
  smoothedRttMs: number | null
  samples: number
  failures: number
  consecutiveFailures: number
  /** Last time the peer was connected or answered a ping. */
  lastSeen: string
  /** Last time the peer answered a ping. */
  lastAnswer: string | null
}

/** The monitor's part of GET /healthz. */
export interface PingMonitorHealth {
  /** A round had all its pings started within the last 3 intervals and a ping timeout. */
  ok: boolean
  rounds: number
  /** Pings queued or in flight. */
  pending: number
  /** When a round last had all its pings started (ISO 8601), null before the first. */
  caughtUpAt: string | null
}

/** Builds a ping monitor; it pings nothing before `start()`. */
export function createPingMonitor (components: PingMonitorComponents, init: PingMonitorOptions): PingMonitor {
  return new PingMonitor(components, {
    intervalMs: DEFAULT_INTERVAL_MS,
    pingTimeoutMs: DEFAULT_PING_TIMEOUT_MS,
    concurrency: DEFAULT_CONCURRENCY,
    forgetAfterMs: DEFAULT_FORGET_AFTER_MS,
    maxSpacingMs: DEFAULT_MAX_SPACING_MS,
    ...init
  })
}

export { PingMonitor }
export { startPingMonitorDaemon } from './daemon.ts'
export type { PingMonitorDaemon, PingMonitorDaemonConfig, ConnectionLimitFlags } from './daemon.ts'
export * from './constants.ts'
