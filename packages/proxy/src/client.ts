import { createServer, maxHeaderSize, STATUS_CODES } from 'node:http'
import { once } from 'node:events'
import { setTimeout as sleep } from 'node:timers/promises'
import { ALLOCATOR_TOPIC, RpcFailureError, serviceTopic } from '@physarum/p2p'
import { allocate, HTTP_PROTOCOL, MAX_AVOID_PEERS } from '@physarum/allocator/client'
import { nameProblem } from '@physarum/registry-service'
import { Counter, Gauge, Histogram } from 'prom-client'
import {
  CLOSER_ALLOCATION_INTERVAL_MS, COLD_START_HEADER, DEFAULT_COLD_START_TIMEOUT_MS, DEFAULT_DISCOVERY_TIMEOUT_MS, MAX_ALLOCATORS_MEASURED,
  DEFAULT_MAX_PENDING, DEFAULT_UPSTREAM_TIMEOUT_MS, HOP_BY_HOP_HEADERS, IDEMPOTENT_METHODS, INSTANCE_REFRESH_MS, INSTANCE_REST_MS, LATE_DIAL_WAIT_RTTS,
  MAX_HTTP_STREAMS, MAX_QUEUED_PER_INSTANCE, MAX_REQUEST_HEADERS, REQUEST_HEAD_TIMEOUT_MS, MAX_STREAMS_PER_INSTANCE, MAX_EARLY_UPGRADE_BYTES, MAX_UNREACHED_ATTEMPTS, MAX_RESPONSE_HEAD_BYTES, MAX_UPGRADES_PER_INSTANCE, RETRY_AFTER_S, RETRY_DELAY_MS, COLD_START_FAILURE_HOLD_MS, COLD_START_FAILURE_MAX_HOLD_MS, RTT_FORGET_AFTER_MS, STALL_PING_TIMEOUT_MS, STALL_PROBE_AFTER_MS,
  STREAM_IDLE_TIMEOUT_MS, TIMEOUTS_BEFORE_REST
} from './constants.ts'
import { isOpen, joinSocket } from './duplex.ts'
import { StreamOpenError, streamPool } from './pool.ts'
import type { IncomingHttpHeaders, IncomingMessage, OutgoingHttpHeaders, Server, ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Duplex } from 'node:stream'
import type { PeerId, PeerUpdate, Stream, StreamMessageEvent } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'
import type { Logger, PhysarumNode, RttEntry } from '@physarum/p2p'
import type { RegistryClient, ServiceRecord } from '@physarum/registry-service'
import type { Registry } from 'prom-client'
import type { Dispatcher, Pool } from 'undici'

/** What the client proxy needs of a node. */
export type ClientProxyNode = Pick<PhysarumNode, 'libp2p' | 'discovery' | 'measureRtt' | 'rtt' | 'onSilentPeer'>

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
  /** How long an idle keep-alive stream to an instance is kept. */
  idleStreamTimeoutMs?: number
  /** How long a client may take to send a request's head before 408 (default REQUEST_HEAD_TIMEOUT_MS). */
  headTimeoutMs?: number
  /** At most one background allocation per service this often (default CLOSER_ALLOCATION_INTERVAL_MS). */
  closerIntervalMs?: number
  /** How often the instances of a service in use are looked up and measured again (default INSTANCE_REFRESH_MS). */
  refreshIntervalMs?: number
}

/** A sidecar of one service instance, as the proxy knows it. */
export interface Instance {
  peerId: PeerId
  /** Where to dial it: the Allocate answer's addresses, or the peer id (the peer store knows it). */
  target: PeerId | Multiaddr[]
  /**
   * Smoothed RTT from the node's RTT table, or the last sample when that is beyond the service's
   * hard RTT (see knownRtt); unknown after an allocation until measured within hard (see vouchedFor).
   */
  rttMs?: number
}

/** An instance an allocator answered with, and the version it runs (empty: the allocator did not say). */
interface Allocated extends Instance {
  contentHash: string
  /** It is one of the instances the allocator was told to avoid (an older allocator ignores that list). */
  avoided: boolean
}

/** One ping's own sample and the peer's smoothed RTT after it (the node's RTT table). */
type Measurement = Pick<RttEntry, 'lastMs' | 'smoothedMs'>

interface KnownInstance extends Instance {
  /** The version it runs (empty: not known, taken as the one wanted). */
  contentHash: string
  /** When an allocator last answered with it (ms since the epoch; 0: never). */
  allocatedAt: number
  /** Keep-alive streams to this instance (made with the first request to it). */
  pool?: Promise<Pool>
  /** Requests sent to it that have no response head yet. */
  waiting: number
  /** When it last sent a response head, or when a request came to it while none waited (performance.now()). */
  answeredAt: number
  /** The ping asking whether it is still there while requests wait on it. */
  probing?: Promise<void>
  /** Of the requests waiting on it, those that may go to another instance, each with its way there. */
  movable: Set<(reason: Error) => void>
  /** Requests in a row that it sent no response head for within the upstream timeout. */
  timeouts: number
  /** Upgraded connections (WebSockets) to it open now. */
  upgraded: number
  /**
   * Requests handed to its pool and not finished: at most MAX_STREAMS_PER_INSTANCE, one a stream,
   * so the pool's own queue, where a request that left stays until a stream takes it, stays empty.
   */
  dispatched: number
  /**
   * Requests waiting for one of those to finish, first come first, each with its way to the pool:
   * one that leaves (its client gone, its timeout, moved away) leaves this queue at once.
   */
  queue: Set<() => void>
}

export interface ClientProxy {
  server: Server
  /** The port the HTTP entry listens on. */
  port: number
  /** The instance requests for `service` go to now, if any. */
  instanceOf(service: string): Instance | undefined
  stop(): Promise<void>
}

/** The instance failed before a response started: the request may go elsewhere. */
class UpstreamFailure extends Error {
  static override name = 'UpstreamFailure'
  override name = 'UpstreamFailure'
  /** It happened on a kept stream, which the instance may have closed as it was taken. */
  readonly reusedStream: boolean
  constructor (cause: Error, reusedStream: boolean) {
    super(cause.message, { cause })
    this.reusedStream = reusedStream
  }
}

/**
 * undici's errors for a response head it read and refused: larger than MAX_RESPONSE_HEAD_BYTES,
 * not HTTP (its parser's error: undici 8 leaves its `code` undefined, so the name tells; one
 * that comes after a Content-Length line, such as a second one that differs, undici reports as
 * a length mismatch, which before the head can be nothing else), a 100 Continue nobody asked
 * for ("bad response"), or a 101 to a request that asked for no upgrade ("bad upgrade": a socket
 * error, which would count as the instance failing). Only errors before the head come here.
 */
function unreadableAnswer (err: Error): boolean {
  const code = (err as { code?: string }).code ?? ''
  return code === 'UND_ERR_HEADERS_OVERFLOW' || code === 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH' || err.name === 'HTTPParserError' || code.startsWith('HPE_') || err.message === 'bad response' || err.message === 'bad upgrade'
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
  instance: KnownInstance
  /** Set when this request waited for an allocation: how long the cold start took. */
  coldStartMs?: number
}

interface ServiceState {
  /** The service's name. */
  name: string
  /** The version wanted: the content hash of the record last looked up. */
  contentHash?: string
  /** Instances found through the service topic or allocated for us, by peer id. */
  instances: Map<string, KnownInstance>
  /** The one lookup (discovery, then Allocate when needed) that requests for this service share. */
  resolving?: Promise<Resolved>
  /** Requests waiting on `resolving`. */
  waiting: number
  /** Instances that failed recently (peer id -> until when). */
  rested: Map<string, number>
  /** When the service topic was last looked up. */
  foundAt: number
  /** A lookup running in the background to refresh `instances`. */
  refreshing?: Promise<void>
  /** The background allocation asked for because the nearest instance is beyond the soft RTT or of another version. */
  closer?: Promise<void>
  closerAt: number
  /** The RTT (ms) physarum_proxy_upstream_rtt_seconds last got for this service. */
  reportedRttMs?: number
  /** The last cold start failed: its 503, answered at once until `until` (performance.now()), and the failures in a row. */
  failed?: { error: ProxyError, until: number, times: number }
}

/**
 * The client mode of the proxy: HTTP on a local port, `/<service>/<rest>` forwarded to an
 * instance of `<service>` over `/physarum/http/1.0.0`, with `/<service>` stripped here (the
 * sidecar is a byte pipe). Instances come from the service topic, measured and chosen by RTT
 * within the record's hard limit; with none, one allocation (nearest allocator first) is shared
 * by every request that arrives meanwhile. undici's HTTP client runs over the libp2p stream, so
 * bodies stream both ways with backpressure (StreamDuplex bounds the stream's buffers).
 */
export async function startClientProxy (components: ClientProxyComponents, init: ClientProxyInit): Promise<ClientProxy> {
  const { node, registry, log } = components
  const maxPending = init.maxPending ?? DEFAULT_MAX_PENDING
  const coldStartTimeoutMs = init.coldStartTimeoutMs ?? DEFAULT_COLD_START_TIMEOUT_MS
  const discoveryTimeoutMs = init.discoveryTimeoutMs ?? DEFAULT_DISCOVERY_TIMEOUT_MS
  const upstreamTimeoutMs = init.upstreamTimeoutMs ?? DEFAULT_UPSTREAM_TIMEOUT_MS
  const idleStreamTimeoutMs = init.idleStreamTimeoutMs ?? STREAM_IDLE_TIMEOUT_MS
  const closerIntervalMs = init.closerIntervalMs ?? CLOSER_ALLOCATION_INTERVAL_MS
  const refreshIntervalMs = init.refreshIntervalMs ?? INSTANCE_REFRESH_MS
  const services = new Map<string, ServiceState>()
  const controller = new AbortController()

  const requests = new Counter({ name: 'physarum_proxy_requests_total', help: 'Requests answered, by service (registered ones only) and status code', labelNames: ['service', 'code'], registers: [components.metrics] })
  const duration = new Histogram({ name: 'physarum_proxy_request_duration_seconds', help: 'Time to the response head, by service', labelNames: ['service'], buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30], registers: [components.metrics] })
  const coldStarts = new Counter({ name: 'physarum_proxy_cold_starts_total', help: 'Allocations this proxy asked for, by outcome', labelNames: ['service', 'outcome'], registers: [components.metrics] })
  const pending = new Gauge({ name: 'physarum_proxy_pending_requests', help: 'Requests waiting for a cold start of the service (at most --max-pending each)', labelNames: ['service'], registers: [components.metrics] })
  const closerAllocations = new Counter({ name: 'physarum_proxy_closer_allocations_total', help: 'Allocations asked for in the background because the nearest instance was beyond the soft RTT or ran another version than the record names, by outcome (none_nearer: none asked, no allocator being nearer than that instance)', labelNames: ['service', 'outcome'], registers: [components.metrics] })
  const upstreamFailures = new Counter({ name: 'physarum_proxy_upstream_failures_total', help: 'Requests whose instance failed before answering, by stage (stream: it could not be reached; request: it broke), and instances that answered no ping while requests waited on them (stage ping), no liveness ping (stage liveness), or several requests in a row not within the upstream timeout (stage timeout)', labelNames: ['service', 'stage'], registers: [components.metrics] })
  const retries = new Counter({ name: 'physarum_proxy_retries_total', help: 'Requests sent again after their instance failed before answering', labelNames: ['service'], registers: [components.metrics] })
  const upstreamRtt = new Gauge({ name: 'physarum_proxy_upstream_rtt_seconds', help: 'RTT to the instance each service uses now', labelNames: ['service'], registers: [components.metrics] })

  const stateOf = (service: string): ServiceState => {
    let state = services.get(service)
    if (state == null) {
      state = { name: service, instances: new Map(), waiting: 0, rested: new Map(), foundAt: 0, closerAt: 0 }
      services.set(service, state)
    }
    return state
  }

  /**
   * Aborts after `ms`, or when the proxy stops. In whole ms: AbortSignal.timeout throws on a
   * fraction, and deadlines come from records, whose RTTs need not be whole (300.5 ms).
   */
  const within = (ms: number): AbortSignal => AbortSignal.any([AbortSignal.timeout(Math.ceil(ms)), controller.signal])

  const isRested = (state: ServiceState, peer: PeerId): boolean => (state.rested.get(peer.toString()) ?? 0) > Date.now()

  /** A new `/physarum/http/1.0.0` stream to the instance's sidecar. */
  const openStream = async (instance: Instance): Promise<Stream> => await node.libp2p.dialProtocol(instance.target, HTTP_PROTOCOL, {
    signal: within(upstreamTimeoutMs),
    maxOutboundStreams: MAX_HTTP_STREAMS
  })

  const wanted = (state: ServiceState, instance: KnownInstance): boolean => instance.contentHash === '' || instance.contentHash === state.contentHash

  /** An instance running `contentHash`, as yet without requests. */
  const newInstance = (instance: Instance, contentHash: string): KnownInstance =>
    ({ ...instance, contentHash, allocatedAt: 0, waiting: 0, answeredAt: 0, movable: new Set(), timeouts: 0, upgraded: 0, dispatched: 0, queue: new Set() })

  /**
   * Adds an instance running `contentHash` (or gives the one known); its stream pool comes with its
   * first request. One of the version wanted replaces those of another (which an allocator may
   * answer with while it cannot read the record, or while a record changed under an allocation).
   */
  const know = (state: ServiceState, instance: Instance, contentHash: string): KnownInstance => {
    const key = instance.peerId.toString()
    const known = state.instances.get(key)
    if (known != null) {
      known.target = instance.target
      known.rttMs = instance.rttMs ?? known.rttMs
      return known
    }
    const added = newInstance(instance, contentHash)
    state.instances.set(key, added)
    if (wanted(state, added)) {
      for (const other of [...state.instances.values()]) {
        if (!wanted(state, other)) {
          drop(state, other)
        }
      }
    }
    return added
  }

  /**
   * The nearest instance not resting, within the hard RTT (unknown RTT: just allocated for us,
   * last), of the version wanted when there is one (else of another, meanwhile).
   */
  const nearest = (state: ServiceState, hardRttMs: number): KnownInstance | undefined => {
    let best: KnownInstance | undefined
    for (const instance of state.instances.values()) {
      const rtt = instance.rttMs ?? Infinity
      if (isRested(state, instance.peerId) || (instance.rttMs != null && rtt > hardRttMs)) {
        continue
      }
      const better = best == null ||
        (wanted(state, instance) && !wanted(state, best)) ||
        (wanted(state, instance) === wanted(state, best) && rtt < (best.rttMs ?? Infinity))
      if (better) {
        best = instance
      }
    }
    return best
  }

  /**
   * Measures `peer`: this ping's own sample, and the smoothed RTT of the node's table. The
   * smoothed figure ranks peers; whether a peer is within the hard RTT is the last sample's to say:
   * the smoothed one (the least of the first samples, then a slow average) stays low for minutes
   * after an instance moved far away, and an instance beyond hard would go on being chosen.
   */
  const measure = async (peer: PeerId, timeoutMs: number): Promise<Measurement> => {
    const lastMs = await node.measureRtt(peer, { signal: within(timeoutMs) })
    return { lastMs, smoothedMs: node.rtt.get(peer.toString())?.smoothedMs ?? lastMs }
  }

  /**
   * How long a measurement that may have to dial the instance first takes at most: a new
   * connection's handshakes are several round trips, a busy host slower still.
   */
  const dialMs = (record: ServiceRecord): number => Math.max(STALL_PING_TIMEOUT_MS, 2 * record.hardRttMs)

  /**
   * The RTT an instance is known by after a measurement: the smoothed one while both it and the
   * last sample are within `hardRttMs`, else the last sample (beyond hard, nearest() passes it by;
   * or within, where a smoothed figure still beyond would keep out an instance that came near).
   */
  const knownRtt = ({ lastMs, smoothedMs }: Measurement, hardRttMs: number): number =>
    lastMs <= hardRttMs && smoothedMs <= hardRttMs ? smoothedMs : lastMs

  /**
   * Providers of `topic` found before the discovery deadline (at most `limit`, those `skip` names
   * left out), each pinged: its measurement, or none when it did not answer within `pingTimeoutMs`.
   */
  const measuredProviders = async (topic: string, pingTimeoutMs: number, limit: number, skip: (peer: PeerId) => boolean = () => false): Promise<Array<{ peerId: PeerId, rtt?: Measurement }>> => {
    const signal = within(discoveryTimeoutMs)
    const measured: Array<Promise<{ peerId: PeerId, rtt?: Measurement }>> = []
    try {
      for await (const provider of node.discovery.findProviders(topic, { signal })) {
        if (skip(provider.id)) {
          continue
        }
        measured.push(measure(provider.id, pingTimeoutMs).then(rtt => ({ peerId: provider.id, rtt }), () => ({ peerId: provider.id })))
        if (measured.length >= limit) {
          break
        }
      }
    } catch (err) {
      if (controller.signal.aborted) {
        throw err
      }
      // the deadline: what was found so far
    }
    return await Promise.all(measured)
  }

  /**
   * Looks the service topic up and measures what it finds into `state`: those within the hard RTT
   * are added or updated; a known instance now beyond it keeps that figure, so nearest() passes it
   * by (unless an allocator answered with it since the measurement began, see vouchedFor). Returns
   * the measurements still under way of those that did not answer within the hard RTT, each true
   * once it added an instance within it.
   */
  const findInstances = async (record: ServiceRecord, state: ServiceState): Promise<Array<Promise<boolean>>> => {
    const started = Date.now()
    state.foundAt = started
    const rested = (peer: PeerId): boolean => isRested(state, peer)
    const found = await measuredProviders(serviceTopic(record.contentHash), record.hardRttMs, Infinity, peer => rested(peer) || notServing.has(peer.toString()))
    // a new version was registered meanwhile: these run the old one
    if (state.contentHash !== record.contentHash) {
      return []
    }
    // rested meanwhile (a request failed on it while it was measured), or it stopped serving
    const usable = (peerId: PeerId): boolean => state.contentHash === record.contentHash && !rested(peerId) && !notServing.has(peerId.toString())
    const take = (peerId: PeerId, rtt: Measurement): boolean => {
      if (!usable(peerId)) {
        return false
      }
      const rttMs = knownRtt(rtt, record.hardRttMs)
      if (rttMs <= record.hardRttMs) {
        know(state, { peerId, target: peerId, rttMs }, record.contentHash)
        return true
      }
      const known = state.instances.get(peerId.toString())
      if (known != null && known.allocatedAt < started) {
        known.rttMs = rttMs
      }
      return false
    }
    const late: Array<Promise<boolean>> = []
    for (const { peerId, rtt } of found) {
      if (rtt == null) {
        // beyond hard, or its new connection only took longer to open: measured again with a
        // dial of its own length
        late.push(measure(peerId, dialMs(record)).then(lateRtt => take(peerId, lateRtt), () => false))
      } else {
        take(peerId, rtt)
      }
    }
    return late
  }

  /**
   * Allocators, measured, nearest first (those that did not answer a ping last). Each one that
   * answered gets a second ping and counts with the lower figure: a host busy for a moment answers
   * one ping late (in CI the nearest allocator once took 93 ms and the next one 29 ms), and an
   * instance stays where it was started.
   */
  const findAllocators = async (): Promise<Array<{ peerId: PeerId, rttMs: number }>> => {
    const found = await measuredProviders(ALLOCATOR_TOPIC, discoveryTimeoutMs, MAX_ALLOCATORS_MEASURED)
    const ranked = await Promise.all(found.map(async ({ peerId, rtt }) => {
      if (rtt == null) {
        return { peerId, rttMs: Infinity }
      }
      const again = await node.measureRtt(peerId, { signal: within(discoveryTimeoutMs) }).catch(() => Infinity)
      return { peerId, rttMs: Math.min(rtt.smoothedMs, again) }
    }))
    return ranked.sort((a, b) => a.rttMs - b.rttMs)
  }

  /**
   * Asks the nearest of `allocators` (findAllocators) that answers for an instance; CAPACITY or a
   * failure: the next. The instances resting here are named to avoid: the allocator of a hung
   * service's only instance would otherwise answer with it again.
   */
  const allocateSomewhere = async (record: ServiceRecord, state: ServiceState, counter: Counter, allocators: Array<{ peerId: PeerId, rttMs: number }>): Promise<Allocated> => {
    const now = Date.now()
    const avoid = [...state.rested].filter(([, until]) => until > now).map(([peer]) => peer).slice(-MAX_AVOID_PEERS)
    if (allocators.length === 0) {
      throw new ProxyError(503, `No instance of ${record.name} is near enough and no allocator was found`, { 'retry-after': String(RETRY_AFTER_S) })
    }
    const failures: string[] = []
    // why this allocator: the ones found, nearest first (null: no answer to the ping)
    const candidates = allocators.map(({ peerId, rttMs }) => ({ peer: peerId.toString(), rttMs: Number.isFinite(rttMs) ? rttMs : null }))
    for (const allocator of allocators) {
      try {
        const allocation = await allocate(node.libp2p, allocator.peerId, record.name, { signal: within(coldStartTimeoutMs), avoid, contentHash: state.contentHash ?? record.contentHash })
        counter.inc({ service: record.name, outcome: allocation.reused ? 'reused' : 'started' })
        log.info({ service: record.name, allocator: allocator.peerId.toString(), instance: allocation.instanceId, phases: allocation.phases, reused: allocation.reused, candidates }, 'allocated')
        return { peerId: allocation.peerId, target: allocation.multiaddrs.length > 0 ? allocation.multiaddrs : allocation.peerId, contentHash: allocation.contentHash, avoided: avoid.includes(allocation.peerId.toString()) }
      } catch (err) {
        const code = err instanceof RpcFailureError ? err.code : (err as Error).name
        counter.inc({ service: record.name, outcome: err instanceof RpcFailureError ? err.code : 'ERROR' })
        failures.push(`${allocator.peerId.toString()}: ${code}: ${(err as Error).message}`)
        log.warn({ service: record.name, allocator: allocator.peerId.toString(), code, err: (err as Error).message }, 'allocation failed; trying the next allocator')
        if (controller.signal.aborted || (err instanceof RpcFailureError && (err.code === 'NOT_FOUND' || err.code === 'BAD_REQUEST'))) {
          break
        }
      }
    }
    throw new ProxyError(503, `No instance of ${record.name} is near enough and allocation failed (${failures.join('; ')})`, { 'retry-after': String(RETRY_AFTER_S) })
  }

  /**
   * An allocator answered with `allocation`: it is known (or updated) and measured. The allocator
   * ranks its instances nearest first and vouches for the one it answers with, so a figure beyond
   * the hard RTT held for it is forgotten, and one measured now beyond hard is not kept: with its
   * RTT unknown it is chosen while nothing within hard is known, until a refresh of the service
   * topic (every refreshIntervalMs) measures it beyond hard again. When every instance is far,
   * that is at most one allocation per refresh; were it kept beyond hard, nearest() would find
   * none for every request, and each would ask an allocator, to get the same answer.
   * `measured` gives the RTT it is known by after the measurement (undefined: none within hard).
   * The allocator was told to avoid the instances resting here; an older one ignores that, and
   * an instance it answers with from that list is taken as before, no longer resting. One rested
   * while the allocation was under way was not on the list: it failed since, and stays rested.
   */
  const vouchedFor = (record: ServiceRecord, state: ServiceState, allocation: Allocated): { instance: KnownInstance, measured: Promise<number | undefined> } => {
    if (allocation.avoided) {
      state.rested.delete(allocation.peerId.toString())
    }
    const instance = know(state, allocation, allocation.contentHash)
    instance.allocatedAt = Date.now()
    if (instance.rttMs != null && instance.rttMs > record.hardRttMs) {
      instance.rttMs = undefined
    }
    // the ping on a connection to the allocation's address: the dial (by peer id alone, a lookup
    // first) may take longer than the hard RTT, and the request's own dial joins it
    const measured = node.libp2p.dial(instance.target, { signal: within(dialMs(record)) }).then(async () => await measure(instance.peerId, record.hardRttMs)).then(rtt => {
      const rttMs = knownRtt(rtt, record.hardRttMs)
      if (rttMs > record.hardRttMs) {
        return undefined
      }
      instance.rttMs = rttMs
      return rttMs
    }, () => undefined)
    return { instance, measured }
  }

  /**
   * The nearest instance, `instance`, is beyond the soft RTT, or runs another version than the one
   * wanted: ask for another in the background, one at a time per service. For a nearer one only
   * when an allocator is nearer than `instance`: an allocator starts its instances on its own host,
   * so a farther one would start one farther still, every interval, never used.
   */
  const askCloser = (record: ServiceRecord, state: ServiceState, instance: KnownInstance): void => {
    if (state.closer != null || Date.now() - state.closerAt < closerIntervalMs) {
      return
    }
    state.closerAt = Date.now()
    state.closer = (async () => {
      const allocators = await findAllocators()
      const nearestMs = allocators[0]?.rttMs ?? Infinity
      if (wanted(state, instance) && instance.rttMs != null && nearestMs >= instance.rttMs) {
        closerAllocations.inc({ service: record.name, outcome: 'none_nearer' })
        log.debug({ service: record.name, rttMs: instance.rttMs, allocatorRttMs: Number.isFinite(nearestMs) ? nearestMs : null }, 'no allocator is nearer than the instance in use: no other instance is asked for')
        return
      }
      const allocated = await allocateSomewhere(record, state, closerAllocations, allocators)
      const rttMs = await vouchedFor(record, state, allocated).measured
      log.info({ service: record.name, peer: allocated.peerId.toString(), rttMs, contentHash: allocated.contentHash }, 'another instance was asked for')
    })().catch((err: Error) => {
      log.warn({ service: record.name, err: err.message }, 'asking for another instance failed')
    }).finally(() => { state.closer = undefined })
  }

  /** Keeps the instance list fresh in the background: new instances, RTTs that changed. */
  const refresh = (record: ServiceRecord, state: ServiceState): void => {
    if (state.refreshing != null || Date.now() - state.foundAt < refreshIntervalMs) {
      return
    }
    state.refreshing = findInstances(record, state).then(() => {}, (err: Error) => {
      log.debug({ service: record.name, err: err.message }, 'refreshing the instances failed')
    }).finally(() => { state.refreshing = undefined })
  }

  const chosen = (record: ServiceRecord, state: ServiceState, instance: KnownInstance): KnownInstance => {
    if (instance.rttMs != null) {
      if (instance.rttMs !== state.reportedRttMs) {
        upstreamRtt.set({ service: record.name }, instance.rttMs / 1000)
        state.reportedRttMs = instance.rttMs
      }
      if (instance.rttMs > record.softRttMs) {
        askCloser(record, state, instance)
      }
    }
    // a lookup under way is for the version wanted: it may allocate one already
    if (!wanted(state, instance) && state.resolving == null) {
      askCloser(record, state, instance)
    }
    refresh(record, state)
    return instance
  }

  /**
   * The service was added again with a new version (content hash): the instances known run the
   * old one and are no longer chosen; their requests in flight finish and their streams close.
   */
  const newVersion = (state: ServiceState, record: ServiceRecord): void => {
    if (state.contentHash != null) {
      log.info({ service: record.name, from: state.contentHash, to: record.contentHash, left: state.instances.size }, 'a new version of the service: its instances are looked for')
    }
    state.contentHash = record.contentHash
    for (const instance of [...state.instances.values()]) {
      drop(state, instance)
    }
    state.foundAt = 0
    state.failed = undefined
    // a lookup under way for the old version serves the requests that wait on it, no new ones
    state.resolving = undefined
  }

  /**
   * The instance for this request: the nearest known, else one shared lookup, allocating when
   * needed. `client` is the request's response or upgraded socket: its 'close' while a cold start
   * is awaited means the client went away, and the request gives its place up.
   */
  const resolve = async (record: ServiceRecord, client: { destroyed: boolean, once: (event: 'close', listener: () => void) => unknown, off: (event: 'close', listener: () => void) => unknown }): Promise<Resolved> => {
    const state = stateOf(record.name)
    if (state.contentHash !== record.contentHash) {
      newVersion(state, record)
    }
    const known = nearest(state, record.hardRttMs)
    if (known != null) {
      return { instance: chosen(record, state, known) }
    }
    if (state.waiting >= maxPending) {
      throw new ProxyError(503, `${maxPending} requests already wait for ${record.name} to start`, { 'retry-after': String(RETRY_AFTER_S) })
    }
    const held = state.resolving == null ? heldFailure(state) : undefined
    if (held != null) {
      throw held
    }
    const resolving = state.resolving ?? (async () => {
      const started = Date.now()
      const late = await findInstances(record, state)
      let found = nearest(state, record.hardRttMs)
      if (found == null && late.length > 0) {
        // an instance whose new connection took longer than the hard RTT to open (its handshakes
        // take several round trips) may be within it once connected: a while longer for the first
        // of those to say so, rather than an allocation (or a 503) beside a near instance
        const waited = new AbortController()
        await Promise.race([
          Promise.any(late.map(async near => { if (!await near) throw new Error('not near') })),
          sleep(Math.min(LATE_DIAL_WAIT_RTTS * record.hardRttMs, STALL_PING_TIMEOUT_MS), undefined, { signal: AbortSignal.any([waited.signal, controller.signal]) })
        ]).catch(() => {}).finally(() => { waited.abort() })
        found = nearest(state, record.hardRttMs)
      }
      if (found != null) {
        return { instance: chosen(record, state, found) }
      }
      const allocation = await allocateSomewhere(record, state, coldStarts, await findAllocators()).catch((err: unknown) => {
        if (err instanceof ProxyError && state.contentHash === record.contentHash) {
          const times = (state.failed?.times ?? 0) + 1
          state.failed = { error: err, until: performance.now() + Math.min(COLD_START_FAILURE_HOLD_MS * 2 ** (times - 1), COLD_START_FAILURE_MAX_HOLD_MS), times }
        }
        throw err
      })
      state.failed = undefined
      // a new version was registered meanwhile: the instance serves the requests that waited for
      // it, and no others (known, nearest() would choose it while the new version is allocated,
      // and chosen() would ask for another allocation of that version beside the one under way)
      if (state.contentHash !== record.contentHash) {
        return { instance: newInstance(allocation, allocation.contentHash), coldStartMs: Date.now() - started }
      }
      return { instance: vouchedFor(record, state, allocation).instance, coldStartMs: Date.now() - started }
    })().finally(() => {
      if (state.resolving === resolving) {
        state.resolving = undefined
      }
    })
    state.resolving = resolving
    state.waiting++
    pending.inc({ service: record.name })
    let timer: NodeJS.Timeout | undefined
    let onLeft: (() => void) | undefined
    try {
      return await Promise.race([resolving, new Promise<never>((_resolve, reject) => {
        timer = setTimeout(() => { reject(new ProxyError(504, `${record.name} did not start within ${coldStartTimeoutMs} ms`)) }, coldStartTimeoutMs)
        onLeft = () => { reject(new ProxyError(499, 'The client went away')) }
        if (client.destroyed) {
          onLeft()
        }
        client.once('close', onLeft)
      })])
    } finally {
      clearTimeout(timer)
      if (onLeft != null) {
        client.off('close', onLeft)
      }
      state.waiting--
      pending.dec({ service: record.name })
    }
  }

  /**
   * The 503 of the cold start that failed last, while it holds, with the seconds left as its
   * Retry-After; undefined once it no longer holds (the next request looks and allocates again).
   */
  const heldFailure = (state: ServiceState): ProxyError | undefined => {
    const left = (state.failed?.until ?? 0) - performance.now()
    if (state.failed == null || left <= 0) {
      return undefined
    }
    return new ProxyError(503, state.failed.error.message, { ...state.failed.error.headers, 'retry-after': String(Math.ceil(left / 1_000)) })
  }

  /** The instance failed: not chosen again for a while, its idle streams closed. */
  const rest = (service: string, instance: KnownInstance): void => {
    const state = stateOf(service)
    const now = Date.now()
    for (const [peer, until] of state.rested) {
      if (until <= now) {
        state.rested.delete(peer)
      }
    }
    state.rested.set(instance.peerId.toString(), now + INSTANCE_REST_MS)
    drop(state, instance)
  }

  /**
   * No longer chooses `instance`; its requests in flight finish and its streams close. Left already
   * (each request moved off a silent instance fails on it once more): nothing to close again, and
   * a newer entry for the same peer stays.
   */
  const drop = (state: ServiceState, instance: KnownInstance): void => {
    const key = instance.peerId.toString()
    if (state.instances.get(key) !== instance) {
      return
    }
    state.instances.delete(key)
    closePool(instance)
    // the gauge is of the instance used now: with none left, there is no such RTT
    if (state.instances.size === 0) {
      upstreamRtt.remove({ service: state.name })
      state.reportedRttMs = undefined
    }
  }

  /** Rests an instance that stopped answering, and sends the requests waiting on it that may go elsewhere to another instance. */
  const leave = (service: string, instance: KnownInstance, reason: Error): void => {
    rest(service, instance)
    for (const moveAway of instance.movable) {
      moveAway(reason)
    }
  }

  /**
   * An instance that sent no response head for STALL_PROBE_AFTER_MS while requests wait on it gets
   * a ping; unanswered within STALL_PING_TIMEOUT_MS (or four RTTs), it is not chosen for a while,
   * so new requests go elsewhere within seconds instead of waiting on a host that went silent
   * (libp2p's liveness check drops such a connection only after about a minute). The requests
   * waiting on it that may be sent twice go to another instance too; the others keep waiting, up
   * to the upstream timeout: on a busy host a ping can be late and the instance merely slow.
   */
  const probeStalled = (): void => {
    const now = performance.now()
    for (const [service, state] of services) {
      for (const instance of state.instances.values()) {
        if (instance.waiting === 0 || instance.probing != null || now - instance.answeredAt < STALL_PROBE_AFTER_MS) {
          continue
        }
        const timeoutMs = Math.max(STALL_PING_TIMEOUT_MS, 4 * (instance.rttMs ?? 0))
        instance.probing = node.measureRtt(instance.peerId, { signal: within(timeoutMs) }).then(() => {}, (err: Error) => {
          if (controller.signal.aborted || state.instances.get(instance.peerId.toString()) !== instance) {
            return
          }
          upstreamFailures.inc({ service, stage: 'ping' })
          log.warn({ service, peer: instance.peerId.toString(), waiting: instance.waiting, moved: instance.movable.size, err: err.message }, 'the instance answered no ping while requests waited on it: not chosen for a while')
          leave(service, instance, new Error(`${instance.peerId.toString()} answered no ping within ${timeoutMs} ms`))
        }).finally(() => { instance.probing = undefined })
      }
    }
  }
  /** Client connections upgraded (or upgrading) to an instance: Node's server does not close them when it stops. */
  const upgrades = new Set<Duplex>()

  const stallTimer = setInterval(probeStalled, STALL_PROBE_AFTER_MS)
  stallTimer.unref()
  // every instance and allocator ever measured has an entry: those not measured for a while go
  const forgetTimer = setInterval(() => { node.rtt.forgetUnseenSince(Date.now() - RTT_FORGET_AFTER_MS) }, 60_000)
  forgetTimer.unref()

  /**
   * The node's liveness check aborted the connection to a peer that answered no ping: an instance
   * there, idle meanwhile (no request waited to show the silence), is not chosen for a while
   * either, so the next request goes elsewhere instead of waiting on it. Another open connection
   * to the peer (answering, or not yet found silent) keeps it.
   */
  const stopSilentPeers = node.onSilentPeer((peer) => {
    if (node.libp2p.getConnections(peer).some(connection => connection.status === 'open')) {
      return
    }
    const key = peer.toString()
    for (const [service, state] of services) {
      const instance = state.instances.get(key)
      if (instance != null) {
        upstreamFailures.inc({ service, stage: 'liveness' })
        log.warn({ service, peer: key }, 'the instance answered no liveness ping: not chosen for a while')
        rest(service, instance)
      }
    }
  })

  /** Peers connected now that dropped the HTTP protocol: instances that stopped serving. */
  const notServing = new Set<string>()

  /** Drops the instances on `peer`, of every service. */
  const forget = (peer: PeerId, why: string): void => {
    const key = peer.toString()
    for (const [service, state] of services) {
      const instance = state.instances.get(key)
      if (instance != null) {
        log.info({ service, peer: key, waiting: instance.waiting }, why)
        drop(state, instance)
      }
    }
  }

  /**
   * Every connection to a peer closed: an instance there may have stopped (scaled down, its host
   * gone), and dialling it again would cost a request one attempt of the few it has, so it is
   * forgotten, not rested. If it still runs, the next lookup of the service topic (in the
   * background every INSTANCE_REFRESH_MS, or at once when no instance is left) finds it again.
   * This waits a turn: when liveness aborted the connection, its listener above rests the
   * instance first (a silent host is not looked for again at once, and is counted).
   */
  const onDisconnect = (evt: CustomEvent<PeerId>): void => {
    const peer = evt.detail
    setImmediate(() => {
      if (node.libp2p.getConnections(peer).length > 0) {
        return
      }
      forget(peer, 'the connection to an instance closed: it is looked up again before it is chosen')
      notServing.delete(peer.toString())
    })
  }
  node.libp2p.addEventListener('peer:disconnect', onDisconnect)

  /**
   * A sidecar that stops drops its HTTP protocol and tells its peers (identify push): its instance
   * is forgotten, so new requests go elsewhere while the ones in flight finish and its kept
   * streams close. Otherwise the kept streams would carry new requests until the sidecar's grace
   * ran out, and the one in flight then was cut after it had reached the service.
   */
  const onPeerUpdate = (evt: CustomEvent<PeerUpdate>): void => {
    const { peer, previous } = evt.detail
    const key = peer.id.toString()
    if (peer.protocols.includes(HTTP_PROTOCOL)) {
      notServing.delete(key)
    } else if (previous?.protocols.includes(HTTP_PROTOCOL) === true) {
      // its provider record outlives it in the DHT: lookups pass it by while it is connected
      // (an update read after its connection closed would leave the entry for good)
      if (node.libp2p.getConnections(peer.id).length > 0) {
        notServing.add(key)
      }
      forget(peer.id, 'an instance stopped serving: no new requests are sent to it')
    }
  }
  node.libp2p.addEventListener('peer:update', onPeerUpdate)

  /**
   * One attempt at the instance. Rejects with an UpstreamFailure when the request failed before a
   * response started (the caller may retry it elsewhere), with a ProxyError otherwise. A `movable`
   * request is given up, as failed, when the instance answers no ping while it waits.
   */
  const forward = async (req: IncomingMessage, res: ServerResponse, record: ServiceRecord, path: string, resolved: Resolved, body: boolean, movable: boolean): Promise<number> => {
    const { instance } = resolved
    instance.pool ??= streamPool({
      open: async () => await openStream(instance),
      idleTimeoutMs: idleStreamTimeoutMs,
      maxStreams: MAX_STREAMS_PER_INSTANCE,
      headersTimeoutMs: upstreamTimeoutMs,
      maxHeadBytes: MAX_RESPONSE_HEAD_BYTES
    })
    const pool = await instance.pool
    // the client left while the request waited (for a cold start, a stream, a retry): nothing to send
    if (res.destroyed) {
      throw new ProxyError(499, 'The client went away')
    }
    if (instance.queue.size >= MAX_QUEUED_PER_INSTANCE) {
      throw new ProxyError(503, `The instance of ${record.name} has all its ${MAX_STREAMS_PER_INSTANCE} streams busy and ${instance.queue.size} requests waiting for one`, { 'retry-after': String(RETRY_AFTER_S) })
    }
    return await new Promise<number>((resolve, reject) => {
      let controller: Dispatcher.DispatchController | undefined
      let answered = false
      // the first bytes of this request's response came: the instance read it and broke off
      // answering, which keep-alive's race never does
      let responding = false
      let clientGone = false
      let stalled: ProxyError | undefined
      let movedAway: Error | undefined
      const moveAway = (reason: Error): void => {
        movedAway = reason
        if (controller != null) {
          controller.abort(reason)
        } else if (!settled) {
          // still waiting for a stream (one being opened to the silent host): nothing reached the
          // instance, so it goes elsewhere now, and is aborted if a stream takes it later
          done(false)
          reject(new UpstreamFailure(new StreamOpenError(reason.message, { cause: reason }), false))
        }
      }
      if (movable) {
        instance.movable.add(moveAway)
      }
      // a request waits for the instance's response head once it is sent whole: an upload in
      // progress is no stall
      let waiting = false
      let settled = false
      const wait = (): void => {
        if (!settled) {
          waiting = true
          if (instance.waiting++ === 0) {
            instance.answeredAt = performance.now()
          }
        }
      }
      if (body && !req.readableEnded) {
        req.once('end', wait)
        watchUpload()
      } else {
        wait()
      }
      // a request queued behind an instance whose streams are all busy, or whose stream is being
      // opened, waits for one at most the upstream timeout (undici's own starts once a stream has
      // taken the request)
      const queued = setTimeout(() => {
        if (controller == null && !settled) {
          const timedOut = clientGone
            ? new ProxyError(499, 'The client went away')
            : new ProxyError(504, pool.stats.connected >= MAX_STREAMS_PER_INSTANCE
              ? `No stream to the instance of ${record.name} came free within ${upstreamTimeoutMs} ms (all ${MAX_STREAMS_PER_INSTANCE} in use)`
              : `No stream to the instance of ${record.name} could be opened within ${upstreamTimeoutMs} ms`)
          // sent nowhere: aborted when a stream would take it, if it was handed to the pool
          movedAway = timedOut
          done(false)
          reject(timedOut)
        }
      }, upstreamTimeoutMs)
      /** This request no longer waits for the instance's response head (`heard`: the head came). */
      const done = (heard: boolean): void => {
        clearTimeout(queued)
        settled = true
        if (controller == null) {
          instance.queue.delete(send)
        }
        instance.movable.delete(moveAway)
        if (waiting) {
          waiting = false
          instance.waiting--
          if (heard) {
            instance.answeredAt = performance.now()
          }
        }
      }
      /**
       * A client that stops sending its body would hold the stream, and its place among the
       * instance's, for good: one that sent nothing of it for the upstream timeout, with none of
       * it waiting here for the stream to take it (then the instance is the slow one), gets 408.
       */
      function watchUpload (): void {
        let read = req.socket?.bytesRead ?? 0
        const watch = setInterval(() => {
          const now = req.socket?.bytesRead ?? 0
          if (now !== read || req.readableLength > 0) {
            read = now
            return
          }
          clearInterval(watch)
          // the rest of the body will not come: the connection ends with the answer
          stalled = new ProxyError(408, `The client sent nothing of its request body for ${upstreamTimeoutMs} ms`, { connection: 'close' })
          if (controller != null) {
            controller.abort(stalled)
          } else if (!settled) {
            // still waiting for a stream: aborted when one takes it
            movedAway = stalled
            done(false)
            reject(stalled)
          }
        }, upstreamTimeoutMs)
        const stop = (): void => { clearInterval(watch) }
        req.once('end', stop)
        req.once('close', stop)
      }
      // the client went away: stop the upstream request too
      res.on('close', () => {
        if (!res.writableFinished) {
          clientGone = true
          if (controller != null) {
            controller.abort(new Error('The client went away'))
          } else if (!settled) {
            // still waiting for a stream: aborted when one takes it, if it was handed to the pool
            done(false)
            reject(new ProxyError(499, 'The client went away'))
          }
        }
      })
      // the response pauses while the client's socket is full
      res.on('drain', () => { controller?.resume() })
      const send = (): void => {
        instance.dispatched++
        pool.dispatch({ method: req.method as Dispatcher.HttpMethod, path, headers: requestHeaders(req), body: body ? req : null }, handler)
      }
      const handler: Dispatcher.DispatchHandler = {
        onRequestStart: (started) => {
          controller = started
          clearTimeout(queued)
          if (clientGone) {
            started.abort(new Error('The client went away'))
          } else if (movedAway != null) {
            started.abort(movedAway)
          }
        },
        onResponseStarted: () => {
          responding = true
        },
        onResponseStart: (_controller, statusCode, headers, statusMessage) => {
          done(true)
          instance.timeouts = 0
          // 1xx where Node's server can send them: 102 and 103 (100 Continue it answered itself)
          if (statusCode < 200) {
            if (statusCode < 100) {
              // undici's parser takes any three digits, and asserts on this one once its message
              // ends; the instance is up and answered, as for any answer that cannot be passed
              // on: not rested, and not asked again (the request would get the same answer)
              const refused = new ProxyError(502, `The instance of ${record.name} answered with the status ${statusCode}, which HTTP does not have`)
              // first: the abort calls onResponseError at once, which would take it for the instance failing
              reject(refused)
              controller?.abort(refused)
              return
            }
            if (statusCode === 103) {
              earlyHints(res, headers)
            } else if (statusCode === 102) {
              res.writeProcessing()
            }
            return
          }
          const sent = responseHeaders(headers)
          if (resolved.coldStartMs != null) {
            sent[COLD_START_HEADER] = String(resolved.coldStartMs)
          }
          try {
            writeHead(res, statusCode, statusMessage, sent)
          } catch (err) {
            // a head Node refuses to send: the instance's answer cannot be passed on
            const refused = new ProxyError(502, `The instance of ${record.name} answered with a head that cannot be relayed: ${(err as Error).message}`)
            // first, as for a status below 100
            reject(refused)
            controller?.abort(refused)
            return
          }
          answered = true
          resolve(statusCode)
        },
        onResponseData: (paused, chunk) => {
          if (!res.write(chunk)) {
            paused.pause()
          }
        },
        // ended here, after the trailers the instance sent (a chunked response carries them)
        onResponseEnd: (_controller, trailers) => {
          if (Object.keys(trailers).length > 0) {
            res.addTrailers(trailers)
          }
          res.end()
          finished(instance)
        },
        onResponseError: (_controller, err) => {
          finished(instance)
          done(false)
          if (clientGone) {
            reject(new ProxyError(499, 'The client went away'))
            return
          }
          if (stalled != null) {
            // an instance that answered before the whole body came (an echo) has its response cut
            if (answered) {
              res.destroy()
            } else {
              reject(stalled)
            }
            return
          }
          if (answered) {
            log.warn({ service: record.name, peer: instance.peerId.toString(), err: err.message }, 'the instance broke off its response')
            res.destroy()
            return
          }
          if ((err as { code?: string }).code === 'UND_ERR_HEADERS_TIMEOUT') {
            // a hung service answers its host's pings: only its timeouts tell, once they repeat
            if (++instance.timeouts === TIMEOUTS_BEFORE_REST && stateOf(record.name).instances.get(instance.peerId.toString()) === instance) {
              upstreamFailures.inc({ service: record.name, stage: 'timeout' })
              log.warn({ service: record.name, peer: instance.peerId.toString(), timeouts: instance.timeouts, waiting: instance.waiting, moved: instance.movable.size }, 'the instance answered no request in time, several in a row: not chosen for a while')
              leave(record.name, instance, new Error(`${instance.peerId.toString()} answered ${instance.timeouts} requests in a row not within ${upstreamTimeoutMs} ms`))
            }
            reject(new ProxyError(504, `The instance of ${record.name} did not answer within ${upstreamTimeoutMs} ms`))
            return
          }
          if (unreadableAnswer(err)) {
            // the instance is up and answered; this request's answer cannot be passed on, and the
            // same request would get the same answer elsewhere
            log.warn({ service: record.name, peer: instance.peerId.toString(), err: err.message }, 'the instance answered with a response head the proxy cannot pass on')
            reject(new ProxyError(502, `The instance of ${record.name} answered with a response the proxy cannot pass on: ${err.message}`))
            return
          }
          reject(new UpstreamFailure(err, !responding && onKeptStream(err)))
        }
      }
      // first come first: none goes past one already waiting
      if (instance.dispatched < MAX_STREAMS_PER_INSTANCE && instance.queue.size === 0) {
        send()
      } else {
        instance.queue.add(send)
      }
    })
  }

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const started = performance.now()
    let service = 'unknown'
    let code: number
    try {
      const target = targetOf(req)
      checkCoding(req)
      let record = await lookUp(registry, target.service)
      service = record.name
      const body = hasBody(req)
      const repeatable = !body && IDEMPOTENT_METHODS.has(req.method ?? '')
      // times this request broke on a stream opened for it (a kept stream that broke may have been
      // closed by its instance as it was taken: keep-alive's race, no sign of a failing instance)
      let broke = 0
      for (let attempt = 1; ; attempt++) {
        // a retry takes the record as it is now: the one it began with may be of a version since replaced
        if (attempt > 1) {
          record = await lookUp(registry, target.service)
        }
        const resolved = await resolve(record, res)
        try {
          code = await forward(req, res, record, target.path, resolved, body, repeatable && broke === 0)
          break
        } catch (err) {
          if (!(err instanceof UpstreamFailure)) {
            throw err
          }
          const stage = err.cause instanceof StreamOpenError ? 'stream' : 'request'
          upstreamFailures.inc({ service, stage })
          // a kept stream the instance closed meanwhile is a race of keep-alive, not a failing instance
          if (!err.reusedStream) {
            rest(record.name, resolved.instance)
            if (stage === 'request') {
              broke++
            }
          }
          // nothing reached an instance that could not be reached: any method may go again, a few
          // times (an allocator may still vouch for an instance that just died), a body too while
          // none of it was read; a request that reached its instance goes again only when
          // repeating it is harmless, after keep-alive's race on the same instance, and once after
          // that instance broke it on a new stream (an instance killed under traffic does both)
          const retry = stage === 'stream'
            ? !req.readableDidRead && attempt < MAX_UNREACHED_ATTEMPTS
            : repeatable && broke <= 1 && attempt < MAX_UNREACHED_ATTEMPTS
          log.warn({ service, peer: resolved.instance.peerId.toString(), stage, err: err.message, retry }, 'the instance failed before answering')
          if (!retry) {
            throw new ProxyError(502, `The instance of ${record.name} failed before answering: ${err.message}`)
          }
          retries.inc({ service })
          await new Promise(resolve => setTimeout(resolve, attempt === 1 ? 0 : RETRY_DELAY_MS * 2 ** (attempt - 2)))
        }
      }
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
      duration.observe({ service }, (performance.now() - started) / 1000)
    }
  }

  /**
   * An upgrade (WebSocket and the like): the request head goes to the instance on a stream of its
   * own, with the Upgrade and Connection headers kept, and from then on bytes pass both ways.
   */
  const handleUpgrade = async (req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> => {
    // Node's server stops handling the socket's errors once it is upgraded: a client that resets
    // the connection while its instance is found must not crash the proxy
    socket.on('error', (err) => { log.debug({ err: err.message }, 'an upgrading client\'s connection broke') })
    upgrades.add(socket)
    socket.once('close', () => { upgrades.delete(socket) })
    // read from now on: a client that closes its end while the instance is found and asked gets
    // nothing joined (Node's server no longer reads it), and what it sends meanwhile is kept
    let ended = false
    // what came behind the request head, in its read, goes with the rest: to the instance only
    // once it switched protocols (a refusing instance would read it as another request, unrouted)
    const early: Buffer[] = head.length > 0 ? [head] : []
    let earlyBytes = head.length
    const onData = (chunk: Buffer): void => {
      early.push(chunk)
      earlyBytes += chunk.byteLength
      // a client that sends more before the 101 waits for it, on TCP's backpressure
      if (earlyBytes > MAX_EARLY_UPGRADE_BYTES) {
        socket.pause()
      }
    }
    const onEnd = (): void => { ended = true }
    socket.on('data', onData)
    socket.on('end', onEnd)
    const gone = (): boolean => ended || socket.destroyed
    let service = 'unknown'
    /** The instance whose upgrade count this one holds until it is joined, or fails. */
    let reserved: KnownInstance | undefined
    try {
      const target = targetOf(req)
      const record = await lookUp(registry, target.service)
      service = record.name
      const { instance } = await resolve(record, socket)
      // WebSockets share the instance's streams with the request pool: they may not take them all
      // (counted from here, so a burst of them cannot all pass before the first is joined)
      if (instance.upgraded >= MAX_UPGRADES_PER_INSTANCE) {
        throw new ProxyError(503, `The instance of ${record.name} carries ${instance.upgraded} upgraded connections, the most it takes`, { 'retry-after': String(RETRY_AFTER_S) })
      }
      instance.upgraded++
      reserved = instance
      let stream
      try {
        stream = await openStream(instance)
      } catch (err) {
        upstreamFailures.inc({ service, stage: 'stream' })
        rest(record.name, instance)
        throw new ProxyError(502, `Could not reach the instance of ${record.name}: ${(err as Error).message}`)
      }
      const headers = { ...requestHeaders(req), connection: 'upgrade', upgrade: req.headers.upgrade ?? '' }
      const lines = [`${req.method ?? 'GET'} ${target.path} HTTP/1.1`]
      for (const [name, value] of Object.entries(headers)) {
        for (const one of Array.isArray(value) ? value : [value]) {
          lines.push(`${name}: ${String(one)}`)
        }
      }
      stream.send(Buffer.from(`${lines.join('\r\n')}\r\n\r\n`))
      const leftYet = (): void => {
        if (gone()) {
          stream.abort(new Error('The client went away'))
          throw new ProxyError(499, 'The client went away')
        }
      }
      leftYet()
      const answer = await responseHead(stream, upstreamTimeoutMs).catch((err: Error) => {
        stream.abort(err)
        throw err instanceof ProxyError ? err : new ProxyError(502, `The instance of ${record.name} broke before answering the upgrade: ${err.message}`)
      })
      leftYet()
      // counted with the status the instance answered (101, or its refusal)
      requests.inc({ service, code: String(answer.status) })
      socket.off('data', onData)
      socket.off('end', onEnd)
      if (answer.status === 101) {
        socket.write(answer.head)
        if (answer.rest.byteLength > 0) {
          socket.write(answer.rest)
        }
        for (const chunk of early) {
          stream.send(chunk)
        }
        // held now by the pipe, until it ends
        reserved = undefined
        joinSocket(socket, stream, (err) => {
          instance.upgraded--
          if (err != null) {
            log.debug({ service, err: err.message }, 'an upgraded connection broke')
          }
        })
        socket.resume()
        return
      }
      // refused: the answer goes to the client, which must not send another request on this
      // connection (it would reach this instance unrouted, its /<service> prefix still on)
      relayRefusal(socket, stream, answer)
    } catch (err) {
      const failure = err instanceof ProxyError ? err : new ProxyError(502, (err as Error).message)
      requests.inc({ service, code: String(failure.status) })
      if (gone()) {
        socket.destroy()
        return
      }
      socket.off('data', onData)
      discardReads(socket)
      sendRawError(socket, failure)
    } finally {
      if (reserved != null) {
        reserved.upgraded--
      }
    }
  }

  // only WebSocket upgrades become byte pipes to the instance: another protocol's upgrade (curl's
  // h2c) is served as the plain HTTP/1.1 request it also is, its Upgrade header dropped (the
  // instance may not speak that protocol, and a keep-alive connection stays the proxy's)
  const headTimeoutMs = init.headTimeoutMs ?? REQUEST_HEAD_TIMEOUT_MS
  const server = createServer({
    requestTimeout: 0,
    headersTimeout: headTimeoutMs,
    // Node looks for heads past their time this often (30 s by default): a shorter limit, sooner
    connectionsCheckingInterval: Math.min(30_000, Math.ceil(headTimeoutMs / 2)),
    // Node would answer an HTTP/1.1 request without Host with a bare 400 of its own, uncounted:
    // targetOf refuses it with the JSON every other refusal has
    requireHostHeader: false,
    shouldUpgradeCallback: isWebSocket
  }, (req, res) => {
    handle(req, res).catch((err: Error) => {
      log.error({ err: err.message }, 'request handler failed')
      res.destroy()
    })
  })
  // past these header lines Node's parser refuses the request: 431, as for a head past maxHeaderSize
  server.maxHeadersCount = MAX_REQUEST_HEADERS
  // Expect: 100-continue: the body is asked for once the request can go somewhere, so that a
  // client does not send a large upload to an unknown service or another host's name first
  server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => {
    (async () => {
      const { service } = targetOf(req)
      checkCoding(req)
      await lookUp(registry, service)
    })().then(() => {
      res.writeContinue()
      server.emit('request', req, res)
    }, (err: unknown) => {
      const failure = err instanceof ProxyError ? err : new ProxyError(502, (err as Error).message)
      requests.inc({ service: 'unknown', code: String(failure.status) })
      // the body the client held back must not be read as the next request
      res.shouldKeepAlive = false
      sendError(res, failure)
    })
  })
  // an expectation other than 100-continue, which the proxy cannot meet (RFC 9110 10.1.1): the
  // JSON error every refusal has, not Node's bare 417; nothing more is read on the connection, as
  // the client may send the body it held back
  server.on('checkExpectation', (req: IncomingMessage, res: ServerResponse) => {
    requests.inc({ service: 'unknown', code: '417' })
    res.shouldKeepAlive = false
    sendError(res, new ProxyError(417, `The proxy meets no expectation but 100-continue, not ${JSON.stringify(String(req.headers.expect).slice(0, 100))}`))
  })
  // a request Node's parser refuses (Content-Length beside Transfer-Encoding, a folded header
  // line, a head past maxHeaderSize...) gets the JSON error every other refusal gets, not Node's
  // bare status line; as Node does, the connection then ends, since where its next request would
  // begin is unknown
  server.on('clientError', (err: Error & { code?: string }, socket: Duplex) => {
    const response = (socket as { _httpMessage?: ServerResponse })._httpMessage
    // HPE_INVALID_EOF_STATE: the client ended its side mid-request, and reads no answer
    if (err.code === 'ECONNRESET' || err.code === 'HPE_INVALID_EOF_STATE' || !socket.writable || response?.headersSent === true) {
      socket.destroy(err)
      return
    }
    const failure = err.code === 'HPE_HEADER_OVERFLOW'
      ? new ProxyError(431, `The request's head is larger than the proxy takes: more than ${maxHeaderSize} bytes (its URL and headers), or more than ${MAX_REQUEST_HEADERS} header lines`)
      : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? new ProxyError(408, 'The request\'s head did not come whole in time')
        : new ProxyError(400, `The request is not valid HTTP/1.1: ${err.message}`)
    requests.inc({ service: 'unknown', code: String(failure.status) })
    socket.on('error', () => {})
    sendRawError(socket, failure, () => { socket.destroy() })
  })
  // a tunnel (CONNECT) goes nowhere: the proxy forwards HTTP requests to services, not TCP to
  // addresses; Node's server would close the connection without a word
  server.on('connect', (req: IncomingMessage, socket: Duplex) => {
    socket.on('error', () => {})
    requests.inc({ service: 'unknown', code: '501' })
    sendRawError(socket, new ProxyError(501, 'The proxy opens no tunnels (CONNECT): send the request itself, to /<service>/<path>'))
  })
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    handleUpgrade(req, socket, head).catch((err: Error) => {
      log.error({ err: err.message }, 'upgrade handler failed')
      socket.destroy()
    })
  })
  server.listen(init.port, init.host)
  await once(server, 'listening')
  const port = (server.address() as AddressInfo).port

  return {
    server,
    port,
    instanceOf: (service) => {
      const state = services.get(service)
      return state == null ? undefined : nearest(state, Infinity)
    },
    stop: async () => {
      controller.abort()
      clearInterval(stallTimer)
      clearInterval(forgetTimer)
      stopSilentPeers()
      node.libp2p.removeEventListener('peer:disconnect', onDisconnect)
      node.libp2p.removeEventListener('peer:update', onPeerUpdate)
      for (const state of services.values()) {
        for (const instance of state.instances.values()) {
          instance.pool?.then(async pool => { await pool.destroy() }).catch(() => {})
        }
      }
      const closed = new Promise<void>(resolve => { server.close(() => { resolve() }) })
      server.closeAllConnections()
      for (const socket of upgrades) {
        socket.destroy()
      }
      await closed
    }
  }
}

/**
 * A request handed to the instance's pool finished: the first one waiting for a stream takes its
 * place, once undici is done with it (its stream free, or a failed one's other requests failed).
 */
function finished (instance: KnownInstance): void {
  instance.dispatched--
  if (instance.queue.size > 0) {
    process.nextTick(sendNext, instance)
  }
}

/** The first request waiting for one of the instance's streams goes to its pool, if one is free. */
function sendNext (instance: KnownInstance): void {
  if (instance.dispatched < MAX_STREAMS_PER_INSTANCE && instance.queue.size > 0) {
    const send = instance.queue.values().next().value!
    instance.queue.delete(send)
    send()
  }
}

/** Requests in flight on the instance's streams, and those waiting for one, finish; the streams close as they come free. */
function closePool (instance: KnownInstance): void {
  instance.pool?.then(async pool => {
    // the pool's queue takes them: a closed pool takes no more
    for (const send of instance.queue) {
      send()
    }
    instance.queue.clear()
    await pool.close()
  }).catch(() => {})
}

/**
 * The proxy listens on loopback: a request names it as 127.0.0.1, [::1] or localhost (or names
 * nothing, as HTTP/1.0 may). Any other Host is a web page of another site that a browser on this
 * host was led to send here (DNS rebinding): it must not reach the overlay's services.
 */
function checkHost (host: string | undefined): void {
  if (host == null) {
    return
  }
  const name = host.replace(/:\d*$/, '').toLowerCase()
  if (!['127.0.0.1', 'localhost', '[::1]'].includes(name)) {
    throw new ProxyError(421, `The proxy serves requests to 127.0.0.1, [::1] or localhost, not to ${JSON.stringify(host.slice(0, 100))}`)
  }
}

/**
 * The request's /<service>/<path>, its host checked. An absolute-form target (`GET
 * http://127.0.0.1:4200/<service>/x`, as a client told to use an HTTP proxy sends) names the host
 * in itself, and its path is taken as it is written.
 */
function targetOf (req: IncomingMessage): { service: string, path: string } {
  // RFC 9112 3.2: one Host in every HTTP/1.1 request (Node keeps the first of several, and an
  // instance or a proxy before it might read another)
  // counted in the raw headers: headersDistinct would build an array for every header of every request
  let hosts = 0
  for (let i = 0; i < req.rawHeaders.length; i += 2) {
    const name = req.rawHeaders[i]!
    if (name.length === 4 && name.toLowerCase() === 'host') {
      hosts++
    }
  }
  if (hosts > 1 || (hosts === 0 && req.httpVersion === '1.1')) {
    throw new ProxyError(400, `The request is not valid HTTP/1.1: it has ${hosts === 0 ? 'no Host header' : 'more than one Host header'}`)
  }
  const url = req.url ?? ''
  const absolute = /^https?:\/\/([^/?#]*)(.*)$/i.exec(url)
  if (absolute == null) {
    checkHost(req.headers.host)
    return splitPath(url)
  }
  checkHost(absolute[1])
  // the target's authority is the host (RFC 9112 3.2.2): a Host header beside it is not passed on
  req.headers.host = absolute[1]
  const rest = absolute[2]!
  return splitPath(rest.startsWith('/') ? rest : `/${rest}`)
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

function isWebSocket (req: IncomingMessage): boolean {
  return req.headers.upgrade?.toLowerCase() === 'websocket'
}

/**
 * Node's parser takes off the chunked coding and no other; Transfer-Encoding is hop-by-hop and
 * not passed on, so the instance would read a gzip-coded body as the body itself: such a request
 * is refused, as RFC 9112 6.1 has it for a coding a server does not know.
 */
function checkCoding (req: IncomingMessage): void {
  const coding = req.headers['transfer-encoding']
  if (coding != null && coding.trim().toLowerCase() !== 'chunked') {
    throw new ProxyError(501, `The proxy takes request bodies with no transfer coding but chunked, not ${JSON.stringify(coding.slice(0, 100))}`)
  }
}

/** Whether the request carries a body (which the proxy streams, so cannot send twice). */
function hasBody (req: IncomingMessage): boolean {
  const length = req.headers['content-length']
  return req.headers['transfer-encoding'] != null || (length != null && length !== '0')
}

/** The headers not passed on: the hop-by-hop ones, and those the Connection header names. */
function hopByHop (headers: IncomingHttpHeaders): ReadonlySet<string> {
  // an instance's response with two Connection lines has them as an array (undici's headers)
  const connection = headers.connection as string | string[] | undefined
  const named = (Array.isArray(connection) ? connection.join(',') : connection ?? '').split(',').map(name => name.trim().toLowerCase()).filter(name => name !== '' && !HOP_BY_HOP_HEADERS.has(name))
  return named.length === 0 ? HOP_BY_HOP_HEADERS : new Set([...HOP_BY_HOP_HEADERS, ...named])
}

function requestHeaders (req: IncomingMessage): Record<string, string | string[]> {
  const drop = hopByHop(req.headers)
  // the values are the request's own: strings
  const headers = passed(req.headers, drop) as Record<string, string | string[]>
  // this proxy's server has answered 100 Continue already (and undici refuses the header)
  if (headers.expect != null) {
    delete headers.expect
  }
  // an HTTP/1.0 client may send none: the service sees the address it called, as HTTP/1.1 sends it
  // (undici would otherwise put its pool's placeholder origin there)
  headers.host ??= hostPort(req.socket.localAddress ?? '127.0.0.1', req.socket.localPort ?? 0)
  const client = req.socket.remoteAddress ?? 'unknown'
  // the lists as passed on: the client's own, unless its Connection header named them (hop-by-hop)
  const previous = headers['x-forwarded-for']
  headers['x-forwarded-for'] = previous == null ? client : `${String(previous)}, ${client}`
  const forwardedFor = client.includes(':') ? `"[${client}]"` : client
  headers.forwarded = headers.forwarded == null ? `for=${forwardedFor}` : `${String(headers.forwarded)}, for=${forwardedFor}`
  return headers
}

function hostPort (address: string, port: number): string {
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`
}

/**
 * Whether a failure came on a stream that had carried an earlier response: undici puts the
 * stream's byte count in the error of a connection that ended or closed under a request (a stream
 * reset carries its own error, and counts as the instance failing). The count includes what came
 * of the failing request's own response: the caller asks only when none did.
 */
function onKeptStream (err: Error): boolean {
  return ((err as { socket?: { bytesRead?: number } }).socket?.bytesRead ?? 0) > 0
}

function responseHeaders (incoming: IncomingHttpHeaders): OutgoingHttpHeaders {
  return passed(incoming, hopByHop(incoming))
}

/** The headers not in `drop` (a loop over the names: no array of entries per request). */
function passed (incoming: IncomingHttpHeaders, drop: ReadonlySet<string>): OutgoingHttpHeaders {
  const headers: OutgoingHttpHeaders = {}
  for (const name in incoming) {
    const value = incoming[name]
    if (!drop.has(name) && value != null) {
      headers[name] = value
    }
  }
  return headers
}

/**
 * Passes a 103 on. The instance's Link values arrive joined into one string, which Node's
 * `writeEarlyHints` refuses: they go as a list. Hints Node still refuses are dropped, as a client
 * may ignore them anyway; the response that follows is what matters.
 */
function earlyHints (res: ServerResponse, incoming: IncomingHttpHeaders): void {
  const hints = responseHeaders(incoming) as Record<string, string | string[]>
  const link = hints.link
  if (typeof link === 'string') {
    hints.link = link.split(/,\s*(?=<)/)
  }
  try {
    res.writeEarlyHints(hints)
  } catch {
    // not relayable: the response itself still goes
  }
}

/**
 * Writes the instance's response head, without the Content-Length of a 204. A Trailer header is dropped when Node sends the response
 * unchunked (HEAD, 204, 304, a Content-Length, an HTTP/1.0 client): trailers cannot follow then,
 * and Node refuses the header.
 */
function writeHead (res: ServerResponse, statusCode: number, statusMessage: string | undefined, headers: OutgoingHttpHeaders): void {
  // a 204 has no body (RFC 9110 8.6), and Node passes the header on: a client that believed it
  // would read the next response as this one's body
  if (statusCode === 204 && headers['content-length'] != null) {
    delete headers['content-length']
  }
  try {
    res.writeHead(statusCode, statusMessage, headers)
  } catch (err) {
    if ((err as { code?: string }).code !== 'ERR_HTTP_TRAILER_INVALID') {
      throw err
    }
    delete headers.trailer
    res.writeHead(statusCode, statusMessage, headers)
  }
}

function sendError (res: ServerResponse, error: ProxyError): void {
  if (res.headersSent) {
    res.destroy()
    return
  }
  const body = JSON.stringify({ error: error.message, status: error.status })
  // its own reason phrase: one an instance answered with stays on `res` when Node refused it
  res.writeHead(error.status, STATUS_CODES[error.status] ?? 'unknown', { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...error.headers })
  res.end(body)
}

/**
 * The JSON error on a connection Node's server no longer handles (an upgrade, a CONNECT, a request
 * it could not parse), which it then ends (`sent`: once it has gone out).
 */
function sendRawError (socket: Duplex, error: ProxyError, sent?: () => void): void {
  const body = JSON.stringify({ error: error.message, status: error.status })
  const extra = Object.entries(error.headers).map(([name, value]) => `${name}: ${String(value)}\r\n`).join('')
  socket.end(`HTTP/1.1 ${error.status} ${STATUS_CODES[error.status] ?? ''}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n${extra}connection: close\r\n\r\n${body}`, sent)
}

/** The instance's answer to an upgrade request: its status, its head as sent, and what came after the head. */
interface UpgradeAnswer {
  status: number
  head: Buffer
  rest: Buffer
}

/**
 * Reads the instance's response head from `stream` (its first bytes up to the blank line), within
 * `timeoutMs` (504 past it). The stream's later messages are for whoever listens next.
 */
async function responseHead (stream: Stream, timeoutMs: number): Promise<UpgradeAnswer> {
  return await new Promise<UpgradeAnswer>((resolve, reject) => {
    let received = Buffer.alloc(0)
    const done = (err?: Error, answer?: UpgradeAnswer): void => {
      clearTimeout(timer)
      stream.removeEventListener('message', onMessage)
      stream.removeEventListener('close', onClose)
      if (err != null) {
        reject(err)
      } else {
        resolve(answer!)
      }
    }
    const onMessage = (evt: StreamMessageEvent): void => {
      received = Buffer.concat([received, evt.data.subarray()])
      const end = received.indexOf('\r\n\r\n')
      if (end < 0) {
        if (received.byteLength > MAX_RESPONSE_HEAD_BYTES) {
          done(new ProxyError(502, `The instance's answer to the upgrade has no end of its head within ${MAX_RESPONSE_HEAD_BYTES} bytes`))
        }
        return
      }
      const head = received.subarray(0, end + 4)
      const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(head.subarray(0, 12).toString('latin1'))?.[1])
      if (!Number.isInteger(status)) {
        done(new ProxyError(502, 'The instance answered the upgrade with something that is not HTTP/1.1'))
        return
      }
      done(undefined, { status, head, rest: received.subarray(end + 4) })
    }
    const onClose = (): void => { done(new Error('the stream closed')) }
    const timer = setTimeout(() => { done(new ProxyError(504, `The instance did not answer the upgrade within ${timeoutMs} ms`)) }, timeoutMs)
    stream.addEventListener('message', onMessage)
    stream.addEventListener('close', onClose)
  })
}

/**
 * What the client sends on an upgrading connection that ends with the answer goes nowhere: it is
 * read on, from a client held back before the answer too (past MAX_EARLY_UPGRADE_BYTES), whose
 * writes would otherwise never finish, nor its end come through: the connection would stay open.
 */
function discardReads (socket: Duplex): void {
  socket.on('data', () => {})
  socket.resume()
}

/**
 * Relays an instance's refusal of an upgrade (a 403, 404, 426...) and its body to the client with
 * `connection: close`, at the pace the client reads it, and never sends the instance anything more the client writes: the
 * connection then ends with the answer instead of staying a pipe to this instance.
 */
function relayRefusal (socket: Duplex, stream: Stream, answer: UpgradeAnswer): void {
  const head = answer.head.toString('latin1')
  const lines = head.split('\r\n').filter(line => line !== '' && !/^(connection|keep-alive)\s*:/i.test(line))
  socket.write(`${[...lines, 'connection: close'].join('\r\n')}\r\n\r\n`, 'latin1')
  // a body of a known length ends the connection once it has passed; another ends with the stream
  const length = /\r\ncontent-length:\s*(\d+)\r\n/i.exec(head)?.[1]
  let left = length == null ? Infinity : Number(length)
  const relay = (bytes: Uint8Array): void => {
    const part = bytes.subarray(0, Math.min(bytes.byteLength, left))
    left -= part.byteLength
    // a client that reads slowly holds the instance back, as a proxied response's does
    if (!socket.write(part)) {
      stream.pause()
    }
    if (left <= 0) {
      socket.end()
      stream.abort(new Error('The refused upgrade was answered'))
    }
  }
  discardReads(socket)
  socket.on('drain', () => { stream.resume() })
  stream.addEventListener('message', (evt) => { relay(evt.data.subarray()) })
  stream.addEventListener('end', () => { socket.end() })
  stream.addEventListener('close', () => { socket.end() })
  socket.on('close', () => {
    if (isOpen(stream)) {
      stream.abort(new Error('The client closed the refused upgrade'))
    }
  })
  relay(answer.rest)
}

