import { ConfigError, InvalidPskError, MissingPskError, RpcFailureError } from '@physarum/p2p'
import { InvalidRecordError } from '@physarum/registry-service'
import { NAME } from './constants.ts'
import { ImageConfError, InterruptedError, UsageError } from './errors.ts'

/** Errors that mean the input was wrong and nothing was tried: exit code 2. */
export function isUsageError (err: unknown): boolean {
  return err instanceof UsageError || err instanceof ImageConfError || err instanceof ConfigError ||
    err instanceof InvalidPskError || err instanceof MissingPskError || err instanceof InvalidRecordError
}

/** Ctrl-C at a prompt: 128 + SIGINT, as for a command the signal ended. */
const INTERRUPTED_EXIT_CODE = 130

/** The exit code for `err`: 2 for usage, 130 for Ctrl-C at a prompt, 1 for every other failure. */
export function exitCodeFor (err: unknown): number {
  if (err instanceof InterruptedError) {
    return INTERRUPTED_EXIT_CODE
  }
  return isUsageError(err) ? 2 : 1
}

/**
 * Runs a command's work: prints a failure as one line on stderr (the message, never a stack) and
 * sets the exit code. `process.exitCode` only: main ends the process once yargs is done.
 */
export async function runCommand (work: () => Promise<void>): Promise<void> {
  try {
    await work()
  } catch (err) {
    const message = err instanceof RpcFailureError
      ? `${err.message} (${err.code})`
      : (err as Error).name === 'TimeoutError'
          // AbortSignal.timeout's own words name neither what nor which limit
          ? 'No answer from the overlay within --timeout: check that a registry-service runs and is reachable from here (hl-cli status), or give a longer --timeout'
          : (err as Error).message ?? String(err)
    // a registry's refusal quotes what it was sent, and says what it likes
    process.stderr.write(`${NAME}: ${printable(message)}\n`)
    process.exitCode = exitCodeFor(err)
  }
}

/** A plain-text table: a header row, then the rows, columns padded to their widest cell. */
export function table (header: string[], rows: string[][]): string {
  // escaped before the widths are taken: a cell grows with each character escaped
  rows = rows.map(row => row.map(printable))
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map(r => (r[i] ?? '').length)))
  const line = (cells: string[]): string => cells.map((c, i) => i === cells.length - 1 ? c : c.padEnd(widths[i]!)).join('  ').trimEnd()
  return [line(header), ...rows.map(line)].join('\n') + '\n'
}

// C0 but the line end, DEL and C1: what a terminal takes for commands (ESC; CSI alone in some)
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/g

/**
 * `text` with its control characters but line ends shown as `\xNN`. What hl-cli prints comes in
 * part from peers and registries, which announce what they like: printed as it came, it could
 * clear or retitle the operator's terminal, or hide lines of a report.
 */
export function printable (text: string): string {
  return text.replace(CONTROL, c => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`)
}

/** Writes text for a person to stdout, without control characters (`printable`). */
export function printText (text: string): void {
  process.stdout.write(printable(text))
}

/** Writes `value` as JSON to stdout, its strings as they are: JSON escapes C0 itself, DEL and C1 are escaped here. */
export function printJson (value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2).replace(/[\u007f-\u009f]/g, c => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)}\n`)
}
