import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { eventually, freePort, tempDir } from '../../p2p/test/helpers.ts'
import type { ChildProcess } from 'node:child_process'

export { eventually, freePort, tempDir }

/** The passphrase of the test network: the same key as TEST_PSK of the p2p tests. */
export const TEST_PASSPHRASE = 'physarum-test-network'
export const BIN = new URL('../bin/ping-monitor.js', import.meta.url).pathname

export interface Exited {
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
}

/** Runs the CLI to its end (for the usage and failure cases). */
export async function runCli (args: string[], env: Record<string, string> = {}, timeoutMs = 20_000): Promise<Exited> {
  const child = spawn(process.execPath, [BIN, ...args], { env: { ...cleanEnv(), ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (chunk: Buffer) => { stdout += chunk.toString() })
  child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
  // 'close', not 'exit': at 'exit' the pipes may still hold the end of what it printed
  const [code, signal] = await once(child, 'close') as [number | null, NodeJS.Signals | null]
  clearTimeout(timer)
  return { code, signal, stdout, stderr }
}

/** The environment without anything physarum-specific of the developer's shell. */
function cleanEnv (): Record<string, string> {
  const env: Record<string, string> = {}
  for (const [key, value] of Object.entries(process.env)) {
    if (value != null && !key.startsWith('PHYSARUM_') && !key.startsWith('P2P_')) {
      env[key] = value
    }
  }
  return env
}

export interface SpawnedMonitor {
  child: ChildProcess
  /** The multiaddrs it printed, with /p2p/<peer id>. */
  addrs: string[]
  peerId: string
  metricsUrl: string
  /** Everything it wrote so far. */
  output: () => string
  /** SIGTERM, then waits for the exit (SIGKILL past the deadline); the exit code or signal. */
  stop: (signal?: NodeJS.Signals) => Promise<{ code: number | null, signal: NodeJS.Signals | null }>
}

/**
 * Spawns the CLI on 127.0.0.1 (port 0 for the overlay, a free metrics port) with an ephemeral
 * identity unless `args` say otherwise, and the test passphrase in the environment, and waits for its start-up lines.
 */
export async function spawnMonitor (args: string[] = [], env: Record<string, string> = {}, startTimeoutMs = 20_000): Promise<SpawnedMonitor> {
  const metricsPort = await freePort()
  // never the developer's own state folder
  const identity = args.some(arg => ['--ephemeral', '--state-dir', '--identity'].includes(arg)) ? [] : ['--ephemeral']
  const child = spawn(process.execPath, [
    BIN, '--listen', '/ip4/127.0.0.1/tcp/0', '--metrics-listen', `127.0.0.1:${metricsPort}`, ...identity, ...args
  ], { env: { ...cleanEnv(), PHYSARUM_PSK: TEST_PASSPHRASE, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  child.stdout.on('data', (chunk: Buffer) => { out += chunk.toString() })
  child.stderr.on('data', (chunk: Buffer) => { out += chunk.toString() })
  const exited = once(child, 'close') as Promise<[number | null, NodeJS.Signals | null]>
  let status: { code: number | null, signal: NodeJS.Signals | null } | undefined
  void exited.then(([code, signal]) => { status = { code, signal } })

  const stop = async (signal: NodeJS.Signals = 'SIGTERM'): Promise<{ code: number | null, signal: NodeJS.Signals | null }> => {
    if (status == null) {
      child.kill(signal)
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000)
      await exited
      clearTimeout(timer)
    }
    return status!
  }
  try {
    const { addrs, metricsUrl } = await eventually('the monitor\'s start-up lines', () => {
      if (status != null) {
        throw new Error(`the monitor exited (${status.code ?? status.signal}): ${out}`)
      }
      const addrs = [...out.matchAll(/^ping-monitor listening: (\S+)$/gm)].map(m => m[1]!)
      const metricsUrl = /^ping-monitor metrics: (\S+)$/m.exec(out)?.[1]
      return addrs.length > 0 && metricsUrl != null ? { addrs, metricsUrl } : undefined
    }, startTimeoutMs)
    return { child, addrs, peerId: addrs[0]!.split('/p2p/')[1]!, metricsUrl, output: () => out, stop }
  } catch (err) {
    await stop('SIGKILL')
    throw err
  }
}

export interface Sample {
  name: string
  labels: Record<string, string>
  value: number
}

/** Parses Prometheus' text format into samples (enough for prom-client's output). */
export function parseMetrics (text: string): Sample[] {
  const samples: Sample[] = []
  for (const line of text.split('\n')) {
    const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line)
    if (match == null) {
      continue
    }
    const labels: Record<string, string> = {}
    for (const label of (match[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) {
      labels[label[1]!] = label[2]!
    }
    samples.push({ name: match[1]!, labels, value: Number(match[3]) })
  }
  return samples
}

export async function scrape (metricsUrl: string): Promise<Sample[]> {
  const res = await fetch(metricsUrl)
  if (!res.ok) {
    throw new Error(`GET ${metricsUrl}: ${res.status}`)
  }
  return parseMetrics(await res.text())
}

export async function getJson<T> (url: string): Promise<T> {
  const res = await fetch(url)
  if (!res.ok) {
    throw new Error(`GET ${url}: ${res.status}`)
  }
  return await res.json() as T
}

/** The samples of one metric, by target_peer. */
export function byPeer (samples: Sample[], name: string): Map<string, Sample> {
  return new Map(samples.filter(s => s.name === name).map(s => [s.labels.target_peer!, s]))
}

export interface RunningPrometheus {
  url: string
  stop: () => Promise<void>
}

/** Starts Debian's prometheus scraping `targets` every second, with its data in a temp folder. */
export async function startPrometheus (targets: string[], jobName = 'ping-monitor'): Promise<RunningPrometheus> {
  const dir = await tempDir('physarum-prometheus')
  const port = await freePort()
  const config = join(dir.path, 'prometheus.yml')
  await writeFile(config, [
    'global:',
    '  scrape_interval: 1s',
    '  evaluation_interval: 1s',
    'scrape_configs:',
    `  - job_name: ${jobName}`,
    '    static_configs:',
    `      - targets: [${targets.map(t => `'${t}'`).join(', ')}]`,
    ''
  ].join('\n'))
  const child = spawn('prometheus', [
    `--config.file=${config}`,
    `--storage.tsdb.path=${join(dir.path, 'data')}`,
    `--web.listen-address=127.0.0.1:${port}`
  ], { stdio: ['ignore', 'ignore', 'pipe'] })
  let log = ''
  child.stderr.on('data', (chunk: Buffer) => { log = (log + chunk.toString()).slice(-4_000) })
  const exited = once(child, 'exit')
  const stop = async (): Promise<void> => {
    if (child.exitCode == null && child.signalCode == null) {
      child.kill('SIGTERM')
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000)
      await exited
      clearTimeout(timer)
    }
    await dir.remove()
  }
  const url = `http://127.0.0.1:${port}`
  try {
    await eventually('Prometheus to be ready', async () => {
      if (child.exitCode != null) {
        throw new Error(`prometheus exited with ${child.exitCode}: ${log}`)
      }
      return (await fetch(`${url}/-/ready`)).ok ? true : undefined
    }, 30_000, 200)
  } catch (err) {
    await stop()
    throw err
  }
  return { url, stop }
}

export interface PromSeries {
  metric: Record<string, string>
  value: [number, string]
}

/** An instant query against Prometheus' HTTP API. */
export async function queryPrometheus (url: string, query: string): Promise<PromSeries[]> {
  const body = await getJson<{ status: string, data: { resultType: string, result: PromSeries[] } }>(`${url}/api/v1/query?query=${encodeURIComponent(query)}`)
  if (body.status !== 'success') {
    throw new Error(`query ${query} failed: ${JSON.stringify(body)}`)
  }
  return body.data.result
}
