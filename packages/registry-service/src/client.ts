import { peerIdFromString } from '@libp2p/peer-id'
import { isMultiaddr, multiaddr } from '@multiformats/multiaddr'
import { callRpc, REGISTRY_TOPIC, RpcFailureError, RpcProtocolError, RpcTimeoutError } from '@physarum/p2p'
import { raceSignal } from 'race-signal'
import {
  DEFAULT_CACHE_TTL_MS, DEFAULT_DISCOVERY_TIMEOUT_MS, DEFAULT_MAX_CANDIDATES, DEFAULT_PEER_REFRESH_MS, DEFAULT_PEER_REST_MS,
  DEFAULT_RTT_TIMEOUT_MS, GET_MANY_RETRY_MS, MAX_GET_MANY
} from './constants.ts'
import { Batcher, rejectAll } from './batcher.ts'
import { NoRegistryError } from './errors.ts'
import { recordFromWire, registryRpc } from './protocol.ts'
import { sameContent, validateName, validateRecord, validateRevision } from './record.ts'
import type { Batch, Waiter } from './batcher.ts'
import type { GetResult, Request, Response, ServiceRecord as WireRecord } from './pb/registry.js'
import type { ServiceRecord, ServiceRecordInput } from './record.ts'
import type { ListPage } from './store.ts'
import type { AbortOptions, PeerId } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'
import type { Logger, PhysarumNode } from '@physarum/p2p'

/**
 * `wire` as the record of `name`, checked as a write is: a registry is any member of the overlay
 * unless --registry-id says otherwise, and its answer goes into the cache under the name it holds
 * and to Docker (the image). A record of another name, or one no registry stores, is refused as a
 * broken answer (RpcProtocolError), which leaves a copy fetched before to be served.
 */
function answeredRecord (wire: WireRecord | undefined, name: string): ServiceRecord {
  if (wire == null) {
    throw new RpcProtocolError(`A registry answered no record for ${JSON.stringify(name)}`)
  }
  const record = recordFromWire(wire)
  if (record.name !== name) {
    throw new RpcProtocolError(`A registry answered the record of ${JSON.stringify(record.name)} for ${JSON.stringify(name)}`)
  }
  try {
    validateRecord(record)
  } catch (err) {
    throw new RpcProtocolError(`A registry answered a record of ${JSON.stringify(name)} that is not one: ${(err as Error).message}`)
  }
  return record
}

/** What the client needs of a node. */
export type RegistryClientNode = Pick<PhysarumNode, 'libp2p' | 'peerId' | 'discovery' | 'measureRtt'>

export interface RegistryClientOptions {
  /**
   * Registry-services to use instead of discovering them through the DHT: peer ids, or multiaddrs
   * with /p2p/<peer id>. They are still ranked by RTT.
   */
  peers?: Array<PeerId | Multiaddr | string>
  /**
   * The peer ids of the registry-services trusted with the records: one found through the DHT
   * with another id is not asked (every holder of the overlay's key can announce the registry
   * topic). Empty or absent: any that announces it.
   */
  trusted?: string[]
  /** How long a Get result is served from the cache (default 10 s; 0: no cache). */
  cacheTtlMs?: number
  /**
   * When no registry answers a Get (none found, unavailable, no answer in time), the cached record
   * is served instead if it was fetched at most this long ago (default 0: never), and kept for
   * another `cacheTtlMs` before a registry is asked again. For daemons that route traffic by
   * records: an outage of the registry then does not stop traffic to services already known.
   * NOT_FOUND is an answer, not an outage: it is passed on.
   */
  staleIfErrorMs?: number
  /**
   * Serve an expired cached record fetched at most `staleIfErrorMs` ago at once, while one Get
   * refreshes it in the background (default false). For the proxy, which looks a record up for
   * every request: none of them then waits for a registry, not even for one whose host went
   * silent and answers only with the RPC timeout. A record changed meanwhile is served as it was
   * for one more moment; a NOT_FOUND drops the copy as ever.
   */
  revalidateInBackground?: boolean
  /** How long one discovery of registry peers may take (default 5 s). */
  discoveryTimeoutMs?: number
  /** How many registry peers to rank at most (default 8). */
  maxCandidates?: number
  /** How long a ranking is used before peers are discovered and measured again (default 60 s). */
  refreshIntervalMs?: number
  /** How long a registry that failed is tried last (default 30 s). */
  restMs?: number
  /** Deadline of one RTT measurement (default 2 s). */
  rttTimeoutMs?: number
  log?: Logger
}

export interface RankedRegistry {
  peerId: PeerId
  /** Measured RTT in ms; undefined when the peer did not answer a ping. */
  rttMs?: number
}

interface Candidate extends RankedRegistry {
  target: PeerId | Multiaddr
}

export interface WriteOptions extends AbortOptions {
  /** Compare-and-swap: '0' = must not exist yet; otherwise the revision the record must have. */
  expectedRevision?: string | number | bigint
}

export interface GetOptions extends AbortOptions {
  /** Skip the cache. */
  fresh?: boolean
}

export interface ListOptions extends AbortOptions {
  prefix?: string
  pageSize?: number
  pageToken?: string
}

export interface JoinAnswer {
  initialCluster: string
  clientUrls: string[]
}

/** Failures on which the next registry is tried: the registry (or its etcd) is in trouble, not the request. */
const FAILOVER_CODES = new Set(['UNAVAILABLE', 'INTERNAL', 'TIMEOUT'])

function isFailover (err: unknown): boolean {
  return err instanceof RpcTimeoutError || err instanceof RpcProtocolError ||
    (err instanceof RpcFailureError && FAILOVER_CODES.has(err.code))
}

/**
 * A failure after which the request may have been carried out anyway: no answer, or a registry
 * whose etcd did not answer a write in time (TIMEOUT).
 */
export function isAmbiguous (err: unknown): boolean {
  return err instanceof RpcTimeoutError || err instanceof RpcProtocolError || (err instanceof RpcFailureError && err.code === 'TIMEOUT')
}

/**
 * The registry's client: finds registry-services through the DHT (topic `physarum:registry`),
 * prefers the one with the lowest RTT, and moves on to the next when one fails or times out, so
 * a registry that dies costs the caller latency, not an error. Get results are cached for a TTL
 * and, with `staleIfErrorMs`, served from the cache while no registry answers.
 *
 * Errors: `RpcFailureError` with the registry's code (NOT_FOUND, CONFLICT, UNAUTHORIZED,
 * BAD_REQUEST; UNAVAILABLE when every registry said so), `RpcTimeoutError` or `RpcProtocolError`
 * when the last registry tried did not answer, `NoRegistryError` when none was found,
 * `InvalidRecordError` for a bad argument (before anything is sent).
 */
export class RegistryClient {
  readonly #node: RegistryClientNode
  readonly #options: RegistryClientOptions
  /** Get results: until when each is served, and when it was fetched. */
  readonly #cache = new Map<string, { record: ServiceRecord, expires: number, fetchedAt: number }>()
  /**
   * The records this client deleted: the etcd revision of the deletion, and until when an answer
   * older than it is refused (one TTL, as a cached copy).
   */
  readonly #deleted = new Map<string, { revision: bigint, expires: number }>()
  /** Gets on the wire that callers without a signal of their own share, by name. */
  readonly #fetching = new Map<string, Promise<ServiceRecord>>()
  /**
   * The Gets asked for in one tick (callers answered by one response ask again together) go in
   * one GetMany, a lone one as a Get: one exchange instead of one each, and one etcd read on the
   * other side either way.
   */
  readonly #gets = new Batcher<ServiceRecord>(MAX_GET_MANY, (run) => { process.nextTick(run) }, async (batch) => { await this.#send(batch) })
  /**
   * The registries that refused a GetMany (from before it existed), by peer id, and until when
   * they are not asked one again: a GetMany goes to another registry, or its names one by one.
   */
  readonly #noGetMany = new Map<string, number>()
  readonly #rested = new Map<string, number>()
  /** The untrusted peers announcing the registry topic that were logged: each once per client. */
  readonly #warnedUntrusted = new Set<string>()
  #ranking?: { candidates: Candidate[], at: number }
  #ranking$?: Promise<Candidate[]>

  constructor (node: RegistryClientNode, options: RegistryClientOptions = {}) {
    this.#node = node
    this.#options = options
  }

  /** Creates or replaces a record; returns it as stored, with its new revision. */
  async add (record: ServiceRecordInput, options: WriteOptions = {}): Promise<ServiceRecord> {
    const input = validateRecord(record)
    const expected = options.expectedRevision == null ? undefined : validateRevision(options.expectedRevision)
    const request: Request = {
      add: {
        record: { ...input, createdAt: '', updatedAt: '', revision: 0n },
        ...(expected == null ? {} : { expectedRevision: BigInt(expected) })
      }
    }
    this.#cache.delete(input.name)
    try {
      const { response } = await this.#call(request, options)
      return this.#remember(answeredRecord(response.record, input.name))
    } catch (err) {
      // a write that timed out may have landed before the retry elsewhere saw it as a conflict
      if (err instanceof RpcFailureError && err.code === 'CONFLICT' && (err as AmbiguousConflict).afterAmbiguous === true) {
        const current = await this.find(input.name, { ...options, fresh: true })
        if (current != null && sameContent(current, input)) {
          return current
        }
      }
      throw err
    }
  }

  /** The record named `name`; RpcFailureError NOT_FOUND when there is none. */
  async get (name: string, options: GetOptions = {}): Promise<ServiceRecord> {
    validateName(name)
    const cached = this.#cache.get(name)
    const now = Date.now()
    if (options.fresh !== true && cached != null && cached.expires > now) {
      return cached.record
    }
    const fetch = async (): Promise<ServiceRecord> => {
      try {
        return await this.#gets.get(name, options.signal)
      } catch (err) {
        return this.#staleFor(name, err, options)
      }
    }
    // a busy proxy asks for the same record many times at once when its copy expires: one Get
    // answers them all (a caller with its own signal or asking fresh gets its own)
    if (options.fresh === true || options.signal != null) {
      return await fetch()
    }
    // the expired copy, when it may be served while the Get runs in the background
    const stale = cached != null && this.#options.revalidateInBackground === true && now - cached.fetchedAt <= (this.#options.staleIfErrorMs ?? 0) ? cached.record : undefined
    let shared = this.#fetching.get(name)
    if (shared == null) {
      shared = fetch().finally(() => { this.#fetching.delete(name) })
      this.#fetching.set(name, shared)
      if (stale != null) {
        shared.catch((err: Error) => {
          this.#options.log?.warn({ service: name, err: err.message }, 'refreshing a cached record failed')
        })
      }
    }
    return stale ?? await shared
  }

  /** Like `get`, but undefined when there is no such record. */
  async find (name: string, options: GetOptions = {}): Promise<ServiceRecord | undefined> {
    try {
      return await this.get(name, options)
    } catch (err) {
      if (err instanceof RpcFailureError && err.code === 'NOT_FOUND') {
        return undefined
      }
      throw err
    }
  }

  /** One page of records whose names start with `prefix`, in name order. */
  async list (options: ListOptions = {}): Promise<ListPage> {
    const { response } = await this.#call({ list: { prefix: options.prefix ?? '', pageSize: options.pageSize ?? 0, pageToken: options.pageToken ?? '' } }, options)
    return { records: (response.list?.records ?? []).map(recordFromWire), nextPageToken: response.list?.nextPageToken ?? '' }
  }

  /**
   * Every record whose name starts with `prefix`, page by page. A registry that hands out a page
   * token again, or a page that does not go on after the names of the pages before, would keep
   * this asking for ever: an RpcProtocolError ends the listing instead.
   */
  async * listAll (options: Omit<ListOptions, 'pageToken'> = {}): AsyncGenerator<ServiceRecord> {
    const given = new Set<string>()
    let pageToken = ''
    let lastName: string | undefined
    for (;;) {
      const page = await this.list({ ...options, pageToken })
      const first = page.records[0]?.name
      if (first != null && lastName != null && first <= lastName) {
        throw new RpcProtocolError(`A registry answered List page ${given.size + 1} starting at ${JSON.stringify(first)}, not after ${JSON.stringify(lastName)}, the last name of the pages before: the listing does not advance`)
      }
      yield * page.records
      lastName = page.records.at(-1)?.name ?? lastName
      if (page.nextPageToken === '') {
        return
      }
      if (given.has(page.nextPageToken)) {
        throw new RpcProtocolError(`A registry answered List page ${given.size + 1} with a page token it had given before: the listing would never end`)
      }
      given.add(page.nextPageToken)
      pageToken = page.nextPageToken
    }
  }

  /** Deletes a record; returns the etcd revision of the deletion. */
  async delete (name: string, options: WriteOptions = {}): Promise<string> {
    validateName(name)
    const expected = options.expectedRevision == null ? undefined : validateRevision(options.expectedRevision)
    this.#cache.delete(name)
    try {
      const { response } = await this.#call({ delete: { name, ...(expected == null ? {} : { expectedRevision: BigInt(expected) }) } }, options)
      const revision = response.delete?.revision ?? 0n
      this.#forget(name, revision)
      return revision.toString()
    } catch (err) {
      // an earlier attempt that timed out may have deleted it
      if (err instanceof RpcFailureError && err.code === 'NOT_FOUND' && (err as AmbiguousConflict).afterAmbiguous === true) {
        return '0'
      }
      throw err
    }
  }

  /**
   * Asks a registry whether this node may write (Add, Delete, Join), before work that ends in a
   * write: true when it may, RpcFailureError UNAUTHORIZED when it may not, false when the registry
   * cannot tell (one from before the question refuses it with BAD_REQUEST) and the write will.
   */
  async mayWrite (options: AbortOptions = {}): Promise<boolean> {
    try {
      await this.#call({ mayWrite: {} }, options)
      return true
    } catch (err) {
      // the request has nothing else a registry could refuse
      if (err instanceof RpcFailureError && err.code === 'BAD_REQUEST') {
        return false
      }
      throw err
    }
  }

  /** Asks a registry to add an etcd member (used by `registry-service --join-etcd-cluster`). */
  async join (memberName: string, peerUrls: string[], options: AbortOptions = {}): Promise<JoinAnswer> {
    const { response } = await this.#call({ join: { memberName, peerUrls } }, options)
    return { initialCluster: response.join?.initialCluster ?? '', clientUrls: response.join?.clientUrls ?? [] }
  }

  /** Forgets cached Get results (all, or the one of `name`). */
  invalidate (name?: string): void {
    if (name == null) {
      this.#cache.clear()
    } else {
      this.#cache.delete(name)
    }
  }

  /** The registry peers in the order they are tried (lowest RTT first), discovering them if needed. */
  async registries (options: AbortOptions = {}): Promise<RankedRegistry[]> {
    return this.#order(await this.#candidates(options)).map(({ peerId, rttMs }) => ({ peerId, ...(rttMs == null ? {} : { rttMs }) }))
  }

  /** Ranked by RTT, with the registries that failed lately last. */
  #order (candidates: Candidate[]): Candidate[] {
    const now = Date.now()
    const rested = (c: Candidate): boolean => (this.#rested.get(c.peerId.toString()) ?? 0) > now
    return [...candidates.filter(c => !rested(c)), ...candidates.filter(rested)]
  }

  /** Asks a registry for the names of `batch` and settles their callers. */
  async #send (batch: Batch<ServiceRecord>): Promise<void> {
    const names = [...batch.keys()]
    let results: GetResult[] | undefined
    if (names.length > 1) {
      try {
        const { response } = await this.#call({ getMany: { names } }, {})
        results = response.getMany?.results ?? []
        if (results.length !== names.length) {
          throw new RpcProtocolError(`A registry answered ${results.length} results to a GetMany of ${names.length} names`)
        }
      } catch (err) {
        if (!(err instanceof GetManyRefusedError)) {
          rejectAll(batch, err as Error)
          return
        }
      }
    }
    if (results == null) {
      // a lone name, or only registries that do not take GetMany answered: a Get for each name
      await Promise.all(names.map(async name => { await this.#getAlone(name, batch.get(name)!) }))
      return
    }
    names.forEach((name, i) => {
      const { record, failure } = results[i]!
      const waiters = batch.get(name)!
      if (record != null) {
        let found: ServiceRecord
        try {
          found = this.#remember(answeredRecord(record, name), true)
        } catch (err) {
          for (const waiter of waiters) waiter.reject(err as Error)
          return
        }
        for (const waiter of waiters) waiter.resolve(found)
      } else {
        const err = failure == null
          ? new RpcProtocolError(`A registry answered neither a record nor a failure for ${name}`)
          : RpcFailureError.fromWire(failure.code, failure.message)
        for (const waiter of waiters) waiter.reject(err)
      }
    })
  }

  async #getAlone (name: string, waiters: Array<Waiter<ServiceRecord>>): Promise<void> {
    try {
      const { response } = await this.#call({ get: { name } }, {})
      const record = this.#remember(answeredRecord(response.record, name), true)
      for (const waiter of waiters) waiter.resolve(record)
    } catch (err) {
      for (const waiter of waiters) waiter.reject(err as Error)
    }
  }

  /** The cached record of `name` if `err` says no registry answered and staleIfErrorMs allows it; else throws `err`. */
  #staleFor (name: string, err: unknown, options: AbortOptions): ServiceRecord {
    if (err instanceof RpcFailureError && err.code === 'NOT_FOUND') {
      // gone from the registry: never served from a copy again
      this.#cache.delete(name)
    }
    const cached = this.#cache.get(name)
    const now = Date.now()
    const outage = isFailover(err) || err instanceof NoRegistryError
    if (!outage || options.signal?.aborted === true || cached == null || now - cached.fetchedAt > (this.#options.staleIfErrorMs ?? 0)) {
      throw err
    }
    // asked again only after another TTL: an outage should not cost every request a round of failures
    cached.expires = now + (this.#options.cacheTtlMs ?? DEFAULT_CACHE_TTL_MS)
    this.#options.log?.warn({ service: name, fetchedAgoMs: now - cached.fetchedAt, err: (err as Error).message }, 'no registry answered: using the record fetched before')
    return cached.record
  }

  /**
   * Notes that `name` was deleted at `revision`: a Get read before the deletion and answered after
   * it would otherwise put the deleted record back in the cache, and serve it for a whole TTL (to
   * the callers that joined that Get after the deletion too).
   */
  #forget (name: string, revision: bigint): void {
    const ttl = this.#options.cacheTtlMs ?? DEFAULT_CACHE_TTL_MS
    // an ambiguous delete that found the record gone answers no revision: none to compare with
    if (ttl <= 0 || revision === 0n) {
      return
    }
    this.#deleted.delete(name)
    this.#deleted.set(name, { revision, expires: Date.now() + ttl })
    if (this.#deleted.size > 10_000) {
      this.#deleted.delete(this.#deleted.keys().next().value!)
    }
  }

  /**
   * Caches `record` and returns it, or the newer revision of it already cached. For a Get's answer
   * (`read`), RpcFailureError NOT_FOUND when this client deleted the record after that revision.
   */
  #remember (record: ServiceRecord, read = false): ServiceRecord {
    const ttl = this.#options.cacheTtlMs ?? DEFAULT_CACHE_TTL_MS
    if (ttl > 0) {
      const deleted = this.#deleted.get(record.name)
      if (deleted != null && (deleted.expires <= Date.now() || BigInt(record.revision) > deleted.revision)) {
        this.#deleted.delete(record.name)
      } else if (deleted != null) {
        if (read) {
          throw new RpcFailureError('NOT_FOUND', `No service named ${record.name}: it was deleted at revision ${deleted.revision}, after this answer's revision ${record.revision}`)
        }
        return record
      }
      // a Get answered before a write landed may arrive after the write's own answer: its older
      // record would otherwise be served for a whole TTL. Only a copy within its TTL is kept so:
      // revisions start over in an etcd whose records were added again (its data lost, or moved),
      // and an expired copy of the old etcd's would otherwise be preferred to every answer for good
      const now = Date.now()
      const cached = this.#cache.get(record.name)
      if (cached != null && cached.expires > now && BigInt(cached.record.revision) > BigInt(record.revision)) {
        return cached.record
      }
      this.#cache.delete(record.name)
      this.#cache.set(record.name, { record, expires: now + ttl, fetchedAt: now })
      if (this.#cache.size > 10_000) {
        this.#cache.delete(this.#cache.keys().next().value!)
      }
    }
    return record
  }

  async #call (request: Request, options: AbortOptions): Promise<{ response: Response }> {
    /** The registries asked, with what each failed with. */
    const tried = new Map<string, unknown>()
    let lastError: unknown
    let ambiguous = false
    /** A registry passed by for a GetMany it does not take: its names can still be asked one by one. */
    let refusedGetMany = false
    for (let round = 0; round < 2; round++) {
      let candidates: Candidate[]
      try {
        candidates = await this.#candidates(options, round > 0)
      } catch (err) {
        if (round === 0 || lastError == null) {
          throw err
        }
        break
      }
      // after the search again, a registry whose connection failed is asked once more: one that
      // restarted listens on another port (a free one by default), which the search just found
      const order = this.#order(candidates).filter(c => !tried.has(c.peerId.toString()) || (round > 0 && tried.get(c.peerId.toString()) instanceof RpcProtocolError))
      for (const candidate of order) {
        const id = candidate.peerId.toString()
        if (request.getMany != null && (this.#noGetMany.get(id) ?? 0) > Date.now()) {
          refusedGetMany = true
          continue
        }
        try {
          const response = await callRpc(this.#node.libp2p, candidate.target, registryRpc, request, options)
          this.#rested.delete(id)
          return { response }
        } catch (err) {
          options.signal?.throwIfAborted()
          if (request.getMany != null && err instanceof RpcFailureError && err.code === 'BAD_REQUEST') {
            // the names were checked here: only a registry that does not know GetMany refuses it
            this.#noGetMany.set(id, Date.now() + GET_MANY_RETRY_MS)
            this.#options.log?.warn({ registry: id, err: err.message, retryInMs: GET_MANY_RETRY_MS }, 'a registry refused a GetMany (it is older): it is asked one Get per name for a while')
            refusedGetMany = true
            continue
          }
          if (!isFailover(err)) {
            if (ambiguous && err instanceof RpcFailureError) {
              (err as AmbiguousConflict).afterAmbiguous = true
            }
            throw err
          }
          ambiguous ||= isAmbiguous(err)
          tried.set(id, err)
          lastError = err
          this.#rested.set(id, Date.now() + (this.#options.restMs ?? DEFAULT_PEER_REST_MS))
          this.#options.log?.warn({ registry: id, err: (err as Error).message }, 'registry request failed; trying the next registry')
        }
      }
      // a registry that does not take GetMany is there: its Gets one by one, not a search, come next
      if (refusedGetMany || (this.#options.peers != null && this.#options.peers.length > 0)) {
        break
      }
      // every known registry failed: look again, maybe others came up
      this.#ranking = undefined
    }
    if (refusedGetMany) {
      throw new GetManyRefusedError()
    }
    if (lastError == null) {
      throw new NoRegistryError()
    }
    throw lastError as Error
  }

  async #candidates (options: AbortOptions, refresh = false): Promise<Candidate[]> {
    const refreshMs = this.#options.refreshIntervalMs ?? DEFAULT_PEER_REFRESH_MS
    if (!refresh && this.#ranking != null && this.#ranking.candidates.length > 0 && Date.now() - this.#ranking.at < refreshMs) {
      return this.#ranking.candidates
    }
    // shared by every caller meanwhile, so it runs on its own deadlines: one caller giving up
    // does not fail the others
    this.#ranking$ ??= this.#rank().then(candidates => {
      this.#ranking = { candidates, at: Date.now() }
      return candidates
    }).finally(() => { this.#ranking$ = undefined })
    return await raceSignal(this.#ranking$, options.signal)
  }

  async #rank (): Promise<Candidate[]> {
    const found = this.#options.peers != null && this.#options.peers.length > 0
      ? await this.#staticPeers()
      : await this.#discover()
    const rttTimeout = this.#options.rttTimeoutMs ?? DEFAULT_RTT_TIMEOUT_MS
    const measured = await Promise.all(found.map(async (candidate): Promise<Candidate> => {
      try {
        return { ...candidate, rttMs: await this.#node.measureRtt(candidate.peerId, { signal: AbortSignal.timeout(rttTimeout) }) }
      } catch {
        return candidate
      }
    }))
    return measured.sort((a, b) => (a.rttMs ?? Infinity) - (b.rttMs ?? Infinity))
  }

  async #staticPeers (): Promise<Candidate[]> {
    const candidates: Candidate[] = []
    for (const peer of this.#options.peers ?? []) {
      const target = typeof peer === 'string' ? (peer.startsWith('/') ? multiaddr(peer) : peerIdFromString(peer)) : peer
      if (isMultiaddr(target)) {
        const id = target.getComponents().find(c => c.name === 'p2p')?.value
        if (id == null) {
          throw new NoRegistryError(`The registry address ${target.toString()} has no /p2p/<peer id>`)
        }
        const peerId = peerIdFromString(id)
        await this.#node.libp2p.peerStore.merge(peerId, { multiaddrs: [target.decapsulate('/p2p')] })
        candidates.push({ peerId, target })
      } else {
        candidates.push({ peerId: target, target })
      }
    }
    return candidates
  }

  async #discover (): Promise<Candidate[]> {
    const timeout = this.#options.discoveryTimeoutMs ?? DEFAULT_DISCOVERY_TIMEOUT_MS
    const max = this.#options.maxCandidates ?? DEFAULT_MAX_CANDIDATES
    const stop = new AbortController()
    const signals = [stop.signal, AbortSignal.timeout(timeout)]
    const trusted = new Set(this.#options.trusted ?? [])
    let untrusted = 0
    const candidates: Candidate[] = []
    let grace: NodeJS.Timeout | undefined
    try {
      for await (const provider of this.#node.discovery.findProviders(REGISTRY_TOPIC, { signal: AbortSignal.any(signals) })) {
        if (provider.id.equals(this.#node.peerId)) {
          continue
        }
        if (trusted.size > 0 && !trusted.has(provider.id.toString())) {
          untrusted++
          if (!this.#warnedUntrusted.has(provider.id.toString())) {
            this.#warnedUntrusted.add(provider.id.toString())
            this.#options.log?.warn({ peer: provider.id.toString() }, 'a peer that is not a trusted registry-service announces the registry topic: not asked')
          }
          continue
        }
        if (provider.multiaddrs.length > 0) {
          await this.#node.libp2p.peerStore.merge(provider.id, { multiaddrs: provider.multiaddrs }).catch(() => {})
        }
        candidates.push({ peerId: provider.id, target: provider.id })
        if (candidates.length >= max) {
          break
        }
        // the walk through the DHT may go on for long: the first answers are enough to start
        grace ??= setTimeout(() => { stop.abort() }, 300)
      }
    } catch (err) {
      if (candidates.length === 0 && !(err instanceof Error && err.name === 'AbortError') && !stop.signal.aborted) {
        this.#options.log?.warn({ err: (err as Error).message }, 'finding registry peers failed')
      }
    } finally {
      clearTimeout(grace)
    }
    if (candidates.length === 0) {
      const others = untrusted === 0 ? '' : `; ${untrusted} other peer(s) announce it, none of them a trusted registry (--registry-id)`
      throw new NoRegistryError(`No registry-service was found in the overlay within ${timeout} ms (topic ${REGISTRY_TOPIC})${others}`)
    }
    return candidates
  }
}

/** No registry that takes GetMany answered, but one that does not was there: its names go one by one (never thrown to callers). */
class GetManyRefusedError extends Error {
  static override name = 'GetManyRefusedError'
  override name = 'GetManyRefusedError'
  constructor (message = 'No registry that takes GetMany answered') { super(message) }
}

interface AmbiguousConflict extends RpcFailureError {
  afterAmbiguous?: boolean
}

/** A registry client on `node`. */
export function createRegistryClient (node: RegistryClientNode, options: RegistryClientOptions = {}): RegistryClient {
  return new RegistryClient(node, options)
}
