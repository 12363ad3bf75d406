/**
 * bench/ping-monitor: what the ping monitor costs with many peers. One run starts two ping
 * monitor daemons (packages/ping-monitor, each its own process) and `--peers` nodes of
 * createPhysarumNode in `--processes` child processes, every peer bootstrapping to both
 * monitors. Both monitors hold the same connections to the same peers at the same time:
 *
 * - baseline: a monitor whose --interval (1h) means it never pings within the run
 * - pinging:  a monitor pinging every peer each --interval (1s)
 *
 * Over `--windows` windows of `--window` seconds it reads each monitor's CPU time (from
 * /proc/<pid>/stat) and resident memory (/proc/<pid>/status), and from each monitor's /metrics
 * that it holds every peer and, for the pinging one, that the pings happened and succeeded.
 * Both are measured over the same seconds, so the machine's noise hits both alike; the ratio
 * pinging/baseline and the difference are the monitor's cost of pinging. Run
 * `node bench/ping-monitor.ts --help`.
 */
import { fork, spawn } from 'node:child_process'
import { availableParallelism, cpus, loadavg } from 'node:os'
import { mkdirSync, readdirSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { parseDuration } from '@physarum/p2p'
import { exited, stopAll, stopChild, track, waitForExit } from './lib/children.ts'
import { summarizeProfile } from './lib/cpuprofile.ts'
import { processCpuSeconds, processMemory, sumCpuSeconds } from './lib/procfs.ts'
import { histogramQuantile, scrape, series, total, value } from './lib/prometheus.ts'
import { fmt, markdownTable, max, median, parseCount } from './lib/stats.ts'
import type { ProfileSummary } from './lib/cpuprofile.ts'
import type { PeersCommand, PeersMessage, PeersStart, PeersStats } from './lib/ping-peers.ts'
import type { Sample } from './lib/prometheus.ts'
import type { ChildProcess } from 'node:child_process'

const USAGE = `Usage: node bench/ping-monitor.ts [options]   (Node 24: it runs the .ts sources directly)

  --peers N              peers connected to both monitors (default 200)
  --processes N          child processes the peers run in (default 4)
  --interval D           the pinging monitor's --interval (default 1s)
  --baseline-interval D  the baseline monitor's --interval: longer than the run (default 1h)
  --window S             seconds of one measuring window (default 30)
  --windows N            measuring windows (default 3)
  --warmup S             seconds between the last peer connected and the first window (default 15)
  --start-timeout S      seconds the peers may take to connect to both monitors (default 120)
  --max-seconds S        the whole run is abandoned (exit 3) after this many seconds (default 240)
  --cpu-prof DIR         run both monitors with node --cpu-prof into DIR and summarize where
                         their CPU went during the windows (profiling adds CPU of its own)
  --json                 print the results as JSON instead of markdown
  --help`

type Role = 'baseline' | 'pinging'
const ROLES: readonly Role[] = ['baseline', 'pinging']

interface Options {
  peers: number
  processes: number
  interval: string
  baselineInterval: string
  windowSeconds: number
  windows: number
  warmupSeconds: number
  startTimeoutSeconds: number
  maxSeconds: number
  cpuProf: string | undefined
  json: boolean
}

const PASSPHRASE = 'physarum ping-monitor benchmark'
/** The goals for the pinging monitor. */
const GOAL_CPU_SHARE = 0.10
const GOAL_RSS_BYTES = 200e6
/** The set-up the goals are stated for: another set-up gets its figures, but no verdict. */
const GOAL_PEERS = 200
const GOAL_INTERVAL_S = 1
const MONITOR_BIN = fileURLToPath(new URL('../packages/ping-monitor/bin/ping-monitor.js', import.meta.url))
const PEERS_SCRIPT = fileURLToPath(new URL('./lib/ping-peers.ts', import.meta.url))
/** How often memory is sampled during a window. */
const MEMORY_SAMPLE_MS = 500
/** Peers of one process starting at once. */
const START_CONCURRENCY = 5

class UsageError extends Error {}

function parseOptions (argv: string[]): Options {
  try {
    return parseOptionsOrThrow(argv)
  } catch (err) {
    throw new UsageError((err as Error).message)
  }
}

function parseDurationFlag (flag: string, text: string): string {
  parseDuration(`--${flag}`, text, 1)
  return text.trim()
}

function parseOptionsOrThrow (argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      peers: { type: 'string', default: '200' },
      processes: { type: 'string', default: '4' },
      interval: { type: 'string', default: '1s' },
      'baseline-interval': { type: 'string', default: '1h' },
      window: { type: 'string', default: '30' },
      windows: { type: 'string', default: '3' },
      warmup: { type: 'string', default: '15' },
      'start-timeout': { type: 'string', default: '120' },
      'max-seconds': { type: 'string', default: '240' },
      'cpu-prof': { type: 'string' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false }
    }
  })
  if (values.help) {
    process.stdout.write(`${USAGE}\n`)
    process.exit(0)
  }
  const peers = parseCount('peers', values.peers)
  const processes = parseCount('processes', values.processes)
  if (processes > peers) {
    throw new Error(`--processes: ${processes} processes for ${peers} peers leaves some without a peer`)
  }
  return {
    peers,
    processes,
    interval: parseDurationFlag('interval', values.interval),
    baselineInterval: parseDurationFlag('baseline-interval', values['baseline-interval']),
    windowSeconds: parseCount('window', values.window),
    windows: parseCount('windows', values.windows),
    warmupSeconds: parseCount('warmup', values.warmup, 0),
    startTimeoutSeconds: parseCount('start-timeout', values['start-timeout']),
    maxSeconds: parseCount('max-seconds', values['max-seconds']),
    cpuProf: values['cpu-prof'] == null ? undefined : resolve(values['cpu-prof']),
    json: values.json
  }
}

function progress (message: string): void {
  process.stderr.write(`[ping-monitor ${(performance.now() / 1000).toFixed(1).padStart(6)}s] ${message}\n`)
}

async function sleep (ms: number): Promise<void> {
  await new Promise(resolve => setTimeout(resolve, ms))
}

/** CLOCK_MONOTONIC in microseconds: the clock of V8's profile timestamps (see lib/cpuprofile.ts). */
function monotonicUs (): number {
  return Number(process.hrtime.bigint() / 1000n)
}

// ---------------------------------------------------------------- the monitors

interface Monitor {
  role: Role
  interval: string
  child: ChildProcess
  pid: number
  addr: string
  metricsUrl: string
  /** pino lines at warn or above, and the last few of them. */
  warnings: number
  lastWarnings: string[]
  stderr: string[]
  profileDir?: string
}

const LISTENING = 'ping-monitor listening: '
const METRICS = 'ping-monitor metrics: '

function keepTail (lines: string[], line: string, n = 5): void {
  lines.push(line)
  if (lines.length > n) {
    lines.shift()
  }
}

async function startMonitor (role: Role, interval: string, options: Options): Promise<Monitor> {
  const limit = String(Math.max(1000, options.peers * 4))
  const execArgv: string[] = []
  let profileDir: string | undefined
  if (options.cpuProf != null) {
    profileDir = join(options.cpuProf, role)
    mkdirSync(profileDir, { recursive: true })
    execArgv.push('--cpu-prof', '--cpu-prof-dir', profileDir)
  }
  // the PSK goes through the environment, never argv; nothing else of the caller's physarum setup
  const env: NodeJS.ProcessEnv = { ...process.env, PHYSARUM_PSK: PASSPHRASE }
  for (const name of ['P2P_PSK', 'PHYSARUM_BOOTSTRAP', 'P2P_BOOTSTRAPS', 'PHYSARUM_STATE_DIR', 'PHYSARUM_LOG_LEVEL']) {
    delete env[name]
  }
  const child = track(spawn(process.execPath, [
    ...execArgv, MONITOR_BIN,
    '--ephemeral',
    '--listen', '/ip4/127.0.0.1/tcp/0',
    '--metrics-listen', '127.0.0.1:0',
    '--hostname', `bench-monitor-${role}`,
    '--interval', interval,
    '--max-connections', limit,
    '--inbound-rate', limit,
    '--max-pending', limit,
    '--max-pending-per-ip', limit
  ], { env, stdio: ['ignore', 'pipe', 'pipe'] }), `${role} monitor`)
  if (child.pid == null) {
    throw new Error(`the ${role} monitor did not start`)
  }
  const monitor: Partial<Monitor> & Pick<Monitor, 'warnings' | 'lastWarnings' | 'stderr'> = {
    role, interval, child, pid: child.pid, warnings: 0, lastWarnings: [], stderr: [], ...(profileDir == null ? {} : { profileDir })
  }
  createInterface({ input: child.stderr! }).on('line', (line) => { keepTail(monitor.stderr, line) })
  const ready = Promise.withResolvers<Monitor>()
  // the daemon logs JSON lines on stdout: keep reading them all, a full pipe would stall it
  createInterface({ input: child.stdout! }).on('line', (line) => {
    if (line.startsWith(LISTENING)) {
      monitor.addr ??= line.slice(LISTENING.length).trim()
    } else if (line.startsWith(METRICS)) {
      monitor.metricsUrl = line.slice(METRICS.length).trim()
    } else if (line.startsWith('{')) {
      try {
        const entry = JSON.parse(line) as { level?: number, msg?: string }
        if ((entry.level ?? 0) >= 40) {
          monitor.warnings++
          keepTail(monitor.lastWarnings, line.slice(0, 300))
        }
      } catch {
        // not a log line
      }
    }
    if (monitor.addr != null && monitor.metricsUrl != null) {
      ready.resolve(monitor as Monitor)
    }
  })
  child.once('exit', (code, signal) => {
    ready.reject(new Error(`the ${role} monitor exited (${signal ?? code}) before it listened: ${monitor.stderr.join(' | ')}`))
  })
  const timer = setTimeout(() => { ready.reject(new Error(`the ${role} monitor did not report its addresses within 30 s`)) }, 30_000)
  try {
    return await ready.promise
  } finally {
    clearTimeout(timer)
  }
}

function checkAlive (monitors: readonly Monitor[]): void {
  for (const m of monitors) {
    if (exited(m.child)) {
      throw new Error(`the ${m.role} monitor exited (${m.child.signalCode ?? m.child.exitCode}) during the run: ${m.stderr.join(' | ')} ${m.lastWarnings.join(' | ')}`)
    }
  }
}

// ---------------------------------------------------------------- the peers

interface PeerProcess {
  index: number
  count: number
  child: ChildProcess
}

/** The next message of `type` from the peer process, or a failure. */
async function nextMessage<T extends PeersMessage['type']> (p: PeerProcess, type: T, timeoutMs: number, onOther?: (m: PeersMessage) => void): Promise<Extract<PeersMessage, { type: T }>> {
  return await new Promise((resolve, reject) => {
    const cleanup = (): void => {
      clearTimeout(timer)
      p.child.off('message', onMessage)
      p.child.off('exit', onExit)
    }
    const onMessage = (message: PeersMessage): void => {
      if (message.type === type) {
        cleanup()
        resolve(message as Extract<PeersMessage, { type: T }>)
      } else if (message.type === 'failed') {
        cleanup()
        reject(new Error(`peer process ${p.index}: ${message.message}`))
      } else {
        onOther?.(message)
      }
    }
    const onExit = (code: number | null, signal: string | null): void => {
      cleanup()
      reject(new Error(`peer process ${p.index} exited (${signal ?? code}) while waiting for "${type}"`))
    }
    const timer = setTimeout(() => {
      cleanup()
      reject(new Error(`peer process ${p.index}: no "${type}" within ${timeoutMs / 1000} s`))
    }, timeoutMs)
    p.child.on('message', onMessage)
    p.child.once('exit', onExit)
  })
}

function command (p: PeerProcess, message: PeersCommand): void {
  p.child.send(message)
}

async function startPeers (options: Options, bootstrap: string[]): Promise<PeerProcess[]> {
  const processes: PeerProcess[] = []
  for (let index = 0; index < options.processes; index++) {
    const count = Math.floor((options.peers * (index + 1)) / options.processes) - Math.floor((options.peers * index) / options.processes)
    const child = track(fork(PEERS_SCRIPT, [], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] }), `peer process ${index}`)
    processes.push({ index, count, child })
  }
  const started = new Array<number>(processes.length).fill(0)
  let lastReport = 0
  await Promise.all(processes.map(async p => {
    const start: PeersStart = {
      type: 'start',
      index: p.index,
      count: p.count,
      passphrase: PASSPHRASE,
      bootstrap,
      startConcurrency: START_CONCURRENCY,
      connectTimeoutMs: options.startTimeoutSeconds * 1000
    }
    command(p, start)
    await nextMessage(p, 'ready', options.startTimeoutSeconds * 1000, (m) => {
      if (m.type === 'progress') {
        started[p.index] = m.started
        const sum = started.reduce((a, b) => a + b, 0)
        if (performance.now() - lastReport > 5_000) {
          lastReport = performance.now()
          progress(`${sum}/${options.peers} peers connected to both monitors`)
        }
      }
    })
  }))
  return processes
}

async function peerStats (processes: readonly PeerProcess[]): Promise<PeersStats> {
  const all = await Promise.all(processes.map(async p => {
    command(p, { type: 'stats' })
    return await nextMessage(p, 'stats', 10_000)
  }))
  return {
    type: 'stats',
    nodes: all.reduce((a, s) => a + s.nodes, 0),
    connected: all[0]!.connected.map((_, i) => all.reduce((a, s) => a + (s.connected[i] ?? 0), 0)),
    disconnects: all.reduce((a, s) => a + s.disconnects, 0)
  }
}

async function stopPeers (processes: readonly PeerProcess[]): Promise<void> {
  await Promise.all(processes.map(async p => {
    if (exited(p.child)) {
      return
    }
    try {
      command(p, { type: 'stop' })
    } catch {
      // its channel is closed: it is exiting already
    }
    if (!await waitForExit(p.child, 15_000)) {
      await stopChild(p.child, 2_000)
    }
  }))
}

// ---------------------------------------------------------------- measuring

/** What a monitor's /metrics said, and what changed between a window's two scrapes. */
interface MetricsCheck {
  /** physarum_connected_peers at the window's start and end. */
  connectedStart: number
  connectedEnd: number
  trackedPeers: number
  /** Peers with a physarum_ping_rtt_seconds series. */
  rttSeries: number
  /** Peers whose last successful ping is at most two intervals (or 5 s) older than the window's end. */
  freshPeers: number
  /** Counted from scrape to scrape (a little longer than the window); pingsPerSecond over that span. */
  pings: number
  pingsPerSecond: number
  failures: number
  /** From physarum_ping_rtt_distribution_seconds, interpolated in its buckets. */
  rttP50Ms: number
  rttP99Ms: number
  /** Node's own metrics (prom-client's default ones). */
  heapUsedBytes: number
  eventLoopLagP99Ms: number
  /** GC time per second, over the scrape-to-scrape span. */
  gcShare: number
}

interface MonitorWindow {
  cpuSeconds: number
  /** CPU seconds per second of the window: the share of one core. */
  cpuShare: number
  rssStart: number
  rssEnd: number
  rssPeak: number
  /** VmHWM at the window's end: the highest RSS since the monitor started. */
  hwm: number
  metrics: MetricsCheck
}

interface WindowResult {
  seconds: number
  startUs: number
  endUs: number
  monitors: Record<Role, MonitorWindow>
  /** The peer processes together, in shares of one core. */
  peersCpuShare: number
  loadAverage: number
  peers: PeersStats
}

function checkMetrics (before: readonly Sample[], after: readonly Sample[], spanSeconds: number, freshSinceS: number): MetricsCheck {
  const pings = total(after, 'physarum_ping_rtt_distribution_seconds_count') - total(before, 'physarum_ping_rtt_distribution_seconds_count')
  return {
    connectedStart: value(before, 'physarum_connected_peers'),
    connectedEnd: value(after, 'physarum_connected_peers'),
    trackedPeers: value(after, 'physarum_ping_tracked_peers'),
    rttSeries: series(after, 'physarum_ping_rtt_seconds').length,
    freshPeers: series(after, 'physarum_ping_last_success_timestamp_seconds').filter(s => s.value >= freshSinceS).length,
    pings,
    pingsPerSecond: pings / spanSeconds,
    failures: total(after, 'physarum_ping_failures_total') - total(before, 'physarum_ping_failures_total'),
    rttP50Ms: histogramQuantile(before, after, 'physarum_ping_rtt_distribution_seconds', 0.5) * 1000,
    rttP99Ms: histogramQuantile(before, after, 'physarum_ping_rtt_distribution_seconds', 0.99) * 1000,
    heapUsedBytes: value(after, 'nodejs_heap_size_used_bytes'),
    eventLoopLagP99Ms: value(after, 'nodejs_eventloop_lag_p99_seconds') * 1000,
    gcShare: (total(after, 'nodejs_gc_duration_seconds_sum') - total(before, 'nodejs_gc_duration_seconds_sum')) / spanSeconds
  }
}

function intervalSeconds (text: string): number {
  return parseDuration('--interval', text) / 1000
}

async function measureWindow (options: Options, monitors: readonly Monitor[], peers: readonly PeerProcess[]): Promise<WindowResult> {
  const pids = peers.map(p => p.child.pid!).filter(pid => pid != null)
  // scrape first, then read the clocks: the scrapes' own work stays out of the window. The
  // counters of /metrics span from scrape to scrape (a little longer): their rates use that span
  const scrapeTimed = async (url: string): Promise<{ samples: Sample[], at: number }> => {
    const samples = await scrape(url)
    return { samples, at: performance.now() }
  }
  const before = await Promise.all(monitors.map(async m => await scrapeTimed(m.metricsUrl)))
  await sleep(200)
  const cpu0 = monitors.map(m => processCpuSeconds(m.pid))
  const rss0 = monitors.map(m => processMemory(m.pid).rss)
  const peersCpu0 = sumCpuSeconds(pids)
  const t0 = performance.now()
  const startUs = monotonicUs()
  const peaks = [...rss0]
  const sampler = setInterval(() => {
    monitors.forEach((m, i) => {
      try {
        peaks[i] = Math.max(peaks[i]!, processMemory(m.pid).rss)
      } catch {
        // exited: checkAlive() reports it
      }
    })
  }, MEMORY_SAMPLE_MS)
  try {
    await sleep(options.windowSeconds * 1000)
  } finally {
    clearInterval(sampler)
  }
  checkAlive(monitors)
  const cpu1 = monitors.map(m => processCpuSeconds(m.pid))
  const memory1 = monitors.map(m => processMemory(m.pid))
  const peersCpu1 = sumCpuSeconds(pids)
  const seconds = (performance.now() - t0) / 1000
  const endUs = monotonicUs()
  const freshSinceS = Date.now() / 1000 - Math.max(5, 2 * intervalSeconds(options.interval))
  const after = await Promise.all(monitors.map(async m => await scrapeTimed(m.metricsUrl)))
  const peerCheck = await peerStats(peers)
  const result: Partial<Record<Role, MonitorWindow>> = {}
  monitors.forEach((m, i) => {
    const cpuSeconds = cpu1[i]! - cpu0[i]!
    result[m.role] = {
      cpuSeconds,
      cpuShare: cpuSeconds / seconds,
      rssStart: rss0[i]!,
      rssEnd: memory1[i]!.rss,
      rssPeak: Math.max(peaks[i]!, memory1[i]!.rss),
      hwm: memory1[i]!.hwm,
      metrics: checkMetrics(before[i]!.samples, after[i]!.samples, (after[i]!.at - before[i]!.at) / 1000, freshSinceS)
    }
  })
  return {
    seconds,
    startUs,
    endUs,
    monitors: result as Record<Role, MonitorWindow>,
    peersCpuShare: (peersCpu1 - peersCpu0) / seconds,
    loadAverage: loadavg()[0]!,
    peers: peerCheck
  }
}

/** Problems that make the figures not what they claim to be (not the goals: those are verdicts). */
function validate (options: Options, w: WindowResult): string[] {
  const problems: string[] = []
  for (const role of ROLES) {
    const m = w.monitors[role].metrics
    // a gauge missing from /metrics reads NaN, which the comparison below would let pass (the
    // counters read 0 when missing, as before their first event: the other checks catch those)
    const missing = (['connectedStart', 'connectedEnd'] as const).filter(key => !Number.isFinite(m[key]))
    if (missing.length > 0) {
      problems.push(`${role} monitor: ${missing.join(', ')} not found in its /metrics`)
    }
    if (m.connectedStart < options.peers || m.connectedEnd < options.peers) {
      problems.push(`${role} monitor held ${m.connectedStart} then ${m.connectedEnd} peers, not ${options.peers}`)
    }
  }
  const pinging = w.monitors.pinging.metrics
  // fewer pings than peers × window / interval is a finding (the monitor falls behind), not a
  // reason to distrust the figures: the pings/s column and `pingsShare` report it
  if (pinging.rttSeries < 0.98 * options.peers || pinging.freshPeers < 0.98 * options.peers) {
    problems.push(`the pinging monitor has RTT series for ${pinging.rttSeries} peers, fresh for ${pinging.freshPeers}, of ${options.peers}`)
  }
  if (pinging.failures > 0.01 * Math.max(1, pinging.pings)) {
    problems.push(`${pinging.failures} failed pings (over 1% of ${pinging.pings})`)
  }
  if (w.monitors.baseline.metrics.pings > 0) {
    problems.push(`the baseline monitor pinged ${w.monitors.baseline.metrics.pings} times: its --interval is shorter than the run`)
  }
  return problems
}

// ---------------------------------------------------------------- reporting

interface MonitorSummary {
  interval: string
  /** CPU seconds of every window over their seconds: the share of one core. */
  cpuShare: number
  cpuShareMedian: number
  cpuShareMax: number
  rssEnd: number
  /** Highest RSS sampled during the windows. */
  rssPeak: number
  /** Highest RSS since the monitor started (VmHWM): start-up, with every peer connecting, too. */
  hwm: number
  pingsPerSecond: number
  /** pingsPerSecond over the peers × 1 / interval that --interval asks for. */
  pingsShare: number
  failures: number
  /** The median of the windows' p50s, and the worst window's p99. */
  rttP50Ms: number
  rttP99Ms: number
  heapUsedBytes: number
  eventLoopLagP99Ms: number
  gcShare: number
  warnings: number
  profile?: ProfileSummary
}

/** n/a: the run was not of the goal's set-up (GOAL_PEERS peers, GOAL_INTERVAL_S). */
type Verdict = 'PASS' | 'MISS' | 'n/a'

interface Summary {
  monitors: Record<Role, MonitorSummary>
  ratio: { cpu: number, rssEnd: number, rssPeak: number, hwm: number }
  /** pinging − baseline, in shares of one core, and in CPU µs per ping. */
  pingingCost: { cpuShare: number, cpuUsPerPing: number }
  verdict: { cpu: Verdict, rss: Verdict }
  /** baseline + (pinging − baseline) / pingsShare: the CPU share had every asked ping been done. */
  cpuAtFullRate: number
  peersCpuShare: number
  loadAverage: number
  problems: string[]
}

function summarize (options: Options, monitors: readonly Monitor[], windows: readonly WindowResult[], problems: string[]): Summary {
  const goalSetUp = options.peers === GOAL_PEERS && intervalSeconds(options.interval) === GOAL_INTERVAL_S
  const verdict = (met: boolean): Verdict => goalSetUp ? (met ? 'PASS' : 'MISS') : 'n/a'

  const seconds = windows.reduce((a, w) => a + w.seconds, 0)
  const per = (role: Role): MonitorSummary => {
    const ws = windows.map(w => w.monitors[role])
    const last = ws.at(-1)!
    const m = monitors.find(x => x.role === role)!
    // the metrics' rates over each window's own seconds, the clock the CPU figures use
    const inWindows = (rate: (w: MonitorWindow) => number): number => windows.reduce((a, w) => a + rate(w.monitors[role]) * w.seconds, 0)
    const pings = inWindows(w => w.metrics.pingsPerSecond)
    return {
      interval: m.interval,
      cpuShare: ws.reduce((a, w) => a + w.cpuSeconds, 0) / seconds,
      cpuShareMedian: median(ws.map(w => w.cpuShare)),
      cpuShareMax: max(ws.map(w => w.cpuShare)),
      rssEnd: last.rssEnd,
      rssPeak: max(ws.map(w => w.rssPeak)),
      hwm: last.hwm,
      pingsPerSecond: pings / seconds,
      pingsShare: pings / seconds / (options.peers / intervalSeconds(m.interval)),
      failures: ws.reduce((a, w) => a + w.metrics.failures, 0),
      rttP50Ms: median(ws.map(w => w.metrics.rttP50Ms).filter(Number.isFinite)),
      rttP99Ms: max(ws.map(w => w.metrics.rttP99Ms).filter(Number.isFinite)),
      heapUsedBytes: last.metrics.heapUsedBytes,
      eventLoopLagP99Ms: max(ws.map(w => w.metrics.eventLoopLagP99Ms)),
      gcShare: inWindows(w => w.metrics.gcShare) / seconds,
      warnings: m.warnings
    }
  }
  const baseline = per('baseline')
  const pinging = per('pinging')
  const pings = pinging.pingsPerSecond * seconds
  return {
    monitors: { baseline, pinging },
    ratio: {
      cpu: pinging.cpuShare / baseline.cpuShare,
      rssEnd: pinging.rssEnd / baseline.rssEnd,
      rssPeak: pinging.rssPeak / baseline.rssPeak,
      hwm: pinging.hwm / baseline.hwm
    },
    pingingCost: {
      cpuShare: pinging.cpuShare - baseline.cpuShare,
      cpuUsPerPing: pings > 0 ? (pinging.cpuShare - baseline.cpuShare) * seconds / pings * 1e6 : Number.NaN
    },
    verdict: {
      cpu: verdict(pinging.cpuShare < GOAL_CPU_SHARE),
      rss: verdict(Math.max(pinging.hwm, pinging.rssPeak) < GOAL_RSS_BYTES)
    },
    cpuAtFullRate: baseline.cpuShare + (pinging.cpuShare - baseline.cpuShare) / pinging.pingsShare,
    peersCpuShare: windows.reduce((a, w) => a + w.peersCpuShare * w.seconds, 0) / seconds,
    loadAverage: median(windows.map(w => w.loadAverage)),
    problems
  }
}

const pct = (share: number): string => `${fmt(share * 100, 1)}%`
const mb = (bytes: number): string => fmt(bytes / 1e6, 1)

function markdown (options: Options, windows: readonly WindowResult[], s: Summary): string {
  const b = s.monitors.baseline
  const p = s.monitors.pinging
  const out = [
    `## ping-monitor: ${options.peers} peers in ${options.processes} processes, ${options.windows} × ${options.windowSeconds} s windows, both monitors at once`,
    '',
    markdownTable(['monitor', 'CPU % of a core', 'median window', 'max window', 'RSS end MB', 'RSS peak MB', 'RSS high-water MB', 'heap used MB', 'pings/s', 'failures', 'RTT p50 ms (median window)', 'RTT p99 ms (worst window)', 'loop lag p99 ms', 'GC % of a core'], [
      [`baseline (--interval ${b.interval})`, pct(b.cpuShare), pct(b.cpuShareMedian), pct(b.cpuShareMax), mb(b.rssEnd), mb(b.rssPeak), mb(b.hwm), mb(b.heapUsedBytes), fmt(b.pingsPerSecond, 1), String(b.failures), '–', '–', fmt(b.eventLoopLagP99Ms, 1), pct(b.gcShare)],
      [`pinging (--interval ${p.interval})`, pct(p.cpuShare), pct(p.cpuShareMedian), pct(p.cpuShareMax), mb(p.rssEnd), mb(p.rssPeak), mb(p.hwm), mb(p.heapUsedBytes), `${fmt(p.pingsPerSecond, 1)} (${pct(p.pingsShare)})`, String(p.failures), fmt(p.rttP50Ms, 2), fmt(p.rttP99Ms, 2), fmt(p.eventLoopLagP99Ms, 1), pct(p.gcShare)]
    ]),
    '',
    markdownTable(['pinging vs baseline', 'CPU', 'RSS end', 'RSS peak', 'RSS high-water'], [
      ['ratio pinging / baseline', fmt(s.ratio.cpu), fmt(s.ratio.rssEnd), fmt(s.ratio.rssPeak), fmt(s.ratio.hwm)],
      ['difference (the cost of pinging)', `${pct(s.pingingCost.cpuShare)} (${fmt(s.pingingCost.cpuUsPerPing, 0)} µs CPU a ping)`,
        mb(p.rssEnd - b.rssEnd), mb(p.rssPeak - b.rssPeak), mb(p.hwm - b.hwm)]
    ]),
    '',
    markdownTable(['goal (pinging monitor)', 'measured', 'verdict'], [
      [`CPU under ${pct(GOAL_CPU_SHARE)} of a core`, `${pct(p.cpuShare)} at ${fmt(p.pingsPerSecond, 1)} pings/s`, s.verdict.cpu],
      ...(p.pingsShare < 0.95
        ? [[`(the same at all ${fmt(p.pingsPerSecond / p.pingsShare, 0)} pings/s asked, extrapolated)`, pct(s.cpuAtFullRate), s.verdict.cpu === 'n/a' ? 'n/a' : s.cpuAtFullRate < GOAL_CPU_SHARE ? 'PASS' : 'MISS']]
        : []),
      [`RSS under ${mb(GOAL_RSS_BYTES)} MB`, `${mb(Math.max(p.hwm, p.rssPeak))} MB (high-water)`, s.verdict.rss]
    ]),
    '',
    markdownTable(['window', 's', 'baseline CPU', 'pinging CPU', 'ratio', 'pings/s', 'failures', 'connected (b/p)', 'RTT series / fresh', 'peer processes CPU', 'load avg'],
      windows.map((w, i) => {
        const wb = w.monitors.baseline
        const wp = w.monitors.pinging
        return [String(i + 1), fmt(w.seconds, 1), pct(wb.cpuShare), pct(wp.cpuShare), fmt(wp.cpuShare / wb.cpuShare),
          fmt(wp.metrics.pingsPerSecond, 1), String(wp.metrics.failures),
          `${wb.metrics.connectedEnd}/${wp.metrics.connectedEnd}`, `${wp.metrics.rttSeries} / ${wp.metrics.freshPeers}`,
          pct(w.peersCpuShare), fmt(w.loadAverage, 2)]
      })),
    ''
  ]
  for (const role of ROLES) {
    const profile = s.monitors[role].profile
    if (profile == null) {
      continue
    }
    out.push(`CPU profile of the ${role} monitor during the windows: ${fmt(profile.busyMs / 1000, 2)} s busy of ${fmt(profile.spanMs / 1000, 1)} s (self time; shares of the busy time)`,
      '',
      markdownTable(['package', 'ms', 'share'], profile.byPackage.map(x => [x.name, fmt(x.ms, 0), pct(x.share)])),
      '',
      markdownTable(['function', 'ms', 'share'], profile.byFunction.map(x => [x.name, fmt(x.ms, 0), pct(x.share)])),
      '')
  }
  if (s.problems.length > 0) {
    out.push(`**Not a clean run**: ${s.problems.join('; ')}`, '')
  }
  if (b.warnings + p.warnings > 0) {
    out.push(`Monitor warnings logged: baseline ${b.warnings}, pinging ${p.warnings}.`, '')
  }
  out.push(
    'CPU: /proc/<pid>/stat utime+stime of each monitor process (every thread) over the windows, per second of wall clock. ' +
      'RSS: /proc/<pid>/status VmRSS sampled every 0.5 s in the windows; high-water: VmHWM, since the monitor started (start-up included). ' +
      'Pings, failures, RTT, heap, loop lag and GC: the monitors\' own /metrics, scraped before and after each window (outside its clock). ' +
      `MB = 10^6 bytes. Both monitors run at once with the same ${options.peers} peers, so noise hits both alike.`,
    `Node ${process.version}, ${availableParallelism()} × ${cpus()[0]?.model ?? 'unknown CPU'}, peer processes used ${pct(s.peersCpuShare)} of a core, load average ${fmt(s.loadAverage, 2)}`
  )
  return `${out.join('\n')}\n`
}

function profileOf (monitor: Monitor, windows: readonly WindowResult[]): ProfileSummary | undefined {
  if (monitor.profileDir == null) {
    return undefined
  }
  const file = readdirSync(monitor.profileDir).filter(f => f.endsWith('.cpuprofile')).sort().at(-1)
  if (file == null) {
    progress(`no .cpuprofile from the ${monitor.role} monitor in ${monitor.profileDir}`)
    return undefined
  }
  // the windows only: not the scrapes and checks between them
  return summarizeProfile(join(monitor.profileDir, file), windows.map(w => [w.startUs, w.endUs] as const))
}

// ---------------------------------------------------------------- main

async function main (): Promise<void> {
  const options = parseOptions(process.argv.slice(2))
  const watchdog = setTimeout(() => {
    progress(`abandoned after --max-seconds ${options.maxSeconds}`)
    // SIGTERM first: a monitor run with --cpu-prof writes its profile as it stops
    void stopAll(3_000).finally(() => process.exit(3))
  }, options.maxSeconds * 1000)
  watchdog.unref()

  const monitors: Monitor[] = []
  let peers: PeerProcess[] = []
  const windows: WindowResult[] = []
  const problems: string[] = []
  try {
    progress(`starting the monitors: baseline (--interval ${options.baselineInterval}) and pinging (--interval ${options.interval})`)
    monitors.push(...await Promise.all([
      startMonitor('baseline', options.baselineInterval, options),
      startMonitor('pinging', options.interval, options)
    ]))
    for (const m of monitors) {
      progress(`${m.role} monitor pid ${m.pid}: ${m.addr}, ${m.metricsUrl}`)
    }
    progress(`starting ${options.peers} peers in ${options.processes} processes`)
    const t0 = performance.now()
    peers = await startPeers(options, monitors.map(m => m.addr))
    progress(`${options.peers} peers connected to both monitors in ${fmt((performance.now() - t0) / 1000, 1)} s; warm-up ${options.warmupSeconds} s`)
    await sleep(options.warmupSeconds * 1000)
    checkAlive(monitors)
    for (let i = 0; i < options.windows; i++) {
      const w = await measureWindow(options, monitors, peers)
      windows.push(w)
      const wb = w.monitors.baseline
      const wp = w.monitors.pinging
      progress(`window ${i + 1}/${options.windows}: CPU baseline ${pct(wb.cpuShare)}, pinging ${pct(wp.cpuShare)}; ` +
        `RSS ${mb(wb.rssEnd)} / ${mb(wp.rssEnd)} MB; ${fmt(wp.metrics.pingsPerSecond, 1)} pings/s, ${wp.metrics.failures} failures; ` +
        `connected ${wb.metrics.connectedEnd}/${wp.metrics.connectedEnd}, peers see ${w.peers.connected.join('/')}, ${w.peers.disconnects} disconnects; load ${fmt(w.loadAverage, 2)}`)
      for (const problem of validate(options, w)) {
        progress(`window ${i + 1}: ${problem}`)
        problems.push(`window ${i + 1}: ${problem}`)
      }
    }
  } finally {
    progress('stopping')
    await Promise.all([
      stopPeers(peers),
      ...monitors.map(async m => { await stopChild(m.child, 12_000) })
    ])
  }

  const summary = summarize(options, monitors, windows, problems)
  for (const m of monitors) {
    const profile = profileOf(m, windows)
    if (profile != null) {
      summary.monitors[m.role].profile = profile
    }
  }
  const text = options.json
    ? `${JSON.stringify({
      options,
      node: process.version,
      cpus: availableParallelism(),
      cpuModel: cpus()[0]?.model,
      goals: { cpuShare: GOAL_CPU_SHARE, rssBytes: GOAL_RSS_BYTES },
      summary,
      windows
    }, (_key, v: unknown) => typeof v === 'number' && !Number.isFinite(v) ? null : v, 2)}\n`
    : markdown(options, windows, summary)
  await new Promise<void>(resolve => { process.stdout.write(text, () => { resolve() }) })
  clearTimeout(watchdog)
  if (problems.length > 0) {
    progress(`not a clean run: ${problems.length} problem(s), see above`)
  }
}

try {
  await main()
  process.exit(0)
} catch (err) {
  process.stderr.write(err instanceof UsageError
    ? `ping-monitor: ${err.message}\n${USAGE}\n`
    : `ping-monitor: ${(err as Error).stack ?? String(err)}\n`)
  process.exit(err instanceof UsageError ? 2 : 1)
}
