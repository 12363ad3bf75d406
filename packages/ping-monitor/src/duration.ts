import { ConfigError } from '@physarum/p2p'

const UNIT_MS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 }
const PART = /(\d+(?:\.\d+)?|\.\d+)(ms|s|m|h)/y

/**
 * Parses a duration flag into milliseconds: plain seconds (`1`, `0.5`) or numbers with units
 * (`500ms`, `10s`, `10m`, `1h`, `1m30s`). The error names the flag and the value.
 */
export function parseDuration (flag: string, value: string | number): number {
  const text = String(value).trim()
  let ms: number
  if (/^(\d+(\.\d*)?|\.\d+)$/.test(text)) {
    ms = Number(text) * 1_000
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
    throw new ConfigError(`${flag}: ${JSON.stringify(String(value))} is not a duration (seconds, or a number with ms, s, m or h, e.g. 500ms, 10s, 10m)`)
  }
  return ms
}

/** Like `parseDuration`, and at least `minMs`. */
export function parsePositiveDuration (flag: string, value: string | number, minMs = 1): number {
  const ms = parseDuration(flag, value)
  if (ms < minMs) {
    throw new ConfigError(`${flag}: ${JSON.stringify(String(value))} is too short (at least ${minMs} ms)`)
  }
  return ms
}

/** Parses a whole-number flag of at least `min`; the error names the flag and the value. */
export function parseCount (flag: string, value: string | number, min = 1): number {
  const n = typeof value === 'number' ? value : Number(String(value).trim())
  if (!Number.isInteger(n) || n < min || String(value).trim() === '') {
    throw new ConfigError(`${flag}: ${JSON.stringify(String(value))} is not a whole number of at least ${min}`)
  }
  return n
}
