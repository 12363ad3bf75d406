import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { after, before, describe, it } from 'node:test'
import { startNode, stopAll } from '../../p2p/test/helpers.ts'
import { eventually, queryPrometheus, runCli, spawnMonitor, startPrometheus, TEST_PASSPHRASE } from './helpers.ts'
import type { PromSeries, RunningPrometheus, SpawnedMonitor } from './helpers.ts'
import type { PhysarumNode } from '@physarum/p2p'

const CONFIG = new URL('../../../configs/prometheus.yml', import.meta.url).pathname
const PEERS = 3

/** Runs promtool with `input` on stdin; its exit code and output. */
async function promtool (args: string[], input = ''): Promise<{ code: number | null, output: string }> {
  const child = spawn('promtool', args, { stdio: ['pipe', 'pipe', 'pipe'] })
  let output = ''
  child.stdout.on('data', (chunk: Buffer) => { output += chunk.toString() })
  child.stderr.on('data', (chunk: Buffer) => { output += chunk.toString() })
  child.stdin.end(input)
  const [code] = await once(child, 'close') as [number | null]
  return { code, output }
}

/** The metric families of a text exposition whose name starts with `prefix`, comments included. */
function families (text: string, prefix: string): string {
  return text.split('\n').filter(line => {
    const name = line.startsWith('# ') ? line.split(' ')[2] : line.split(/[{ ]/)[0]
    return name?.startsWith(prefix) === true
  }).join('\n') + '\n'
}

describe('ping monitor scraped by a real Prometheus', () => {
  let monitor: SpawnedMonitor | undefined
  let prometheus: RunningPrometheus | undefined
  const peers: PhysarumNode[] = []

  before(async () => {
    monitor = await spawnMonitor(['--ephemeral', '--hostname', 'mon-prom', '--interval', '200ms', '--ping-timeout', '1s'])
    const bootstrap = [monitor.addrs[0]!]
    for (let i = 1; i <= PEERS; i++) {
      peers.push(await startNode({ hostName: `peer-${i}`, bootstrap }))
    }
    prometheus = await startPrometheus([new URL(monitor.metricsUrl).host])
  })
  after(async () => {
    await stopAll(peers)
    await prometheus?.stop()
    await monitor?.stop()
  })

  it(`finds an RTT series with plausible values for each of ${PEERS} peers in Prometheus`, async () => {
    const ids = peers.map(p => p.peerId.toString())
    const series = await eventually(`RTT series of all ${PEERS} peers in Prometheus`, async () => {
      const result = await queryPrometheus(prometheus!.url, 'physarum_ping_rtt_seconds{job="ping-monitor"}')
      return ids.every(id => result.some(s => s.metric.target_peer === id)) ? result : undefined
    }, 30_000, 250)
    const byPeer = new Map(series.map(s => [s.metric.target_peer, s]))
    for (const [i, id] of ids.entries()) {
      const s: PromSeries = byPeer.get(id)!
      assert.equal(s.metric.host, 'mon-prom')
      assert.equal(s.metric.target_host, `peer-${i + 1}`)
      const seconds = Number(s.value[1])
      // loopback between processes: above 1 µs, and under the 1 s --ping-timeout that bounds every
      // answered ping, so seconds, not µs. Not the machine's speed: on a busy host a ping waits
      // behind whatever else runs, past 100 ms at times
      assert.ok(seconds > 1e-6 && seconds < 1, `RTT to peer-${i + 1}: ${seconds} s`)
    }
    const ewma = await queryPrometheus(prometheus!.url, 'physarum_ping_rtt_ewma_seconds{job="ping-monitor"}')
    assert.deepEqual(ewma.map(s => s.metric.target_peer).toSorted(), ids.toSorted())
    for (const s of ewma) {
      assert.ok(Number(s.value[1]) > 1e-6 && Number(s.value[1]) < 1, `EWMA ${s.value[1]} s`)
    }
    const connected = await queryPrometheus(prometheus!.url, 'physarum_connected_peers{job="ping-monitor"}')
    assert.equal(Number(connected[0]?.value[1]), PEERS)
    const pings = await eventually('the RTT histogram in Prometheus', async () => {
      const result = await queryPrometheus(prometheus!.url, 'sum(physarum_ping_rtt_distribution_seconds_count{job="ping-monitor"})')
      return Number(result[0]?.value[1] ?? 0) >= PEERS ? result : undefined
    })
    assert.ok(Number(pings[0]!.value[1]) >= PEERS)
    const failures = await queryPrometheus(prometheus!.url, 'sum(physarum_ping_failures_total{job="ping-monitor"})')
    assert.equal(Number(failures[0]?.value[1]), 0)
    assert.ok(!monitor!.output().includes(TEST_PASSPHRASE), 'the passphrase is in the monitor\'s output')
  })

  it('passes promtool check metrics: physarum_* cleanly, the whole page without a format error', async () => {
    const text = await (await fetch(monitor!.metricsUrl)).text()
    assert.match(text, /^physarum_ping_rtt_distribution_seconds_bucket\{le="0\.001",host="mon-prom"\} \d+$/m)
    const ours = await promtool(['check', 'metrics'], families(text, 'physarum_'))
    assert.equal(ours.code, 0, ours.output)
    assert.equal(ours.output.trim(), '')
    // exit 3: lint remarks only. Those come from prom-client's Node metrics and libp2p's, not ours
    const all = await promtool(['check', 'metrics'], text)
    assert.ok(all.code === 0 || all.code === 3, `promtool exited ${all.code}: ${all.output}`)
    for (const remark of all.output.trim().split('\n').filter(Boolean)) {
      assert.doesNotMatch(remark, /^physarum_|error/, remark)
    }
  })

  it('--help names every physarum_ metric the page serves', async () => {
    const text = await (await fetch(monitor!.metricsUrl)).text()
    const names = [...text.matchAll(/^# HELP (physarum_\S+)/gm)].map(match => match[1]!)
    assert.ok(names.length >= 7, names.join(', '))
    const { stdout } = await runCli(['--help'])
    for (const name of names) {
      assert.ok(stdout.includes(name), `--help does not name ${name}`)
    }
  })

  it('configs/prometheus.yml scrapes the four daemons and passes promtool check config', async () => {
    const { code, output } = await promtool(['check', 'config', CONFIG])
    assert.equal(code, 0, output)
    const { readFile } = await import('node:fs/promises')
    const config = await readFile(CONFIG, 'utf8')
    for (const [job, port] of [['ping-monitor', 9100], ['allocator', 9101], ['registry-service', 9102], ['proxy', 9103]] as const) {
      assert.match(config, new RegExp(`job_name: ${job}\\n\\s+static_configs:\\n\\s+- targets: \\['[^']+:${port}'\\]`), `${job} on ${port}`)
    }
  })
})
