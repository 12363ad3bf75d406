/**
 * bench/registry: Get of a record over the overlay (client -> registry-service daemon -> etcd)
 * beside a direct etcd3 Get from this process, at concurrency 1 and 50, interleaved round by round
 * in one run. The registry-service is the real daemon in its own process; the client asks it with
 * `fresh: true`, so every Get crosses the overlay (no cache); the Gets cycle through `--records`
 * names, so Gets in flight together ask for different records, as a proxy's for its services do. Beside the latencies, the CPU time
 * the client (this process) and the registry-service spent per overlay Get: on a shared machine
 * it moves less than the latencies, so changes compare on it. The client runs with the proxy's
 * V8 flags, as the registry's busiest client does (bench/README.md).
 */
import { createPhysarumNode, PreSharedKey } from '@physarum/p2p'
import { BULK_SETTINGS, execWithSettings } from '@physarum/p2p/node-settings'
import { createRegistryClient, KEY_PREFIX } from '@physarum/registry-service'
import { Etcd3 } from 'etcd3'
import { sampleRecord, TestEtcd } from '../packages/registry-service/test/helpers.ts'
import { onCleanup, startDaemon, stopAll } from './lib/children.ts'
import { processCpuSeconds } from './lib/procfs.ts'
import { benchFlags, fmt, markdownTable, median, parseCount, percentile } from './lib/stats.ts'

const USAGE = `Usage: node bench/registry.ts [options]   (Node 24)

  --requests N      Gets per kind and concurrency, spread over the rounds (default 20000)
  --rounds N        interleaved rounds (default 4)
  --concurrency L   comma-separated concurrencies (default 1,50)
  --records N       distinct records the Gets cycle through (default 100)
  --warmup N        Gets of each kind at each concurrency before measuring (default 3000)
  --json            print the results as JSON
  --help`

// the flags only: the environment would reach the registry-service too
execWithSettings({ flags: BULK_SETTINGS.flags, env: {} })

const GOALS = { p50Ms: 2, p99Ms: 10, ratioToEtcd: 3, atConcurrency: 50 }
const PASSPHRASE = 'physarum registry benchmark'
const SERVICE_PREFIX = 'bench-service-'

const { json, requests, rounds, warmup, recordCount, levels } = benchFlags(USAGE, {
  requests: { type: 'string', default: '20000' },
  rounds: { type: 'string', default: '4' },
  concurrency: { type: 'string', default: '1,50' },
  records: { type: 'string', default: '100' },
  warmup: { type: 'string', default: '3000' },
  json: { type: 'boolean', default: false },
  help: { type: 'boolean', default: false }
}, values => ({
  json: values.json,
  recordCount: parseCount('records', values.records),
  requests: parseCount('requests', values.requests),
  rounds: parseCount('rounds', values.rounds),
  warmup: parseCount('warmup', values.warmup, 0),
  levels: values.concurrency.split(',').map(c => parseCount('concurrency', c))
}))
const progress = (message: string): void => { process.stderr.write(`[bench/registry] ${message}\n`) }

/** Runs `total` calls of `op` with `concurrency` in flight; the latency of each, in ms. */
async function measure (op: () => Promise<unknown>, total: number, concurrency: number): Promise<number[]> {
  const latencies: number[] = []
  let started = 0
  await Promise.all(Array.from({ length: Math.min(concurrency, total) }, async () => {
    while (started < total) {
      started++
      const t = performance.now()
      await op()
      latencies.push(performance.now() - t)
    }
  }))
  return latencies
}

const watchdog = setTimeout(() => {
  progress('took over 10 minutes: abandoned')
  void stopAll(1_000).finally(() => process.exit(3))
}, 600_000)
watchdog.unref()

const etcd = await TestEtcd.start()
// also when the watchdog or a signal ends the run (stopAll runs it)
onCleanup('etcd', async () => { await etcd.remove() })
let client: Awaited<ReturnType<typeof createPhysarumNode>> | undefined
const direct = new Etcd3({ hosts: etcd.endpoint })
try {
  progress(`etcd on ${etcd.endpoint}; starting registry-service`)
  const daemon = await startDaemon('registry-service', 'packages/registry-service/bin/registry-service.js', [
    '--etcd-endpoints', etcd.endpoint, '--ephemeral', '--open-writes', '--log-level', 'warn',
    '--listen', '/ip4/127.0.0.1/tcp/0', '--metrics-listen', '127.0.0.1:0'
  ], { PHYSARUM_PSK: PASSPHRASE }, /^registry-service listening: (\S+)/)
  const addr = daemon.ready[1]!

  client = await createPhysarumNode({ psk: PreSharedKey.fromPassphrase(PASSPHRASE), listen: ['/ip4/127.0.0.1/tcp/0'], dhtMode: 'client', bootstrap: [addr] })
  await client.start()
  const registry = createRegistryClient(client, { peers: [addr] })
  const names = Array.from({ length: recordCount }, (_, i) => `${SERVICE_PREFIX}${i}`)
  progress(`adding ${recordCount} records`)
  for (const name of names) {
    await registry.add(sampleRecord(name))
  }
  let next = 0
  const nextName = (): string => names[next++ % names.length]!
  const kinds = {
    overlay: async () => await registry.get(nextName(), { fresh: true }),
    etcd: async () => await direct.get(`${KEY_PREFIX}${nextName()}`).string()
  }

  // warm at every concurrency measured: a burst's streams are opened here, not in the first round
  progress(`warm-up: ${warmup} Gets of each kind at each concurrency`)
  for (const concurrency of levels) {
    for (const op of Object.values(kinds)) {
      await measure(op, warmup, concurrency)
    }
  }
  const samples = new Map<string, number[]>()
  /** Per concurrency, each overlay phase's CPU µs per Get: the client's and the registry-service's. */
  const cpu = new Map<number, { client: number[], server: number[] }>(levels.map(concurrency => [concurrency, { client: [], server: [] }]))
  const perRound = Math.max(1, Math.floor(requests / rounds))
  for (let round = 0; round < rounds; round++) {
    for (const concurrency of levels) {
      for (const [kind, op] of round % 2 === 0 ? Object.entries(kinds) : Object.entries(kinds).reverse()) {
        const label = `${kind}@${concurrency}`
        const client0 = process.cpuUsage()
        const server0 = processCpuSeconds(daemon.pid)
        samples.set(label, [...samples.get(label) ?? [], ...await measure(op, perRound, concurrency)])
        if (kind === 'overlay') {
          const client = process.cpuUsage(client0)
          cpu.get(concurrency)!.client.push((client.user + client.system) / perRound)
          cpu.get(concurrency)!.server.push((processCpuSeconds(daemon.pid) - server0) * 1e6 / perRound)
        }
      }
    }
    progress(`round ${round + 1}/${rounds} done`)
  }

  const results = levels.flatMap(concurrency => ['overlay', 'etcd'].map(kind => {
    const ms = samples.get(`${kind}@${concurrency}`)!
    const perGet = kind === 'overlay' ? cpu.get(concurrency)! : undefined
    return {
      kind,
      concurrency,
      count: ms.length,
      p50Ms: percentile(ms, 50),
      p99Ms: percentile(ms, 99),
      ...perGet == null ? {} : { cpuUsPerGet: { client: median(perGet.client), registryService: median(perGet.server) } }
    }
  }))
  const at = (kind: string, concurrency: number): typeof results[number] | undefined => results.find(r => r.kind === kind && r.concurrency === concurrency)
  const verdicts = levels.map(concurrency => {
    const overlay = at('overlay', concurrency)!
    const ratio = overlay.p50Ms / at('etcd', concurrency)!.p50Ms
    return { concurrency, ratioP50: ratio, withinRatio: ratio <= GOALS.ratioToEtcd }
  })
  const goal = at('overlay', GOALS.atConcurrency)
  const absolute = goal == null ? undefined : { p50: goal.p50Ms <= GOALS.p50Ms, p99: goal.p99Ms <= GOALS.p99Ms }

  if (json) {
    console.log(JSON.stringify({ results, verdicts, absolute, goals: GOALS }, null, 2))
  } else {
    console.log(`## registry: Get of one of ${recordCount} records, ${rounds} interleaved rounds\n`)
    console.log(markdownTable(['kind', 'concurrency', 'Gets', 'p50 ms', 'p99 ms', 'CPU µs per Get (median): client, registry-service'],
      results.map(r => [r.kind === 'overlay' ? 'overlay (client -> registry-service -> etcd)' : 'direct etcd3 Get', String(r.concurrency), String(r.count), fmt(r.p50Ms, 3), fmt(r.p99Ms, 3),
        r.cpuUsPerGet == null ? '–' : `${fmt(r.cpuUsPerGet.client, 1)}, ${fmt(r.cpuUsPerGet.registryService, 1)}`])))
    console.log('')
    console.log(markdownTable(['concurrency', 'overlay p50 / etcd p50', `goal <= ${GOALS.ratioToEtcd}`],
      verdicts.map(v => [String(v.concurrency), fmt(v.ratioP50), v.withinRatio ? 'PASS' : 'MISS'])))
    if (goal != null && absolute != null) {
      console.log(`\noverlay at concurrency ${GOALS.atConcurrency}: p50 ${fmt(goal.p50Ms, 3)} ms (goal <= ${GOALS.p50Ms}: ${absolute.p50 ? 'PASS' : 'MISS'}), p99 ${fmt(goal.p99Ms, 3)} ms (goal <= ${GOALS.p99Ms}: ${absolute.p99 ? 'PASS' : 'MISS'})`)
    }
  }
} finally {
  direct.close()
  await client?.stop()
  await stopAll(5_000)
  clearTimeout(watchdog)
}
