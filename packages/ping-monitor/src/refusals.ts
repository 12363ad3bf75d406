import { Counter } from 'prom-client'
import { REFUSAL_LOG_INTERVAL_MS } from './constants.ts'
import type { Logger } from '@physarum/p2p'
import type { Libp2p } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'
import type { Registry } from 'prom-client'

/** Which connection limit turned an inbound connection away, named by the flag that sets it. */
export type RefusalReason = 'max-pending' | 'inbound-rate' | 'max-connections'

/** The parts of libp2p 3's DefaultConnectionManager read here: not public API. */
interface InternalConnectionManager {
  acceptIncomingConnection(maConn: { remoteAddr: Multiaddr }): boolean
  getConnections(): unknown[]
  /** Counts each host's inbound connections in the current second (--inbound-rate). */
  inboundConnectionRateLimiter?: { get(key: string): { consumedPoints: number } | undefined }
  incomingPendingConnections?: number
  maxIncomingPendingConnections?: number
  maxConnections?: number
}

export interface RefusalWatchInit {
  log: Logger
  registry: Registry
  hostName: string
  limits: { maxConnections: number, inboundRate: number, maxPending: number }
}

/**
 * Logs (and counts) every inbound connection libp2p's connection manager turns away because of a
 * limit, which libp2p itself only reports under DEBUG. libp2p offers no event for it, so this wraps
 * the connection manager's `acceptIncomingConnection`; when that internal shape is missing it says
 * so once and does nothing. Returns a function that undoes the wrapping.
 */
export function watchRefusals (libp2p: Libp2p, init: RefusalWatchInit): () => void {
  let manager: InternalConnectionManager | undefined
  try {
    manager = (libp2p as unknown as { components?: { connectionManager?: InternalConnectionManager } }).components?.connectionManager
  } catch {
    // the components proxy throws for a missing component: handled below
  }
  if (manager == null || typeof manager.acceptIncomingConnection !== 'function') {
    init.log.warn('Cannot watch the connection manager of this libp2p version: refused connections are not logged')
    return () => {}
  }
  const cm = manager
  const original = cm.acceptIncomingConnection.bind(cm)
  const ownMethod = Object.getOwnPropertyDescriptor(cm, 'acceptIncomingConnection')
  const refused = new Counter({
    name: 'physarum_connections_refused_total',
    help: 'Inbound connections turned away by a connection limit, by the flag that sets it',
    labelNames: ['host', 'reason'],
    registers: [init.registry]
  })
  const lastLogged = new Map<string, { at: number, suppressed: number }>()
  const { maxConnections, inboundRate, maxPending } = init.limits
  const explain: Record<RefusalReason, string> = {
    'max-pending': `${maxPending} inbound connections were already being set up (--max-pending)`,
    'inbound-rate': `more than ${inboundRate} inbound connections per second came from this host (--inbound-rate)`,
    'max-connections': `${maxConnections} connections are open (--max-connections)`
  }

  cm.acceptIncomingConnection = function (maConn) {
    const pendingFull = cm.incomingPendingConnections != null && cm.incomingPendingConnections >= (cm.maxIncomingPendingConnections ?? Infinity)
    const full = cm.getConnections().length >= (cm.maxConnections ?? Infinity)
    const accepted = original(maConn)
    if (!accepted) {
      const remoteHost = maConn.remoteAddr.getComponents().find(c => c.name === 'ip4' || c.name === 'ip6')?.value ?? maConn.remoteAddr.toString()
      // the rate is checked before the connection count: past it, a full node refused for the rate
      const overRate = (cm.inboundConnectionRateLimiter?.get(remoteHost)?.consumedPoints ?? 0) > inboundRate
      const reason: RefusalReason = pendingFull ? 'max-pending' : overRate || !full ? 'inbound-rate' : 'max-connections'
      refused.inc({ host: init.hostName, reason })
      const key = `${remoteHost} ${reason}`
      const now = Date.now()
      const last = lastLogged.get(key)
      if (last != null && now - last.at < REFUSAL_LOG_INTERVAL_MS) {
        last.suppressed++
      } else {
        init.log.warn({ remoteAddr: maConn.remoteAddr.toString(), reason, alsoRefusedSinceLastLog: last?.suppressed ?? 0 },
          `refused an inbound connection: ${explain[reason]}`)
        lastLogged.set(key, { at: now, suppressed: 0 })
        if (lastLogged.size > 1_000) {
          lastLogged.delete(lastLogged.keys().next().value!)
        }
      }
    }
    return accepted
  }
  return () => {
    if (ownMethod != null) {
      Object.defineProperty(cm, 'acceptIncomingConnection', ownMethod)
    } else {
      // back to the class's method
      delete (cm as Partial<InternalConnectionManager>).acceptIncomingConnection
    }
  }
}
