/**
 * bench/proxy: the proxy's cost on the warm path, each figure beside its baseline measured in the
 * same run, round by round: small requests one at a time (added latency), requests per second at
 * 64 connections with autocannon, and a bulk download. Every part is its own process as on a
 * host: the service (a Node HTTP server), its sidecar (`proxy --sidecar`), the client proxy
 * (`proxy <port>`) and the registry-service (which is also the bootstrap) over etcd; the baseline
 * calls the service's port directly. The bulk download is also set against one libp2p stream with
 * the PSK between two nodes of the factory in this process (the floor for the transport).
 * During the proxied autocannon runs it also reads the CPU time of the client proxy and of the
 * sidecar (/proc/<pid>/stat), per request: steadier than requests/s on a shared machine.
 * The cold start is bench/allocator's.
 */
import { spawn } from 'node:child_process'
import { Agent, get } from 'node:http'
import autocannon from 'autocannon'
import { multiaddr } from '@multiformats/multiaddr'
import { createPhysarumNode, PreSharedKey } from '@physarum/p2p'
import { createRegistryClient } from '@physarum/registry-service'
import { freePort, sampleRecord, TestEtcd } from '../packages/registry-service/test/helpers.ts'
import { onCleanup, startDaemon, stopAll, track } from './lib/children.ts'
import { startServersInWorker } from './lib/overlay-server.ts'
import { processCpuSeconds } from './lib/procfs.ts'
import { bulkSendStream, SINK_PROTOCOL } from './lib/streams.ts'
import { benchFlags, fmt, gbits, markdownTable, median, parseCount, parseSize, percentile } from './lib/stats.ts'

const USAGE = `Usage: node bench/proxy.ts [options]   (Node 24)

  --requests N      sequential small requests per kind and round (default 2000)
  --rounds N        interleaved rounds (default 3)
  --duration S      seconds of each autocannon run at 64 connections (default 5)
  --bytes N         bytes of each bulk download (default 256M; K/M/G suffixes are binary)
  --json            print the results as JSON
  --help`

const GOALS = { addedP50Ms: 1, addedP99Ms: 5, rpsRatio: 0.2, bulkRatioToPsk: 0.5 }
const PASSPHRASE = 'physarum proxy benchmark'
const SERVICE = 'bench-proxy'
const CONNECTIONS = 64

const { json, requests, rounds, duration, bytes } = benchFlags(USAGE, {
  requests: { type: 'string', default: '2000' },
  rounds: { type: 'string', default: '3' },
  duration: { type: 'string', default: '5' },
  bytes: { type: 'string', default: '256M' },
  json: { type: 'boolean', default: false },
  help: { type: 'boolean', default: false }
}, values => ({
  json: values.json,
  requests: parseCount('requests', values.requests),
  rounds: parseCount('rounds', values.rounds),
  duration: parseCount('duration', values.duration),
  bytes: parseSize('bytes', values.bytes)
}))
const progress = (message: string): void => { process.stderr.write(`[bench/proxy] ${message}\n`) }

/** The service: a small answer at /, `n` bytes of zeros at /bytes?n=. */
const SERVICE_SOURCE = `
const http = require('node:http')
const block = Buffer.alloc(64 * 1024)
http.createServer((req, res) => {
  const url = new URL(req.url, 'http://x')
  if (url.pathname !== '/bytes') {
    res.end('hello\\n')
    return
  }
  let left = Number(url.searchParams.get('n'))
  res.writeHead(200, { 'content-length': left })
  const pump = () => {
    while (left > 0) {
      const part = left >= block.length ? block : block.subarray(0, left)
      left -= part.length
      if (!res.write(part)) {
        res.once('drain', pump)
        return
      }
    }
    res.end()
  }
  pump()
}).listen(Number(process.env.SERVICE_PORT), '127.0.0.1')
`

/** GET `url` on a keep-alive agent; resolves with the body's length. */
async function fetchLength (agent: Agent, url: string): Promise<number> {
  return await new Promise((resolve, reject) => {
    get(url, { agent }, (res) => {
      let length = 0
      res.on('data', (part: Buffer) => { length += part.length })
      res.on('end', () => {
        if (res.statusCode === 200) {
          resolve(length)
        } else {
          reject(new Error(`${url}: ${res.statusCode}`))
        }
      })
      res.on('error', reject)
    }).on('error', reject)
  })
}

async function sequential (agent: Agent, url: string, count: number): Promise<number[]> {
  const ms: number[] = []
  for (let i = 0; i < count; i++) {
    const t = performance.now()
    await fetchLength(agent, url)
    ms.push(performance.now() - t)
  }
  return ms
}

/** Requests/s under autocannon, and the CPU µs each process in `pids` spent per request meanwhile. */
async function rps (url: string, pids: number[] = []): Promise<{ rps: number, cpuUsPerRequest: number[] }> {
  const cpu0 = pids.map(processCpuSeconds)
  const result = await autocannon({ url, connections: CONNECTIONS, duration })
  if (result.non2xx > 0 || result.errors > 0) {
    throw new Error(`${url}: ${result.non2xx} non-2xx answers, ${result.errors} errors under load`)
  }
  return { rps: result.requests.average, cpuUsPerRequest: pids.map((pid, i) => (processCpuSeconds(pid) - cpu0[i]!) * 1e6 / result.requests.total) }
}

async function download (agent: Agent, url: string): Promise<number> {
  const t = performance.now()
  const length = await fetchLength(agent, url)
  if (length !== bytes) {
    throw new Error(`${url}: ${length} bytes instead of ${bytes}`)
  }
  return gbits(bytes, (performance.now() - t) / 1000)
}

const watchdog = setTimeout(() => {
  progress('took over 15 minutes: abandoned')
  void stopAll(1_000).finally(() => process.exit(3))
}, 900_000)
watchdog.unref()

const etcd = await TestEtcd.start()
// also when the watchdog or a signal ends the run (stopAll runs it)
onCleanup('etcd', async () => { await etcd.remove() })
const psk = PreSharedKey.fromPassphrase(PASSPHRASE)
const nodes: Array<Awaited<ReturnType<typeof createPhysarumNode>>> = []
try {
  progress('starting registry-service, service, sidecar and client proxy')
  const registryAddr = (await startDaemon('registry-service', 'packages/registry-service/bin/registry-service.js', [
    '--etcd-endpoints', etcd.endpoint, '--ephemeral', '--open-writes', '--log-level', 'warn',
    '--listen', '/ip4/127.0.0.1/tcp/0', '--metrics-listen', '127.0.0.1:0'
  ], { PHYSARUM_PSK: PASSPHRASE }, /^registry-service listening: (\S+)/)).ready[1]!
  const admin = await createPhysarumNode({ psk, listen: ['/ip4/127.0.0.1/tcp/0'], dhtMode: 'client', bootstrap: [registryAddr] })
  nodes.push(admin)
  await admin.start()
  await createRegistryClient(admin, { peers: [registryAddr] }).add({ ...sampleRecord(SERVICE), contentHash: 'bench-proxy-hash', softRttMs: 50, hardRttMs: 1_000 })

  const servicePort = await freePort()
  track(spawn(process.execPath, ['-e', SERVICE_SOURCE], { env: { ...process.env, SERVICE_PORT: String(servicePort) }, stdio: 'inherit' }), 'service')
  const sidecar = await startDaemon('sidecar', 'packages/proxy/bin/proxy.js', [
    '--sidecar', '--service', SERVICE, '--content-hash', 'bench-proxy-hash', '--service-port', String(servicePort),
    '--listen', '/ip4/127.0.0.1/tcp/0', '--bootstrap', registryAddr, '--log-level', 'info'
  ], { PHYSARUM_PSK: PASSPHRASE }, /"msg":"proxy-sidecar started"/)
  const proxyPort = await freePort()
  const clientProxy = await startDaemon('proxy', 'packages/proxy/bin/proxy.js', [
    String(proxyPort), '--listen', '/ip4/127.0.0.1/tcp/0', '--bootstrap', registryAddr, '--registry', registryAddr,
    '--metrics-listen', '127.0.0.1:0', '--log-level', 'info', '--ephemeral'
  ], { PHYSARUM_PSK: PASSPHRASE }, /"msg":"proxy started"/)

  const direct = `http://127.0.0.1:${servicePort}`
  const proxied = `http://127.0.0.1:${proxyPort}/${SERVICE}`
  const agent = new Agent({ keepAlive: true, maxSockets: 1 })
  // the sidecar provides its topic a moment after it starts
  for (let tries = 0; ; tries++) {
    try {
      await fetchLength(agent, `${proxied}/`)
      break
    } catch (err) {
      if (tries > 100) {
        throw err
      }
      await new Promise(resolve => setTimeout(resolve, 200))
    }
  }

  // the floor of the transport: one PSK stream from a factory node here to one in a worker thread
  // (its own event loop, as the proxied download has processes of its own)
  const sink = await startServersInWorker({ pairs: ['factory'], passphrase: PASSPHRASE })
  onCleanup('sink worker', async () => { await sink.stop() })
  const sinkAddr = multiaddr(sink.addrs.factory ?? '')
  const sender = await createPhysarumNode({ psk, listen: ['/ip4/127.0.0.1/tcp/0'], dhtMode: 'client', bootstrap: [registryAddr] })
  nodes.push(sender)
  await sender.start()
  const pskBulk = async (): Promise<number> => {
    const stream = await sender.libp2p.dialProtocol(sinkAddr, SINK_PROTOCOL)
    const result = await bulkSendStream(stream, bytes, { chunk: new Uint8Array(64 * 1024), maxBuffered: 4 * 1024 * 1024, signal: AbortSignal.timeout(300_000) })
    return gbits(result.bytes, result.seconds)
  }

  progress('warm-up')
  await sequential(agent, `${direct}/`, 200)
  await sequential(agent, `${proxied}/`, 200)

  const latency = { direct: [] as number[], proxied: [] as number[] }
  const throughput = { direct: [] as number[], proxied: [] as number[] }
  const cpuPerRequest = { proxy: [] as number[], sidecar: [] as number[] }
  const bulk = { direct: [] as number[], proxied: [] as number[], psk: [] as number[] }
  for (let round = 0; round < rounds; round++) {
    const order = round % 2 === 0 ? ['direct', 'proxied'] as const : ['proxied', 'direct'] as const
    for (const kind of order) {
      const base = kind === 'direct' ? direct : proxied
      latency[kind].push(...await sequential(agent, `${base}/`, requests))
      const load = await rps(`${base}/`, kind === 'proxied' ? [clientProxy.pid, sidecar.pid] : [])
      throughput[kind].push(load.rps)
      if (kind === 'proxied') {
        cpuPerRequest.proxy.push(load.cpuUsPerRequest[0]!)
        cpuPerRequest.sidecar.push(load.cpuUsPerRequest[1]!)
      }
      bulk[kind].push(await download(agent, `${base}/bytes?n=${bytes}`))
    }
    bulk.psk.push(await pskBulk())
    progress(`round ${round + 1}/${rounds} done`)
  }
  agent.destroy()

  const added = { p50: percentile(latency.proxied, 50) - percentile(latency.direct, 50), p99: percentile(latency.proxied, 99) - percentile(latency.direct, 99) }
  const rpsRatio = median(throughput.proxied) / median(throughput.direct)
  const bulkToPsk = median(bulk.proxied) / median(bulk.psk)
  const verdict = (ok: boolean): string => ok ? 'PASS' : 'MISS'
  const results = {
    latencyMs: { direct: { p50: percentile(latency.direct, 50), p99: percentile(latency.direct, 99) }, proxied: { p50: percentile(latency.proxied, 50), p99: percentile(latency.proxied, 99) }, added },
    requestsPerSecond: { direct: median(throughput.direct), proxied: median(throughput.proxied), ratio: rpsRatio },
    cpuUsPerRequest: { proxy: median(cpuPerRequest.proxy), sidecar: median(cpuPerRequest.sidecar) },
    bulkGbits: { direct: median(bulk.direct), proxied: median(bulk.proxied), psk: median(bulk.psk), proxiedToPsk: bulkToPsk },
    goals: GOALS
  }
  if (json) {
    console.log(JSON.stringify(results, null, 2))
  } else {
    console.log(`## proxy: ${rounds} interleaved rounds; ${requests} sequential requests, autocannon ${CONNECTIONS} connections × ${duration} s, ${fmt(bytes / 2 ** 20, 0)} MiB downloads per kind and round\n`)
    console.log(markdownTable(['measure', 'direct to the service', 'through the proxy', 'figure', 'goal'], [
      ['small request p50 ms', fmt(results.latencyMs.direct.p50, 3), fmt(results.latencyMs.proxied.p50, 3), `+${fmt(added.p50, 3)} ms`, `<= +${GOALS.addedP50Ms} ms: ${verdict(added.p50 <= GOALS.addedP50Ms)}`],
      ['small request p99 ms', fmt(results.latencyMs.direct.p99, 3), fmt(results.latencyMs.proxied.p99, 3), `+${fmt(added.p99, 3)} ms`, `<= +${GOALS.addedP99Ms} ms: ${verdict(added.p99 <= GOALS.addedP99Ms)}`],
      [`requests/s at ${CONNECTIONS} connections (autocannon)`, fmt(results.requestsPerSecond.direct, 0), fmt(results.requestsPerSecond.proxied, 0), `${fmt(rpsRatio * 100, 1)}%`, `>= ${GOALS.rpsRatio * 100}%: ${verdict(rpsRatio >= GOALS.rpsRatio)}`],
      ['CPU µs per request at 64 connections (median)', '–', `client proxy ${fmt(results.cpuUsPerRequest.proxy, 0)}, sidecar ${fmt(results.cpuUsPerRequest.sidecar, 0)}`, '', ''],
      ['bulk download Gbit/s (median)', fmt(results.bulkGbits.direct), fmt(results.bulkGbits.proxied), `${fmt(bulkToPsk * 100, 1)}% of one PSK stream (${fmt(results.bulkGbits.psk)} Gbit/s)`, `>= ${GOALS.bulkRatioToPsk * 100}%: ${verdict(bulkToPsk >= GOALS.bulkRatioToPsk)}`]
    ]))
  }
} finally {
  await Promise.all(nodes.map(async node => { await node.stop() }))
  await stopAll(5_000)
  clearTimeout(watchdog)
}
