import { Counter } from 'prom-client'
import { REFUSAL_LOG_INTERVAL_MS, REFUSAL_LOG_LINES } from './constants.ts'
import type { Logger } from '@physarum/p2p'
import type { Libp2p } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'
import type { Registry } from 'prom-client'

/** Which connection limit turned an inbound connection away, named by the flag that sets it. */
export type RefusalReason = 'max-pending' | 'max-pending-per-ip' | 'inbound-rate' | 'max-connections'
const REFUSAL_REASONS: RefusalReason[] = ['max-pending', 'max-pending-per-ip', 'inbound-rate', 'max-connections']

interface InboundConnection { remoteAddr: Multiaddr }

/** The parts of libp2p 3's DefaultConnectionManager read here: not public API. */
interface InternalConnectionManager {
  /** Called by the upgrader at the start of each inbound upgrade; true takes a pending slot. */
  acceptIncomingConnection(maConn: InboundConnection): boolean
  getConnections(): unknown[]
  /** Counts each host's inbound connections in the current second (--inbound-rate). */
  inboundConnectionRateLimiter?: { get(key: string): { consumedPoints: number } | undefined }
  incomingPendingConnections?: number
  maxIncomingPendingConnections?: number
  maxConnections?: number
}

/** The part of libp2p 3's Upgrader used here: its promise settles when the upgrade ends, either way. */
interface InternalUpgrader {
  upgradeInbound(maConn: InboundConnection, opts: unknown): Promise<void>
}

export interface RefusalWatchInit {
  log: Logger
  registry: Registry
  hostName: string
  limits: { maxConnections: number, inboundRate: number, maxPending: number, maxPendingPerIp: number }
  /** The window of the log lines' limits (default REFUSAL_LOG_INTERVAL_MS; tests shorten it). */
  logIntervalMs?: number
}

/** Addresses counted apart in the summary of the refusals left out of the log, at most. */
const MAX_COUNTED_ADDRESSES = 1_000

function remoteHostOf (maConn: InboundConnection): string {
  return maConn.remoteAddr.getComponents().find(c => c.name === 'ip4' || c.name === 'ip6')?.value ?? maConn.remoteAddr.toString()
}

/** Replaces `object[name]` with `replacement`; returns a function that puts the original back. */
function replaceMethod<T extends object, K extends keyof T> (object: T, name: K, replacement: T[K]): () => void {
  const own = Object.getOwnPropertyDescriptor(object, name)
  object[name] = replacement
  return () => {
    if (own != null) {
      Object.defineProperty(object, name, own)
    } else {
      // back to the class's method
      delete object[name]
    }
  }
}

/**
 * Counts every inbound connection libp2p's connection manager turns away because of a limit, which
 * libp2p itself only reports under DEBUG, and logs them (per REFUSAL_LOG_INTERVAL_MS, one line per
 * address and reason and REFUSAL_LOG_LINES in all, then one counting the rest); and adds the limit
 * libp2p lacks: at most
 * `maxPendingPerIp` of the connections being upgraded may come from one address, so that one host
 * opening connections that never finish their handshake cannot take every pending slot
 * (--max-pending) from the peers that hold the key. libp2p offers no event or hook for either,
 * so this wraps the connection manager's `acceptIncomingConnection` (the upgrader asks it at the
 * start of each inbound upgrade) and the upgrader's `upgradeInbound` (whose end, success or failure,
 * frees the address's slot); when that internal shape is missing it says so once and does
 * nothing. Returns a function that undoes the wrapping.
 */
export function watchRefusals (libp2p: Libp2p, init: RefusalWatchInit): () => void {
  let manager: InternalConnectionManager | undefined
  let upgrader: InternalUpgrader | undefined
  try {
    const components = (libp2p as unknown as { components?: { connectionManager?: InternalConnectionManager, upgrader?: InternalUpgrader } }).components
    manager = components?.connectionManager
    upgrader = components?.upgrader
  } catch {
    // the components proxy throws for a missing component: handled below
  }
  if (manager == null || typeof manager.acceptIncomingConnection !== 'function' || upgrader == null || typeof upgrader.upgradeInbound !== 'function') {
    init.log.warn('Cannot watch the connection manager of this libp2p version: refused connections are not logged and --max-pending-per-ip is not applied')
    return () => {}
  }
  const cm = manager
  const original = cm.acceptIncomingConnection.bind(cm)
  const originalUpgrade = upgrader.upgradeInbound.bind(upgrader)
  const refused = new Counter({
    name: 'physarum_connections_refused_total',
    help: 'Inbound connections turned away by a connection limit, by the flag that sets it',
    labelNames: ['host', 'reason'],
    registers: [init.registry]
  })
  // every series from the start (host is this monitor's name): increase() and rate() see the first
  // burst of refusals, which a series born with it would hide
  for (const reason of REFUSAL_REASONS) {
    refused.inc({ host: init.hostName, reason }, 0)
  }
  const logIntervalMs = init.logIntervalMs ?? REFUSAL_LOG_INTERVAL_MS
  /** By remote host and reason: when its last line was logged (performance.now()), and refusals since. */
  const lastLogged = new Map<string, { at: number, suppressed: number }>()
  /**
   * The window of REFUSAL_LOG_LINES lines (performance.now() time), its lines, and the refusals
   * left out of it, said in one line at its end.
   */
  let windowStart = -Infinity
  let lines = 0
  const leftOut = new Map<RefusalReason, number>()
  const leftOutFrom = new Set<string>()
  let summary: NodeJS.Timeout | undefined
  const summarize = (): void => {
    clearTimeout(summary)
    summary = undefined
    const count = [...leftOut.values()].reduce((sum, n) => sum + n, 0)
    const addresses = `${leftOutFrom.size}${leftOutFrom.size >= MAX_COUNTED_ADDRESSES ? ' or more' : ''}`
    init.log.warn({ leftOut: count, byReason: Object.fromEntries(leftOut), addresses },
      `refused ${count} more inbound connections from ${addresses} addresses without a line each (at most ${REFUSAL_LOG_LINES} lines per ${logIntervalMs / 1_000} s); physarum_connections_refused_total counts every one`)
    leftOut.clear()
    leftOutFrom.clear()
  }
  const { maxConnections, inboundRate, maxPending, maxPendingPerIp } = init.limits
  const explain: Record<RefusalReason, string> = {
    'max-pending': `${maxPending} inbound connections were already being set up (--max-pending)`,
    'max-pending-per-ip': `${maxPendingPerIp} inbound connections from this address were already being set up (--max-pending-per-ip)`,
    'inbound-rate': `more than ${inboundRate} inbound connections per second came from this host (--inbound-rate)`,
    'max-connections': `${maxConnections} connections are open (--max-connections)`
  }
  /** Upgrades under way per remote address, and the address each accepted connection counts under. */
  const pendingByHost = new Map<string, number>()
  const countedUnder = new WeakMap<InboundConnection, string>()

  const refuse = (maConn: InboundConnection, remoteHost: string, reason: RefusalReason): void => {
    refused.inc({ host: init.hostName, reason })
    const key = `${remoteHost} ${reason}`
    const now = performance.now()
    const last = lastLogged.get(key)
    if (last != null && now - last.at < logIntervalMs) {
      last.suppressed++
      return
    }
    if (now - windowStart >= logIntervalMs) {
      windowStart = now
      lines = 0
    }
    if (lines >= REFUSAL_LOG_LINES) {
      leftOut.set(reason, (leftOut.get(reason) ?? 0) + 1)
      if (leftOutFrom.size < MAX_COUNTED_ADDRESSES) {
        leftOutFrom.add(remoteHost)
      }
      // the process's sockets keep it alive, not this
      summary ??= setTimeout(summarize, windowStart + logIntervalMs - now).unref()
      return
    }
    lines++
    init.log.warn({ remoteAddr: maConn.remoteAddr.toString(), reason, alsoRefusedSinceLastLog: last?.suppressed ?? 0 },
      `refused an inbound connection: ${explain[reason]}`)
    lastLogged.set(key, { at: now, suppressed: 0 })
    if (lastLogged.size > 1_000) {
      lastLogged.delete(lastLogged.keys().next().value!)
    }
  }

  const restoreAccept = replaceMethod(cm, 'acceptIncomingConnection', (maConn) => {
    const remoteHost = remoteHostOf(maConn)
    const pendingFromHost = pendingByHost.get(remoteHost) ?? 0
    if (pendingFromHost >= maxPendingPerIp) {
      refuse(maConn, remoteHost, 'max-pending-per-ip')
      return false
    }
    const pendingFull = cm.incomingPendingConnections != null && cm.incomingPendingConnections >= (cm.maxIncomingPendingConnections ?? Infinity)
    const full = cm.getConnections().length >= (cm.maxConnections ?? Infinity)
    const accepted = original(maConn)
    if (accepted) {
      pendingByHost.set(remoteHost, pendingFromHost + 1)
      countedUnder.set(maConn, remoteHost)
    } else {
      // the rate is checked before the connection count: past it, a full node refused for the rate
      const overRate = (cm.inboundConnectionRateLimiter?.get(remoteHost)?.consumedPoints ?? 0) > inboundRate
      refuse(maConn, remoteHost, pendingFull ? 'max-pending' : overRate || !full ? 'inbound-rate' : 'max-connections')
    }
    return accepted
  })
  const restoreUpgrade = replaceMethod(upgrader, 'upgradeInbound', async (maConn, opts) => {
    try {
      await originalUpgrade(maConn, opts)
    } finally {
      const remoteHost = countedUnder.get(maConn)
      if (remoteHost != null) {
        countedUnder.delete(maConn)
        const left = (pendingByHost.get(remoteHost) ?? 1) - 1
        if (left === 0) {
          pendingByHost.delete(remoteHost)
        } else {
          pendingByHost.set(remoteHost, left)
        }
      }
    }
  })
  return () => {
    restoreAccept()
    restoreUpgrade()
    if (summary != null) {
      summarize()
    }
  }
}
