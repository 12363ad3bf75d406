import type { Logger } from 'pino'

export interface ShutdownStep {
  name: string
  run: () => Promise<void> | void
}

export interface ShutdownOptions {
  log: Logger
  /** Past this, the process exits whatever is still running (default 10 s). */
  deadlineMs?: number
  /** For tests: what ends the process. */
  exit?: (code: number) => void
}

const SIGNAL_NUMBERS = { SIGINT: 2, SIGTERM: 15 } as const

/**
 * Runs the close steps once, in order, on SIGTERM or SIGINT, then exits 128+n. A failing step is
 * logged and the next one still runs; a second signal or the deadline ends the process at once.
 * Returns the function that runs the same steps without a signal (exit code 0).
 */
export function onShutdown (steps: ShutdownStep[], options: ShutdownOptions): (reason?: string) => Promise<void> {
  const exit = options.exit ?? ((code: number) => process.exit(code))
  let running: Promise<void> | undefined

  const shutdown = async (reason = 'requested', code = 0): Promise<void> => {
    if (running != null) {
      return await running
    }
    running = (async () => {
      options.log.info({ reason }, 'shutting down')
      const deadline = setTimeout(() => {
        options.log.error({ deadlineMs: options.deadlineMs ?? 10_000 }, 'shutdown took too long, exiting now')
        exit(code === 0 ? 1 : code)
      }, options.deadlineMs ?? 10_000)
      deadline.unref()
      for (const step of steps) {
        try {
          await step.run()
        } catch (err) {
          options.log.error({ step: step.name, err: (err as Error).message }, 'shutdown step failed')
        }
      }
      clearTimeout(deadline)
      options.log.info('stopped')
      options.log.flush()
      exit(code)
    })()
    return await running
  }

  for (const [signal, number] of Object.entries(SIGNAL_NUMBERS)) {
    process.on(signal, () => {
      if (running != null) {
        options.log.warn({ signal }, 'second signal, exiting now')
        exit(128 + number)
        return
      }
      void shutdown(signal, 128 + number)
    })
  }
  return async (reason?: string) => { await shutdown(reason) }
}
