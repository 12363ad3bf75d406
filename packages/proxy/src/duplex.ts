import { Duplex } from 'node:stream'
import { sendBounded } from '@physarum/p2p'
import type { Stream, StreamCloseEvent, StreamMessageEvent } from '@libp2p/interface'

/** Bytes one direction may hold in the libp2p stream's write buffer before the writer waits. */
export const DEFAULT_MAX_BUFFERED_BYTES = 256 * 1024
/**
 * A paused yamux stream still receives what the peer's send window allows (it grows up to
 * 16 MiB), and libp2p resets a stream whose read buffer passes its limit (4 MiB by default):
 * the limit must be above the window, or a slow reader gets its stream reset instead of slowed.
 */
export const STREAM_READ_BUFFER_BYTES = 17 * 1024 * 1024

export interface StreamDuplexOptions {
  maxBufferedBytes?: number
  /**
   * Keep the writable side open after the remote half-closed (default: true, a byte pipe keeps
   * TCP's half-close). An HTTP client wants false, like a net.Socket: when the instance ends,
   * the stream ends too and a connection pool drops it.
   */
  allowHalfOpen?: boolean
}

/**
 * A libp2p stream as a Node Duplex, with backpressure both ways: reading pauses the stream while
 * the consumer does not read (yamux then stops the sender), writing waits while more than
 * `maxBufferedBytes` sit in the stream's write buffer. `end()` half-closes the stream; the
 * readable side ends when the remote half-closes. undici's HTTP client runs over it (a pool's
 * `connect`), and a socket can be piped to and from it.
 */
export class StreamDuplex extends Duplex {
  readonly stream: Stream
  readonly #maxBuffered: number
  /**
   * Like net.Socket's: the bytes received so far. undici puts it in the error of a connection
   * that ended or closed under a request, which tells a request that met a kept stream closing
   * (bytes received before it) from one whose new stream failed.
   */
  bytesRead = 0

  constructor (stream: Stream, options: StreamDuplexOptions = {}) {
    super({ allowHalfOpen: options.allowHalfOpen ?? true })
    this.stream = stream
    this.#maxBuffered = options.maxBufferedBytes ?? DEFAULT_MAX_BUFFERED_BYTES
    stream.maxReadBufferLength = Math.max(stream.maxReadBufferLength, STREAM_READ_BUFFER_BYTES)
    stream.addEventListener('message', this.#onMessage)
    stream.addEventListener('end', this.#onEnd)
    stream.addEventListener('close', this.#onClose)
    if (stream.readableEnded) {
      this.push(null)
    }
  }

  readonly #onMessage = (evt: StreamMessageEvent): void => {
    const data = evt.data
    this.bytesRead += data.byteLength
    let more = true
    if (data instanceof Uint8Array) {
      more = this.push(data)
    } else {
      for (const buf of data) {
        more = this.push(buf)
      }
    }
    if (!more && this.stream.status === 'open') {
      this.stream.pause()
    }
  }

  readonly #onEnd = (): void => {
    this.push(null)
  }

  readonly #onClose = (evt: StreamCloseEvent): void => {
    if (evt.error != null) {
      this.destroy(evt.error)
    } else {
      this.push(null)
    }
  }

  override _read (): void {
    if (this.stream.readStatus === 'paused') {
      this.stream.resume()
    }
  }

  override _write (chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    sendBounded(this.stream, chunk, { maxBufferedBytes: this.#maxBuffered }).then(() => { callback() }, callback)
  }

  override _final (callback: (error?: Error | null) => void): void {
    this.stream.close().then(() => { callback() }, callback)
  }

  override _destroy (error: Error | null, callback: (error?: Error | null) => void): void {
    this.stream.removeEventListener('message', this.#onMessage)
    this.stream.removeEventListener('end', this.#onEnd)
    this.stream.removeEventListener('close', this.#onClose)
    if (this.stream.status === 'open' || this.stream.status === 'closing') {
      if (error != null) {
        this.stream.abort(error)
      } else {
        this.stream.close().catch((err: Error) => { this.stream.abort(err) })
      }
    }
    callback(error)
  }
}
