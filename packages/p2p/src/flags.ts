import { ConfigError } from './errors.ts'

const UNIT_MS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 }
const PART = /(\d+(?:\.\d+)?|\.\d+)(ms|s|m|h)/y

/** The longest delay Node's timers keep (about 24.8 days); a longer one fires at once. */
export const MAX_TIMER_MS = 2 ** 31 - 1

/**
 * Parses a duration flag into milliseconds: a number with units (`500ms`, `10s`, `10m`, `1h`,
 * `1m30s`), at least `minMs` and at most MAX_TIMER_MS. A bare number other than 0 is refused:
 * `30` could be seconds or milliseconds, and a misread one is off a thousandfold. The error names
 * the flag and the value.
 */
export function parseDuration (flag: string, value: string, minMs = 0): number {
  const text = value.trim()
  let ms: number
  if (/^(\d+(\.\d*)?|\.\d+)$/.test(text)) {
    if (Number(text) !== 0) {
      throw new ConfigError(`${flag}: ${JSON.stringify(text)} has no unit: write ${text}s or ${text}ms (units: ms, s, m, h)`)
    }
    ms = 0
  } else {
    ms = 0
    PART.lastIndex = 0
    let matched = 0
    let match: RegExpExecArray | null
    while ((match = PART.exec(text)) != null) {
      ms += Number(match[1]) * (UNIT_MS[match[2]!] ?? NaN)
      matched = PART.lastIndex
    }
    if (text === '' || matched !== text.length) {
      ms = NaN
    }
  }
  if (!Number.isFinite(ms)) {
    throw new ConfigError(`${flag}: ${JSON.stringify(text)} is not a duration (a number with ms, s, m or h, e.g. 500ms, 10s, 10m, 1m30s)`)
  }
  if (ms < minMs) {
    throw new ConfigError(`${flag}: ${JSON.stringify(text)} is too short (at least ${formatDuration(minMs)})`)
  }
  if (ms > MAX_TIMER_MS) {
    throw new ConfigError(`${flag}: ${JSON.stringify(text)} is too long (at most ${MAX_TIMER_MS}ms, about 24 days)`)
  }
  return Math.round(ms)
}

/**
 * Parses a number flag of at least `min` (a whole number when `integer`), written in decimal:
 * `0x10`, `1e3` or `Infinity` are refused, as an operator reading the config would not take them
 * for 16, 1000 or no limit. The error names the flag.
 */
export function parseNumber (flag: string, value: string | number, min: number, integer = false): number {
  const n = Number(value)
  if (!/^\s*-?(\d+(\.\d*)?|\.\d+)\s*$/.test(String(value)) || !Number.isFinite(n) || n < min || (integer && !Number.isInteger(n))) {
    throw new ConfigError(`${flag}: ${JSON.stringify(String(value))} is not ${integer ? 'a whole number' : 'a number'} of at least ${min}`)
  }
  return n
}

/**
 * Parses a port flag given as text (yargs would turn "abc" into NaN, and the message lose what was
 * typed), in decimal digits only: `Number` reads `0x1068` and `4.2e3` as 4200, which `ss` and a
 * firewall rule then show as a port nobody typed. The error names the flag and the value, or says
 * it is missing and what it is for.
 */
export function parsePort (flag: string, value: string | undefined, min: 0 | 1, purpose?: string): number {
  if (value == null) {
    throw new ConfigError(`${flag}: missing${purpose == null ? '' : `: ${purpose}`}`)
  }
  const port = Number(value)
  if (!/^\d+$/.test(value.trim()) || port < min || port > 65535) {
    throw new ConfigError(`${flag}: ${JSON.stringify(value)} is not a port (${min}-65535)${purpose == null ? '' : `: ${purpose}`}`)
  }
  return port
}

/** A duration in the largest unit that divides it (for --help defaults): 1s, 10m, 250ms. */
export function formatDuration (ms: number): string {
  if (ms === 0) {
    return '0s'
  }
  for (const [unit, size] of [['h', 3_600_000], ['m', 60_000], ['s', 1_000]] as const) {
    if (ms % size === 0) {
      return `${ms / size}${unit}`
    }
  }
  return `${ms}ms`
}
