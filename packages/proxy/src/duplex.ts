import { Duplex } from 'node:stream'
import { writeBufferBelow } from '@physarum/p2p'
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
    this.bytesRead += evt.data.byteLength
    pauseWhenFull(this.stream, evt, buf => this.push(buf))
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
    try {
      this.stream.send(chunk)
    } catch (err) {
      callback(err as Error)
      return
    }
    if (this.stream.writeBufferLength <= this.#maxBuffered) {
      callback()
    } else {
      writeBufferBelow(this.stream, { maxBufferedBytes: this.#maxBuffered }).then(() => { callback() }, callback)
    }
  }

  override _final (callback: (error?: Error | null) => void): void {
    this.stream.close().then(() => { callback() }, callback)
  }

  override _destroy (error: Error | null, callback: (error?: Error | null) => void): void {
    this.stream.removeEventListener('message', this.#onMessage)
    this.stream.removeEventListener('end', this.#onEnd)
    this.stream.removeEventListener('close', this.#onClose)
    if (isOpen(this.stream)) {
      if (error != null) {
        this.stream.abort(error)
      } else {
        this.stream.close().catch((err: Error) => { this.stream.abort(err) })
      }
    }
    callback(error)
  }
}

/** Whether the stream can still carry bytes (its writable end may be closing). */
export function isOpen (stream: Stream): boolean {
  return stream.status === 'open' || stream.status === 'closing'
}

/** Hands a message's buffers to `take`, and pauses the stream if `take` said it holds enough. */
function pauseWhenFull (stream: Stream, evt: StreamMessageEvent, take: (buf: Uint8Array) => boolean): void {
  let more = true
  if (evt.data instanceof Uint8Array) {
    more = take(evt.data)
  } else {
    for (const buf of evt.data) {
      more = take(buf) && more
    }
  }
  if (!more && stream.status === 'open') {
    stream.pause()
  }
}

/**
 * Joins a socket and a libp2p stream as a byte pipe, with backpressure both ways and no Node
 * stream between them (a StreamDuplex and two pipes cost the sidecar about 7% more CPU per
 * request: bench/README.md). The stream pauses while the socket's buffer is full; the socket
 * pauses while more than `maxBufferedBytes` wait in the stream's. Each side's end half-closes the
 * other, as TCP does. Once the socket's peer has ended, a write to it that fails (the peer closed
 * for good, or the socket does not allow half-open connections) only drops what the stream sends
 * from then on: everything the peer sent still goes out. `onDone` is called once: with no error
 * when the socket has ended and closed and the stream's writable end closed after everything the
 * socket sent; with the error that broke either side, both torn down.
 */
export function joinSocket (socket: Duplex, stream: Stream, onDone: (err?: Error) => void, maxBufferedBytes = DEFAULT_MAX_BUFFERED_BYTES): void {
  stream.maxReadBufferLength = Math.max(stream.maxReadBufferLength, STREAM_READ_BUFFER_BYTES)
  let done = false
  const finish = (err?: Error): void => {
    if (done) {
      return
    }
    done = true
    socket.destroy()
    if (isOpen(stream)) {
      if (err != null) {
        stream.abort(err)
      } else {
        stream.close().catch((closeErr: Error) => { stream.abort(closeErr) })
      }
    }
    onDone(err)
  }
  let ended = false
  let sent = false
  socket.on('error', (err) => {
    // its peer sent everything and reads no more: what the stream still sends has no reader
    if (!ended) {
      finish(err)
    }
  })
  stream.addEventListener('close', (evt) => {
    if (evt.error != null) {
      finish(evt.error)
    } else {
      socket.end()
    }
  })

  // the stream's bytes to the socket
  stream.addEventListener('message', (evt) => {
    pauseWhenFull(stream, evt, buf => socket.writable ? socket.write(buf) : true)
  })
  socket.on('drain', () => {
    if (stream.readStatus === 'paused') {
      stream.resume()
    }
  })
  stream.addEventListener('end', () => { socket.end() })
  if (stream.readableEnded) {
    socket.end()
  }

  // the socket's bytes to the stream
  socket.on('data', (chunk: Buffer) => {
    try {
      stream.send(chunk)
    } catch (err) {
      finish(err as Error)
      return
    }
    if (stream.writeBufferLength > maxBufferedBytes) {
      socket.pause()
      writeBufferBelow(stream, { maxBufferedBytes }).then(() => { socket.resume() }, finish)
    }
  })
  socket.on('end', () => {
    ended = true
    stream.close().then(() => {
      sent = true
      if (socket.closed) {
        finish()
      }
    }, finish)
  })
  socket.on('close', () => {
    if (!ended) {
      finish(new Error('The connection closed before it ended'))
    } else if (sent) {
      finish()
    }
  })
}
