import { setTimeout as sleep } from 'node:timers/promises'
import { raceSignal } from 'race-signal'
import { BOOTSTRAP_BACKOFF_MAX_MS, BOOTSTRAP_BACKOFF_MIN_MS, BOOTSTRAP_STABLE_MS } from './constants.ts'
import { BootstrapUnreachableError } from './errors.ts'
import type { AbortOptions, ComponentLogger, Libp2pEvents, Logger, PeerId, Startable, TypedEventTarget } from '@libp2p/interface'
import type { ConnectionManager } from '@libp2p/interface-internal'
import type { Multiaddr } from '@multiformats/multiaddr'

export interface BootstrapperInit {
  addrs: Multiaddr[]
  backoffMinMs?: number
  backoffMaxMs?: number
}

export interface BootstrapperComponents {
  peerId: PeerId
  connectionManager: ConnectionManager
  events: TypedEventTarget<Libp2pEvents>
  logger: ComponentLogger
}

export interface BootstrapStatus {
  addr: string
  connected: boolean
  attempts: number
  lastError?: string
}

interface Target {
  addr: Multiaddr
  status: BootstrapStatus
  /** Whether the last failed dial failed as it does against a peer with another key. */
  otherKey: boolean
}

const OTHER_KEY_HINT = 'Check the bootstrap address, and that the pre-shared key is the overlay\'s: with another key no connection can finish'

/**
 * `err` with what to check when the bootstraps may hold another pre-shared key, said once: the
 * bootstrapper adds it when its dials failed as they do then, hl-cli to every such error of its
 * own (its --timeout may end before the first dial does).
 */
export function withOtherKeyHint (err: BootstrapUnreachableError): BootstrapUnreachableError {
  return err.message.endsWith(OTHER_KEY_HINT) ? err : new BootstrapUnreachableError(`${err.message}. ${OTHER_KEY_HINT}`)
}

/**
 * Whether a dial failed as it does against a peer with another pre-shared key. The protector
 * cannot tell (the nonces are random either way): the Noise handshake after it reads garbage, and
 * whichever side notices first fails it or resets the connection; a peer without a key sends no
 * nonce at all. libp2p's upgrader keeps only the message of a failed handshake, and the one
 * failure there with the right key, another peer id at the address, says so itself.
 */
function looksLikeOtherKey (err: unknown): boolean {
  const { name, message, code, syscall } = err as Partial<NodeJS.ErrnoException>
  if (name === 'PskHandshakeTimeoutError' || (code === 'ECONNRESET' && syscall === 'read')) {
    return true
  }
  return name === 'EncryptionFailedError' && !/does not match expected remote identity key/.test(message ?? '')
}

/**
 * Keeps this node connected to its bootstrap peers: dials all of them in parallel, redials with
 * a bounded exponential backoff (with jitter) while one is unreachable, and forever after one drops.
 */
export class Bootstrapper implements Startable {
  readonly #components: BootstrapperComponents
  readonly #targets: Target[]
  readonly #backoffMinMs: number
  readonly #backoffMaxMs: number
  readonly #log: Logger
  #controller = new AbortController()
  #firstConnected = Promise.withResolvers<void>()

  constructor (components: BootstrapperComponents, init: BootstrapperInit) {
    this.#components = components
    this.#log = components.logger.forComponent('physarum:bootstrap')
    this.#backoffMinMs = init.backoffMinMs ?? BOOTSTRAP_BACKOFF_MIN_MS
    this.#backoffMaxMs = init.backoffMaxMs ?? BOOTSTRAP_BACKOFF_MAX_MS
    const self = components.peerId.toString()
    this.#targets = init.addrs
      .filter(addr => addr.getComponents().find(c => c.name === 'p2p')?.value !== self)
      .map(addr => ({ addr, status: { addr: addr.toString(), connected: false, attempts: 0 }, otherKey: false }))
  }

  readonly [Symbol.toStringTag] = '@physarum/p2p/bootstrapper'

  start (): void {
    this.#controller = new AbortController()
    this.#firstConnected = Promise.withResolvers<void>()
    // a rejection nobody awaits (no bootstraps, or stop before any connected) must not crash
    this.#firstConnected.promise.catch(() => {})
    if (this.#targets.length === 0) {
      this.#firstConnected.resolve()
    }
  }

  /** Dials once the transports have started: a dial before that fails ("Not started"). */
  afterStart (): void {
    for (const target of this.#targets) {
      void this.#keepConnected(target, this.#controller.signal)
    }
  }

  stop (): void {
    this.#controller.abort()
    this.#firstConnected.reject(new BootstrapUnreachableError('The node stopped before reaching a bootstrap peer'))
  }

  status (): BootstrapStatus[] {
    return this.#targets.map(target => ({ ...target.status }))
  }

  /**
   * Resolves once any bootstrap is connected; fails naming every address and its last error, and
   * what to check when those look like another pre-shared key. `signal` ends the wait early (a
   * stop during a daemon's start), with its reason.
   */
  async waitForFirst (timeoutMs: number, options: AbortOptions = {}): Promise<void> {
    const timeout = AbortSignal.timeout(timeoutMs)
    const timedOut = new Promise<never>((_resolve, reject) => {
      timeout.addEventListener('abort', () => {
        const detail = this.#targets.map(t => `${t.status.addr} (${t.status.lastError ?? 'no answer yet'})`).join('; ')
        const err = new BootstrapUnreachableError(`No bootstrap peer could be reached within ${timeoutMs} ms: ${detail}`)
        reject(this.#targets.some(t => t.otherKey) ? withOtherKeyHint(err) : err)
      })
    })
    timedOut.catch(() => {})
    await raceSignal(Promise.race([this.#firstConnected.promise, timedOut]), options.signal)
  }

  async #keepConnected (target: Target, signal: AbortSignal): Promise<void> {
    let backoff = this.#backoffMinMs
    while (!signal.aborted) {
      target.status.attempts++
      try {
        const connection = await this.#components.connectionManager.openConnection(target.addr, { signal })
        const connectedAt = Date.now()
        target.status.connected = true
        delete target.status.lastError
        target.otherKey = false
        this.#log('connected to bootstrap %a', target.addr)
        this.#firstConnected.resolve()
        await this.#disconnected(connection.remotePeer, signal)
        target.status.connected = false
        if (signal.aborted) {
          return
        }
        // a connection that lasted starts the redials from the shortest wait; one that the
        // bootstrap dropped at once (it prunes, or is overloaded) backs off like a failed dial,
        // or every peer would handshake with it several times a second
        if (Date.now() - connectedAt >= BOOTSTRAP_STABLE_MS) {
          backoff = this.#backoffMinMs
        }
        this.#log('lost bootstrap %a, redialing', target.addr)
      } catch (err) {
        if (signal.aborted) {
          return
        }
        target.status.lastError = (err as Error).message
        target.otherKey = looksLikeOtherKey(err)
        this.#log('bootstrap %a unreachable (%s), next try in %d ms', target.addr, target.status.lastError, backoff)
      }
      try {
        await sleep(backoff * (0.75 + Math.random() / 2), undefined, { signal })
      } catch {
        return
      }
      backoff = Math.min(backoff * 2, this.#backoffMaxMs)
    }
  }

  async #disconnected (peer: PeerId, signal: AbortSignal): Promise<void> {
    const events = this.#components.events
    if (this.#components.connectionManager.getConnections(peer).length === 0) {
      return
    }
    await new Promise<void>(resolve => {
      const onDisconnect = (evt: CustomEvent<PeerId>): void => {
        if (evt.detail.equals(peer)) {
          done()
        }
      }
      const done = (): void => {
        events.removeEventListener('peer:disconnect', onDisconnect)
        signal.removeEventListener('abort', done)
        resolve()
      }
      events.addEventListener('peer:disconnect', onDisconnect)
      signal.addEventListener('abort', done)
    })
  }
}

export function bootstrapper (init: BootstrapperInit): (components: BootstrapperComponents) => Bootstrapper {
  return (components) => new Bootstrapper(components, init)
}
