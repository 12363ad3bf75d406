import type { AbortOptions, MessageStream } from '@libp2p/interface'

export interface BoundedSendOptions extends AbortOptions {
  /** Wait while more than this many bytes sit in the stream's write buffer (default 1 MiB). */
  maxBufferedBytes?: number
}

const DEFAULT_MAX_BUFFERED = 1024 * 1024

/**
 * Sends `data` and returns once the stream can take more. libp2p 3's `send()` may keep returning
 * true while its write buffer grows without bound, so this also waits, below the caller's
 * bound, for the buffer to empty: a fast sender can no longer fill memory.
 */
export async function sendBounded (stream: MessageStream, data: Uint8Array, options: BoundedSendOptions = {}): Promise<void> {
  const accepted = stream.send(data)
  const limit = options.maxBufferedBytes ?? DEFAULT_MAX_BUFFERED
  if (accepted && stream.writeBufferLength <= limit) {
    return
  }
  if (!accepted) {
    await stream.onDrain(options)
  }
  while (stream.writeBufferLength > limit) {
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
