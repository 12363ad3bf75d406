import { createServer, request as httpRequest } from 'node:http'
import { once } from 'node:events'
import { ALLOCATOR_TOPIC, RpcFailureError, serviceTopic } from '@physarum/p2p'
import { allocate, HTTP_PROTOCOL } from '@physarum/allocator/client'
import { nameProblem } from '@physarum/registry-service'
import { Counter, Gauge, Histogram } from 'prom-client'
import {
  COLD_START_HEADER, DEFAULT_COLD_START_TIMEOUT_MS, DEFAULT_DISCOVERY_TIMEOUT_MS, DEFAULT_MAX_ALLOCATORS, DEFAULT_MAX_PENDING,
  DEFAULT_UPSTREAM_TIMEOUT_MS, HOP_BY_HOP_HEADERS, INSTANCE_REST_MS, RETRY_AFTER_S
} from './constants.ts'
import { StreamDuplex } from './duplex.ts'
import type { IncomingHttpHeaders, IncomingMessage, OutgoingHttpHeaders, Server, ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { PeerId } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'
import type { Logger, PhysarumNode } from '@physarum/p2p'
import type { RegistryClient, ServiceRecord } from '@physarum/registry-service'
import type { Registry } from 'prom-client'

/** What the client proxy needs of a node. */
export type ClientProxyNode = Pick<PhysarumNode, 'libp2p' | 'discovery' | 'measureRtt'>

export interface ClientProxyComponents {
  node: ClientProxyNode
  /** Service records (the client caches Get results for its TTL). */
  registry: Pick<RegistryClient, 'get'>
  metrics: Registry
  log: Logger
}

export interface ClientProxyInit {
  /** Where the HTTP entry listens (127.0.0.1 in the CLI). */
  host: string
  port: number
  /** Requests that may wait for one service's cold start at once; more get 503 + Retry-After. */
  maxPending?: number
  /** How long a request waits for a cold start before 504. */
  coldStartTimeoutMs?: number
  /** Deadline of one findProviders round (service instances, allocators). */
  discoveryTimeoutMs?: number
  /** How long the instance may take to start its response before 504. */
  upstreamTimeoutMs?: number
  /** Allocators measured and tried, nearest first. */
  maxAllocators?: number
}

/** A sidecar of one service instance, as the proxy knows it. */
export interface Instance {
  peerId: PeerId
  /** Where to dial it: the Allocate answer's addresses, or the peer id (the peer store knows it). */
  target: PeerId | Multiaddr[]
  rttMs?: number
}

export interface ClientProxy {
  server: Server
  /** The port the HTTP entry listens on. */
  port: number
  /** The instance requests for `service` go to now, if any. */
  instanceOf(service: string): Instance | undefined
  stop(): Promise<void>
}

/** An HTTP error the proxy answers itself, as JSON. */
class ProxyError extends Error {
  static override name = 'ProxyError'
  override name = 'ProxyError'
  readonly status: number
  readonly headers: OutgoingHttpHeaders
  constructor (status: number, message: string, headers: OutgoingHttpHeaders = {}) {
    super(message)
    this.status = status
    this.headers = headers
  }
}

interface Resolved {
  instance: Instance
  /** Set when this request waited for an allocation: how long the cold start took. */
  coldStartMs?: number
}

interface ServiceState {
  instance?: Instance
  /** The one lookup (discovery, then Allocate when needed) that requests for this service share. */
  resolving?: Promise<Resolved>
  /** Requests waiting on `resolving`. */
  waiting: number
  /** Instances that failed recently (peer id -> until when). */
  rested: Map<string, number>
}

/**
 * The client mode of the proxy: HTTP on a local port, `/<service>/<rest>` forwarded to an
 * instance of `<service>` over `/physarum/http/1.0.0`, with `/<service>` stripped here (the
 * sidecar is a byte pipe). Instances come from the service topic, measured and chosen by RTT
 * within the record's hard limit; with none, one allocation (nearest allocator first) is shared
 * by every request that arrives meanwhile. Node's HTTP client runs over the libp2p stream, so
 * bodies stream both ways with backpressure (StreamDuplex bounds the stream's buffers).
 */
export async function startClientProxy (components: ClientProxyComponents, init: ClientProxyInit): Promise<ClientProxy> {
  const { node, registry, log } = components
  const maxPending = init.maxPending ?? DEFAULT_MAX_PENDING
  const coldStartTimeoutMs = init.coldStartTimeoutMs ?? DEFAULT_COLD_START_TIMEOUT_MS
  const discoveryTimeoutMs = init.discoveryTimeoutMs ?? DEFAULT_DISCOVERY_TIMEOUT_MS
  const upstreamTimeoutMs = init.upstreamTimeoutMs ?? DEFAULT_UPSTREAM_TIMEOUT_MS
  const maxAllocators = init.maxAllocators ?? DEFAULT_MAX_ALLOCATORS
  const services = new Map<string, ServiceState>()
  const controller = new AbortController()

  const requests = new Counter({ name: 'physarum_proxy_requests_total', help: 'Requests answered, by service (registered ones only) and status code', labelNames: ['service', 'code'], registers: [components.metrics] })
  const duration = new Histogram({ name: 'physarum_proxy_request_duration_seconds', help: 'Time to the response head, by service', labelNames: ['service'], buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30], registers: [components.metrics] })
  const coldStarts = new Counter({ name: 'physarum_proxy_cold_starts_total', help: 'Allocations this proxy asked for, by outcome', labelNames: ['service', 'outcome'], registers: [components.metrics] })
  const pending = new Gauge({ name: 'physarum_proxy_pending_requests', help: 'Requests waiting for a cold start', registers: [components.metrics] })
  const upstreamRtt = new Gauge({ name: 'physarum_proxy_upstream_rtt_seconds', help: 'RTT to the instance each service uses now', labelNames: ['service'], registers: [components.metrics] })

  const stateOf = (service: string): ServiceState => {
    let state = services.get(service)
    if (state == null) {
      state = { waiting: 0, rested: new Map() }
      services.set(service, state)
    }
    return state
  }

  const isRested = (state: ServiceState, peer: PeerId): boolean => (state.rested.get(peer.toString()) ?? 0) > Date.now()

  /** Providers of the service topic, measured, nearest first, within the hard RTT. */
  const findInstance = async (record: ServiceRecord, state: ServiceState): Promise<Instance | undefined> => {
    const signal = AbortSignal.any([AbortSignal.timeout(discoveryTimeoutMs), controller.signal])
    const measured: Array<Promise<Instance | undefined>> = []
    try {
      for await (const provider of node.discovery.findProviders(serviceTopic(record.contentHash), { signal })) {
        if (isRested(state, provider.id)) {
          continue
        }
        measured.push(node.measureRtt(provider.id, { signal: AbortSignal.timeout(record.hardRttMs) })
          .then(rttMs => ({ peerId: provider.id, target: provider.id, rttMs }), () => undefined))
      }
    } catch (err) {
      if (controller.signal.aborted) {
        throw err
      }
      // the deadline: use what was found so far
    }
    const instances = (await Promise.all(measured)).filter((i): i is Instance => i != null && (i.rttMs ?? Infinity) <= record.hardRttMs)
    instances.sort((a, b) => (a.rttMs ?? Infinity) - (b.rttMs ?? Infinity))
    return instances[0]
  }

  /** Allocators, measured, nearest first (those that did not answer a ping last). */
  const findAllocators = async (): Promise<Array<{ peerId: PeerId, rttMs: number }>> => {
    const signal = AbortSignal.any([AbortSignal.timeout(discoveryTimeoutMs), controller.signal])
    const measured: Array<Promise<{ peerId: PeerId, rttMs: number }>> = []
    try {
      for await (const provider of node.discovery.findProviders(ALLOCATOR_TOPIC, { signal })) {
        measured.push(node.measureRtt(provider.id, { signal: AbortSignal.timeout(discoveryTimeoutMs) })
          .then(rttMs => ({ peerId: provider.id, rttMs }), () => ({ peerId: provider.id, rttMs: Infinity })))
        if (measured.length >= maxAllocators) {
          break
        }
      }
    } catch (err) {
      if (controller.signal.aborted) {
        throw err
      }
    }
    return (await Promise.all(measured)).sort((a, b) => a.rttMs - b.rttMs)
  }

  const allocateSomewhere = async (record: ServiceRecord): Promise<Instance> => {
    const allocators = await findAllocators()
    if (allocators.length === 0) {
      throw new ProxyError(503, `No instance of ${record.name} is near enough and no allocator was found`, { 'retry-after': String(RETRY_AFTER_S) })
    }
    const failures: string[] = []
    for (const allocator of allocators) {
      try {
        const allocation = await allocate(node.libp2p, allocator.peerId, record.name, { signal: AbortSignal.any([AbortSignal.timeout(coldStartTimeoutMs), controller.signal]) })
        coldStarts.inc({ service: record.name, outcome: allocation.reused ? 'reused' : 'started' })
        log.info({ service: record.name, allocator: allocator.peerId.toString(), instance: allocation.instanceId, phases: allocation.phases, reused: allocation.reused }, 'allocated')
        return { peerId: allocation.peerId, target: allocation.multiaddrs.length > 0 ? allocation.multiaddrs : allocation.peerId }
      } catch (err) {
        const code = err instanceof RpcFailureError ? err.code : (err as Error).name
        coldStarts.inc({ service: record.name, outcome: err instanceof RpcFailureError ? err.code : 'ERROR' })
        failures.push(`${allocator.peerId.toString()}: ${code}: ${(err as Error).message}`)
        log.warn({ service: record.name, allocator: allocator.peerId.toString(), code, err: (err as Error).message }, 'allocation failed; trying the next allocator')
        if (controller.signal.aborted || (err instanceof RpcFailureError && (err.code === 'NOT_FOUND' || err.code === 'BAD_REQUEST'))) {
          break
        }
      }
    }
    throw new ProxyError(503, `No instance of ${record.name} is near enough and allocation failed (${failures.join('; ')})`, { 'retry-after': String(RETRY_AFTER_S) })
  }

  /** The instance for this request: the current one, else one shared lookup, allocating when needed. */
  const resolve = async (record: ServiceRecord): Promise<Resolved> => {
    const state = stateOf(record.name)
    if (state.instance != null && !isRested(state, state.instance.peerId)) {
      return { instance: state.instance }
    }
    if (state.waiting >= maxPending) {
      throw new ProxyError(503, `${maxPending} requests already wait for ${record.name} to start`, { 'retry-after': String(RETRY_AFTER_S) })
    }
    state.resolving ??= (async () => {
      const started = Date.now()
      const found = await findInstance(record, state)
      if (found != null) {
        return { instance: found }
      }
      const allocated = await allocateSomewhere(record)
      return { instance: allocated, coldStartMs: Date.now() - started }
    })().then(resolved => {
      state.instance = resolved.instance
      if (resolved.instance.rttMs != null) {
        upstreamRtt.set({ service: record.name }, resolved.instance.rttMs / 1000)
      }
      return resolved
    }).finally(() => { state.resolving = undefined })
    state.waiting++
    pending.inc()
    let timer: NodeJS.Timeout | undefined
    try {
      return await Promise.race([state.resolving, new Promise<never>((_resolve, reject) => {
        timer = setTimeout(() => { reject(new ProxyError(504, `${record.name} did not start within ${coldStartTimeoutMs} ms`)) }, coldStartTimeoutMs)
      })])
    } finally {
      clearTimeout(timer)
      state.waiting--
      pending.dec()
    }
  }

  const rest = (service: string, instance: Instance): void => {
    const state = stateOf(service)
    state.rested.set(instance.peerId.toString(), Date.now() + INSTANCE_REST_MS)
    if (state.instance?.peerId.equals(instance.peerId) === true) {
      state.instance = undefined
    }
  }

  const forward = async (req: IncomingMessage, res: ServerResponse, record: ServiceRecord, path: string, resolved: Resolved): Promise<number> => {
    const { instance } = resolved
    const signal = AbortSignal.any([AbortSignal.timeout(upstreamTimeoutMs), controller.signal])
    let stream
    try {
      stream = await node.libp2p.dialProtocol(instance.target, HTTP_PROTOCOL, { signal })
    } catch (err) {
      rest(record.name, instance)
      throw new ProxyError(502, `Could not reach the instance of ${record.name}: ${(err as Error).message}`)
    }
    const duplex = new StreamDuplex(stream)
    return await new Promise<number>((resolve, reject) => {
      let answered = false
      const upstream = httpRequest({
        createConnection: () => duplex,
        method: req.method,
        path,
        headers: requestHeaders(req),
        setHost: false
      })
      const timer = setTimeout(() => {
        upstream.destroy(new ProxyError(504, `The instance of ${record.name} did not answer within ${upstreamTimeoutMs} ms`))
      }, upstreamTimeoutMs)
      upstream.on('response', (answer) => {
        clearTimeout(timer)
        answered = true
        const headers = responseHeaders(answer.headers)
        if (resolved.coldStartMs != null) {
          headers[COLD_START_HEADER] = String(resolved.coldStartMs)
        }
        res.writeHead(answer.statusCode ?? 502, answer.statusMessage, headers)
        answer.pipe(res)
        answer.on('error', () => { res.destroy() })
        answer.on('end', () => { duplex.destroy() })
        resolve(answer.statusCode ?? 502)
      })
      upstream.on('error', (err) => {
        clearTimeout(timer)
        duplex.destroy()
        if (answered) {
          res.destroy()
          return
        }
        if (err instanceof ProxyError) {
          reject(err)
          return
        }
        rest(record.name, instance)
        reject(new ProxyError(502, `The instance of ${record.name} failed before answering: ${err.message}`))
      })
      // the client went away: stop the upstream request too
      res.on('close', () => {
        if (!res.writableFinished) {
          upstream.destroy()
          duplex.destroy()
        }
      })
      req.pipe(upstream)
    })
  }

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const started = process.hrtime.bigint()
    let service = 'unknown'
    let code: number
    try {
      const target = splitPath(req.url ?? '')
      const record = await lookUp(registry, target.service)
      service = record.name
      const resolved = await resolve(record)
      code = await forward(req, res, record, target.path, resolved)
    } catch (err) {
      const failure = err instanceof ProxyError ? err : new ProxyError(502, (err as Error).message)
      if (!(err instanceof ProxyError)) {
        log.warn({ err: (err as Error).message, service }, 'request failed')
      }
      code = failure.status
      sendError(res, failure)
      req.resume()
    }
    requests.inc({ service, code: String(code) })
    if (service !== 'unknown') {
      duration.observe({ service }, Number(process.hrtime.bigint() - started) / 1e9)
    }
  }

  const server = createServer({ requestTimeout: 0 }, (req, res) => {
    handle(req, res).catch((err: Error) => {
      log.error({ err: err.message }, 'request handler failed')
      res.destroy()
    })
  })
  server.listen(init.port, init.host)
  await once(server, 'listening')
  const port = (server.address() as AddressInfo).port

  return {
    server,
    port,
    instanceOf: (service) => services.get(service)?.instance,
    stop: async () => {
      controller.abort()
      const closed = new Promise<void>(resolve => { server.close(() => { resolve() }) })
      server.closeAllConnections()
      await closed
    }
  }
}

/** `/<service>/<rest>?<query>` -> the service name and `/<rest>?<query>` (the sidecar does not strip). */
export function splitPath (url: string): { service: string, path: string } {
  if (!url.startsWith('/')) {
    throw new ProxyError(400, `${JSON.stringify(url.slice(0, 100))} is not a path of the form /<service>/<path>`)
  }
  const end = url.slice(1).search(/[/?]/)
  const service = decodeURIComponentSafe(end < 0 ? url.slice(1) : url.slice(1, end + 1))
  let path = end < 0 ? '/' : url.slice(end + 1)
  if (path.startsWith('?')) {
    path = `/${path}`
  }
  if (service === '') {
    throw new ProxyError(400, 'The path names no service: use /<service>/<path>, e.g. /hello-world-server/')
  }
  const problem = nameProblem(service)
  if (problem != null) {
    throw new ProxyError(400, `Invalid service name: ${problem}`)
  }
  return { service, path }
}

function decodeURIComponentSafe (text: string): string {
  try {
    return decodeURIComponent(text)
  } catch {
    throw new ProxyError(400, `${JSON.stringify(text.slice(0, 100))} is not a valid URL path segment`)
  }
}

async function lookUp (registry: Pick<RegistryClient, 'get'>, service: string): Promise<ServiceRecord> {
  try {
    return await registry.get(service)
  } catch (err) {
    if (err instanceof RpcFailureError && err.code === 'NOT_FOUND') {
      throw new ProxyError(404, `No service named ${service} is registered`)
    }
    throw new ProxyError(503, `The registry did not answer for ${service}: ${(err as Error).message}`, { 'retry-after': String(RETRY_AFTER_S) })
  }
}

function hopByHop (headers: IncomingHttpHeaders): Set<string> {
  const drop = new Set(HOP_BY_HOP_HEADERS)
  for (const name of (headers.connection ?? '').split(',')) {
    const trimmed = name.trim().toLowerCase()
    if (trimmed !== '') {
      drop.add(trimmed)
    }
  }
  return drop
}

function requestHeaders (req: IncomingMessage): OutgoingHttpHeaders {
  const drop = hopByHop(req.headers)
  const headers: OutgoingHttpHeaders = {}
  for (const [name, value] of Object.entries(req.headers)) {
    if (!drop.has(name) && value != null) {
      headers[name] = value
    }
  }
  const client = req.socket.remoteAddress ?? 'unknown'
  const previous = req.headers['x-forwarded-for']
  headers['x-forwarded-for'] = previous == null ? client : `${String(previous)}, ${client}`
  const forwardedFor = client.includes(':') ? `"[${client}]"` : client
  headers.forwarded = req.headers.forwarded == null ? `for=${forwardedFor}` : `${req.headers.forwarded}, for=${forwardedFor}`
  // one request per stream for now: the instance's server closes after the response
  headers.connection = 'close'
  return headers
}

function responseHeaders (incoming: IncomingHttpHeaders): OutgoingHttpHeaders {
  const drop = hopByHop(incoming)
  const headers: OutgoingHttpHeaders = {}
  for (const [name, value] of Object.entries(incoming)) {
    if (!drop.has(name) && value != null) {
      headers[name] = value
    }
  }
  return headers
}

function sendError (res: ServerResponse, error: ProxyError): void {
  if (res.headersSent) {
    res.destroy()
    return
  }
  const body = JSON.stringify({ error: error.message, status: error.status })
  res.writeHead(error.status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...error.headers })
  res.end(body)
}
