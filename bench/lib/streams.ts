import { cpuSeconds } from './stats.ts'
import type { MessageStreamEvents, Stream } from '@libp2p/interface'
import type { Socket } from 'node:net'

/**
 * The two benchmark protocols and both of their ends, for libp2p streams and for raw Node
 * sockets. Both sink ends answer the same way: once the sender has closed its writing end, the
 * sink writes back how many bytes it counted (8 bytes, big-endian) and closes, so the sender's
 * clock runs from its first byte sent to the sink's acknowledgement of the last byte received.
 */

export const SINK_PROTOCOL = '/bench/sink/1.0.0'
export const ECHO_PROTOCOL = '/bench/echo/1.0.0'

const ACK_LENGTH = 8

function ack (count: number): Uint8Array {
  const out = new Uint8Array(ACK_LENGTH)
  new DataView(out.buffer).setBigUint64(0, BigInt(count))
  return out
}

function readAck (bytes: Uint8Array): number {
  return Number(new DataView(bytes.buffer, bytes.byteOffset, ACK_LENGTH).getBigUint64(0))
}

// ---------------------------------------------------------------- libp2p, serving side

/** Counts the bytes of one stream and acknowledges the count once the sender closes. */
export function serveSink (stream: Stream): void {
  let received = 0
  stream.addEventListener('message', (evt) => {
    received += evt.data.byteLength
  })
  stream.addEventListener('remoteCloseWrite', () => {
    try {
      stream.send(ack(received))
      stream.close().catch((err: Error) => { stream.abort(err) })
    } catch (err) {
      stream.abort(err as Error)
    }
  }, { once: true })
}

/** Sends every chunk back as it arrives (the messages are small: no backpressure needed). */
export function serveEcho (stream: Stream): void {
  stream.addEventListener('message', (evt) => {
    try {
      stream.send(evt.data)
    } catch (err) {
      stream.abort(err as Error)
    }
  })
  stream.addEventListener('remoteCloseWrite', () => {
    stream.close().catch((err: Error) => { stream.abort(err) })
  }, { once: true })
}

// ---------------------------------------------------------------- results

export interface BulkResult {
  bytes: number
  /** From the first byte sent to the sink's acknowledgement. */
  seconds: number
  /** Process-wide CPU time (both ends, every thread) during the transfer. */
  cpuSeconds: number
  /** How often send()/write() said "stop" (returned false). */
  sendFalse: number
  /** How often the sender waited for the stream to drain. */
  waits: number
  /** The largest write buffer the sender saw right after a send(). */
  maxWriteBuffer: number
  /** send() returned true although the write buffer was already past the sender's bound. */
  trueOverBound: number
}

export interface BulkOptions {
  chunk: Uint8Array
  /** The sender waits for a drain whenever more than this many bytes are buffered. */
  maxBuffered: number
  signal: AbortSignal
}

// ---------------------------------------------------------------- libp2p, sending side

type WaitEvent = keyof Pick<MessageStreamEvents, 'drain' | 'idle' | 'close' | 'message'>

/** Resolves at the next of `events` on `stream` (a fresh listener each time). */
async function nextEvent (stream: Stream, events: readonly WaitEvent[], signal: AbortSignal): Promise<void> {
  signal.throwIfAborted()
  await new Promise<void>((resolve, reject) => {
    const done = (): void => {
      cleanup()
      resolve()
    }
    const aborted = (): void => {
      cleanup()
      reject(signal.reason as Error)
    }
    const cleanup = (): void => {
      for (const event of events) {
        stream.removeEventListener(event, done)
      }
      signal.removeEventListener('abort', aborted)
    }
    for (const event of events) {
      stream.addEventListener(event, done)
    }
    signal.addEventListener('abort', aborted)
  })
}

/** Collects the first `length` bytes the stream receives. */
async function receiveBytes (stream: Stream, length: number, signal: AbortSignal): Promise<Uint8Array> {
  const out = new Uint8Array(length)
  let got = 0
  return await new Promise<Uint8Array>((resolve, reject) => {
    const onMessage = (evt: MessageStreamEvents['message']): void => {
      for (const chunk of evt.data instanceof Uint8Array ? [evt.data] : evt.data) {
        const n = Math.min(chunk.byteLength, length - got)
        out.set(chunk.subarray(0, n), got)
        got += n
      }
      if (got >= length) {
        cleanup()
        resolve(out)
      }
    }
    const onClose = (): void => {
      cleanup()
      reject(new Error(`stream closed after ${got} of ${length} bytes`))
    }
    const aborted = (): void => {
      cleanup()
      reject(signal.reason as Error)
    }
    const cleanup = (): void => {
      stream.removeEventListener('message', onMessage)
      stream.removeEventListener('close', onClose)
      signal.removeEventListener('abort', aborted)
    }
    stream.addEventListener('message', onMessage)
    stream.addEventListener('close', onClose)
    signal.addEventListener('abort', aborted)
  })
}

/**
 * Sends `bytes` bytes on a fresh sink stream in `chunk`-sized pieces and bounds its own
 * buffering: after each send() it waits for 'drain' while the stream says it needs one or while
 * more than `maxBuffered` bytes sit in the stream's write buffer. It does not use
 * `stream.onDrain()`: in @libp2p/utils 7.4.1 that promise is created once and never replaced, so
 * after the first drain it resolves at once and a sender relying on it buffers without bound.
 */
export async function bulkSendStream (stream: Stream, bytes: number, options: BulkOptions): Promise<BulkResult> {
  const { chunk, maxBuffered, signal } = options
  const acked = receiveBytes(stream, ACK_LENGTH, signal)
  acked.catch(() => {})
  const result: BulkResult = { bytes, seconds: 0, cpuSeconds: 0, sendFalse: 0, waits: 0, maxWriteBuffer: 0, trueOverBound: 0 }
  const cpu0 = cpuSeconds()
  const t0 = performance.now()
  let sent = 0
  while (sent < bytes) {
    const piece = bytes - sent >= chunk.byteLength ? chunk : chunk.subarray(0, bytes - sent)
    const ok = stream.send(piece)
    sent += piece.byteLength
    const buffered = stream.writeBufferLength
    if (buffered > result.maxWriteBuffer) {
      result.maxWriteBuffer = buffered
    }
    if (!ok) {
      result.sendFalse++
    } else if (buffered > maxBuffered) {
      result.trueOverBound++
    }
    while (stream.writableNeedsDrain || stream.writeBufferLength > maxBuffered) {
      if (stream.status !== 'open') {
        throw new Error(`sink stream is ${stream.status} after ${sent} bytes`)
      }
      result.waits++
      await nextEvent(stream, ['drain', 'idle', 'close'], signal)
    }
  }
  await stream.close({ signal })
  const count = readAck(await acked)
  result.seconds = (performance.now() - t0) / 1000
  result.cpuSeconds = cpuSeconds() - cpu0
  if (count !== bytes) {
    throw new Error(`the sink counted ${count} bytes of ${bytes}`)
  }
  return result
}

// ---------------------------------------------------------------- raw TCP

/** Counts one socket's bytes, then acknowledges the count (the socket must allow half-open). */
export function serveSocketSink (socket: Socket): void {
  let received = 0
  socket.on('data', (data: Buffer) => {
    received += data.byteLength
  })
  socket.once('end', () => {
    socket.end(ack(received))
  })
  socket.on('error', () => { socket.destroy() })
}

export function serveSocketEcho (socket: Socket): void {
  socket.setNoDelay(true)
  socket.on('data', (data: Buffer) => {
    socket.write(data)
  })
  socket.once('end', () => { socket.end() })
  socket.on('error', () => { socket.destroy() })
}

/** The raw TCP counterpart of `bulkSendStream`: write() backpressure, then end() and the ack. */
export async function bulkSendSocket (socket: Socket, bytes: number, options: BulkOptions): Promise<BulkResult> {
  const { chunk, maxBuffered, signal } = options
  const acked = new Promise<Uint8Array>((resolve, reject) => {
    const parts: Buffer[] = []
    socket.on('data', (data: Buffer) => { parts.push(data) })
    socket.once('end', () => { resolve(Buffer.concat(parts)) })
    socket.once('error', reject)
    signal.addEventListener('abort', () => { reject(signal.reason as Error) }, { once: true })
  })
  acked.catch(() => {})
  const result: BulkResult = { bytes, seconds: 0, cpuSeconds: 0, sendFalse: 0, waits: 0, maxWriteBuffer: 0, trueOverBound: 0 }
  const cpu0 = cpuSeconds()
  const t0 = performance.now()
  let sent = 0
  while (sent < bytes) {
    const piece = bytes - sent >= chunk.byteLength ? chunk : chunk.subarray(0, bytes - sent)
    const ok = socket.write(piece)
    sent += piece.byteLength
    if (socket.writableLength > result.maxWriteBuffer) {
      result.maxWriteBuffer = socket.writableLength
    }
    if (!ok) {
      result.sendFalse++
    } else if (socket.writableLength > maxBuffered) {
      result.trueOverBound++
    }
    if (!ok || socket.writableLength > maxBuffered) {
      result.waits++
      signal.throwIfAborted()
      await new Promise<void>((resolve, reject) => {
        const onDrain = (): void => {
          socket.off('close', onClose)
          resolve()
        }
        const onClose = (): void => {
          socket.off('drain', onDrain)
          reject(new Error(`socket closed after ${sent} bytes`))
        }
        socket.once('drain', onDrain)
        socket.once('close', onClose)
      })
    }
  }
  socket.end()
  const count = readAck(await acked)
  result.seconds = (performance.now() - t0) / 1000
  result.cpuSeconds = cpuSeconds() - cpu0
  if (count !== bytes) {
    throw new Error(`the sink counted ${count} bytes of ${bytes}`)
  }
  return result
}

// ---------------------------------------------------------------- round trips

/**
 * Times request/echo round trips on one warm channel: send `message`, wait until as many bytes
 * came back. `attach` registers the byte counter on the channel's incoming data.
 */
export class RoundTripper {
  readonly #send: (message: Uint8Array) => void
  #expected = 0
  #got = 0
  #waiter: PromiseWithResolvers<void> | undefined

  constructor (send: (message: Uint8Array) => void) {
    this.#send = send
  }

  /** Call with the size of each chunk the channel receives. */
  received (byteLength: number): void {
    this.#got += byteLength
    if (this.#waiter != null && this.#got >= this.#expected) {
      const waiter = this.#waiter
      this.#waiter = undefined
      waiter.resolve()
    }
  }

  failed (err: Error): void {
    this.#waiter?.reject(err)
    this.#waiter = undefined
  }

  /** One round trip in microseconds. */
  async roundTrip (message: Uint8Array, signal: AbortSignal): Promise<number> {
    signal.throwIfAborted()
    this.#got = 0
    this.#expected = message.byteLength
    this.#waiter = Promise.withResolvers<void>()
    const done = this.#waiter.promise
    const onAbort = (): void => { this.failed(signal.reason as Error) }
    signal.addEventListener('abort', onAbort, { once: true })
    const t0 = performance.now()
    this.#send(message)
    try {
      await done
    } finally {
      signal.removeEventListener('abort', onAbort)
    }
    return (performance.now() - t0) * 1000
  }
}

export function streamRoundTripper (stream: Stream): RoundTripper {
  const rt = new RoundTripper((message) => { stream.send(message) })
  stream.addEventListener('message', (evt) => { rt.received(evt.data.byteLength) })
  stream.addEventListener('close', (evt) => { rt.failed(evt.error ?? new Error('echo stream closed')) })
  return rt
}

export function socketRoundTripper (socket: Socket): RoundTripper {
  socket.setNoDelay(true)
  const rt = new RoundTripper((message) => { socket.write(message) })
  socket.on('data', (data: Buffer) => { rt.received(data.byteLength) })
  socket.on('close', () => { rt.failed(new Error('echo socket closed')) })
  return rt
}
