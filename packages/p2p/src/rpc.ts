import { lpStream, pbStream } from '@libp2p/utils'
import { DEFAULT_RPC_MAX_MESSAGE_BYTES, DEFAULT_RPC_TIMEOUT_MS } from './constants.ts'
import { FAILURE_CODES, RpcFailureError, RpcProtocolError, RpcTimeoutError } from './errors.ts'
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
 * A request/response protocol: one request and one response per stream, both length-prefixed
 * protobuf, each bounded in size and in time.
 */
export interface RpcSpec<Req, Res> {
  protocol: string
  request: MessageCodec<Req>
  response: MessageCodec<Res>
  /** Largest request or response in bytes (default 64 KiB). */
  maxMessageBytes?: number
  /** Deadline for the whole exchange (default 10 s). */
  timeoutMs?: number
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
  maxInboundStreams?: number
  maxOutboundStreams?: number
}

type Registrar = Pick<Libp2p, 'handle' | 'unhandle'>

/**
 * Serves `spec` on `node`. A malformed, oversized or wrong request is answered BAD_REQUEST; a peer
 * that does not finish its request in time has its stream reset; a handler that throws
 * `RpcFailureError` answers its code, any other error answers INTERNAL (logged here, not sent).
 */
export async function handleRpc<Req, Res> (node: Registrar, spec: RpcSpec<Req, Res>, handler: RpcHandler<Req, Res>, options: HandleRpcOptions): Promise<void> {
  const maxDataLength = spec.maxMessageBytes ?? DEFAULT_RPC_MAX_MESSAGE_BYTES
  const timeoutMs = spec.timeoutMs ?? DEFAULT_RPC_TIMEOUT_MS
  const log = options.log

  await node.handle(spec.protocol, async (stream: Stream, connection: Connection) => {
    const signal = AbortSignal.timeout(timeoutMs)
    const frames = lpStream(stream, { maxDataLength })
    try {
      let response: Uint8Array
      let request: Req | undefined
      try {
        request = spec.request.decode(await frames.read({ signal }))
      } catch (err) {
        if (signal.aborted || stream.status !== 'open') {
          throw err
        }
        response = spec.response.encode(spec.failure('BAD_REQUEST', `Malformed request for ${spec.protocol}: ${(err as Error).message}`))
      }
      if (request !== undefined) {
        response = await answer(handler, request, { remotePeer: connection.remotePeer, connection, signal }, spec, log)
      }
      await frames.write(response!, { signal })
      await stream.close({ signal })
    } catch (err) {
      log('%s from %p failed: %s', spec.protocol, connection.remotePeer, (err as Error).message)
      stream.abort(err as Error)
    }
  }, {
    maxInboundStreams: options.maxInboundStreams ?? 32,
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

/**
 * Sends one request and returns the response. Throws `RpcFailureError` (with the remote's code)
 * when the peer answered with a failure, `RpcTimeoutError` past the deadline, `RpcProtocolError`
 * for anything else that went wrong on the wire.
 */
export async function callRpc<Req, Res> (node: Dialer, peer: PeerId | Multiaddr, spec: RpcSpec<Req, Res>, request: Req, options: AbortOptions = {}): Promise<Res> {
  const timeoutMs = spec.timeoutMs ?? DEFAULT_RPC_TIMEOUT_MS
  const deadline = AbortSignal.timeout(timeoutMs)
  const signal = options.signal == null ? deadline : AbortSignal.any([options.signal, deadline])
  let response: Res
  let stream: Stream | undefined
  try {
    // the request goes out with the protocol name instead of a round trip after it
    stream = await node.dialProtocol(peer, spec.protocol, { signal, negotiateFully: false })
    const messages = pbStream(stream, { maxDataLength: spec.maxMessageBytes ?? DEFAULT_RPC_MAX_MESSAGE_BYTES })
    await messages.write(request, spec.request, { signal })
    response = await messages.read(spec.response, { signal })
    await stream.close({ signal })
  } catch (err) {
    stream?.abort(err as Error)
    if (deadline.aborted) {
      throw new RpcTimeoutError(`${spec.protocol} to ${peer.toString()} got no answer within ${timeoutMs} ms`)
    }
    if (options.signal?.aborted === true) {
      throw err
    }
    throw new RpcProtocolError(`${spec.protocol} to ${peer.toString()} failed: ${(err as Error).message}`)
  }
  const failure = spec.failureOf(response)
  if (failure != null) {
    const code = (FAILURE_CODES as readonly string[]).includes(failure.code) ? failure.code as FailureCode : 'INTERNAL'
    throw new RpcFailureError(code, failure.message)
  }
  return response
}
