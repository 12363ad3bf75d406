import { readFileSync } from 'node:fs'

/**
 * Where a process's CPU time went, from a V8 .cpuprofile (node --cpu-prof): self time by
 * package and by function, optionally only between two CLOCK_MONOTONIC instants. On Linux V8's
 * profile timestamps are CLOCK_MONOTONIC microseconds, the clock of `process.hrtime` in any
 * process of the machine, so the parent of the profiled process can say which window it means.
 */

interface ProfileNode {
  id: number
  callFrame: { functionName: string, url: string, lineNumber: number }
}

interface CpuProfile {
  nodes: ProfileNode[]
  startTime: number
  endTime: number
  samples: number[]
  timeDeltas: number[]
}

export interface Share {
  name: string
  ms: number
  /** Of the busy time (every sample but "(idle)"). */
  share: number
}

export interface ProfileSummary {
  /** Milliseconds of profile in the range, busy or idle. */
  spanMs: number
  /** Milliseconds with JavaScript, GC or native work on the main thread (everything but idle). */
  busyMs: number
  byPackage: Share[]
  byFunction: Share[]
}

/** What a profile node's code is part of: an npm package, a physarum package, node, V8, GC... */
export function packageOf (callFrame: ProfileNode['callFrame']): string {
  const { url, functionName } = callFrame
  if (url === '') {
    switch (functionName) {
      case '(garbage collector)': return '(garbage collector)'
      case '(idle)': return '(idle)'
      case '(program)': return '(program: native, unattributed)'
      case '(root)': return '(root)'
      default: return '(V8 builtins)'
    }
  }
  if (url.startsWith('wasm://')) {
    return '(WebAssembly)'
  }
  if (url.startsWith('node:')) {
    const parts = url.slice('node:'.length).split('/')
    return `node:${parts[0] === 'internal' ? `internal/${parts[1] ?? ''}` : parts[0]}`
  }
  const modules = url.lastIndexOf('/node_modules/')
  if (modules >= 0) {
    const rest = url.slice(modules + '/node_modules/'.length).split('/')
    return rest[0]!.startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]!
  }
  const physarum = /\/packages\/([^/]+)\//.exec(url)
  if (physarum != null) {
    return `@physarum/${physarum[1]}`
  }
  return url.slice(url.lastIndexOf('/') + 1)
}

function top (totals: Map<string, number>, busyMs: number, n: number): Share[] {
  return [...totals]
    .map(([name, ms]) => ({ name, ms, share: busyMs > 0 ? ms / busyMs : Number.NaN }))
    .sort((a, b) => b.ms - a.ms)
    .slice(0, n)
}

/** Self time of the profile's samples taken within one of `spans`, each [from, to] in CLOCK_MONOTONIC µs. */
export function summarizeProfile (path: string, spans: ReadonlyArray<readonly [number, number]> = [[-Infinity, Infinity]], n = 12): ProfileSummary {
  const profile = JSON.parse(readFileSync(path, 'utf8')) as CpuProfile
  const nodes = new Map(profile.nodes.map(node => [node.id, node]))
  const packages = new Map<string, number>()
  const functions = new Map<string, number>()
  let spanMs = 0
  let busyMs = 0
  let t = profile.startTime
  for (let i = 0; i < profile.samples.length; i++) {
    const delta = profile.timeDeltas[i] ?? 0
    t += delta
    if (!spans.some(([fromUs, toUs]) => t >= fromUs && t <= toUs)) {
      continue
    }
    // a sample stands for the time since the one before it
    const ms = delta / 1000
    spanMs += ms
    const node = nodes.get(profile.samples[i]!)
    if (node == null || node.callFrame.functionName === '(idle)') {
      continue
    }
    busyMs += ms
    const pkg = packageOf(node.callFrame)
    packages.set(pkg, (packages.get(pkg) ?? 0) + ms)
    const where = node.callFrame.url === '' ? '' : ` (${pkg}:${node.callFrame.lineNumber + 1})`
    const fn = `${node.callFrame.functionName === '' ? '(anonymous)' : node.callFrame.functionName}${where}`
    functions.set(fn, (functions.get(fn) ?? 0) + ms)
  }
  return { spanMs, busyMs, byPackage: top(packages, busyMs, n), byFunction: top(functions, busyMs, n) }
}

/** The profile's first and last sample times (CLOCK_MONOTONIC µs). */
export function profileSpan (path: string): { startUs: number, endUs: number } {
  const profile = JSON.parse(readFileSync(path, 'utf8')) as CpuProfile
  return { startUs: profile.startTime, endUs: profile.endTime }
}
