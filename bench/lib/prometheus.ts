/**
 * Reads a Prometheus text exposition (what GET /metrics of a physarum daemon answers) into
 * samples: enough for the benchmarks to check what a daemon did, not a full parser (no escaped
 * quotes inside label values, which physarum's labels never hold).
 */

export interface Sample {
  name: string
  labels: Record<string, string>
  value: number
}

const LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="([^"]*)"/g

export function parseMetrics (text: string): Sample[] {
  const samples: Sample[] = []
  for (const line of text.split('\n')) {
    if (line.length === 0 || line.startsWith('#')) {
      continue
    }
    const match = LINE.exec(line)
    if (match == null) {
      continue
    }
    const labels: Record<string, string> = {}
    for (const [, key, value] of (match[2] ?? '').matchAll(LABEL)) {
      labels[key!] = value!
    }
    samples.push({ name: match[1]!, labels, value: parseValue(match[3]!) })
  }
  return samples
}

function parseValue (text: string): number {
  switch (text) {
    case '+Inf': return Number.POSITIVE_INFINITY
    case '-Inf': return Number.NEGATIVE_INFINITY
    default: return Number(text)
  }
}

/** GET `url` (the daemon's /metrics) and parse it; fails on a non-200 answer or after `timeoutMs`. */
export async function scrape (url: string, timeoutMs = 10_000): Promise<Sample[]> {
  const response = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) })
  if (!response.ok) {
    throw new Error(`${url}: HTTP ${response.status}`)
  }
  return parseMetrics(await response.text())
}

/** The samples called `name`. */
export function series (samples: readonly Sample[], name: string): Sample[] {
  return samples.filter(s => s.name === name)
}

/** The sum of every sample called `name` (0 when there is none). */
export function total (samples: readonly Sample[], name: string): number {
  return series(samples, name).reduce((a, s) => a + s.value, 0)
}

/** The value of the one sample called `name` (the first if there are several); NaN without one. */
export function value (samples: readonly Sample[], name: string): number {
  return samples.find(s => s.name === name)?.value ?? Number.NaN
}

/**
 * The `q` (0..1) quantile of what a histogram observed between two scrapes, interpolated inside
 * its bucket the way PromQL's histogram_quantile does; NaN when nothing was observed.
 */
export function histogramQuantile (before: readonly Sample[], after: readonly Sample[], name: string, q: number): number {
  const cumulative = (samples: readonly Sample[]): Map<number, number> => {
    const out = new Map<number, number>()
    for (const s of series(samples, `${name}_bucket`)) {
      const le = parseValue(s.labels.le ?? '+Inf')
      out.set(le, (out.get(le) ?? 0) + s.value)
    }
    return out
  }
  const a = cumulative(before)
  const buckets = [...cumulative(after)].map(([le, n]) => ({ le, n: n - (a.get(le) ?? 0) })).sort((x, y) => x.le - y.le)
  const count = buckets.at(-1)?.n ?? 0
  if (count <= 0) {
    return Number.NaN
  }
  const rank = q * count
  let lower = 0
  let below = 0
  for (const { le, n } of buckets) {
    if (n >= rank) {
      if (!Number.isFinite(le)) {
        return lower
      }
      return n === below ? le : lower + (le - lower) * (rank - below) / (n - below)
    }
    lower = le
    below = n
  }
  return lower
}
