import { Agent } from 'node:http'
import { StreamDuplex } from './duplex.ts'
import type { ClientRequestArgs } from 'node:http'
import type { Duplex } from 'node:stream'
import type { Stream } from '@libp2p/interface'

/** The stream to the instance could not be opened: nothing of the request reached it. */
export class StreamOpenError extends Error {
  static override name = 'StreamOpenError'
  override name = 'StreamOpenError'
}

export interface StreamAgentInit {
  /** Opens a new `/physarum/http/1.0.0` stream to the instance. */
  open: () => Promise<Stream>
  /** How long an idle stream stays in the pool (the instance's keep-alive hint can shorten it). */
  idleTimeoutMs: number
  /** Idle streams kept at most. */
  maxIdle: number
  /** Streams in use at most; more requests wait in the agent's queue. */
  maxStreams: number
}

/**
 * Node's keep-alive agent over libp2p streams to one instance: a request takes an idle stream
 * (an HTTP/1.1 connection to the service through the sidecar's byte pipe) when there is one and
 * opens a new stream otherwise, so a warm request pays for neither a dial nor a stream.
 */
export class StreamAgent extends Agent {
  readonly #open: () => Promise<Stream>

  constructor (init: StreamAgentInit) {
    super({ keepAlive: true, timeout: init.idleTimeoutMs, maxFreeSockets: init.maxIdle, maxSockets: init.maxStreams, scheduling: 'lifo' })
    this.#open = init.open
  }

  /** Closes the idle streams; those in use finish their request. */
  closeIdle (): void {
    for (const streams of Object.values(this.freeSockets)) {
      for (const stream of streams ?? []) {
        stream.destroy()
      }
    }
  }

  override createConnection (_options: ClientRequestArgs, callback?: (err: Error | null, stream: Duplex) => void): undefined {
    this.#open().then(stream => {
      callback?.(null, new StreamDuplex(stream, { allowHalfOpen: false }))
    }, (err: Error) => {
      // Node's agent takes the error alone on failure
      const fail = callback as ((err: Error) => void) | undefined
      fail?.(new StreamOpenError(err.message, { cause: err }))
    })
    return undefined
  }
}
