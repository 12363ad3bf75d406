import { createHash } from 'node:crypto'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { create as createDigest } from 'multiformats/hashes/digest'
import { sha256 } from 'multiformats/hashes/sha2'
import { DEFAULT_REPROVIDE_INTERVAL_MS } from './constants.ts'
import type { AbortOptions, ComponentLogger, ContentRouting, Libp2pEvents, Logger, PeerId, PeerInfo, Startable, TypedEventTarget } from '@libp2p/interface'
import type { ConnectionManager } from '@libp2p/interface-internal'

/**
 * The DHT key of a topic: CIDv1(raw, sha256(UTF-8 topic)). Synchronous: provide() records its
 * topic before it awaits anything, so a stopProviding() right after it always finds the topic.
 */
export function topicCid (topic: string): CID {
  return CID.createV1(raw.code, createDigest(sha256.code, createHash('sha256').update(topic, 'utf8').digest()))
}

export interface DiscoveryInit {
  reprovideIntervalMs?: number
  /** Peer ids of the bootstraps: every reconnect to one provides the topics again. */
  bootstrapPeers?: string[]
}

export interface DiscoveryComponents {
  peerId: PeerId
  contentRouting: ContentRouting
  connectionManager: ConnectionManager
  events: TypedEventTarget<Libp2pEvents>
  logger: ComponentLogger
}

/** A topic this node provides; `stopped` aborts its provides in flight when it stops. */
interface ProvidedTopic {
  cid: CID
  stopped: AbortController
}

/**
 * Topics this node provides through DHT provider records. Each is provided again on an interval,
 * whenever the node comes back from having no connection at all, and whenever it connects to a
 * bootstrap again: a bootstrap that restarted kept no records, and a node that stayed connected
 * to other peers meanwhile (a sidecar to its client proxies) would otherwise be found again only
 * after its next interval.
 * Stopping a topic aborts its provides in flight: a provide (a DHT round, about a second, longer
 * on a slow path) that went on sent ADD_PROVIDER after the drain that stopped it, renewing the
 * records that were to expire.
 */
export class Discovery implements Startable {
  readonly #components: DiscoveryComponents
  readonly #log: Logger
  readonly #intervalMs: number
  readonly #topics = new Map<string, ProvidedTopic>()
  readonly #bootstrapPeers: ReadonlySet<string>
  #timer?: NodeJS.Timeout
  #controller = new AbortController()

  constructor (components: DiscoveryComponents, init: DiscoveryInit) {
    this.#components = components
    this.#log = components.logger.forComponent('physarum:discovery')
    this.#intervalMs = init.reprovideIntervalMs ?? DEFAULT_REPROVIDE_INTERVAL_MS
    this.#bootstrapPeers = new Set(init.bootstrapPeers)
  }

  readonly [Symbol.toStringTag] = '@physarum/p2p/discovery'

  start (): void {
    this.#controller = new AbortController()
    this.#timer = setInterval(() => { this.#provideAll('interval') }, this.#intervalMs)
    this.#timer.unref()
    this.#components.events.addEventListener('peer:connect', this.onPeerConnect)
  }

  stop (): void {
    clearInterval(this.#timer)
    this.#controller.abort()
    this.#components.events.removeEventListener('peer:connect', this.onPeerConnect)
  }

  private readonly onPeerConnect = (event: CustomEvent<PeerId>): void => {
    if (this.#topics.size === 0) {
      return
    }
    // the first connection after having none: records may have expired meanwhile
    if (this.#components.connectionManager.getConnections().length === 1) {
      this.#provideAll('reconnect')
    } else if (this.#bootstrapPeers.has(event.detail.toString())) {
      // the bootstrapper backs off from one that keeps dropping this node, so this stays rare
      this.#provideAll('bootstrap reconnect')
    }
  }

  /** The topics this node provides now. */
  topics (): string[] {
    return [...this.#topics.keys()]
  }

  /**
   * Starts providing `topic`: the local record at once, the network's when the returned promise
   * resolves. It is provided again after every interval and reconnect until `stopProviding`,
   * which also ends this promise early, without an error: the caller asked for that.
   */
  async provide (topic: string, options?: AbortOptions): Promise<void> {
    let provided = this.#topics.get(topic)
    if (provided == null) {
      provided = { cid: topicCid(topic), stopped: new AbortController() }
      this.#topics.set(topic, provided)
    }
    const { stopped } = provided
    try {
      await this.#components.contentRouting.provide(provided.cid, { signal: AbortSignal.any([this.#controller.signal, stopped.signal, ...(options?.signal == null ? [] : [options.signal])]) })
    } catch (err) {
      if (!stopped.signal.aborted) {
        throw err
      }
    }
  }

  /**
   * Stops providing `topic` from here, aborting its provides in flight; records other peers hold
   * expire on their own.
   */
  async stopProviding (topic: string, options?: AbortOptions): Promise<void> {
    const provided = this.#topics.get(topic)
    this.#topics.delete(topic)
    provided?.stopped.abort()
    await this.#components.contentRouting.cancelReprovide(provided?.cid ?? topicCid(topic), options)
  }

  /** The peers providing `topic`, each once, as they are found. */
  async * findProviders (topic: string, options?: AbortOptions): AsyncGenerator<PeerInfo> {
    const seen = new Set<string>()
    for await (const provider of this.#components.contentRouting.findProviders(topicCid(topic), options)) {
      const id = provider.id.toString()
      if (!seen.has(id)) {
        seen.add(id)
        yield provider
      }
    }
  }

  #provideAll (reason: string): void {
    for (const [topic, { cid, stopped }] of this.#topics) {
      this.#components.contentRouting.provide(cid, { signal: AbortSignal.any([this.#controller.signal, stopped.signal]) }).then(
        () => { this.#log('provided %s (%s)', topic, reason) },
        (err: Error) => {
          if (stopped.signal.aborted) {
            this.#log('stopped providing %s (%s) before it was provided', topic, reason)
          } else {
            this.#log.error('providing %s (%s) failed: %s', topic, reason, err.message)
          }
        }
      )
    }
  }
}

export function discovery (init: DiscoveryInit = {}): (components: DiscoveryComponents) => Discovery {
  return (components) => new Discovery(components, init)
}
