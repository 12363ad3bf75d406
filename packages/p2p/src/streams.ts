import type { AbortOptions, MessageStream } from '@libp2p/interface'

export interface BoundedSendOptions extends AbortOptions {
  /** Wait while more than this many bytes sit in the stream's write buffer (default 1 MiB). */
  maxBufferedBytes?: number
}

const DEFAULT_MAX_BUFFERED = 1024 * 1024

/**
 * Sends `data` and returns once at most `maxBufferedBytes` wait in the stream's write buffer, so a
 * fast sender cannot fill memory. It watches the buffer itself: in @libp2p/utils 7.4.1
 * `onDrain()` keeps the promise of the first drain and resolves at once ever after, which is how
 * senders that trusted `send()`/`onDrain()` queued whole payloads (docs/decisions.md).
 */
export async function sendBounded (stream: MessageStream, data: Uint8Array, options: BoundedSendOptions = {}): Promise<void> {
  stream.send(data)
  await writeBufferBelow(stream, options)
}

/**
 * Returns once at most `maxBufferedBytes` wait in the stream's write buffer: after `send()` returns
 * a full buffer, for a sender that waits on its own (one that pauses a socket, say).
 */
export async function writeBufferBelow (stream: MessageStream, options: BoundedSendOptions = {}): Promise<void> {
  const limit = options.maxBufferedBytes ?? DEFAULT_MAX_BUFFERED
  while (stream.writeBufferLength > limit) {
    // aborted already: its 'abort' event is gone, and the wait below would last as long as the peer's
    options.signal?.throwIfAborted()
    // reset or closed already: a reset keeps the unsent bytes and sends no event after its 'close'
    if (stream.status !== 'open') {
      throw new Error('The stream closed while data was waiting to be sent')
    }
    await new Promise<void>((resolve, reject) => {
      const cleanup = (): void => {
        stream.removeEventListener('idle', onIdle)
        stream.removeEventListener('drain', onIdle)
        stream.removeEventListener('close', onClose)
        options.signal?.removeEventListener('abort', onAbort)
      }
      const onIdle = (): void => { cleanup(); resolve() }
      const onClose = (): void => { cleanup(); reject(new Error('The stream closed while data was waiting to be sent')) }
      const onAbort = (): void => { cleanup(); reject(options.signal?.reason instanceof Error ? options.signal.reason : new Error('aborted')) }
      stream.addEventListener('idle', onIdle)
      stream.addEventListener('drain', onIdle)
      stream.addEventListener('close', onClose)
      options.signal?.addEventListener('abort', onAbort)
    })
  }
}
