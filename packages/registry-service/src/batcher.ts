/** A caller waiting for the answer to its name in a batch. */
export interface Waiter<T> {
  resolve: (value: T) => void
  reject: (err: Error) => void
}

/** The names of one batch, each with the callers that asked for it. */
export type Batch<T> = Map<string, Array<Waiter<T>>>

/**
 * Collects the calls that arrive before `schedule` runs its callback, by name, and answers them
 * with one call of `send`: a batch of at most `maxNames` distinct names (more start another),
 * each name asked for once however many callers want it. `send` settles every waiter of the batch.
 */
export class Batcher<T> {
  readonly #maxNames: number
  readonly #schedule: (run: () => void) => void
  readonly #send: (batch: Batch<T>) => Promise<void>
  #open?: Batch<T>

  constructor (maxNames: number, schedule: (run: () => void) => void, send: (batch: Batch<T>) => Promise<void>) {
    this.#maxNames = maxNames
    this.#schedule = schedule
    this.#send = send
  }

  /** The answer for `name`; a caller whose `signal` aborts stops waiting, the batch goes on. */
  async get (name: string, signal?: AbortSignal): Promise<T> {
    signal?.throwIfAborted()
    return await new Promise<T>((resolve, reject) => {
      let batch = this.#open
      if (batch == null || (batch.size >= this.#maxNames && !batch.has(name))) {
        const next: Batch<T> = new Map()
        this.#open = batch = next
        this.#schedule(() => {
          if (this.#open === next) {
            this.#open = undefined
          }
          void this.#send(next)
        })
      }
      const waiter: Waiter<T> = signal == null ? { resolve, reject } : leavingOn(signal, resolve, reject)
      const waiting = batch.get(name)
      if (waiting == null) {
        batch.set(name, [waiter])
      } else {
        waiting.push(waiter)
      }
    })
  }
}

/** A waiter that rejects when `signal` aborts, and stops listening to it once settled. */
function leavingOn<T> (signal: AbortSignal, resolve: (value: T) => void, reject: (err: Error) => void): Waiter<T> {
  const abort = (): void => { reject(signal.reason as Error) }
  signal.addEventListener('abort', abort, { once: true })
  return {
    resolve: (value) => { signal.removeEventListener('abort', abort); resolve(value) },
    reject: (err) => { signal.removeEventListener('abort', abort); reject(err) }
  }
}

/** Settles every waiter of `batch` with `err`. */
export function rejectAll<T> (batch: Batch<T>, err: Error): void {
  for (const waiters of batch.values()) {
    for (const waiter of waiters) waiter.reject(err)
  }
}
