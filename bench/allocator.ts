/**
 * bench/allocator: the cold start of an instance through the real allocator (Allocate of a
 * service whose image the engine already holds, until the answer, then until an HTTP request
 * through the new sidecar is answered) beside a plain container run of the same image (create +
 * start with host networking and SERVICE_PORT, until its port answers an HTTP GET), interleaved
 * round by round in one run. Also the sidecar's resident memory once ready.
 *
 * Everything runs on a private dockerd and 127.0.0.1 (packages/allocator/test/helpers.ts: the
 * local Node image, a hello-world service image pushed to a local docker-registry, etcd, an
 * in-process registry-service and an in-process allocator). Run `node bench/allocator.ts --help`.
 */
import { loadavg, availableParallelism, cpus } from 'node:os'
import { setTimeout as delay } from 'node:timers/promises'
import { parseArgs } from 'node:util'
import { multiaddr } from '@multiformats/multiaddr'
import { parseDuration } from '@physarum/p2p'
import { allocate } from '../packages/allocator/src/client.ts'
import { LABELS } from '../packages/allocator/src/constants.ts'
import {
  buildServiceImage, containersOf, ensureNodeImage, freePort, HELLO_SERVER, httpThroughSidecar, startDocker,
  startImageRegistry, startOverlay, startTestAllocator, tempDir
} from '../packages/allocator/test/helpers.ts'
import { onCleanup, stopAll } from './lib/children.ts'
import { containerMemory } from './lib/containers.ts'
import { fmt, markdownTable, max, median, parseCount, percentile } from './lib/stats.ts'
import type { ColdStartPhases } from '../packages/allocator/src/client.ts'
import type { TestDocker } from '../packages/allocator/test/helpers.ts'
import type { ContainerMemory } from './lib/containers.ts'

const USAGE = `Usage: node bench/allocator.ts [options]   (Node 24; needs root for its private dockerd)

  --rounds N          measured rounds, each one cold Allocate and one plain run (default 10)
  --warmup N          unmeasured rounds first (default 1)
  --idle-timeout D    the allocator's idle timeout: how an instance is released between rounds (default 3s)
  --poll-ms MS        the plain run's HTTP poll interval (default 20: the sidecar's own port poll)
  --cpu N             the service record's CPU share; the plain run gets the same limit (default 0.25)
  --memory-mb N       the service record's memory limit; the plain run gets the same (default 128)
  --timeout S         seconds any one allocation, plain run or release may take (default 30)
  --max-seconds S     the whole run is abandoned (exit 3) after this many seconds (default 240)
  --json              print the results as JSON
  --help`

const GOALS = { p50DeltaMs: 500, p99Ms: 2000, sidecarRssMB: 100 }
const SERVICE = 'bench-hello'
/** Label of the plain runs' containers, so that cleanup finds them. */
const BENCH_LABEL = 'io.physarum.bench'
const MB = 1e6

interface Options {
  rounds: number
  warmup: number
  idleTimeoutMs: number
  pollMs: number
  cpu: number
  memoryMb: number
  timeoutMs: number
  maxSeconds: number
  json: boolean
}

class UsageError extends Error {}

function parseOptions (argv: string[]): Options {
  try {
    const { values } = parseArgs({
      args: argv,
      strict: true,
      options: {
        rounds: { type: 'string', default: '10' },
        warmup: { type: 'string', default: '1' },
        'idle-timeout': { type: 'string', default: '3s' },
        'poll-ms': { type: 'string', default: '20' },
        cpu: { type: 'string', default: '0.25' },
        'memory-mb': { type: 'string', default: '128' },
        timeout: { type: 'string', default: '30' },
        'max-seconds': { type: 'string', default: '240' },
        json: { type: 'boolean', default: false },
        help: { type: 'boolean', default: false }
      }
    })
    if (values.help) {
      process.stdout.write(`${USAGE}\n`)
      process.exit(0)
    }
    const cpu = Number(values.cpu)
    if (!Number.isFinite(cpu) || cpu < 0) {
      throw new Error(`--cpu: ${JSON.stringify(values.cpu)} must be a number >= 0`)
    }
    return {
      rounds: parseCount('rounds', values.rounds),
      warmup: parseCount('warmup', values.warmup, 0),
      idleTimeoutMs: parseDuration('--idle-timeout', values['idle-timeout'], 200),
      pollMs: parseCount('poll-ms', values['poll-ms']),
      cpu,
      memoryMb: parseCount('memory-mb', values['memory-mb'], 0),
      timeoutMs: parseCount('timeout', values.timeout) * 1000,
      maxSeconds: parseCount('max-seconds', values['max-seconds']),
      json: values.json
    }
  } catch (err) {
    throw new UsageError((err as Error).message)
  }
}

function progress (message: string): void {
  process.stderr.write(`[allocator ${(performance.now() / 1000).toFixed(1).padStart(6)}s] ${message}\n`)
}

// ---------------------------------------------------------------- the two ways to start an instance

interface AllocatorSample {
  /** Allocate sent until its answer (the sidecar has checked in), ms. */
  answerMs: number
  /** Allocate sent until a GET through the new sidecar was answered, ms. */
  httpMs: number
  phases: ColdStartPhases
  memory: ContainerMemory
  /** The last answer until the allocator had removed the instance (idle timeout, drain, stop), ms. */
  releaseMs: number
}

interface PlainSample {
  /** Create + start until the port answered a GET, ms. */
  readyMs: number
  /** The service container's memory, for comparison with the sidecar's. */
  memory: ContainerMemory
}

async function waitUntil<T> (what: string, timeoutMs: number, intervalMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = performance.now() + timeoutMs
  for (;;) {
    const value = await probe()
    if (value !== undefined) {
      return value
    }
    if (performance.now() > deadline) {
      throw new Error(`${what}: not within ${timeoutMs} ms`)
    }
    await delay(intervalMs)
  }
}

async function httpAnswers (port: number): Promise<boolean> {
  try {
    const response = await fetch(`http://127.0.0.1:${port}/bench`, { signal: AbortSignal.timeout(1_000) })
    await response.arrayBuffer()
    return response.ok
  } catch {
    return false
  }
}

async function plainRun (engine: TestDocker, image: string, options: Options): Promise<PlainSample> {
  const port = await freePort()
  const t0 = performance.now()
  const container = await engine.docker.createContainer({
    Image: image,
    Env: [`SERVICE_PORT=${port}`, 'PHYSARUM_INSTANCE=plain'],
    Labels: { [BENCH_LABEL]: 'plain' },
    HostConfig: {
      NetworkMode: 'host',
      ...(options.cpu > 0 ? { NanoCpus: Math.round(options.cpu * 1e9) } : {}),
      ...(options.memoryMb > 0 ? { Memory: options.memoryMb * 1024 * 1024 } : {})
    }
  })
  try {
    await container.start()
    await waitUntil(`the plain container's port ${port}`, options.timeoutMs, options.pollMs, async () => await httpAnswers(port) ? true : undefined)
    const readyMs = performance.now() - t0
    return { readyMs, memory: await containerMemory(engine.docker, container.id) }
  } finally {
    await container.remove({ force: true }).catch(() => {})
  }
}

type Overlay = Awaited<ReturnType<typeof startOverlay>>
type Daemon = Awaited<ReturnType<typeof startTestAllocator>>

async function allocatorRun (engine: TestDocker, overlay: Overlay, daemon: Daemon, options: Options): Promise<AllocatorSample> {
  const addr = multiaddr(daemon.node.multiaddrs().map(String).find(a => a.startsWith('/ip4/127.')) ?? daemon.node.multiaddrs()[0]!.toString())
  const t0 = performance.now()
  const allocation = await allocate(overlay.client.libp2p, addr, SERVICE, { signal: AbortSignal.timeout(options.timeoutMs) })
  const answerMs = performance.now() - t0
  if (allocation.reused) {
    throw new Error(`Allocate answered with a running instance (${allocation.instanceId}): not a cold start`)
  }
  const answer = await httpThroughSidecar(overlay.client, allocation.multiaddrs, '/bench', options.timeoutMs)
  const httpMs = performance.now() - t0
  const answeredAt = performance.now()
  if (answer.status !== 200 || !answer.body.startsWith(`Hello, world from ${allocation.instanceId}`)) {
    throw new Error(`the sidecar answered ${answer.status} ${JSON.stringify(answer.body.slice(0, 100))}`)
  }
  const containers = await engine.docker.listContainers({ filters: { label: [`${LABELS.instance}=${allocation.instanceId}`, `${LABELS.role}=sidecar`] } })
  if (containers.length !== 1) {
    throw new Error(`found ${containers.length} sidecar containers of instance ${allocation.instanceId}`)
  }
  const memory = await containerMemory(engine.docker, containers[0]!.Id)

  // released the way the allocator releases: idle timeout, drain, stop, remove
  await waitUntil(`the allocator to release instance ${allocation.instanceId}`, options.idleTimeoutMs + options.timeoutMs, 50, async () => {
    if (daemon.allocator.instances().some(i => i.id === allocation.instanceId)) {
      return undefined
    }
    const left = await engine.docker.listContainers({ all: true, filters: { label: [`${LABELS.instance}=${allocation.instanceId}`] } })
    return left.length === 0 ? true : undefined
  })
  return { answerMs, httpMs, phases: allocation.phases, memory, releaseMs: performance.now() - answeredAt }
}

// ---------------------------------------------------------------- reporting

interface Latency { n: number, p50: number, p99: number, min: number, max: number }

function latency (samples: number[]): Latency {
  return { n: samples.length, p50: percentile(samples, 50), p99: percentile(samples, 99), min: Math.min(...samples), max: max(samples) }
}

interface Results {
  options: Options
  node: string
  cpus: number
  cpuModel: string | undefined
  loadavg: { start: number[], end: number[] }
  allocatorAnswer: Latency
  allocatorHttp: Latency
  plain: Latency
  p50DeltaMs: number
  p50DeltaHttpMs: number
  phasesMedianMs: Record<keyof ColdStartPhases, number>
  /** Client-side answer time less the allocator's own total, median: the RPC and this process's share. */
  wireMedianMs: number
  sidecar: { rssMedianMB: number, rssMaxMB: number, anonMedianMB: number, anonMaxMB: number, hwmMaxMB: number, cgroupMedianMB: number, cgroupMaxMB: number, processes: number }
  plainServiceRssMedianMB: number
  releaseMedianMs: number
  verdicts: { p50Delta: 'PASS' | 'MISS', p99: 'PASS' | 'MISS', sidecarRss: 'PASS' | 'MISS' }
  rounds: Array<{ allocator: AllocatorSample, plain: PlainSample }>
}

function summarize (options: Options, rounds: Results['rounds'], load0: number[]): Results {
  const a = rounds.map(r => r.allocator)
  const p = rounds.map(r => r.plain)
  const allocatorAnswer = latency(a.map(s => s.answerMs))
  const allocatorHttp = latency(a.map(s => s.httpMs))
  const plain = latency(p.map(s => s.readyMs))
  const phase = (k: keyof ColdStartPhases): number => median(a.map(s => s.phases[k]))
  const rss = a.map(s => s.memory.rss / MB)
  const cgroup = a.map(s => s.memory.cgroup / MB)
  const p50DeltaMs = allocatorAnswer.p50 - plain.p50
  const sidecar = {
    rssMedianMB: median(rss),
    rssMaxMB: max(rss),
    anonMedianMB: median(a.map(s => s.memory.anon / MB)),
    anonMaxMB: max(a.map(s => s.memory.anon / MB)),
    hwmMaxMB: max(a.map(s => s.memory.hwm / MB)),
    cgroupMedianMB: median(cgroup),
    cgroupMaxMB: max(cgroup),
    processes: max(a.map(s => s.memory.processes))
  }
  return {
    options,
    node: process.version,
    cpus: availableParallelism(),
    cpuModel: cpus()[0]?.model,
    loadavg: { start: load0, end: loadavg() },
    allocatorAnswer,
    allocatorHttp,
    plain,
    p50DeltaMs,
    p50DeltaHttpMs: allocatorHttp.p50 - plain.p50,
    phasesMedianMs: { pullMs: phase('pullMs'), createMs: phase('createMs'), startMs: phase('startMs'), readyMs: phase('readyMs'), totalMs: phase('totalMs') },
    wireMedianMs: median(a.map(s => s.answerMs - s.phases.totalMs)),
    sidecar,
    plainServiceRssMedianMB: median(p.map(s => s.memory.rss / MB)),
    releaseMedianMs: median(a.map(s => s.releaseMs)),
    verdicts: {
      p50Delta: p50DeltaMs <= GOALS.p50DeltaMs ? 'PASS' : 'MISS',
      p99: allocatorAnswer.p99 < GOALS.p99Ms ? 'PASS' : 'MISS',
      sidecarRss: Math.max(sidecar.rssMaxMB, sidecar.cgroupMaxMB) < GOALS.sidecarRssMB ? 'PASS' : 'MISS'
    },
    rounds
  }
}

function markdown (r: Results): string {
  const ms = (n: number): string => fmt(n, 0)
  const row = (label: string, l: Latency): string[] => [label, String(l.n), ms(l.p50), ms(l.p99), ms(l.min), ms(l.max)]
  const o = r.options
  const limits = o.cpu > 0 || o.memoryMb > 0 ? `both limited to ${o.cpu} CPU / ${o.memoryMb} MiB` : 'no limits'
  const out = [
    `## allocator: ${o.rounds} interleaved rounds (+${o.warmup} warm-up), image present, host networking, ${limits}`,
    '',
    markdownTable(['cold start', 'n', 'p50 ms', 'p99 ms', 'min ms', 'max ms'], [
      row('Allocate → answer (sidecar checked in)', r.allocatorAnswer),
      row('Allocate → first GET through the sidecar answered', r.allocatorHttp),
      row('plain create + start → port answers a GET', r.plain)
    ]),
    '',
    markdownTable(['goal', 'measured', 'verdict'], [
      [`Allocate p50 within ${GOALS.p50DeltaMs} ms of the plain run`, `${ms(r.allocatorAnswer.p50)} − ${ms(r.plain.p50)} = ${ms(r.p50DeltaMs)} ms`, r.verdicts.p50Delta],
      ['(the same to the first GET through the sidecar)', `${ms(r.allocatorHttp.p50)} − ${ms(r.plain.p50)} = ${ms(r.p50DeltaHttpMs)} ms`, r.p50DeltaHttpMs <= GOALS.p50DeltaMs ? 'PASS' : 'MISS'],
      [`Allocate p99 under ${GOALS.p99Ms} ms`, `${ms(r.allocatorAnswer.p99)} ms`, r.verdicts.p99],
      [`sidecar RSS under ${GOALS.sidecarRssMB} MB`, `median ${fmt(r.sidecar.rssMedianMB, 1)}, max ${fmt(r.sidecar.rssMaxMB, 1)} MB (docker stats max ${fmt(r.sidecar.cgroupMaxMB, 1)} MB)`, r.verdicts.sidecarRss]
    ]),
    '',
    markdownTable(['cold-start phase (the Allocate answer\'s)', 'median ms'], [
      ['pull (image present: inspect only)', ms(r.phasesMedianMs.pullMs)],
      ['create (both containers)', ms(r.phasesMedianMs.createMs)],
      ['start (both containers)', ms(r.phasesMedianMs.startMs)],
      ['ready (until the sidecar checked in)', ms(r.phasesMedianMs.readyMs)],
      ['total (registry lookup included)', ms(r.phasesMedianMs.totalMs)],
      ['client answer − total (RPC, dial)', ms(r.wireMedianMs)]
    ]),
    '',
    markdownTable(['memory once ready', 'median MB', 'max MB'], [
      ['sidecar RSS (/proc VmRSS, its processes)', fmt(r.sidecar.rssMedianMB, 1), fmt(r.sidecar.rssMaxMB, 1)],
      ['sidecar private part of it (RssAnon)', fmt(r.sidecar.anonMedianMB, 1), fmt(r.sidecar.anonMaxMB, 1)],
      ['sidecar high-water (VmHWM)', '', fmt(r.sidecar.hwmMaxMB, 1)],
      ['sidecar, docker stats (usage − inactive file)', fmt(r.sidecar.cgroupMedianMB, 1), fmt(r.sidecar.cgroupMaxMB, 1)],
      ['plain service container RSS, for scale', fmt(r.plainServiceRssMedianMB, 1), '']
    ]),
    '',
    markdownTable(['round', 'Allocate ms', '+GET ms', 'plain ms', 'pull', 'create', 'start', 'ready', 'sidecar RSS MB', 'release ms'],
      r.rounds.map((round, i) => {
        const s = round.allocator
        return [String(i + 1), ms(s.answerMs), ms(s.httpMs), ms(round.plain.readyMs), ms(s.phases.pullMs), ms(s.phases.createMs),
          ms(s.phases.startMs), ms(s.phases.readyMs), fmt(s.memory.rss / MB, 1), ms(s.releaseMs)]
      })),
    '',
    `p99 of ${r.allocatorAnswer.n} samples is their maximum (nearest rank). MB = 10^6 bytes. ` +
      `Release (not timed against anything): idle timeout ${o.idleTimeoutMs} ms, drain, stop, remove; median ${ms(r.releaseMedianMs)} ms.`,
    `Node ${r.node}, ${r.cpus} × ${r.cpuModel ?? 'unknown CPU'}, load average ${fmt(r.loadavg.start[0]!)} at start, ${fmt(r.loadavg.end[0]!)} at end`
  ]
  return `${out.join('\n')}\n`
}

// ---------------------------------------------------------------- main

async function main (): Promise<void> {
  const options = parseOptions(process.argv.slice(2))
  const load0 = loadavg()
  const watchdog = setTimeout(() => {
    progress(`abandoned after --max-seconds ${options.maxSeconds}: cleaning up`)
    const force = setTimeout(() => { process.exit(3) }, 60_000)
    force.unref()
    void stopAll(3_000).finally(() => process.exit(3))
  }, options.maxSeconds * 1000)
  watchdog.unref()

  let rounds: Results['rounds']
  try {
    progress('starting dockerd')
    const engine = await startDocker()
    onCleanup('dockerd', async () => { await engine.stop() })
    // only what this run started: DOCKER_HOST may name an engine others use too
    const started: { allocatorId?: string } = {}
    onCleanup('containers', async () => {
      const instances = started.allocatorId == null ? [] : await containersOf(engine, started.allocatorId)
      await Promise.all(instances.map(async c => { await engine.docker.getContainer(c.Id).remove({ force: true }).catch(() => {}) }))
      const plain = await engine.docker.listContainers({ all: true, filters: { label: [BENCH_LABEL] } })
      await Promise.all(plain.map(async c => { await engine.docker.getContainer(c.Id).remove({ force: true }).catch(() => {}) }))
    })
    const images = await startImageRegistry()
    onCleanup('docker-registry', async () => { await images.stop() })
    const state = await tempDir('physarum-bench-alloc')
    onCleanup('state dir', async () => { await state.remove() })
    progress('building the Node image and the service image')
    await ensureNodeImage(engine)
    const image = await buildServiceImage(engine, images, 'bench-hello', HELLO_SERVER)
    progress(`service image ${image}; starting etcd, registry, client`)
    const overlay = await startOverlay()
    onCleanup('overlay', async () => { await overlay.stop() })
    await overlay.register(SERVICE, image, { cpu: options.cpu, memoryMb: options.memoryMb })
    progress('starting the allocator')
    const daemon = await startTestAllocator(engine, overlay, state.path, { idleTimeoutMs: options.idleTimeoutMs, readyTimeoutMs: options.timeoutMs })
    started.allocatorId = daemon.node.peerId.toString()
    // registered after the overlay's cleanup: runs before it
    onCleanup('allocator', async () => { await daemon.stop() })

    rounds = []
    for (let round = -options.warmup; round < options.rounds; round++) {
      const label = round < 0 ? `warm-up ${round + options.warmup + 1}/${options.warmup}` : `round ${round + 1}/${options.rounds}`
      // alternate which goes first, so neither always runs right after the other's teardown
      let allocator: AllocatorSample | undefined
      let plain: PlainSample | undefined
      for (const kind of round % 2 === 0 ? ['allocator', 'plain'] : ['plain', 'allocator']) {
        if (kind === 'allocator') {
          allocator = await allocatorRun(engine, overlay, daemon, options)
        } else {
          plain = await plainRun(engine, image, options)
        }
      }
      progress(`${label}: Allocate ${ms0(allocator!.answerMs)} ms (+GET ${ms0(allocator!.httpMs)}; ` +
        `pull ${allocator!.phases.pullMs} create ${allocator!.phases.createMs} start ${allocator!.phases.startMs} ready ${allocator!.phases.readyMs}), ` +
        `plain ${ms0(plain!.readyMs)} ms, sidecar RSS ${fmt(allocator!.memory.rss / MB, 1)} MB, released in ${ms0(allocator!.releaseMs)} ms`)
      if (round >= 0) {
        rounds.push({ allocator: allocator!, plain: plain! })
      }
    }
  } finally {
    progress('cleaning up')
    await stopAll(5_000)
  }
  progress('done')
  const results = summarize(options, rounds, load0)
  const text = options.json
    ? `${JSON.stringify(results, (_key, value: unknown) => typeof value === 'number' && !Number.isFinite(value) ? null : value, 2)}\n`
    : markdown(results)
  await new Promise<void>(resolve => { process.stdout.write(text, () => { resolve() }) })
  clearTimeout(watchdog)
}

function ms0 (n: number): string {
  return fmt(n, 0)
}

try {
  await main()
  // libp2p leaves timers behind after stop(): end here rather than wait for them
  process.exit(0)
} catch (err) {
  process.stderr.write(err instanceof UsageError
    ? `allocator: ${err.message}\n${USAGE}\n`
    : `allocator: ${(err as Error).stack ?? String(err)}\n`)
  process.exit(err instanceof UsageError ? 2 : 1)
}
