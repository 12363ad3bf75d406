import { pino } from 'pino'
import type { DestinationStream, Logger } from 'pino'

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const
export type LogLevel = typeof LOG_LEVELS[number]

/** Keys whose values are secret wherever they appear in a log line. */
const REDACT = ['psk', 'passphrase', 'swarmKey', '*.psk', '*.passphrase', '*.swarmKey']

/**
 * The process's logger: JSON lines on stdout, human-readable when stdout is a terminal. libp2p's
 * own debug output stays under DEBUG=libp2p:*.
 */
export function createLogger (name: string, level: LogLevel = 'info'): Logger {
  const options = { name, level, redact: { paths: REDACT, censor: '[redacted]' } }
  if (process.stdout.isTTY) {
    return pino({ ...options, transport: { target: 'pino-pretty', options: { colorize: true } } })
  }
  return pino(options, stdoutDestination())
}

/**
 * stdout, written line by line. Once it fails for good (a pipe whose reader left, journald
 * restarted: EPIPE), the lines have nowhere to go and are dropped: pino's own destination would
 * retry the failed line for ever at exit (sonic-boom's flushSync), so the daemon never stopped.
 */
function stdoutDestination (): DestinationStream {
  const destination = pino.destination({ dest: 1, sync: true })
  destination.on('error', () => {
    destination.write = () => true
    destination.flush = (cb?: (err?: Error) => void) => { cb?.() }
    destination.flushSync = () => {}
  })
  return destination
}

export type { Logger }
