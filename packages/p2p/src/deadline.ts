/** A signal that aborts after a while unless the work finished first. */
export interface Deadline {
  readonly signal: AbortSignal
  /** The work is done: the timer goes, the signal never aborts for it. */
  readonly clear: () => void
}

/**
 * A deadline of `ms` for work done many times a second (a ping, a request): unlike
 * `AbortSignal.timeout`, whose timer still fires and builds a DOMException long after the work
 * is done, its timer is cleared with the work. With `parent`, it also aborts when `parent` does.
 */
export function deadline (ms: number, parent?: AbortSignal): Deadline {
  const controller = new AbortController()
  const abort = (): void => { controller.abort() }
  // the work it bounds keeps the process alive, not the deadline
  const timer = setTimeout(abort, ms).unref()
  parent?.addEventListener('abort', abort)
  if (parent?.aborted === true) {
    abort()
  }
  return {
    signal: controller.signal,
    clear: () => {
      clearTimeout(timer)
      parent?.removeEventListener('abort', abort)
    }
  }
}
