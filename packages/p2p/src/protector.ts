import { InvalidParametersError } from '@libp2p/interface'
import { AbstractMultiaddrConnection, byteStream } from '@libp2p/utils'
import { xsalsa20 } from '@noble/ciphers/salsa.js'
import { PSK_HANDSHAKE_TIMEOUT_MS } from './constants.ts'
import { KeystreamExhaustedError, PskHandshakeTimeoutError } from './errors.ts'
import { Uint8ArrayList } from 'uint8arraylist'
import type { PreSharedKey } from './psk.ts'
import type { AbortOptions, ConnectionProtector, MessageStream, MultiaddrConnection } from '@libp2p/interface'
import type { SendResult } from '@libp2p/utils'

/**
 * The private-network connection protector: the scheme of go-libp2p's and js-libp2p's pnet (each
 * side sends a random 24-byte nonce, then XORs everything it sends with the XSalsa20 keystream of
 * (PSK, its own nonce)), on @noble/ciphers' pure-JS XSalsa20.
 *
 * It replaces @libp2p/pnet, whose WebAssembly cipher package shares one memory among all
 * ciphers and aborts connections with "WebAssembly.Memory.grow(): Maximum memory size exceeded"
 * after tens of megabytes (docs/decisions.md).
 */

export const NONCE_LENGTH = 24
const BLOCK = 64
// noble's XSalsa20 takes a 32-bit block counter: one nonce covers 2^32 blocks of 64 bytes.
const MAX_BLOCKS = 2 ** 32 - 1
/** Messages queued for one socket write are written at once when they reach this many bytes. */
const FLUSH_BYTES = 64 * 1024

/**
 * One direction's keystream. It keeps its position across chunks of any size: a chunk that ends
 * inside a block leaves the rest of that block for the next chunk.
 */
export class Keystream {
  readonly #key: Uint8Array
  readonly #nonce: Uint8Array
  /** The block the next byte is XORed with, and the byte's offset in it. */
  #block = 0
  #offset = 0

  constructor (key: Uint8Array, nonce: Uint8Array) {
    this.#key = key
    this.#nonce = nonce
  }

  /**
   * XORs `data` (all of its chunks) with the next `data.byteLength` bytes of keystream, into one
   * new buffer: a message goes to the socket in one write, not one per chunk.
   */
  xor (data: Uint8Array | Uint8ArrayList): Uint8Array {
    // The data is placed at its offset in the current block, so that the buffer starts on a block
    // boundary: one call covers every block, the partial first block's keystream recomputed (64
    // bytes of work) instead of kept, and noble's fast path gets the 4-byte aligned input it needs.
    // Buffer's pool hands out 8-byte aligned, off-heap slices, cheaper than a small Uint8Array
    // whose ArrayBuffer V8 must materialize when the next layer reads `.buffer`.
    const pad = this.#offset
    const end = pad + data.byteLength
    if (this.#block + Math.ceil(end / BLOCK) > MAX_BLOCKS) {
      throw new KeystreamExhaustedError()
    }
    const buf = Buffer.allocUnsafe(end)
    if (data instanceof Uint8Array) {
      buf.set(data, pad)
    } else {
      let at = pad
      for (const chunk of data) {
        buf.set(chunk, at)
        at += chunk.byteLength
      }
    }
    xsalsa20(this.#key, this.#nonce, buf, buf, this.#block)
    this.#block += Math.floor(end / BLOCK)
    this.#offset = end % BLOCK
    return buf.subarray(pad)
  }
}

class ProtectedConnection extends AbstractMultiaddrConnection {
  readonly #inner: MultiaddrConnection
  readonly #inbound: Keystream
  readonly #outbound: Keystream
  /** Messages sent in this turn of the event loop after its first one, not yet written. */
  readonly #queued = new Uint8ArrayList()
  /** Set once a turn has written its first message: the end of the turn writes the queue. */
  #flushing: NodeJS.Immediate | undefined

  constructor (inner: MultiaddrConnection, key: Uint8Array, localNonce: Uint8Array, remoteNonce: Uint8Array) {
    super({
      log: inner.log.newScope('psk'),
      remoteAddr: inner.remoteAddr,
      direction: inner.direction
    })
    this.#inner = inner
    this.#inbound = new Keystream(key, remoteNonce)
    this.#outbound = new Keystream(key, localNonce)

    inner.addEventListener('message', (evt) => {
      try {
        this.onData(this.#inbound.xor(evt.data))
      } catch (err) {
        this.abort(err as Error)
      }
    })
    inner.addEventListener('drain', () => {
      this.onMuxerDrain()
    })
    // libp2p closes a connection by closing its muxer and then the transport's connection, this
    // one's inner, not this one: what the turn queued (the muxer's last frames, the ends of its
    // streams, their last data) would be dropped, and the remote would see the socket end instead
    const closeInner = inner.close.bind(inner)
    inner.close = async (options?: AbortOptions): Promise<void> => {
      if (inner.status === 'open') {
        this.#flushQueued()
      }
      await closeInner(options)
    }
    inner.addEventListener('close', (evt) => {
      if (evt.error == null) {
        this.onTransportClosed()
      } else if (evt.local) {
        this.abort(evt.error)
      } else {
        this.onRemoteReset()
      }
    })
  }

  /**
   * The first message of a turn of the event loop goes out at once; what the connection's streams
   * send after it in the same turn is queued and goes out in one XOR and one socket write once
   * the turn's I/O callbacks have run (or at once past FLUSH_BYTES). A lone request pays no
   * delay, a busy connection one write per turn instead of one per message.
   */
  sendData (data: Uint8ArrayList): SendResult {
    let canSendMore: boolean
    if (this.#flushing == null) {
      // nothing is queued: the turn's first message goes straight to the socket
      canSendMore = this.#inner.send(this.#outbound.xor(data))
    } else {
      this.#queued.append(data)
      if (this.#queued.byteLength < FLUSH_BYTES) {
        return { sentBytes: data.byteLength, canSendMore: !this.#inner.writableNeedsDrain }
      }
      canSendMore = this.#flush()
    }
    this.#flushing = setImmediate(this.#flushQueued)
    return { sentBytes: data.byteLength, canSendMore }
  }

  readonly #flushQueued = (): void => {
    try {
      this.#flush()
    } catch (err) {
      this.abort(err as Error)
    }
  }

  /** Writes what is queued; false when the socket wants a drain first. */
  #flush (): boolean {
    clearImmediate(this.#flushing)
    this.#flushing = undefined
    if (this.#queued.byteLength === 0) {
      return !this.#inner.writableNeedsDrain
    }
    const encrypted = this.#outbound.xor(this.#queued)
    this.#queued.consume(this.#queued.byteLength)
    return this.#inner.send(encrypted)
  }

  async sendClose (options?: AbortOptions): Promise<void> {
    // the inner close writes what is queued first (see the constructor)
    await this.#inner.close(options)
  }

  sendReset (err: Error): void {
    clearImmediate(this.#flushing)
    this.#flushing = undefined
    this.#queued.consume(this.#queued.byteLength)
    this.#inner.abort(err)
  }

  sendPause (): void {
    this.#inner.pause()
  }

  sendResume (): void {
    this.#inner.resume()
  }
}

export interface PskProtectorInit {
  psk: PreSharedKey
  /**
   * The nonce exchange must finish within this many milliseconds (default 3000), whatever longer
   * deadline the caller gives (libp2p's upgrader always gives its own).
   */
  handshakeTimeoutMs?: number
}

class PskConnectionProtector implements ConnectionProtector {
  readonly #key: Uint8Array
  readonly #handshakeTimeoutMs: number
  readonly [Symbol.toStringTag] = '@physarum/p2p/psk-protector'

  constructor (init: PskProtectorInit) {
    this.#key = init.psk.bytes()
    this.#handshakeTimeoutMs = init.handshakeTimeoutMs ?? PSK_HANDSHAKE_TIMEOUT_MS
  }

  async protect (connection: MessageStream, options?: AbortOptions): Promise<MessageStream> {
    if (!('remoteAddr' in connection)) {
      throw new InvalidParametersError('The PSK protector needs a multiaddr connection')
    }
    // the caller's signal alone would let a silent socket hold an upgrade slot for libp2p's whole
    // upgrade timeout
    const timeout = AbortSignal.timeout(this.#handshakeTimeoutMs)
    const signal = options?.signal == null ? timeout : AbortSignal.any([options.signal, timeout])
    const localNonce = crypto.getRandomValues(new Uint8Array(NONCE_LENGTH))
    const bytes = byteStream(connection as MultiaddrConnection)
    const [remoteNonce] = await Promise.all([
      bytes.read({ bytes: NONCE_LENGTH, signal }),
      bytes.write(localNonce, { signal })
    ]).catch((err: unknown) => {
      if (timeout.aborted && options?.signal?.aborted !== true) {
        throw new PskHandshakeTimeoutError(`${String(connection.remoteAddr)} sent no PSK handshake within ${this.#handshakeTimeoutMs} ms: it is not a physarum node, or not one that answers`)
      }
      throw err
    })
    return new ProtectedConnection(bytes.unwrap(), this.#key, localNonce, remoteNonce.subarray())
  }
}

/** The connection protector factory for libp2p's `connectionProtector` option. */
export function pskProtector (init: PskProtectorInit): () => ConnectionProtector {
  return () => new PskConnectionProtector(init)
}
