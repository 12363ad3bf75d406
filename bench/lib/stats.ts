/** Small statistics, formatting and flag helpers shared by the benchmarks. */
import { parseArgs } from 'node:util'
import type { ParseArgsConfig } from 'node:util'

/** The nearest-rank percentile `p` (0..100) of `samples`; NaN when there are none. */
export function percentile (samples: readonly number[], p: number): number {
  if (samples.length === 0) {
    return Number.NaN
  }
  const sorted = [...samples].sort((a, b) => a - b)
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length)))
  return sorted[rank - 1]!
}

export function median (samples: readonly number[]): number {
  return percentile(samples, 50)
}

export function max (samples: readonly number[]): number {
  return samples.length === 0 ? Number.NaN : Math.max(...samples)
}

/** Bits per second in Gbit/s (10^9). */
export function gbits (bytes: number, seconds: number): number {
  return (bytes * 8) / seconds / 1e9
}

export function fmt (value: number, digits = 2): string {
  return Number.isFinite(value) ? value.toFixed(digits) : '–'
}

/** Parses a size such as 268435456, 256M, 64K or 1G (binary multiples). */
export function parseSize (flag: string, text: string): number {
  const match = /^(\d+(?:\.\d+)?)\s*([kmg]?)i?b?$/i.exec(text.trim())
  if (match == null) {
    throw new Error(`--${flag}: ${JSON.stringify(text)} is not a size (e.g. 65536, 64K, 256M, 1G)`)
  }
  const unit = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[match[2]!.toLowerCase() as '' | 'k' | 'm' | 'g']
  const value = Math.round(Number(match[1]) * unit)
  if (!Number.isSafeInteger(value) || value <= 0) {
    throw new Error(`--${flag}: ${JSON.stringify(text)} must be a positive size`)
  }
  return value
}

export function parseCount (flag: string, text: string, min = 1): number {
  const value = Number(text)
  if (!Number.isSafeInteger(value) || value < min) {
    throw new Error(`--${flag}: ${JSON.stringify(text)} must be an integer >= ${min}`)
  }
  return value
}

/** A markdown table; numbers should already be formatted. */
export function markdownTable (header: readonly string[], rows: ReadonlyArray<readonly string[]>): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map(r => (r[i] ?? '').length)))
  const line = (cells: readonly string[]): string =>
    `| ${cells.map((c, i) => i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!)).join(' | ')} |`
  const rule = `|${widths.map((w, i) => i === 0 ? ` ${'-'.repeat(w)} ` : ` ${'-'.repeat(w - 1)}: `).join('|')}|`
  return [line(header), rule, ...rows.map(line)].join('\n')
}

/** Process-wide CPU time (every thread, user + system) in seconds. */
export function cpuSeconds (): number {
  const usage = process.cpuUsage()
  return (usage.user + usage.system) / 1e6
}

type FlagOptions = NonNullable<ParseArgsConfig['options']>

/**
 * A benchmark's flags (`options` has a boolean `help`): --help prints `usage` and exits 0; an
 * unknown flag, or a value `convert` throws for, prints the message and `usage` and exits 2.
 */
export function benchFlags<const O extends FlagOptions, R> (usage: string, options: O, convert: (values: ReturnType<typeof parseArgs<{ options: O }>>['values']) => R): R {
  try {
    const { values } = parseArgs({ options })
    if ((values as { help?: boolean }).help === true) {
      console.log(usage)
      process.exit(0)
    }
    return convert(values)
  } catch (err) {
    console.error(`${(err as Error).message}\n\n${usage}`)
    process.exit(2)
  }
}
