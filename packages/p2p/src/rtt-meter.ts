import { raceSignal } from 'race-signal'
import { PingError } from './errors.ts'
import type { RttTable } from './rtt.ts'
import type { AbortOptions, Connection, Libp2p, PeerId } from '@libp2p/interface'

/** What the meter uses of @chainsafe/libp2p-yamux's muxer, which libp2p's Connection holds. */
interface PingingMuxer {
  ping(): Promise<number>
}

/**
 * Measures round-trip times with the Yamux ping frames of the connection to a peer, timed with
 * `performance.now()` (Yamux reports whole milliseconds, too coarse for a LAN or loopback). The
 * remote muxer answers a ping frame itself: one 12-byte frame each way, with no stream, protocol
 * negotiation or handler, cheaper than a round trip on a kept `/ipfs/ping/1.0.0` stream
 * (docs/decisions.md has the figures).
 *
 * A Yamux muxer has one ping in flight at a time and aborts its connection when an answer comes
 * for a ping it no longer waits for. So a ping is never given up: a caller whose signal aborts
 * stops waiting, the ping stays in flight until it is answered or the connection closes, and the
 * next measurement on that connection waits for it first. Nothing else may ping through the
 * muxer: physarum nodes turn Yamux's own keep-alive pings off and check liveness through here.
 *
 * So a measurement goes through the connection least likely to hold it up: one with no ping in
 * flight, the newest first, else the one whose ping was sent last. A peer whose host vanished
 * without a FIN or RST and came back with the same identity dials anew; its old connection, open
 * here until liveness aborts it (30 to 60 s), answers no ping, and every measurement that waited
 * behind the ping stuck on it failed.
 */
export class RttMeter {
  readonly #libp2p: Libp2p
  readonly #table: RttTable
  /**
   * By connection, the ping in flight on it: `settled` when it is answered or the connection
   * closes; `sentAt` its `performance.now()` time.
   */
  readonly #inFlight = new WeakMap<Connection, { settled: Promise<void>, sentAt: number }>()
  readonly #answeredAt = new WeakMap<Connection, number>()

  constructor (libp2p: Libp2p, table: RttTable) {
    this.#libp2p = libp2p
    this.#table = table
  }

  /** One round trip to `peer`, in milliseconds; recorded in the RTT table either way. */
  async measure (peer: PeerId, options: AbortOptions = {}): Promise<number> {
    const key = peer.toString()
    try {
      const connection = this.#connectionTo(peer) ?? await this.#libp2p.dial(peer, options)
      const ms = await this.roundTrip(connection, options)
      this.#table.record(key, ms)
      return ms
    } catch (err) {
      this.#table.recordFailure(key)
      throw err
    }
  }

  /** The open connection to `peer` to measure on (see the class doc), if any. */
  #connectionTo (peer: PeerId): Connection | undefined {
    let idle: Connection | undefined
    let pinging: Connection | undefined
    for (const connection of this.#libp2p.getConnections(peer)) {
      if (connection.status !== 'open') {
        continue
      }
      const ping = this.#inFlight.get(connection)
      if (ping == null) {
        if (idle == null || connection.timeline.open > idle.timeline.open) {
          idle = connection
        }
      } else if (pinging == null || ping.sentAt > this.#inFlight.get(pinging)!.sentAt) {
        pinging = connection
      }
    }
    return idle ?? pinging
  }

  /**
   * One round trip on `connection`, in milliseconds, sent once the ping in flight on it (if any)
   * was answered; not recorded in the RTT table.
   */
  async roundTrip (connection: Connection, options: AbortOptions = {}): Promise<number> {
    for (let earlier = this.#inFlight.get(connection); earlier != null; earlier = this.#inFlight.get(connection)) {
      await raceSignal(earlier.settled, options.signal)
    }
    return await raceSignal(this.#ping(connection), options.signal)
  }

  /** When a ping on `connection` was last answered (`performance.now()` time), if ever. */
  answeredAt (connection: Connection): number | undefined {
    return this.#answeredAt.get(connection)
  }

  #ping (connection: Connection): Promise<number> {
    const muxer = (connection as Connection & { muxer?: Partial<PingingMuxer> }).muxer
    if (typeof muxer?.ping !== 'function') {
      throw new PingError(`The connection to ${connection.remotePeer.toString()} has no Yamux muxer to ping through (multiplexer: ${connection.multiplexer ?? 'none'})`)
    }
    if (connection.status !== 'open') {
      throw new PingError(`The connection to ${connection.remotePeer.toString()} is ${connection.status}`)
    }
    const { promise, resolve, reject } = Promise.withResolvers<number>()
    const onClose = (): void => { reject(new PingError('The connection closed before the peer answered the ping')) }
    connection.addEventListener('close', onClose)
    const start = performance.now()
    muxer.ping().then(() => {
      const now = performance.now()
      this.#answeredAt.set(connection, now)
      resolve(now - start)
    }, reject)
    const settled = promise.then(() => {}, () => {}).finally(() => {
      connection.removeEventListener('close', onClose)
      this.#inFlight.delete(connection)
    })
    this.#inFlight.set(connection, { settled, sentAt: start })
    return promise
  }
}
