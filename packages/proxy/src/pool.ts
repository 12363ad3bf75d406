import { StreamDuplex } from './duplex.ts'
import type { Stream } from '@libp2p/interface'
import type { Socket } from 'node:net'
import type { Pool } from 'undici'

/** The stream to the instance could not be opened: nothing of the request reached it. */
export class StreamOpenError extends Error {
  static override name = 'StreamOpenError'
  override name = 'StreamOpenError'
}

export interface StreamPoolInit {
  /** Opens a new `/physarum/http/1.0.0` stream to the instance. */
  open: () => Promise<Stream>
  /** How long an idle stream is kept (the instance's keep-alive hint can shorten it). */
  idleTimeoutMs: number
  /** Streams in use at most; more requests wait in the pool's queue. */
  maxStreams: number
  /** How long the instance may take to send a response's head. */
  headersTimeoutMs: number
  /** The largest response head taken. */
  maxHeadBytes: number
}

/**
 * undici's connection pool over libp2p streams to one instance: a request takes an idle stream (an
 * HTTP/1.1 connection to the service through the sidecar's byte pipe) when there is one and opens
 * a new stream otherwise, so a warm request pays for neither a dial nor a stream. undici's HTTP/1.1
 * client costs the proxy about a fifth less CPU per request than Node's `http.request` and agent
 * (bench/README.md). The origin is only a name: every connection comes from `open`.
 *
 * undici is loaded with the first pool, not with this module: a sidecar, which serves the client
 * mode to its service, then carries it (about 5 MB of RSS) only if its service calls another.
 */
export async function streamPool (init: StreamPoolInit): Promise<Pool> {
  const { Pool } = await import('undici')
  return new Pool('http://instance', {
    connections: init.maxStreams,
    keepAliveTimeout: init.idleTimeoutMs,
    // a longer hint from the instance (Node's servers send 5 s) does not lengthen it
    keepAliveMaxTimeout: init.idleTimeoutMs,
    headersTimeout: init.headersTimeoutMs,
    maxHeaderSize: init.maxHeadBytes,
    // a response body may pause for as long as its service likes (a stream of events)
    bodyTimeout: 0,
    connect: (_options, callback) => {
      init.open().then(stream => {
        // undici drives it as it drives a socket: what it reads of one, StreamDuplex has
        callback(null, new StreamDuplex(stream, { allowHalfOpen: false }) as unknown as Socket)
      }, (err: Error) => {
        callback(new StreamOpenError(err.message, { cause: err }), null)
      })
    }
  })
}
