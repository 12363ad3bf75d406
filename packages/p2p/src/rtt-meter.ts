import { Uint8ArrayList } from 'uint8arraylist'
import { PING_STREAM_LIFETIME_MS } from './constants.ts'
import type { RttTable } from './rtt.ts'
import type { AbortOptions, Libp2p, PeerId, Stream, StreamMessageEvent } from '@libp2p/interface'

export const PING_PROTOCOL = '/ipfs/ping/1.0.0'
const PING_LENGTH = 32
// physarum nodes answer on a ping stream for PING_STREAM_LIFETIME_MS; other js-libp2p nodes
// for 10 s, after which the stream fails once and is replaced
const STREAM_MAX_AGE_MS = PING_STREAM_LIFETIME_MS - 10_000

interface PingStream {
  stream: Stream
  openedAt: number
  queue: Promise<unknown>
}

/**
 * Measures round-trip times with the standard ping protocol on a kept-open stream, timed with
 * `performance.now()`: libp2p's own ping opens a new stream for each probe (negotiation included)
 * and reports whole milliseconds, too coarse for a LAN or loopback.
 */
export class RttMeter {
  readonly #libp2p: Libp2p
  readonly #table: RttTable
  readonly #streams = new Map<string, Promise<PingStream>>()

  constructor (libp2p: Libp2p, table: RttTable) {
    this.#libp2p = libp2p
    this.#table = table
  }

  /** One round trip to `peer`, in milliseconds; recorded in the RTT table either way. */
  async measure (peer: PeerId, options: AbortOptions = {}): Promise<number> {
    const key = peer.toString()
    try {
      const { ping, reused } = await this.#stream(peer, options)
      let ms: number
      try {
        ms = await this.#roundTrip(ping, options)
      } catch (err) {
        // a kept stream the remote closed in the meantime is no failure of the peer: try a new one
        if (!reused || options.signal?.aborted === true) {
          throw err
        }
        this.#drop(key)
        ms = await this.#roundTrip((await this.#stream(peer, options)).ping, options)
      }
      this.#table.record(key, ms)
      return ms
    } catch (err) {
      this.#drop(key)
      this.#table.recordFailure(key)
      throw err
    }
  }

  async #roundTrip (ping: PingStream, options: AbortOptions): Promise<number> {
    const result = ping.queue.then(async () => await roundTrip(ping.stream, options))
    ping.queue = result.catch(() => {})
    return await result
  }

  /** Closes every kept stream. */
  close (): void {
    for (const key of [...this.#streams.keys()]) {
      this.#drop(key)
    }
  }

  async #stream (peer: PeerId, options: AbortOptions): Promise<{ ping: PingStream, reused: boolean }> {
    const key = peer.toString()
    const existing = this.#streams.get(key)
    if (existing != null) {
      const ping = await existing
      if (ping.stream.status === 'open' && performance.now() - ping.openedAt < STREAM_MAX_AGE_MS) {
        return { ping, reused: true }
      }
      this.#drop(key)
    }
    const opening = (async () => {
      const stream = await this.#libp2p.dialProtocol(peer, PING_PROTOCOL, options)
      // the first round trip pays for protocol negotiation: not a sample
      await roundTrip(stream, options)
      return { stream, openedAt: performance.now(), queue: Promise.resolve() }
    })()
    this.#streams.set(key, opening)
    opening.catch(() => { if (this.#streams.get(key) === opening) this.#streams.delete(key) })
    return { ping: await opening, reused: false }
  }

  #drop (key: string): void {
    const ping = this.#streams.get(key)
    this.#streams.delete(key)
    ping?.then(p => { p.stream.abort(new Error('ping stream retired')) }, () => {})
  }
}

async function roundTrip (stream: Stream, options: AbortOptions): Promise<number> {
  const probe = crypto.getRandomValues(new Uint8Array(PING_LENGTH))
  const received = new Uint8ArrayList()
  const { promise, resolve, reject } = Promise.withResolvers<number>()
  const start = performance.now()
  const onMessage = (evt: StreamMessageEvent): void => {
    received.append(evt.data)
    if (received.byteLength >= PING_LENGTH) {
      const elapsed = performance.now() - start
      const echoed = received.subarray(0, PING_LENGTH)
      if (received.byteLength === PING_LENGTH && echoed.every((b, i) => b === probe[i])) {
        resolve(elapsed)
      } else {
        reject(new Error('The peer answered the ping with other bytes'))
      }
    }
  }
  const onClose = (): void => { reject(new Error('The ping stream closed before the answer')) }
  const onAbort = (): void => { reject(options.signal?.reason instanceof Error ? options.signal.reason : new Error('aborted')) }
  stream.addEventListener('message', onMessage)
  stream.addEventListener('close', onClose)
  options.signal?.addEventListener('abort', onAbort)
  try {
    stream.send(probe)
    return await promise
  } finally {
    stream.removeEventListener('message', onMessage)
    stream.removeEventListener('close', onClose)
    options.signal?.removeEventListener('abort', onAbort)
  }
}
