import { deadline } from './deadline.ts'
import { PingError } from './errors.ts'
import type { RttMeter } from './rtt-meter.ts'
import type { Connection, Libp2p, Logger, PeerId } from '@libp2p/interface'

export interface LivenessInit {
  /** How often each connection must show it is alive. */
  intervalMs: number
  /** How long a liveness ping may go unanswered before its connection is aborted. */
  timeoutMs: number
}

/**
 * Aborts connections whose peer stopped answering, with Yamux pings through the RTT meter. It
 * replaces libp2p's connection monitor, which opens an `/ipfs/ping/1.0.0` stream on every
 * connection each interval (docs/decisions.md). Every `intervalMs`, each open connection is
 * pinged once unless it answered a ping lately (the ping monitor's and the proxy's measurements
 * count); one whose ping stays unanswered for `timeoutMs` is aborted.
 *
 * A new connection is pinged at once. Yamux grows a stream's receive window only once its muxer
 * knows the connection's RTT, which only its own pings tell it, and with Yamux's keep-alive off
 * nothing else pings a connection this node does not measure: a sidecar receiving an upload from
 * a client proxy it never measured. One stream through a relay of 50 ms round trip moved
 * 4.2 MiB/s before the receiving node's first ping and 35 MiB/s after it.
 */
export class Liveness {
  readonly #libp2p: Libp2p
  readonly #meter: RttMeter
  readonly #init: LivenessInit
  readonly #log: Logger
  /** Connections with a liveness ping in flight. */
  readonly #checking = new WeakSet<Connection>()
  /** Told of each peer whose connection was aborted for a ping it did not answer. */
  readonly #silentListeners = new Set<(peer: PeerId) => void>()
  #timer?: NodeJS.Timeout
  #controller = new AbortController()

  constructor (libp2p: Libp2p, meter: RttMeter, init: LivenessInit) {
    this.#libp2p = libp2p
    this.#meter = meter
    this.#init = init
    this.#log = libp2p.logger.forComponent('physarum:liveness')
  }

  start (): void {
    this.#controller = new AbortController()
    this.#timer = setInterval(() => { this.check() }, this.#init.intervalMs)
    this.#timer.unref()
    this.#libp2p.addEventListener('connection:open', this.#onConnectionOpen)
  }

  stop (): void {
    clearInterval(this.#timer)
    this.#libp2p.removeEventListener('connection:open', this.#onConnectionOpen)
    this.#controller.abort()
  }

  readonly #onConnectionOpen = (event: CustomEvent<Connection>): void => {
    this.#check(event.detail)
  }

  /** Calls `listener` with each peer whose connection this aborts; returns what stops that. */
  onSilentPeer (listener: (peer: PeerId) => void): () => void {
    this.#silentListeners.add(listener)
    return () => { this.#silentListeners.delete(listener) }
  }

  /**
   * One round: pings every open connection that answered no ping in the last half interval (a
   * liveness ping answered just after the last round does not spare a connection this one).
   */
  check (): void {
    const quietSince = performance.now() - this.#init.intervalMs / 2
    for (const connection of this.#libp2p.getConnections()) {
      if ((this.#meter.answeredAt(connection) ?? -Infinity) <= quietSince) {
        this.#check(connection)
      }
    }
  }

  /** Pings `connection` unless a liveness ping is in flight on it; aborts it if unanswered. */
  #check (connection: Connection): void {
    if (connection.status !== 'open' || this.#checking.has(connection)) {
      return
    }
    this.#checking.add(connection)
    const { signal, clear } = deadline(this.#init.timeoutMs, this.#controller.signal)
    this.#meter.roundTrip(connection, { signal }).catch((err: Error) => {
      if (this.#controller.signal.aborted || connection.status !== 'open') {
        return
      }
      if (signal.aborted) {
        this.#log.error('%p answered no liveness ping within %d ms: aborting its connection %s', connection.remotePeer, this.#init.timeoutMs, connection.id)
        connection.abort(new PingError(`${connection.remotePeer.toString()} answered no liveness ping within ${this.#init.timeoutMs} ms`))
        for (const listener of this.#silentListeners) {
          try {
            listener(connection.remotePeer)
          } catch (listenerErr) {
            this.#log.error('a listener failed on silent peer %p: %s', connection.remotePeer, (listenerErr as Error).message)
          }
        }
      } else {
        this.#log('liveness ping to %p failed: %s', connection.remotePeer, err.message)
      }
    }).finally(() => {
      clear()
      this.#checking.delete(connection)
    })
  }
}
