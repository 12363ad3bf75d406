import { isPeerId } from '@libp2p/interface'
import { InvalidDataLengthLengthError, lpStream, pbStream } from '@libp2p/utils'
import * as varint from 'uint8-varint'
import { DEFAULT_RPC_MAX_MESSAGE_BYTES, DEFAULT_RPC_MAX_STREAMS, DEFAULT_RPC_TIMEOUT_MS, RPC_STREAM_CLIENT_IDLE_MS, RPC_STREAM_SERVER_IDLE_MS } from './constants.ts'
import { deadline } from './deadline.ts'
import { RpcFailureError, RpcProtocolError, RpcTimeoutError } from './errors.ts'
import type { FailureCode } from './errors.ts'
import type { AbortOptions, Connection, Libp2p, Logger, PeerId, Stream } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'
import type { Uint8ArrayList } from 'uint8arraylist'

/** What protons generates for a message: encode and decode. */
export interface MessageCodec<T> {
  encode(message: T): Uint8Array
  decode(bytes: Uint8Array | Uint8ArrayList): T
}

/**
 * A request/response protocol: a request and its response, both length-prefixed protobuf, each
 * bounded in size and in time. A stream carries one exchange after another: a caller keeps it
 * for its next request (a new stream costs more than the exchange itself), and one that sends a
 * single request and closes is served the same way.
 */
export interface RpcSpec<Req, Res> {
  protocol: string
  request: MessageCodec<Req>
  response: MessageCodec<Res>
  /** Largest request or response in bytes (default 64 KiB). */
  maxMessageBytes?: number
  /** Deadline for the whole exchange (default 10 s). */
  timeoutMs?: number
  /**
   * Streams a peer serves one caller at once (per connection; default 32): past them libp2p resets
   * a new stream, so a caller with this many exchanges in flight to one peer queues the next.
   */
  maxStreams?: number
  /** The response that carries a failure. */
  failure(code: FailureCode, message: string): Res
  /** The failure a response carries, if it is one. */
  failureOf(response: Res): { code: string, message: string } | undefined
}

export interface RpcContext {
  remotePeer: PeerId
  connection: Connection
  signal: AbortSignal
}

export type RpcHandler<Req, Res> = (request: Req, context: RpcContext) => Promise<Res>

export interface HandleRpcOptions {
  log: Logger
  maxOutboundStreams?: number
}

type Registrar = Pick<Libp2p, 'handle' | 'unhandle'>

/** What the length decoder below throws while a length prefix goes on: built once. */
const PREFIX_GOES_ON = new RangeError('The length prefix goes on')

/**
 * The options of a length-prefixed stream of messages of at most `maxDataLength` bytes, with a
 * length decoder that builds no error per message. @libp2p/utils reads a length prefix one byte
 * at a time and takes a RangeError from its decoder as "more to come"; uint8-varint's builds a
 * new one, stack trace included, for every prefix of two bytes or more (every message of 128
 * bytes or more), and never gives up on a prefix that goes on and on. This decoder throws one
 * prebuilt RangeError while the prefix goes on, and refuses a prefix longer than
 * `maxDataLength` needs.
 */
function messageFraming (maxDataLength: number): { maxDataLength: number, maxBufferSize: number, lengthDecoder: (data: Uint8ArrayList) => number } {
  const maxLengthLength = varint.encodingLength(maxDataLength)
  return {
    maxDataLength,
    // bytes received and not read yet: a message being handled and the next one (and room for an
    // oversized one's start, refused with BAD_REQUEST), not the 4 MiB @libp2p/utils allows by
    // default (yamux grants window as bytes arrive, not as they are read)
    maxBufferSize: 2 * (maxLengthLength + maxDataLength) + 64 * 1024,
    lengthDecoder: (data) => {
      if ((data.get(data.byteLength - 1) & 0x80) === 0) {
        return varint.decode(data)
      }
      if (data.byteLength >= maxLengthLength) {
        throw new InvalidDataLengthLengthError(`The length prefix is too long: a message of at most ${maxDataLength} bytes needs at most ${maxLengthLength}`)
      }
      throw PREFIX_GOES_ON
    }
  }
}

/**
 * What went wrong, as an error. @libp2p/utils waits for a stream's drain and idle with p-event,
 * which rejects with the stream's 'close' event itself when the stream closes meanwhile: its
 * `message` is undefined, and its error (a reset, an abort) is its `error`.
 */
function errorOf (err: unknown): Error {
  if (err instanceof Error) {
    return err
  }
  const cause = (err as { error?: unknown } | undefined)?.error
  return cause instanceof Error ? cause : new Error('The stream closed')
}

/**
 * Serves `spec` on `node`, request after request on each stream until the caller closes it or
 * leaves it idle. A malformed, oversized or wrong request is answered BAD_REQUEST and ends the
 * stream; a peer that does not finish its first request in time has its stream reset; a handler
 * that throws `RpcFailureError` answers its code, any other error answers INTERNAL (logged here,
 * not sent).
 */
export async function handleRpc<Req, Res> (node: Registrar, spec: RpcSpec<Req, Res>, handler: RpcHandler<Req, Res>, options: HandleRpcOptions): Promise<void> {
  const maxDataLength = spec.maxMessageBytes ?? DEFAULT_RPC_MAX_MESSAGE_BYTES
  const timeoutMs = spec.timeoutMs ?? DEFAULT_RPC_TIMEOUT_MS
  const log = options.log

  await node.handle(spec.protocol, async (stream: Stream, connection: Connection) => {
    const frames = lpStream(stream, messageFraming(maxDataLength))
    // A caller sends a request again on a new stream when its kept stream ends before the answer,
    // taking the end for a peer that closed the stream unread. libp2p closing the connection (a
    // stop, the connection manager pruning) closes every stream, this one too while its request
    // is handled: the caller would have the request carried out twice. It is reset instead, which
    // the caller takes for a failure that may have happened after the request was acted on.
    let handling = false
    const close = stream.close.bind(stream)
    stream.close = async (closeOptions?: AbortOptions) => {
      if (handling) {
        stream.abort(new Error('The connection closed while the request was being handled'))
        return
      }
      await close(closeOptions)
    }
    try {
      for (let served = 0; ; served++) {
        // the first request comes with the stream; a kept stream waits for the caller's next one
        const waiting = deadline(served === 0 ? timeoutMs : RPC_STREAM_SERVER_IDLE_MS)
        let request: Req
        try {
          request = spec.request.decode(await frames.read({ signal: waiting.signal }))
        } catch (err) {
          if (served > 0 && (waiting.signal.aborted || (err as Error).name === 'UnexpectedEOFError')) {
            break // the caller closed the stream, or has not used it for long
          }
          if (waiting.signal.aborted || stream.status !== 'open') {
            throw err
          }
          await frames.write(spec.response.encode(spec.failure('BAD_REQUEST', `Malformed request for ${spec.protocol}: ${(err as Error).message}`)), { signal: AbortSignal.timeout(timeoutMs) })
          break
        } finally {
          waiting.clear()
        }
        if (stream.writeStatus !== 'writable') {
          break // closed as the request arrived: its caller saw the end before any answer, and sends it again
        }
        handling = true
        const exchange = deadline(timeoutMs)
        try {
          await frames.write(await answer(handler, request, { remotePeer: connection.remotePeer, connection, signal: exchange.signal }, spec, log), { signal: exchange.signal })
        } finally {
          handling = false
          exchange.clear()
        }
      }
      await stream.close({ signal: AbortSignal.timeout(timeoutMs) })
    } catch (thrown) {
      const err = errorOf(thrown)
      log('%s from %p failed: %s', spec.protocol, connection.remotePeer, err.message)
      stream.abort(err)
    }
  }, {
    maxInboundStreams: spec.maxStreams ?? DEFAULT_RPC_MAX_STREAMS,
    maxOutboundStreams: options.maxOutboundStreams ?? 32
  })
}

/** The handler's response, encoded once: its size is checked on the bytes that are sent. */
async function answer<Req, Res> (handler: RpcHandler<Req, Res>, request: Req, context: RpcContext, spec: RpcSpec<Req, Res>, log: Logger): Promise<Uint8Array> {
  let response: Res
  try {
    response = await handler(request, context)
  } catch (err) {
    if (err instanceof RpcFailureError) {
      return spec.response.encode(spec.failure(err.code, err.message))
    }
    log.error('%s handler failed: %e', spec.protocol, err)
    return spec.response.encode(spec.failure('INTERNAL', 'The peer failed to handle the request'))
  }
  const bytes = spec.response.encode(response)
  if (bytes.byteLength > (spec.maxMessageBytes ?? DEFAULT_RPC_MAX_MESSAGE_BYTES)) {
    log.error('%s response of %d bytes is over the limit', spec.protocol, bytes.byteLength)
    return spec.response.encode(spec.failure('INTERNAL', 'The response is larger than the protocol allows'))
  }
  return bytes
}

type Dialer = Pick<Libp2p, 'dialProtocol'>

/** A stream kept for the next request to the same peer and protocol. */
interface KeptStream {
  stream: Stream
  messages: ReturnType<typeof pbStream<Stream>>
  idle: NodeJS.Timeout
}

/** Per node, per `<peer id> <protocol>`: the streams waiting for a request, newest last. */
const keptStreams = new WeakMap<Dialer, Map<string, KeptStream[]>>()

function keyOf (peer: PeerId | Multiaddr, protocol: string): string | undefined {
  const id = isPeerId(peer) ? peer.toString() : peer.getComponents().find(c => c.name === 'p2p')?.value
  return id == null ? undefined : `${id} ${protocol}`
}

function takeKept (node: Dialer, key: string | undefined): KeptStream | undefined {
  if (key == null) {
    return undefined
  }
  const byKey = keptStreams.get(node)
  const kept = byKey?.get(key)
  let found: KeptStream | undefined
  for (let entry = kept?.pop(); entry != null; entry = kept?.pop()) {
    clearTimeout(entry.idle)
    if (entry.stream.status === 'open' && entry.stream.writeStatus === 'writable' && entry.stream.remoteWriteStatus === 'writable') {
      found = entry
      break
    }
    entry.stream.abort(new Error('closed while kept'))
  }
  // keep() makes the list again: a peer whose exchange then failed is not remembered for good
  if (kept?.length === 0) {
    byKey!.delete(key)
  }
  return found
}

/**
 * Keeps a stream that just carried an exchange for the next one, until it has gone unused for
 * RPC_STREAM_CLIENT_IDLE_MS. Nothing else bounds the kept streams: they are never more than the
 * streams the caller had open at once, which libp2p caps per protocol and connection (64 by
 * default), so a burst's streams all serve the next burst.
 */
function keep (node: Dialer, key: string | undefined, stream: Stream, messages: KeptStream['messages']): void {
  if (key == null) {
    stream.close().catch((err: unknown) => { stream.abort(errorOf(err)) })
    return
  }
  const byKey = keptStreams.get(node) ?? new Map<string, KeptStream[]>()
  const kept = byKey.get(key) ?? []
  keptStreams.set(node, byKey)
  // closed well before the serving side gives up on it, so a request never meets a closing stream
  const idle = setTimeout(() => {
    const at = kept.indexOf(entry)
    if (at >= 0) {
      kept.splice(at, 1)
    }
    if (kept.length === 0) {
      byKey.delete(key)
    }
    stream.close().catch((err: unknown) => { stream.abort(errorOf(err)) })
  }, RPC_STREAM_CLIENT_IDLE_MS)
  idle.unref()
  const entry: KeptStream = { stream, messages, idle }
  kept.push(entry)
  byKey.set(key, kept)
}

/** Per node, per `<peer id> <protocol>`: the exchanges in flight, and the callers waiting for one to end. */
const inFlight = new WeakMap<Dialer, Map<string, { running: number, waiting: Array<() => void> }>>()

/**
 * Waits until fewer than `max` exchanges to `key` are in flight (or `signal` aborts: with the
 * caller's reason when the caller's `callerSignal` did) and counts this one; returns what ends it,
 * which hands its place to the caller that waited longest.
 */
async function enter (node: Dialer, key: string | undefined, max: number, signal: AbortSignal, callerSignal?: AbortSignal): Promise<() => void> {
  if (key == null) {
    return () => {}
  }
  const aborted = (): Error => callerSignal?.aborted === true && callerSignal.reason instanceof Error ? callerSignal.reason : new Error(`waited for one of the ${max} exchanges in flight to end`)
  if (signal.aborted) {
    throw aborted()
  }
  const byKey = inFlight.get(node) ?? new Map<string, { running: number, waiting: Array<() => void> }>()
  inFlight.set(node, byKey)
  const slots = byKey.get(key) ?? { running: 0, waiting: [] }
  byKey.set(key, slots)
  if (slots.running < max) {
    slots.running++
  } else {
    await new Promise<void>((resolve, reject) => {
      const go = (): void => {
        signal.removeEventListener('abort', giveUp)
        resolve()
      }
      const giveUp = (): void => {
        slots.waiting.splice(slots.waiting.indexOf(go), 1)
        reject(aborted())
      }
      slots.waiting.push(go)
      signal.addEventListener('abort', giveUp, { once: true })
    })
  }
  let left = false
  return () => {
    if (left) {
      return
    }
    left = true
    const next = slots.waiting.shift()
    if (next != null) {
      next()
    } else if (--slots.running === 0) {
      byKey.delete(key)
    }
  }
}

/**
 * Sends one request and returns the response, on a stream kept from an earlier request to the
 * same peer when there is one; past `spec.maxStreams` exchanges in flight to that peer it waits
 * for one to end (within the deadline). Throws `RpcFailureError` (with the remote's code) when the peer
 * answered with a failure, BAD_REQUEST without sending it when the request is larger than
 * `spec.maxMessageBytes`, `RpcTimeoutError` past the deadline, `RpcProtocolError` for anything
 * else that went wrong on the wire.
 */
export async function callRpc<Req, Res> (node: Dialer, peer: PeerId | Multiaddr, spec: RpcSpec<Req, Res>, request: Req, options: AbortOptions = {}): Promise<Res> {
  const maxDataLength = spec.maxMessageBytes ?? DEFAULT_RPC_MAX_MESSAGE_BYTES
  // refused here, not sent: the peer would read its length and answer BAD_REQUEST, or reset the
  // stream once the bytes past its buffer arrived, a failure any caller takes for a broken peer
  // and tries on the next one
  const encoded = spec.request.encode(request)
  if (encoded.byteLength > maxDataLength) {
    throw new RpcFailureError('BAD_REQUEST', `The ${spec.protocol} request of ${encoded.byteLength} bytes is larger than the ${maxDataLength} bytes the protocol allows: it was not sent`)
  }
  const timeoutMs = spec.timeoutMs ?? DEFAULT_RPC_TIMEOUT_MS
  const { signal, clear } = deadline(timeoutMs, options.signal)
  const key = keyOf(peer, spec.protocol)
  let response: Res
  let stream: Stream | undefined
  let leave = (): void => {}
  try {
    leave = await enter(node, key, spec.maxStreams ?? DEFAULT_RPC_MAX_STREAMS, signal, options.signal)
    let kept = takeKept(node, key)
    for (;;) {
      // a new stream sends the request with the protocol name instead of a round trip after it
      stream = kept?.stream ?? await node.dialProtocol(peer, spec.protocol, { signal, negotiateFully: false })
      const messages = kept?.messages ?? pbStream(stream, messageFraming(maxDataLength))
      try {
        await messages.write(request, { encode: () => encoded }, { signal })
        response = await messages.read(spec.response, { signal })
        keep(node, key, stream, messages)
        break
      } catch (err) {
        // a kept stream that its peer closed without reading the request (a peer that serves one
        // exchange per stream, as earlier physarum did): nothing was served, so a new stream. Only
        // the peer's end of this stream, not of the whole connection (this side closed too): a peer
        // whose process died or whose path was cut may have acted on the request
        if (kept == null || (err as Error).name !== 'UnexpectedEOFError' || stream.writeStatus !== 'writable' || signal.aborted) {
          throw err
        }
        stream.abort(err as Error)
        kept = undefined
      }
    }
  } catch (thrown) {
    const err = errorOf(thrown)
    stream?.abort(err)
    if (options.signal?.aborted === true) {
      throw thrown
    }
    if (signal.aborted) {
      throw new RpcTimeoutError(`${spec.protocol} to ${peer.toString()} got no answer within ${timeoutMs} ms`)
    }
    throw new RpcProtocolError(`${spec.protocol} to ${peer.toString()} failed: ${err.message}`, { cause: err })
  } finally {
    leave()
    clear()
  }
  const failure = spec.failureOf(response)
  if (failure != null) {
    throw RpcFailureError.fromWire(failure.code, failure.message)
  }
  return response
}
