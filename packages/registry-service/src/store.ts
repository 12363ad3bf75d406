import { AsyncLocalStorage } from 'node:async_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import { RpcFailureError } from '@physarum/p2p'
import { Etcd3, GRPCDeadlineExceededError, GRPCInvalidArgumentError, GRPCOutOfRangeError, GRPCResourceExhastedError, isRecoverableError } from 'etcd3'
import { raceSignal } from 'race-signal'
import { Batcher, rejectAll } from './batcher.ts'
import { DEFAULT_ETCD_TIMEOUT_MS, DEFAULT_PAGE_SIZE, KEY_PREFIX, MAX_PAGE_SIZE } from './constants.ts'
import { InvalidRecordError } from './errors.ts'
import { fromStoredJson, toStoredJson, validateName } from './record.ts'
import type { Batch } from './batcher.ts'
import type { ServiceRecord, ServiceRecordInput } from './record.ts'
import type { EtcdAuth } from './etcd-auth.ts'
import type { IKeyValue, IMember, IOptions, IRequestOp } from 'etcd3'

export interface RegistryStoreInit {
  /** etcd client URLs, http://host:port, or all https:// (etcd3 connects to every host alike). */
  endpoints: string[]
  /** Deadline of each etcd call (default 1.5 s): past it the caller gets UNAVAILABLE. */
  timeoutMs?: number
  /** Key prefix (default /physarum/v1/services/). */
  keyPrefix?: string
  /** etcd's user and password, when its authentication is on (etcd-auth.ts). */
  auth?: EtcdAuth
  /** For https:// endpoints: the CA to trust instead of the system's, and a client certificate. */
  tls?: EtcdTls
}

/** PEM contents, read from the files --etcd-ca, --etcd-cert and --etcd-key name. */
export interface EtcdTls {
  ca?: Buffer
  cert?: Buffer
  key?: Buffer
}

export interface ListOptions {
  prefix?: string
  pageSize?: number
  pageToken?: string
}

export interface ListPage {
  records: ServiceRecord[]
  /** '' on the last page. */
  nextPageToken: string
}

/** A page as the store reads it: the values under the prefix that are not records are left out, and said. */
export interface StoredPage extends ListPage {
  /** Why each value left out is not a record, naming its key. */
  unreadable: string[]
}

export interface StoreHealth {
  ok: boolean
  error?: string
}

/** Why every write fails while etcd's NOSPACE alarm is raised, and what clears it. */
const NOSPACE = 'etcd refuses every write: its database reached its space quota (alarm NOSPACE); free it with etcdctl compact, defrag and alarm disarm'

/** etcd's default bound on the operations of one transaction (--max-txn-ops). */
const MAX_TXN_OPS = 128


/** The deadline of one store operation: for etcd3's calls, and for the wait. */
interface Deadline {
  at: number
  signal: AbortSignal
}

/** One etcd call of an operation, as its attempts on the hosts see it. */
interface CallContext {
  deadline: Deadline
  write: boolean
  /** Hosts not tried yet by this call (its login included). */
  hostsLeft: number
  /** Whether this attempt handed the call itself (not its login) to gRPC. */
  sent: boolean
}

type Policy = NonNullable<NonNullable<IOptions['faultHandling']>['global']>

/** Runs the call once: failures are answered, not retried on the same host. */
function noopPolicy (): Policy {
  return { execute: async (fn: (context: { signal: AbortSignal }) => unknown) => await fn({ signal: new AbortController().signal }) } as unknown as Policy
}

/** gRPC's answers for a call that it never put on a connection: nothing reached etcd. */
const NOT_SENT = /No connection established|Channel closed before call started/

/**
 * Whether a write that failed with `err` may have been applied: a failure of the connection (not
 * etcd's answer) after the write went to gRPC, unless gRPC says it never put it on a connection.
 * A connection reset before etcd's answer arrived is one: etcd may have applied the write.
 * RESOURCE_EXHAUSTED, which etcd3 counts as recoverable too, is etcd's refusal (its space quota
 * full, too many requests): nothing was applied.
 */
function mayHaveBeenApplied (err: unknown, call: CallContext | undefined): boolean {
  return call?.write === true && call.sent && err instanceof Error && isRecoverableError(err) && !NOT_SENT.test(err.message) && !(err instanceof GRPCResourceExhastedError)
}

/**
 * Retries a call that failed for a reason of the connection (not of etcd's answer) on the next host,
 * once per host: with one member down or hung, a call still lands on a live one within its
 * deadline. A write is sent again only when it provably never reached etcd.
 */
function nextHostPolicy (hosts: number, call: () => CallContext | undefined): Policy {
  return {
    execute: async (fn: (context: { signal: AbortSignal, attempt: number }) => unknown) => {
      let lastError: unknown
      for (let attempt = 0; attempt < hosts; attempt++) {
        const context = call()
        if (context != null) {
          context.sent = false
        }
        try {
          return await fn({ signal: new AbortController().signal, attempt })
        } catch (err) {
          lastError = err
          if (!isRecoverableError(err as Error) || mayHaveBeenApplied(err, context)) {
            throw err
          }
        }
      }
      throw lastError
    }
  } as unknown as Policy
}

const encoder = new TextEncoder()

/** The first key after every key starting with `prefix`. */
function prefixEnd (prefix: Buffer): Buffer {
  const end = Buffer.from(prefix)
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i]! < 0xff) {
      end[i]!++
      return end.subarray(0, i + 1)
    }
  }
  return Buffer.from([0])
}

interface PageToken {
  /** the last name of the previous page */
  after: string
  /** the revision of the first page: every page reads the same snapshot */
  revision: string
}

function encodeToken (token: PageToken): string {
  return Buffer.from(JSON.stringify(token)).toString('base64url')
}

/** etcd's revisions are int64s. */
const MAX_REVISION = 2n ** 63n - 1n

function decodeToken (text: string): PageToken {
  try {
    const token = JSON.parse(Buffer.from(text, 'base64url').toString()) as Partial<PageToken>
    if (typeof token.after === 'string' && typeof token.revision === 'string' && /^[0-9]{1,19}$/.test(token.revision) && BigInt(token.revision) <= MAX_REVISION) {
      return { after: token.after, revision: token.revision }
    }
  } catch {
    // not base64url JSON: refused below
  }
  throw new InvalidRecordError('pageToken', 'is not a token from a previous page of this List')
}

/**
 * The records in etcd. Every write is one etcd transaction conditioned on the key's mod revision,
 * so concurrent writers never overwrite each other unseen. Errors are `RpcFailureError`s ready to
 * answer: CONFLICT, NOT_FOUND, UNAVAILABLE when etcd cannot be reached within the deadline, and
 * TIMEOUT for a write that may have been applied without its answer arriving.
 */
export class RegistryStore {
  readonly endpoints: string[]
  readonly #client: Etcd3
  readonly #timeoutMs: number
  readonly #prefix: Buffer
  readonly #prefixText: string
  /** The etcd call under way, for etcd3's per-attempt options and retry policy. */
  readonly #calls = new AsyncLocalStorage<CallContext>()
  /** The Gets of this event-loop turn, read together once the turn ends. */
  readonly #gets = new Batcher<ServiceRecord | undefined>(MAX_TXN_OPS, setImmediate, async (batch) => { await this.#readBatch(batch) })

  constructor (init: RegistryStoreInit) {
    if (init.endpoints.length === 0) {
      throw new Error('The registry store needs at least one etcd endpoint')
    }
    this.endpoints = [...init.endpoints]
    this.#timeoutMs = init.timeoutMs ?? DEFAULT_ETCD_TIMEOUT_MS
    this.#prefixText = init.keyPrefix ?? KEY_PREFIX
    this.#prefix = Buffer.from(this.#prefixText)
    this.#client = new Etcd3({
      hosts: this.endpoints,
      ...(init.auth == null ? {} : { auth: init.auth }),
      // etcd3 types the CA as required, but gRPC takes a missing one as its default roots
      ...(init.tls == null ? {} : { credentials: { rootCertificate: init.tls.ca!, ...(init.tls.key == null ? {} : { privateKey: init.tls.key }), ...(init.tls.cert == null ? {} : { certChain: init.tls.cert }) } }),
      dialTimeout: this.#timeoutMs,
      defaultCallOptions: (context) => context.isStream ? {} : { deadline: this.#attemptDeadline(context.method) },
      faultHandling: { host: () => noopPolicy(), global: nextHostPolicy(this.endpoints.length, () => this.#calls.getStore()) },
      grpcOptions: {
        // a channel of its own, reconnecting soon after etcd comes back
        'grpc.use_local_subchannel_pool': 1,
        'grpc.initial_reconnect_backoff_ms': 100,
        'grpc.max_reconnect_backoff_ms': 1_000,
        'grpc.min_reconnect_backoff_ms': 100
      }
    })
  }

  #key (name: string): Buffer {
    return Buffer.concat([this.#prefix, encoder.encode(name)])
  }

  #unavailable (err: unknown): RpcFailureError {
    if (err instanceof RpcFailureError) {
      return err
    }
    const message = (err as Error).message
    if (err instanceof GRPCResourceExhastedError && /database space exceeded/.test(message)) {
      // the alarm stays raised, for every member, until an operator clears it: reads still work
      return new RpcFailureError('UNAVAILABLE', `${NOSPACE}: ${message}`)
    }
    if (err instanceof GRPCOutOfRangeError || err instanceof GRPCInvalidArgumentError) {
      // what etcd was asked cannot be done (a revision it does not hold, a member URL it cannot
      // parse): the caller's mistake, not a registry in trouble that its clients should leave
      return new RpcFailureError('BAD_REQUEST', `etcd refused the request: ${message}`)
    }
    if (err instanceof Error && (isRecoverableError(err) || /circuit|closed|deadline|unavailable|connect/i.test(message))) {
      return new RpcFailureError('UNAVAILABLE', `etcd is unreachable (${this.endpoints.join(', ')}): ${message}`)
    }
    return new RpcFailureError('INTERNAL', `etcd failed: ${message}`)
  }

  /** The deadline of one store operation, every etcd call of it (and their failover) included. */
  #deadline (): Deadline {
    return { at: Date.now() + this.#timeoutMs, signal: AbortSignal.timeout(this.#timeoutMs) }
  }

  /**
   * The deadline of one attempt on one host (etcd3 asks for it at each attempt and login). A read
   * gives each host left its share of what remains of the operation's deadline, so a host that
   * hangs costs its share and the next one gets the rest; a write, not sent twice, gets all of it.
   * etcd3 asks right before it hands the call (`method`, or `authenticate` for the login) to gRPC.
   */
  #attemptDeadline (method: string): number {
    const call = this.#calls.getStore()
    if (call == null) {
      return Date.now() + this.#timeoutMs
    }
    if (method !== 'authenticate') {
      call.sent = true
    }
    const remaining = Math.max(1, call.deadline.at - Date.now())
    const share = call.write ? remaining : remaining / call.hostsLeft
    call.hostsLeft = Math.max(1, call.hostsLeft - 1)
    return Date.now() + share
  }

  /**
   * One etcd call under `deadline` (a new one unless the operation has one): the wait ends at the
   * deadline whatever etcd3 does. A write sent and then past its deadline, or whose connection
   * failed after it was sent, may have been applied: it is answered TIMEOUT, which a client counts
   * as ambiguous, not UNAVAILABLE. One whose login never ended was not sent: UNAVAILABLE.
   */
  async #call<T> (fn: () => Promise<T>, deadline = this.#deadline(), write = false): Promise<T> {
    const context: CallContext = { deadline, write, hostsLeft: this.endpoints.length, sent: false }
    try {
      return await raceSignal(this.#calls.run(context, fn), deadline.signal)
    } catch (err) {
      // a deadline that passed while the login still waited: the write itself was never sent
      if (!(err instanceof RpcFailureError) && write && context.sent && (deadline.signal.aborted || err instanceof GRPCDeadlineExceededError)) {
        throw new RpcFailureError('TIMEOUT', `etcd did not answer within ${this.#timeoutMs} ms (${this.endpoints.join(', ')}): the write may or may not have been applied`)
      }
      if (mayHaveBeenApplied(err, context)) {
        throw new RpcFailureError('TIMEOUT', `the connection to etcd failed after the write was sent (${this.endpoints.join(', ')}): ${(err as Error).message}; the write may or may not have been applied`)
      }
      if (!(err instanceof RpcFailureError) && deadline.signal.aborted) {
        throw new RpcFailureError('UNAVAILABLE', `etcd is unreachable (${this.endpoints.join(', ')}): it did not answer within ${this.#timeoutMs} ms`)
      }
      throw this.#unavailable(err)
    }
  }

  #record (kv: IKeyValue): ServiceRecord {
    try {
      const record = fromStoredJson(kv.value.toString(), kv.mod_revision)
      // a value copied from another key (a "rename" by hand): served as it is, it would answer for
      // a name it does not have, and a client would take it, at this key's newer revision, for the
      // latest record of the name it does have
      const name = kv.key.subarray(this.#prefix.length).toString()
      if (record.name !== name) {
        throw new InvalidRecordError('name', `${JSON.stringify(record.name)} is not the name of its key ${JSON.stringify(name)}`)
      }
      return record
    } catch (err) {
      throw new RpcFailureError('INTERNAL', `The value under ${kv.key.toString()} is not a service record: ${(err as Error).message}`)
    }
  }

  /**
   * The record named `name`. The Gets that arrive in one event-loop turn are read together, in one
   * etcd call started after all of them arrived, so each still sees every write that finished before
   * it was asked (etcd reads a read-only transaction linearizably).
   */
  async get (name: string): Promise<ServiceRecord | undefined> {
    validateName(name)
    return await this.#gets.get(name)
  }

  /**
   * One read of every key in `batch`: a range for one key, a read-only transaction for more. Each
   * record is parsed once for all the callers that asked for it.
   */
  async #readBatch (batch: Batch<ServiceRecord | undefined>): Promise<void> {
    const keys = [...batch.keys()].map(name => this.#key(name))
    let found: Array<IKeyValue | undefined>
    try {
      found = keys.length === 1
        ? [(await this.#call(async () => await this.#client.kv.range({ key: keys[0]! }))).kvs[0]]
        : (await this.#call(async () => await this.#client.kv.txn({
            compare: [],
            success: keys.map(key => ({ request_range: { key } })),
            failure: []
          }))).responses.map(response => response.response_range?.kvs[0])
    } catch (err) {
      rejectAll(batch, err as Error)
      return
    }
    let i = 0
    for (const callers of batch.values()) {
      const kv = found[i++]
      let record: ServiceRecord | undefined
      try {
        record = kv == null ? undefined : this.#record(kv)
      } catch (err) {
        for (const caller of callers) caller.reject(err as Error)
        continue
      }
      for (const caller of callers) caller.resolve(record)
    }
  }

  /**
   * Creates or replaces a record. With `expectedRevision` it is a compare-and-swap: '0' means the
   * name must be new, anything else must be the record's current revision; otherwise CONFLICT.
   * Without it the write replaces whatever is there (keeping `createdAt`), still in one transaction
   * on the revision it read, retried when another writer came in between.
   */
  async put (input: ServiceRecordInput, options: { expectedRevision?: string, now?: Date } = {}): Promise<ServiceRecord> {
    const key = this.#key(input.name)
    const deadline = this.#deadline()
    for (let attempt = 0; ; attempt++) {
      const current = await this.#call(async () => await this.#client.kv.range({ key }), deadline)
      const kv = current.kvs[0]
      const currentRevision = kv?.mod_revision ?? '0'
      if (options.expectedRevision != null && options.expectedRevision !== currentRevision) {
        throw conflict(input.name, options.expectedRevision, currentRevision)
      }
      const now = (options.now ?? new Date()).toISOString()
      let createdAt = now
      if (kv != null) {
        try {
          createdAt = this.#record(kv).createdAt
        } catch {
          // an unreadable value is replaced: the new record starts its history
        }
      }
      const stored = { ...input, createdAt, updatedAt: now }
      const compare = kv == null
        ? { key, target: 'Create' as const, result: 'Equal' as const, create_revision: 0 }
        : { key, target: 'Mod' as const, result: 'Equal' as const, mod_revision: currentRevision }
      const response = await this.#call(async () => await this.#client.kv.txn({
        compare: [compare],
        success: [{ request_put: { key, value: Buffer.from(toStoredJson(stored)) } }],
        failure: [{ request_range: { key } }]
      }), deadline, true)
      if (response.succeeded) {
        return { ...stored, revision: response.header.revision }
      }
      const now2 = response.responses[0]?.response_range.kvs[0]?.mod_revision ?? '0'
      if (options.expectedRevision != null) {
        throw conflict(input.name, options.expectedRevision, now2)
      }
      if (attempt >= 20) {
        throw new RpcFailureError('CONFLICT', `${input.name} changed 20 times while being written; try again`)
      }
    }
  }

  /** Deletes a record; NOT_FOUND when there is none, CONFLICT when `expectedRevision` differs. */
  async delete (name: string, options: { expectedRevision?: string } = {}): Promise<string> {
    validateName(name)
    if (options.expectedRevision === '0') {
      throw new InvalidRecordError('expectedRevision', 'must be the revision of the record to delete, not 0')
    }
    const key = this.#key(name)
    const compare = options.expectedRevision == null
      ? { key, target: 'Create' as const, result: 'NotEqual' as const, create_revision: 0 }
      : { key, target: 'Mod' as const, result: 'Equal' as const, mod_revision: options.expectedRevision }
    const failure: IRequestOp[] = [{ request_range: { key } }]
    const response = await this.#call(async () => await this.#client.kv.txn({
      compare: [compare],
      success: [{ request_delete_range: { key } }],
      failure
    }), this.#deadline(), true)
    if (response.succeeded) {
      return response.header.revision
    }
    const current = response.responses[0]?.response_range?.kvs[0]?.mod_revision
    if (current == null) {
      throw new RpcFailureError('NOT_FOUND', `No service named ${name}`)
    }
    throw conflict(name, options.expectedRevision ?? current, current)
  }

  /** One page of the records whose names start with `prefix`, in name order. */
  async list (options: ListOptions = {}): Promise<StoredPage> {
    const prefix = options.prefix ?? ''
    if (prefix.length > 128 || /[^A-Za-z0-9._:-]/.test(prefix)) {
      throw new InvalidRecordError('prefix', `${JSON.stringify(prefix)} cannot start a service name`)
    }
    const pageSize = options.pageSize == null || options.pageSize === 0 ? DEFAULT_PAGE_SIZE : options.pageSize
    if (!Number.isInteger(pageSize) || pageSize < 1 || pageSize > MAX_PAGE_SIZE) {
      throw new InvalidRecordError('pageSize', `must be a whole number from 1 to ${MAX_PAGE_SIZE}, not ${pageSize}`)
    }
    const token = options.pageToken == null || options.pageToken === '' ? undefined : decodeToken(options.pageToken)
    // the page starts after the token's key but ends with the prefix: a token of a listing with
    // another prefix would start outside it and return names that do not have the prefix
    if (token != null && !token.after.startsWith(prefix)) {
      throw new InvalidRecordError('pageToken', `continues a listing of names after ${JSON.stringify(token.after)}, which does not start with the prefix ${JSON.stringify(prefix)}: give the prefix the previous page was asked with, or start the listing again`)
    }
    // the token holds the last key's bytes after the prefix, one character a byte (latin1): a key
    // written by hand that is not UTF-8 is passed, not met again (names are ASCII, alike either way)
    const start = token == null ? this.#key(prefix) : Buffer.concat([this.#prefix, Buffer.from(token.after, 'latin1'), Buffer.from([0])])
    const response = await this.#call(async () => await this.#client.kv.range({
      key: start,
      range_end: prefixEnd(this.#key(prefix)),
      limit: pageSize + 1,
      ...(token == null ? {} : { revision: token.revision })
    })).catch((err: unknown) => {
      if (token != null && err instanceof RpcFailureError && /compacted|future revision/.test(err.message)) {
        const why = err.message.includes('compacted') ? 'etcd has compacted away' : 'etcd has not reached'
        throw new InvalidRecordError('pageToken', `names revision ${token.revision}, which ${why}: start the listing again`)
      }
      throw err
    })
    const kvs = response.kvs.slice(0, pageSize)
    // one value that is not a record (written by hand, or damaged) does not hide the others
    const records: ServiceRecord[] = []
    const unreadable: string[] = []
    for (const kv of kvs) {
      try {
        records.push(this.#record(kv))
      } catch (err) {
        unreadable.push((err as Error).message)
      }
    }
    const last = kvs.at(-1)
    const more = response.kvs.length > pageSize
    return {
      records,
      unreadable,
      nextPageToken: more && last != null ? encodeToken({ after: last.key.subarray(this.#prefix.length).toString('latin1'), revision: token?.revision ?? response.header.revision }) : ''
    }
  }

  /** How many records there are. */
  async count (): Promise<number> {
    const response = await this.#call(async () => await this.#client.kv.range({ key: this.#prefix, range_end: prefixEnd(this.#prefix), count_only: true }))
    return Number(response.count)
  }

  /**
   * Whether etcd answers a linearizable read within the deadline (a quorum is there) and takes
   * writes (its NOSPACE alarm is not raised).
   */
  async health (): Promise<StoreHealth> {
    try {
      // a key under the prefix: an external etcd's user may be granted the registry's keys only
      await this.#call(async () => await this.#client.kv.range({ key: this.#prefix, count_only: true }))
    } catch (err) {
      return { ok: false, error: (err as Error).message }
    }
    // reads work under the alarm, every write is refused. An etcd that does not answer the
    // listing (a proxy in front of it that lacks it) leaves this part unknown
    const alarms = await this.#call(async () => await this.#client.maintenance.alarm({ action: 'Get', memberID: 0, alarm: 'None' })).catch(() => undefined)
    if (alarms?.alarms.some(member => member.alarm === 'Nospace') === true) {
      return { ok: false, error: NOSPACE }
    }
    return { ok: true }
  }

  /**
   * Adds an etcd member as a learner (etcd's member-add API): it counts towards no quorum until it
   * is promoted, so a member whose etcd never starts (a wrong --etcd-ip, a port the firewall
   * drops) cannot take the cluster's majority away. A member added before but never started, or
   * started but not promoted yet, is returned again.
   */
  async memberAdd (peerUrls: string[]): Promise<{ member: IMember, members: IMember[] }> {
    const list = await this.#call(async () => await this.#client.cluster.memberList({}))
    const existing = list.members.find(m => m.peerURLs.some(url => peerUrls.includes(url)))
    if (existing != null) {
      // a started learner asks again when its promotion was cut short: it is told the cluster
      if (existing.name !== '' && existing.clientURLs.length > 0 && !existing.isLearner) {
        throw new RpcFailureError('CONFLICT', `${peerUrls.join(', ')} is already the peer URL of the started etcd member ${existing.name}; a member whose data is lost must be removed first (etcdctl member remove ${BigInt(existing.ID).toString(16)})`)
      }
      return { member: existing, members: list.members }
    }
    try {
      const response = await this.#client.cluster.memberAdd({ peerURLs: peerUrls, isLearner: true }, { deadline: Date.now() + Math.max(this.#timeoutMs, 5_000) })
      return { member: response.member, members: response.members }
    } catch (err) {
      const message = (err as Error).message
      if (/unhealthy cluster/.test(message)) {
        // etcd adds a member only when every member has been connected for 5 s
        throw new RpcFailureError('UNAVAILABLE', 'The etcd cluster cannot take a member yet (one joined less than 5 s ago, or one is down); try again shortly')
      }
      if (/too many learner/.test(message)) {
        const waiting = list.members.filter(m => m.isLearner).map(m => `${m.peerURLs.join(' ')} (id ${BigInt(m.ID).toString(16)})`)
        throw new RpcFailureError('UNAVAILABLE', `The etcd cluster has a member not promoted yet: ${waiting.join(', ')}. Another registry-service is joining, or its join failed; if none is joining, remove it: etcdctl member remove <id>`)
      }
      throw this.#unavailable(err)
    }
  }

  /**
   * Promotes the learner whose peer URL is `peerUrl` to a voting member once it has caught up
   * with the leader; nothing to do for a voter. Asked again every 250 ms until `timeoutMs` (a
   * learner not in sync yet, a leader election, a member not answering), unless it was removed or
   * `signal` aborts.
   */
  async memberPromote (peerUrl: string, timeoutMs: number, signal?: AbortSignal): Promise<void> {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      signal?.throwIfAborted()
      try {
        const list = await this.#call(async () => await this.#client.cluster.memberList({}))
        const member = list.members.find(m => m.peerURLs.includes(peerUrl))
        if (member == null) {
          throw new RpcFailureError('NOT_FOUND', `No etcd member has the peer URL ${peerUrl}: it was removed`)
        }
        if (!member.isLearner) {
          return
        }
        await this.#call(async () => await this.#client.cluster.memberPromote({ ID: member.ID }))
        return
      } catch (err) {
        if ((err instanceof RpcFailureError && err.code === 'NOT_FOUND') || Date.now() > deadline) {
          throw err
        }
      }
      await sleep(250, undefined, { signal })
    }
  }

  async memberList (): Promise<IMember[]> {
    const list = await this.#call(async () => await this.#client.cluster.memberList({}))
    return list.members
  }

  close (): void {
    this.#client.close()
  }
}

function conflict (name: string, expected: string, current: string): RpcFailureError {
  const now = current === '0' ? 'it does not exist' : `its revision is ${current}`
  const wanted = expected === '0' ? 'it not to exist yet' : `revision ${expected}`
  return new RpcFailureError('CONFLICT', `${name} changed: expected ${wanted}, but ${now}`)
}
