import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { sha256 } from 'multiformats/hashes/sha2'
import { DEFAULT_REPROVIDE_INTERVAL_MS } from './constants.ts'
import type { AbortOptions, ComponentLogger, ContentRouting, Libp2pEvents, Logger, PeerId, PeerInfo, Startable, TypedEventTarget } from '@libp2p/interface'
import type { ConnectionManager } from '@libp2p/interface-internal'

/** The DHT key of a topic: CIDv1(raw, sha256(UTF-8 topic)). */
export async function topicCid (topic: string): Promise<CID> {
  return CID.createV1(raw.code, await sha256.digest(new TextEncoder().encode(topic)))
}

export interface DiscoveryInit {
  reprovideIntervalMs?: number
}

export interface DiscoveryComponents {
  peerId: PeerId
  contentRouting: ContentRouting
  connectionManager: ConnectionManager
  events: TypedEventTarget<Libp2pEvents>
  logger: ComponentLogger
}

/**
 * Topics this node provides through DHT provider records. Each is provided again on an interval
 * and whenever the node comes back from having no connection at all (a bootstrap that dropped).
 */
export class Discovery implements Startable {
  readonly #components: DiscoveryComponents
  readonly #log: Logger
  readonly #intervalMs: number
  readonly #topics = new Map<string, CID>()
  #timer?: NodeJS.Timeout
  #controller = new AbortController()

  constructor (components: DiscoveryComponents, init: DiscoveryInit) {
    this.#components = components
    this.#log = components.logger.forComponent('physarum:discovery')
    this.#intervalMs = init.reprovideIntervalMs ?? DEFAULT_REPROVIDE_INTERVAL_MS
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

  private readonly onPeerConnect = (): void => {
    // the first connection after having none: records may have expired meanwhile
    if (this.#topics.size > 0 && this.#components.connectionManager.getConnections().length === 1) {
      this.#provideAll('reconnect')
    }
  }

  /** The topics this node provides now. */
  topics (): string[] {
    return [...this.#topics.keys()]
  }

  /**
   * Starts providing `topic`: the local record at once, the network's when the returned promise
   * resolves. It is provided again after every interval and reconnect until `stopProviding`.
   */
  async provide (topic: string, options?: AbortOptions): Promise<void> {
    const cid = await topicCid(topic)
    this.#topics.set(topic, cid)
    await this.#components.contentRouting.provide(cid, { signal: anySignal(this.#controller.signal, options?.signal) })
  }

  /** Stops providing `topic` from here; records other peers hold expire on their own. */
  async stopProviding (topic: string, options?: AbortOptions): Promise<void> {
    const cid = this.#topics.get(topic) ?? await topicCid(topic)
    this.#topics.delete(topic)
    await this.#components.contentRouting.cancelReprovide(cid, options)
  }

  /** The peers providing `topic`, each once, as they are found. */
  async * findProviders (topic: string, options?: AbortOptions): AsyncGenerator<PeerInfo> {
    const seen = new Set<string>()
    const cid = await topicCid(topic)
    for await (const provider of this.#components.contentRouting.findProviders(cid, options)) {
      const id = provider.id.toString()
      if (!seen.has(id)) {
        seen.add(id)
        yield provider
      }
    }
  }

  #provideAll (reason: string): void {
    for (const [topic, cid] of this.#topics) {
      this.#components.contentRouting.provide(cid, { signal: this.#controller.signal }).then(
        () => { this.#log('provided %s (%s)', topic, reason) },
        (err: Error) => { this.#log.error('providing %s (%s) failed: %s', topic, reason, err.message) }
      )
    }
  }
}

function anySignal (a: AbortSignal, b?: AbortSignal): AbortSignal {
  return b == null ? a : AbortSignal.any([a, b])
}

export function discovery (init: DiscoveryInit = {}): (components: DiscoveryComponents) => Discovery {
  return (components) => new Discovery(components, init)
}
