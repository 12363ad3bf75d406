import { handleRpc, REGISTRY_TOPIC, RpcFailureError } from '@physarum/p2p'
import { Counter, Gauge, Histogram } from 'prom-client'
import { MAX_GET_MANY } from './constants.ts'
import { InvalidRecordError } from './errors.ts'
import { Failure, registryRpc, recordFromWire, recordToWire } from './protocol.ts'
import { validateName, validateRecord, validateRevision } from './record.ts'
import type { GetResult, Request, Response, ServiceRecord as WireRecord } from './pb/registry.js'
import type { RegistryStore, StoreHealth } from './store.ts'
import type { Libp2p, PeerId } from '@libp2p/interface'
import type { Discovery, Logger, RpcContext } from '@physarum/p2p'
import type { Registry } from 'prom-client'

export interface RegistryServiceComponents {
  node: {
    libp2p: Pick<Libp2p, 'handle' | 'unhandle' | 'logger'>
    discovery: Pick<Discovery, 'provide' | 'stopProviding'>
  }
  store: RegistryStore
  logger: Logger
  /** The process's metrics Registry. */
  registry: Registry
}

export interface RegistryServiceInit {
  /** Peer ids allowed to Add, Delete and Join. */
  admins?: string[]
  /** Anyone in the overlay may Add, Delete and Join. */
  openWrites?: boolean
  /** Provide the registry topic (default true). */
  provide?: boolean
}

export interface RegistryService {
  start(): Promise<void>
  stop(): Promise<void>
  /** etcd's health, also exported as physarum_registry_etcd_up. */
  health(): Promise<StoreHealth>
}

export type Operation = 'add' | 'get' | 'getMany' | 'list' | 'delete' | 'join' | 'mayWrite'
const OPERATIONS: Operation[] = ['add', 'get', 'getMany', 'list', 'delete', 'join', 'mayWrite']
// MayWrite asks whether the others would be allowed: it is authorized as they are
const WRITES = new Set<Operation>(['add', 'delete', 'join', 'mayWrite'])

/** An etcd member's name, as --etcd-name and Join take it. */
export const MEMBER_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/

/** An etcd peer URL: http or https, a host and a port, nothing else (no path, user or query). */
export function isPeerUrl (text: string): boolean {
  let url: URL
  try {
    url = new URL(text)
  } catch {
    return false
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    return false
  }
  // written as scheme://host:port and nothing more (the parser would drop a path, a user, a query,
  // and rewrites an IPv6 address, so the text itself is checked for them); the port written out
  return /^https?:\/\/(\[[0-9A-Fa-f:.]+\]|[^/?#@[\]:]+):\d+$/.test(text) && url.hostname !== '' && url.port !== '0'
}

function operationOf (request: Request): Operation {
  const set = OPERATIONS.filter(op => request[op] != null)
  if (set.length !== 1) {
    throw new RpcFailureError('BAD_REQUEST', `A Request sets exactly one of ${OPERATIONS.join(', ')}; this one sets ${set.length === 0 ? 'none' : set.join(' and ')}`)
  }
  return set[0]!
}

/** The outcome of each name of a GetMany: its result's, or the whole exchange's when it failed. */
function getOutcomes (request: Request, outcome: string, response: Response | undefined): string[] {
  const results = response?.getMany?.results
  if (results != null) {
    return results.map(result => result.failure?.code ?? 'ok')
  }
  const names = request.getMany!.names.length
  return Array.from({ length: names > 0 && names <= MAX_GET_MANY ? names : 1 }, () => outcome)
}

function badRequest (err: unknown): unknown {
  return err instanceof InvalidRecordError ? new RpcFailureError('BAD_REQUEST', err.message) : err
}

/**
 * The registry's protocol handler: Add, Get, List, Delete and Join, over the store. Writes (and
 * Join, which admits a new etcd member) only from `admins`, or from anyone with `openWrites`;
 * reads from any overlay member (the PSK already keeps everyone else out). MayWrite tells a
 * caller whether it may write before it does work that ends in a write.
 */
export function createRegistryService (components: RegistryServiceComponents, init: RegistryServiceInit = {}): RegistryService {
  const { node, store, registry } = components
  const log = components.logger
  const admins = new Set(init.admins ?? [])
  const openWrites = init.openWrites ?? false

  const requests = new Counter({
    name: 'physarum_registry_requests_total',
    help: 'Registry requests answered, by operation and outcome (ok or the failure code); each name of a GetMany counts as a get',
    labelNames: ['operation', 'outcome'] as const,
    registers: [registry]
  })
  const duration = new Histogram({
    name: 'physarum_registry_request_duration_seconds',
    help: 'Time to answer a registry request, etcd included',
    labelNames: ['operation'] as const,
    buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [registry]
  })
  const etcdUp = new Gauge({
    name: 'physarum_registry_etcd_up',
    help: '1 when etcd answered the last health check within the deadline and takes writes, 0 otherwise (its NOSPACE alarm raised too)',
    registers: [registry],
    collect: async () => {
      etcdUp.set((await store.health()).ok ? 1 : 0)
    }
  })
  let lastCount = 0
  const records = new Gauge({
    name: 'physarum_registry_records',
    help: 'Number of service records in etcd (the last known count when etcd is unreachable)',
    registers: [registry],
    collect: async () => {
      lastCount = await store.count().catch(() => lastCount)
      records.set(lastCount)
    }
  })

  const authorize = (operation: Operation, peer: PeerId): void => {
    if (WRITES.has(operation) && !openWrites && !admins.has(peer.toString())) {
      throw new RpcFailureError('UNAUTHORIZED', `${peer.toString()} may not ${operation === 'mayWrite' ? 'write' : operation}: writes are allowed only from the registry's --admin peers`)
    }
  }

  const getRecord = async (name: string): Promise<WireRecord> => {
    const record = await store.get(validateName(name))
    if (record == null) {
      throw new RpcFailureError('NOT_FOUND', `No service named ${name}`)
    }
    return recordToWire(record)
  }

  /**
   * One name of a GetMany: its record, or the failure a Get of it alone would answer. etcd being
   * unreachable fails the whole exchange instead, so that the client asks another registry.
   */
  const getResult = async (name: string): Promise<GetResult> => {
    try {
      return { record: await getRecord(name) }
    } catch (err) {
      const failure = badRequest(err)
      if (!(failure instanceof RpcFailureError) || failure.code === 'UNAVAILABLE') {
        throw failure
      }
      if (failure.code === 'INTERNAL') {
        log.warn({ operation: 'get', name, err: failure.message }, 'registry request failed')
      }
      return { failure: { code: Failure.Code[failure.code], message: failure.message } }
    }
  }

  const serve = async (request: Request, operation: Operation): Promise<Response> => {
    switch (operation) {
      case 'add': {
        const add = request.add!
        if (add.record == null) {
          throw new InvalidRecordError('record', 'is missing')
        }
        const wire = recordFromWire(add.record)
        const input = Object.fromEntries(Object.entries(wire).filter(([field]) => !['createdAt', 'updatedAt', 'revision'].includes(field)))
        const record = await store.put(validateRecord(input), add.expectedRevision == null ? {} : { expectedRevision: validateRevision(add.expectedRevision) })
        return { record: recordToWire(record) }
      }
      case 'get':
        return { record: await getRecord(request.get!.name) }
      case 'getMany': {
        const names = request.getMany!.names
        if (names.length === 0 || names.length > MAX_GET_MANY) {
          throw new RpcFailureError('BAD_REQUEST', `A GetMany asks for 1 to ${MAX_GET_MANY} names, not ${names.length}`)
        }
        return { getMany: { results: await Promise.all(names.map(getResult)) } }
      }
      case 'list': {
        const list = request.list!
        const page = await store.list({ prefix: list.prefix, pageSize: list.pageSize, pageToken: list.pageToken })
        for (const problem of page.unreadable) {
          log.warn({ operation: 'list', err: problem }, 'a value under the records\' prefix is not a record: left out of the list')
        }
        return { list: { records: page.records.map(recordToWire), nextPageToken: page.nextPageToken } }
      }
      case 'delete': {
        const del = request.delete!
        const revision = await store.delete(validateName(del.name), del.expectedRevision == null ? {} : { expectedRevision: validateRevision(del.expectedRevision) })
        return { delete: { revision: BigInt(revision) } }
      }
      case 'join': {
        const join = request.join!
        if (!MEMBER_NAME.test(join.memberName)) {
          throw new InvalidRecordError('member_name', `${JSON.stringify(join.memberName)} is not an etcd member name (letters, digits, . _ -, at most 64)`)
        }
        if (join.peerUrls.length === 0 || join.peerUrls.length > 4 || !join.peerUrls.every(isPeerUrl)) {
          throw new InvalidRecordError('peer_urls', `must be 1 to 4 URLs like http://10.0.0.2:2380, not ${JSON.stringify(join.peerUrls)}`)
        }
        const { member, members } = await store.memberAdd(join.peerUrls)
        const initialCluster = members.flatMap(m => m.peerURLs.map(url => `${m.ID === member.ID ? join.memberName : m.name}=${url}`)).join(',')
        log.info({ memberName: join.memberName, peerUrls: join.peerUrls, memberId: member.ID }, 'added an etcd member')
        return { join: { initialCluster, clientUrls: members.flatMap(m => m.clientURLs) } }
      }
      case 'mayWrite':
        return { mayWrite: {} }
    }
  }

  const handler = async (request: Request, context: RpcContext): Promise<Response> => {
    const started = performance.now()
    let operation: Operation | 'unknown' = 'unknown'
    let outcome = 'ok'
    let response: Response | undefined
    try {
      operation = operationOf(request)
      authorize(operation, context.remotePeer)
      response = await serve(request, operation).catch((err: unknown) => { throw badRequest(err) })
      return response
    } catch (err) {
      outcome = err instanceof RpcFailureError ? err.code : 'INTERNAL'
      if (outcome === 'UNAUTHORIZED' || outcome === 'UNAVAILABLE' || outcome === 'INTERNAL') {
        log.warn({ operation, peer: context.remotePeer.toString(), code: outcome, err: (err as Error).message }, 'registry request failed')
      } else {
        log.debug({ operation, peer: context.remotePeer.toString(), code: outcome, err: (err as Error).message }, 'registry request refused')
      }
      throw err
    } finally {
      const seconds = (performance.now() - started) / 1000
      if (operation === 'getMany') {
        // each name counts as the Get it stands for
        for (const each of getOutcomes(request, outcome, response)) {
          requests.inc({ operation: 'get', outcome: each })
          duration.observe({ operation: 'get' }, seconds)
        }
      } else {
        requests.inc({ operation, outcome })
        duration.observe({ operation }, seconds)
      }
    }
  }

  let started = false
  return {
    async start () {
      if (started) {
        return
      }
      await handleRpc(node.libp2p, registryRpc, handler, { log: node.libp2p.logger.forComponent('physarum:registry') })
      started = true
      if (openWrites) {
        log.warn('--open-writes: every overlay member may add and delete records and add etcd members')
      }
      if (init.provide !== false) {
        // the network-wide provide may take a while; the local record exists at once
        node.discovery.provide(REGISTRY_TOPIC).catch((err: Error) => {
          log.warn({ err: err.message }, 'providing the registry topic failed; it is retried on the next interval')
        })
      }
    },
    async stop () {
      if (!started) {
        return
      }
      started = false
      if (init.provide !== false) {
        await node.discovery.stopProviding(REGISTRY_TOPIC).catch(() => {})
      }
      await node.libp2p.unhandle(registryRpc.protocol)
    },
    async health () {
      return await store.health()
    }
  }
}
