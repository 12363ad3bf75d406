/**
 * bench/overlay: bulk stream throughput and warm-stream request/response round trips for four
 * pairs, measured in one run and interleaved round by round so the machine's noise hits all
 * of them alike:
 *
 * - tcp:     two raw Node sockets (the baseline of the baselines)
 * - plain:   libp2p with TCP + Noise + Yamux, nothing else and nothing from physarum
 * - psk:     the same plus the PSK connection protector physarum ships
 * - factory: two nodes from createPhysarumNode (PSK, identify, ping, kad-dht, ...)
 *
 * The listening half of each pair runs in a worker thread (its own event loop, like a second
 * host); --same-thread puts it beside the dialing half. Run `node bench/overlay.ts --help`.
 */
import { randomBytes } from 'node:crypto'
import { connect } from 'node:net'
import { availableParallelism, cpus } from 'node:os'
import { parseArgs } from 'node:util'
import { callRpc, createPhysarumNode, PreSharedKey } from '@physarum/p2p'
import { multiaddr } from '@multiformats/multiaddr'
import { benchRpcSpec } from './lib/rpc-codec.ts'
import { createPlainNode, PAIR_NAMES, startServers, startServersInWorker } from './lib/overlay-server.ts'
import { cpuSeconds, fmt, gbits, markdownTable, max, median, parseCount, parseSize, percentile } from './lib/stats.ts'
import { bulkSendSocket, bulkSendStream, ECHO_PROTOCOL, SINK_PROTOCOL, socketRoundTripper, streamRoundTripper } from './lib/streams.ts'
import type { PairName, ServerAddrs, ServerInit, Servers } from './lib/overlay-server.ts'
import type { BulkOptions, BulkResult, RoundTripper } from './lib/streams.ts'
import type { Libp2p } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'
import type { Socket } from 'node:net'

const USAGE = `Usage: node bench/overlay.ts [options]   (Node 24: it runs the .ts sources directly)

  --bytes N          bytes per bulk transfer (default 256M; K/M/G suffixes are binary)
  --rounds N         interleaved rounds; throughput is the best and the median of them (default 3)
  --requests N       echo round trips per pair, spread over the rounds (default 5000)
  --rpc-requests N   factory callRpc requests one after another (on the stream callRpc keeps), spread over the rounds (default 2000)
  --size N           echo/rpc message size in bytes (default 64)
  --chunk N          bulk sender's write size (default 64K)
  --max-buffered N   bulk sender waits for a drain past this many buffered bytes (default 4M)
  --warmup-bytes N   bulk bytes per pair before measuring (default 32M; 0: none)
  --warmup N         round trips (and rpc requests) per pair before measuring (default 200)
  --pairs LIST       comma-separated subset of tcp,plain,psk,factory (default: all)
  --same-thread      run the listeners in this thread instead of a worker thread
  --timeout S        seconds any one bulk transfer or slice of round trips may take (default 120)
  --max-seconds S    the whole run is abandoned (exit 3) after this many seconds (default 600)
  --json             print the results as JSON instead of markdown
  --help`

interface Options {
  bytes: number
  rounds: number
  requests: number
  rpcRequests: number
  size: number
  chunk: number
  maxBuffered: number
  warmupBytes: number
  warmup: number
  pairs: PairName[]
  sameThread: boolean
  timeoutMs: number
  maxSeconds: number
  json: boolean
}

const LABELS: Record<PairName, string> = {
  tcp: 'raw Node TCP',
  plain: 'libp2p (TCP+Noise+Yamux)',
  psk: 'libp2p + PSK protector',
  factory: 'createPhysarumNode'
}
const PASSPHRASE = 'physarum overlay benchmark'
const GOAL = 0.10

class UsageError extends Error {}

function parseOptions (argv: string[]): Options {
  try {
    return parseOptionsOrThrow(argv)
  } catch (err) {
    throw new UsageError((err as Error).message)
  }
}

function parseOptionsOrThrow (argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      bytes: { type: 'string', default: '256M' },
      rounds: { type: 'string', default: '3' },
      requests: { type: 'string', default: '5000' },
      'rpc-requests': { type: 'string', default: '2000' },
      size: { type: 'string', default: '64' },
      chunk: { type: 'string', default: '64K' },
      'max-buffered': { type: 'string', default: '4M' },
      'warmup-bytes': { type: 'string', default: '32M' },
      warmup: { type: 'string', default: '200' },
      pairs: { type: 'string', default: PAIR_NAMES.join(',') },
      'same-thread': { type: 'boolean', default: false },
      timeout: { type: 'string', default: '120' },
      'max-seconds': { type: 'string', default: '600' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false }
    }
  })
  if (values.help) {
    process.stdout.write(`${USAGE}\n`)
    process.exit(0)
  }
  const pairs = values.pairs.split(',').map(p => p.trim()).filter(p => p.length > 0)
  for (const pair of pairs) {
    if (!(PAIR_NAMES as readonly string[]).includes(pair)) {
      throw new Error(`--pairs: unknown pair ${JSON.stringify(pair)} (known: ${PAIR_NAMES.join(', ')})`)
    }
  }
  if (pairs.length === 0) {
    throw new Error('--pairs: name at least one pair')
  }
  return {
    bytes: parseSize('bytes', values.bytes),
    rounds: parseCount('rounds', values.rounds),
    requests: parseCount('requests', values.requests, 0),
    rpcRequests: parseCount('rpc-requests', values['rpc-requests'], 0),
    size: parseSize('size', values.size),
    chunk: parseSize('chunk', values.chunk),
    maxBuffered: parseSize('max-buffered', values['max-buffered']),
    warmupBytes: values['warmup-bytes'] === '0' ? 0 : parseSize('warmup-bytes', values['warmup-bytes']),
    warmup: parseCount('warmup', values.warmup, 0),
    pairs: PAIR_NAMES.filter(p => pairs.includes(p)),
    sameThread: values['same-thread'],
    timeoutMs: parseCount('timeout', values.timeout) * 1000,
    maxSeconds: parseCount('max-seconds', values['max-seconds']),
    json: values.json
  }
}

function progress (message: string): void {
  process.stderr.write(`[overlay ${(performance.now() / 1000).toFixed(1).padStart(6)}s] ${message}\n`)
}

// ---------------------------------------------------------------- the listening halves

async function startListeners (init: ServerInit, sameThread: boolean): Promise<Servers> {
  return sameThread ? await startServers(init) : await startServersInWorker(init)
}

// ---------------------------------------------------------------- the dialing halves

interface Pair {
  name: PairName
  bulk(bytes: number, options: BulkOptions): Promise<BulkResult>
  echo: RoundTripper
  /** One callRpc exchange in microseconds (factory only). */
  rpc?: (message: Uint8Array, signal: AbortSignal) => Promise<number>
  close(): Promise<void>
}

async function connectSocket (port: number): Promise<Socket> {
  return await new Promise<Socket>((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, noDelay: true, allowHalfOpen: true })
    socket.once('connect', () => {
      socket.off('error', reject)
      resolve(socket)
    })
    socket.once('error', reject)
  })
}

function need<T> (value: T | undefined, what: string): T {
  if (value == null) {
    throw new Error(`the listener did not report ${what}`)
  }
  return value
}

async function tcpPair (addrs: ServerAddrs): Promise<Pair> {
  const sinkPort = need(addrs.tcpSink, 'a TCP sink port')
  const echoSocket = await connectSocket(need(addrs.tcpEcho, 'a TCP echo port'))
  return {
    name: 'tcp',
    async bulk (bytes, options) {
      const socket = await connectSocket(sinkPort)
      try {
        return await bulkSendSocket(socket, bytes, options)
      } finally {
        socket.destroy()
      }
    },
    echo: socketRoundTripper(echoSocket),
    async close () {
      echoSocket.destroy()
      await Promise.resolve()
    }
  }
}

async function libp2pPair (name: PairName, node: Libp2p, addr: Multiaddr, stopNode: () => Promise<void>): Promise<Pair> {
  await node.dial(addr)
  const echoStream = await node.dialProtocol(addr, ECHO_PROTOCOL)
  return {
    name,
    async bulk (bytes, options) {
      const stream = await node.dialProtocol(addr, SINK_PROTOCOL, { signal: options.signal })
      try {
        return await bulkSendStream(stream, bytes, options)
      } catch (err) {
        stream.abort(err as Error)
        throw err
      }
    },
    echo: streamRoundTripper(echoStream),
    async close () {
      await echoStream.close().catch(() => {})
      await stopNode()
    }
  }
}

async function createPair (name: PairName, addrs: ServerAddrs): Promise<Pair> {
  const psk = PreSharedKey.fromPassphrase(PASSPHRASE)
  switch (name) {
    case 'tcp':
      return await tcpPair(addrs)
    case 'plain':
    case 'psk': {
      const node = await createPlainNode(name === 'psk' ? psk : null, [])
      return await libp2pPair(name, node, multiaddr(need(addrs[name], `a ${name} multiaddr`)), async () => { await node.stop() })
    }
    case 'factory': {
      const target = need(addrs.factory, 'a factory multiaddr')
      const node = await createPhysarumNode({ psk, listen: ['/ip4/127.0.0.1/tcp/0'], dhtMode: 'server', bootstrap: [target], hostName: 'bench', role: 'bench-dialer' })
      await node.start()
      const addr = multiaddr(target)
      const pair = await libp2pPair(name, node.libp2p, addr, async () => { await node.stop() })
      pair.rpc = async (message, signal) => {
        const t0 = performance.now()
        const response = await callRpc(node.libp2p, addr, benchRpcSpec, { payload: message }, { signal })
        const us = (performance.now() - t0) * 1000
        if (response.payload.byteLength !== message.byteLength) {
          throw new Error(`rpc echoed ${response.payload.byteLength} bytes of ${message.byteLength}`)
        }
        return us
      }
      return pair
    }
  }
}

// ---------------------------------------------------------------- measuring

interface PairResults {
  bulk: BulkResult[]
  rtt: number[]
  rpc: number[]
}

interface Summary {
  label: string
  bulk: {
    rounds: Array<BulkResult & { gbits: number }>
    bestGbits: number
    medianGbits: number
    /** CPU seconds (whole process, both ends) per GiB moved, median over the rounds. */
    cpuSecondsPerGiB: number
    sendFalse: number
    waits: number
    maxWriteBuffer: number
    trueOverBound: number
  } | null
  rtt: { n: number, p50: number, p99: number, mean: number } | null
  rpc: { n: number, p50: number, p99: number, mean: number } | null
}

function latencySummary (samples: number[]): Summary['rtt'] {
  if (samples.length === 0) {
    return null
  }
  return { n: samples.length, p50: percentile(samples, 50), p99: percentile(samples, 99), mean: samples.reduce((a, b) => a + b, 0) / samples.length }
}

function summarize (name: PairName, results: PairResults): Summary {
  const rounds = results.bulk.map(r => ({ ...r, gbits: gbits(r.bytes, r.seconds) }))
  return {
    label: LABELS[name],
    bulk: rounds.length === 0
      ? null
      : {
          rounds,
          bestGbits: max(rounds.map(r => r.gbits)),
          medianGbits: median(rounds.map(r => r.gbits)),
          cpuSecondsPerGiB: median(rounds.map(r => r.cpuSeconds / (r.bytes / 2 ** 30))),
          sendFalse: rounds.reduce((a, r) => a + r.sendFalse, 0),
          waits: rounds.reduce((a, r) => a + r.waits, 0),
          maxWriteBuffer: max(rounds.map(r => r.maxWriteBuffer)),
          trueOverBound: rounds.reduce((a, r) => a + r.trueOverBound, 0)
        },
    rtt: latencySummary(results.rtt),
    rpc: latencySummary(results.rpc)
  }
}

/** `count` split into `parts` near-equal slices. */
function slice (count: number, parts: number, index: number): number {
  return Math.floor((count * (index + 1)) / parts) - Math.floor((count * index) / parts)
}

async function roundTrips (pair: Pair, n: number, message: Uint8Array, timeoutMs: number, into?: number[]): Promise<void> {
  const signal = AbortSignal.timeout(timeoutMs)
  for (let i = 0; i < n; i++) {
    const us = await pair.echo.roundTrip(message, signal)
    into?.push(us)
  }
}

async function rpcs (pair: Pair, n: number, message: Uint8Array, timeoutMs: number, into?: number[]): Promise<void> {
  if (pair.rpc == null) {
    return
  }
  const signal = AbortSignal.timeout(timeoutMs)
  for (let i = 0; i < n; i++) {
    const us = await pair.rpc(message, signal)
    into?.push(us)
  }
}

async function measure (options: Options, pairs: Pair[]): Promise<Map<PairName, PairResults>> {
  const chunk = new Uint8Array(randomBytes(options.chunk))
  const message = new Uint8Array(randomBytes(options.size))
  const bulkOptions = (): BulkOptions => ({ chunk, maxBuffered: options.maxBuffered, signal: AbortSignal.timeout(options.timeoutMs) })
  const results = new Map<PairName, PairResults>(pairs.map(p => [p.name, { bulk: [], rtt: [], rpc: [] }]))

  for (const pair of pairs) {
    progress(`warm-up ${pair.name}`)
    if (options.warmupBytes > 0) {
      await pair.bulk(options.warmupBytes, bulkOptions())
    }
    await roundTrips(pair, options.warmup, message, options.timeoutMs)
    await rpcs(pair, options.warmup, message, options.timeoutMs)
  }

  for (let round = 0; round < options.rounds; round++) {
    // rotate the order each round: no pair always goes first, right after another's bulk
    const order = pairs.map((_, i) => pairs[(i + round) % pairs.length]!)
    for (const pair of order) {
      const result = await pair.bulk(options.bytes, bulkOptions())
      results.get(pair.name)!.bulk.push(result)
      progress(`round ${round + 1}/${options.rounds} bulk ${pair.name.padEnd(7)} ${fmt(gbits(result.bytes, result.seconds)).padStart(6)} Gbit/s ` +
        `(${fmt(result.seconds, 2)} s, cpu ${fmt(result.cpuSeconds, 2)} s, send()=false ${result.sendFalse}x, max buffered ${(result.maxWriteBuffer / 1024).toFixed(0)} KiB)`)
    }
    for (const pair of order) {
      const into = results.get(pair.name)!.rtt
      const before = into.length
      await roundTrips(pair, slice(options.requests, options.rounds, round), message, options.timeoutMs, into)
      progress(`round ${round + 1}/${options.rounds} echo ${pair.name.padEnd(7)} p50 ${fmt(percentile(into.slice(before), 50), 0)} µs`)
    }
    for (const pair of order) {
      if (pair.rpc != null) {
        const into = results.get(pair.name)!.rpc
        const before = into.length
        await rpcs(pair, slice(options.rpcRequests, options.rounds, round), message, options.timeoutMs, into)
        progress(`round ${round + 1}/${options.rounds} rpc  ${pair.name.padEnd(7)} p50 ${fmt(percentile(into.slice(before), 50), 0)} µs`)
      }
    }
  }
  return results
}

// ---------------------------------------------------------------- reporting

interface Ratio {
  name: string
  throughput: number
  rttP50: number
  rttP99: number
  cpuPerByte: number
  verdict?: { throughput: 'PASS' | 'MISS', rttP50: 'PASS' | 'MISS', cpuPerByte: 'PASS' | 'MISS' }
}

function ratio (name: string, a: Summary | undefined, b: Summary | undefined, withGoal = false): Ratio | undefined {
  if (a == null || b == null) {
    return undefined
  }
  const r: Ratio = {
    name,
    throughput: (a.bulk?.bestGbits ?? Number.NaN) / (b.bulk?.bestGbits ?? Number.NaN),
    rttP50: (a.rtt?.p50 ?? Number.NaN) / (b.rtt?.p50 ?? Number.NaN),
    rttP99: (a.rtt?.p99 ?? Number.NaN) / (b.rtt?.p99 ?? Number.NaN),
    cpuPerByte: (a.bulk?.cpuSecondsPerGiB ?? Number.NaN) / (b.bulk?.cpuSecondsPerGiB ?? Number.NaN)
  }
  if (withGoal) {
    r.verdict = {
      throughput: r.throughput >= 1 - GOAL ? 'PASS' : 'MISS',
      rttP50: r.rttP50 <= 1 + GOAL ? 'PASS' : 'MISS',
      // not part of the goal: the noise-robust cross-check of the throughput verdict
      cpuPerByte: r.cpuPerByte <= 1 + GOAL ? 'PASS' : 'MISS'
    }
  }
  return r
}

function ratios (summaries: Partial<Record<PairName, Summary>>): Ratio[] {
  return [
    ratio('psk / plain (the PSK\'s cost)', summaries.psk, summaries.plain),
    ratio('factory / psk (goal: within 10%)', summaries.factory, summaries.psk, true),
    ratio('plain / raw TCP', summaries.plain, summaries.tcp),
    ratio('psk / raw TCP', summaries.psk, summaries.tcp),
    ratio('factory / raw TCP', summaries.factory, summaries.tcp)
  ].filter((r): r is Ratio => r != null)
}

function markdown (options: Options, summaries: Partial<Record<PairName, Summary>>, rs: Ratio[]): string {
  const mib = (n: number): string => `${fmt(n / 2 ** 20, n < 2 ** 20 ? 2 : 1)} MiB`
  const rows: string[][] = []
  for (const name of options.pairs) {
    const s = summaries[name]!
    rows.push([s.label, fmt(s.bulk?.bestGbits ?? Number.NaN), fmt(s.bulk?.medianGbits ?? Number.NaN),
      fmt(s.bulk?.cpuSecondsPerGiB ?? Number.NaN), fmt(s.rtt?.p50 ?? Number.NaN, 0), fmt(s.rtt?.p99 ?? Number.NaN, 0)])
    if (s.rpc != null) {
      rows.push(['createPhysarumNode rpc (kept stream)', '–', '–', '–', fmt(s.rpc.p50, 0), fmt(s.rpc.p99, 0)])
    }
  }
  const where = options.sameThread ? 'both ends in one thread' : 'listener in a worker thread'
  const out = [
    `## overlay: ${mib(options.bytes)} × ${options.rounds} rounds, ${options.requests} round trips of ${options.size} B, ${where}`,
    '',
    markdownTable(['pair', 'Gbit/s best', 'Gbit/s median', 'CPU s/GiB', 'RTT p50 µs', 'RTT p99 µs'], rows),
    '',
    markdownTable(['ratio', 'throughput', 'RTT p50', 'RTT p99', 'CPU/byte', 'goal'], rs.map(r => [
      r.name, fmt(r.throughput), fmt(r.rttP50), fmt(r.rttP99), fmt(r.cpuPerByte),
      r.verdict == null ? '' : `throughput ${r.verdict.throughput}, RTT ${r.verdict.rttP50} (CPU ${r.verdict.cpuPerByte})`
    ])),
    '',
    markdownTable(['bulk sender', 'send() false', 'drain waits', 'max buffered', `true past ${mib(options.maxBuffered)}`],
      options.pairs.flatMap(name => {
        const b = summaries[name]!.bulk
        return b == null ? [] : [[LABELS[name], String(b.sendFalse), String(b.waits), mib(b.maxWriteBuffer), String(b.trueOverBound)]]
      })),
    '',
    'Throughput: best of the rounds, from the first byte sent to the sink\'s acknowledgement of the last. ' +
      'CPU s/GiB: the whole process\'s CPU time (both ends) per GiB, median of the rounds. ' +
      'Ratios: throughput and CPU on the best/median above, RTT on the percentiles (above 1 is slower). ' +
      'On a shared machine CPU/byte is the steadier figure: other processes stretch the wall clock, not the CPU time.',
    `Node ${process.version}, ${availableParallelism()} × ${cpus()[0]?.model ?? 'unknown CPU'}`
  ]
  return `${out.join('\n')}\n`
}

// ---------------------------------------------------------------- main

async function main (): Promise<void> {
  const options = parseOptions(process.argv.slice(2))
  const watchdog = setTimeout(() => {
    progress(`abandoned after --max-seconds ${options.maxSeconds}`)
    process.exit(3)
  }, options.maxSeconds * 1000)
  watchdog.unref()

  progress(`starting listeners (${options.sameThread ? 'same thread' : 'worker thread'}) for ${options.pairs.join(', ')}`)
  const servers = await startListeners({ pairs: options.pairs, passphrase: PASSPHRASE }, options.sameThread)
  const pairs: Pair[] = []
  let results: Map<PairName, PairResults>
  const cpu0 = cpuSeconds()
  try {
    for (const name of options.pairs) {
      pairs.push(await createPair(name, servers.addrs))
    }
    results = await measure(options, pairs)
  } finally {
    progress('stopping')
    await Promise.allSettled(pairs.map(async p => { await p.close() }))
    await servers.stop()
  }
  progress(`done, ${fmt(cpuSeconds() - cpu0, 1)} CPU s`)

  const summaries: Partial<Record<PairName, Summary>> = {}
  for (const name of options.pairs) {
    summaries[name] = summarize(name, results.get(name)!)
  }
  const rs = ratios(summaries)
  const text = options.json
    ? `${JSON.stringify({
      options,
      node: process.version,
      cpus: availableParallelism(),
      cpuModel: cpus()[0]?.model,
      pairs: summaries,
      ratios: rs
    }, (_key, value: unknown) => typeof value === 'number' && !Number.isFinite(value) ? null : value, 2)}\n`
    : markdown(options, summaries, rs)
  await new Promise<void>(resolve => { process.stdout.write(text, () => { resolve() }) })
  clearTimeout(watchdog)
}

try {
  await main()
  // libp2p leaves timers behind after stop(): end here rather than wait for them
  process.exit(0)
} catch (err) {
  process.stderr.write(err instanceof UsageError
    ? `overlay: ${err.message}\n${USAGE}\n`
    : `overlay: ${(err as Error).stack ?? String(err)}\n`)
  process.exit(err instanceof UsageError ? 2 : 1)
}
