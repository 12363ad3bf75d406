import { InvalidParametersError } from '@libp2p/interface'
import { AbstractMultiaddrConnection, byteStream } from '@libp2p/utils'
import { xsalsa20 } from '@noble/ciphers/salsa.js'
import { Uint8ArrayList } from 'uint8arraylist'
import { KeystreamExhaustedError } from './errors.ts'
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
const ZERO_BLOCK = new Uint8Array(BLOCK)

/**
 * One direction's keystream. It keeps its position across chunks of any size: a chunk that ends
 * inside a block leaves the rest of that block's keystream for the next chunk.
 */
export class Keystream {
  readonly #key: Uint8Array
  readonly #nonce: Uint8Array
  #nextBlock = 0
  readonly #spare = new Uint8Array(BLOCK)
  #spareOffset = BLOCK

  constructor (key: Uint8Array, nonce: Uint8Array) {
    this.#key = key
    this.#nonce = nonce
  }

  /** XORs `data` with the next `data.byteLength` bytes of keystream, into new buffers. */
  xor (data: Uint8Array): Uint8ArrayList {
    const out = new Uint8ArrayList()
    let offset = 0
    if (this.#spareOffset < BLOCK && data.byteLength > 0) {
      const n = Math.min(BLOCK - this.#spareOffset, data.byteLength)
      const head = new Uint8Array(n)
      for (let i = 0; i < n; i++) {
        head[i] = data[i]! ^ this.#spare[this.#spareOffset + i]!
      }
      this.#spareOffset += n
      offset = n
      out.append(head)
    }
    const rest = data.byteLength - offset
    if (rest === 0) {
      return out
    }
    const blocks = Math.ceil(rest / BLOCK)
    if (this.#nextBlock + blocks > MAX_BLOCKS) {
      throw new KeystreamExhaustedError()
    }
    // noble's fast path needs 4-byte aligned input: a chunk that starts inside a block, or a
    // subarray at an odd offset, would halve the speed. Copying into a fresh (aligned) buffer and
    // encrypting in place costs far less than that.
    const body = new Uint8Array(rest)
    body.set(data.subarray(offset))
    out.append(xsalsa20(this.#key, this.#nonce, body, body, this.#nextBlock))
    const tail = rest % BLOCK
    if (tail === 0) {
      this.#nextBlock += blocks
    } else {
      // the last block was used in part: keep its keystream for the next chunk
      const last = this.#nextBlock + blocks - 1
      xsalsa20(this.#key, this.#nonce, ZERO_BLOCK, this.#spare, last)
      this.#spareOffset = tail
      this.#nextBlock = last + 1
    }
    return out
  }
}

class ProtectedConnection extends AbstractMultiaddrConnection {
  readonly #inner: MultiaddrConnection
  readonly #inbound: Keystream
  readonly #outbound: Keystream

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
        const data = evt.data
        if (data instanceof Uint8Array) {
          this.onData(this.#inbound.xor(data))
        } else {
          for (const chunk of data) {
            this.onData(this.#inbound.xor(chunk))
          }
        }
      } catch (err) {
        this.abort(err as Error)
      }
    })
    inner.addEventListener('drain', () => {
      this.onMuxerDrain()
    })
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

  sendData (data: Uint8ArrayList): SendResult {
    const encrypted = new Uint8ArrayList()
    for (const chunk of data) {
      encrypted.append(this.#outbound.xor(chunk))
    }
    return { sentBytes: data.byteLength, canSendMore: this.#inner.send(encrypted) }
  }

  async sendClose (options?: AbortOptions): Promise<void> {
    await this.#inner.close(options)
  }

  sendReset (err: Error): void {
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
  /** The nonce exchange must finish within this many milliseconds (default 5000). */
  handshakeTimeoutMs?: number
}

class PskConnectionProtector implements ConnectionProtector {
  readonly #key: Uint8Array
  readonly #handshakeTimeoutMs: number
  readonly [Symbol.toStringTag] = '@physarum/p2p/psk-protector'

  constructor (init: PskProtectorInit) {
    this.#key = init.psk.bytes()
    this.#handshakeTimeoutMs = init.handshakeTimeoutMs ?? 5_000
  }

  async protect (connection: MessageStream, options?: AbortOptions): Promise<MessageStream> {
    if (!('remoteAddr' in connection)) {
      throw new InvalidParametersError('The PSK protector needs a multiaddr connection')
    }
    const signal = options?.signal ?? AbortSignal.timeout(this.#handshakeTimeoutMs)
    const localNonce = crypto.getRandomValues(new Uint8Array(NONCE_LENGTH))
    const bytes = byteStream(connection as MultiaddrConnection)
    const [remoteNonce] = await Promise.all([
      bytes.read({ bytes: NONCE_LENGTH, signal }),
      bytes.write(localNonce, { signal })
    ])
    return new ProtectedConnection(bytes.unwrap(), this.#key, localNonce, remoteNonce.subarray())
  }
}

/** The connection protector factory for libp2p's `connectionProtector` option. */
export function pskProtector (init: PskProtectorInit): () => ConnectionProtector {
  return () => new PskConnectionProtector(init)
}
