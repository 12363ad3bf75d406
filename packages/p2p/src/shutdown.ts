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
  /** For tests: where the signals come from (default the process). */
  signals?: Pick<NodeJS.EventEmitter, 'on'>
}

const SIGNAL_NUMBERS = { SIGINT: 2, SIGTERM: 15 } as const

/**
 * Runs the close steps once, in order, on SIGTERM or SIGINT, then exits 128+n. A failing step is
 * logged and the next one still runs; a second signal ends the process at once (128+n), and so
 * does the deadline (1: the stop failed). The deadline's timer keeps the process alive: a step
 * that waits for what never comes, once the servers closed, would otherwise let it end with 0.
 */
export function onShutdown (steps: ShutdownStep[], options: ShutdownOptions): void {
  const exit = options.exit ?? ((code: number) => process.exit(code))
  let running = false

  const shutdown = async (signal: string, code: number): Promise<void> => {
    running = true
    options.log.info({ signal }, 'shutting down')
    const deadline = setTimeout(() => {
      options.log.error({ deadlineMs: options.deadlineMs ?? 10_000 }, 'shutdown took too long, exiting now')
      exit(1)
    }, options.deadlineMs ?? 10_000)
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
  }

  for (const [signal, number] of Object.entries(SIGNAL_NUMBERS)) {
    (options.signals ?? process).on(signal, () => {
      if (running) {
        options.log.warn({ signal }, 'second signal, exiting now')
        exit(128 + number)
        return
      }
      void shutdown(signal, 128 + number)
    })
  }
}
