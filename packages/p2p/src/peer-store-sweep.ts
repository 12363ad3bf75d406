import type { ComponentLogger, Logger, PeerStore, Startable } from '@libp2p/interface'

export interface PeerStoreSweepInit {
  intervalMs: number
}

export interface PeerStoreSweepComponents {
  peerStore: PeerStore
  logger: ComponentLogger
}

/**
 * Drops the peer store's expired records (a peer not updated for its maxPeerAge, 6 h, and none of
 * its addresses observed for an hour) every `intervalMs`: libp2p deletes one only when it is read,
 * and nothing reads those of peers that left. Every instance's sidecar is a new peer id, so a
 * ping-monitor or an allocator that runs for months kept a record of each one it ever met.
 */
export class PeerStoreSweep implements Startable {
  readonly #components: PeerStoreSweepComponents
  readonly #log: Logger
  readonly #intervalMs: number
  #timer?: NodeJS.Timeout
  #sweeping = false

  constructor (components: PeerStoreSweepComponents, init: PeerStoreSweepInit) {
    this.#components = components
    this.#log = components.logger.forComponent('physarum:peer-store-sweep')
    this.#intervalMs = init.intervalMs
  }

  readonly [Symbol.toStringTag] = '@physarum/p2p/peer-store-sweep'

  start (): void {
    this.#timer = setInterval(() => { void this.#sweep() }, this.#intervalMs)
    this.#timer.unref()
  }

  stop (): void {
    clearInterval(this.#timer)
  }

  async #sweep (): Promise<void> {
    if (this.#sweeping) {
      return
    }
    this.#sweeping = true
    try {
      // reading every record deletes the expired ones as it meets them
      const kept = await this.#components.peerStore.all()
      this.#log('%d peer records kept', kept.length)
    } catch (err) {
      this.#log.error('sweeping the peer store failed: %s', (err as Error).message)
    } finally {
      this.#sweeping = false
    }
  }
}

export function peerStoreSweep (init: PeerStoreSweepInit): (components: PeerStoreSweepComponents) => PeerStoreSweep {
  return (components) => new PeerStoreSweep(components, init)
}
