import { pino } from 'pino'
import type { Logger } from 'pino'

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
  return pino(options)
}

export type { Logger }
