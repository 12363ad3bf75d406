import { hostname } from 'node:os'
import { setTimeout as sleep } from 'node:timers/promises'
import { connect as tlsConnect } from 'node:tls'
import { createMetricsRegistry, createPhysarumNode, nodeOptions, RpcFailureError, RpcProtocolError, RpcTimeoutError, startMetricsServer } from '@physarum/p2p'
import { createRegistryClient } from './client.ts'
import { DEFAULT_JOIN_TIMEOUT_MS, ETCD_AUTH_TIMEOUT_MS, ETCD_START_TIMEOUT_MS, NAME } from './constants.ts'
import { ensureEtcdAuth, etcdAuthFor } from './etcd-auth.ts'
import { JoinError, NoRegistryError } from './errors.ts'
import { clearEtcdPorts, discardFailedJoin, EtcdProcess, hasEtcdData, hostUrl } from './etcd-process.ts'
import { createRegistryService } from './service.ts'
import { RegistryStore } from './store.ts'
import type { JoinAnswer, RegistryClient } from './client.ts'
import type { EtcdAuth } from './etcd-auth.ts'
import type { EtcdStatus } from './etcd-process.ts'
import type { RegistryService } from './service.ts'
import type { EtcdTls } from './store.ts'
import type { AbortOptions } from '@libp2p/interface'
import type { DaemonNodeOptions, HostPort, Logger, MetricsServer, PhysarumNode } from '@physarum/p2p'
import type { Registry } from 'prom-client'

/** How the registry gets its etcd. */
export type EtcdMode =
  | { kind: 'new', etcd: ManagedEtcdConfig }
  | { kind: 'join', etcd: ManagedEtcdConfig, joinVia: string[] }
  | { kind: 'external', endpoints: string[], auth?: EtcdAuth, tls?: EtcdTls }

export interface ManagedEtcdConfig {
  bin: string
  name: string
  dataDir: string
  ip: string
  clientPort: number
  peerPort: number
  /** How long etcd keeps replaced revisions before compacting them (0: never). */
  autoCompactionMs: number
  /** The etcd child's environment (it reads ETCD_* settings from it). */
  env: Record<string, string | undefined>
}

export interface RegistryDaemonConfig extends DaemonNodeOptions {
  metricsListen: HostPort
  etcd: EtcdMode
  etcdTimeoutMs: number
  admins: string[]
  openWrites: boolean
  /** The registry-services trusted to add this one as an etcd member when it joins (empty: any). */
  registryIds?: string[]
  /** How long --join-etcd-cluster keeps asking while no registry is found or the cluster is not ready (default 2 min). */
  joinTimeoutMs?: number
  registry?: Registry
}

export interface RegistryDaemon {
  node: PhysarumNode
  service: RegistryService
  store: RegistryStore
  etcd?: EtcdProcess
  metrics: MetricsServer
  stop(): Promise<void>
}

/**
 * Starts a whole registry-service: the node, its etcd (started, joined or external), the store,
 * the protocol and the metrics server. Anything started is stopped again when a later step fails,
 * or when `signal` aborts the start (a stop while it waits for a join): it rejects with the
 * signal's reason once that is done.
 */
export async function startRegistryDaemon (config: RegistryDaemonConfig, log: Logger, options: AbortOptions = {}): Promise<RegistryDaemon> {
  const { signal } = options
  const registry = config.registry ?? createMetricsRegistry()
  const cleanups: Array<() => Promise<void> | void> = []
  const cleanup = async (): Promise<void> => {
    for (const step of cleanups.reverse()) {
      try {
        await step()
      } catch (err) {
        log.error({ err: (err as Error).message }, 'stopping failed')
      }
    }
  }

  try {
    const node = await createPhysarumNode({
      ...nodeOptions(config),
      dhtMode: 'server',
      hostName: hostname().replace(/\s/g, '-') || 'unknown',
      role: NAME,
      metricsRegistry: registry,
      log
    })
    // the wait for a bootstrap (up to 15 s) is cut short by a stop
    cleanups.push(async () => { await node.stop() })
    await node.start({ signal })
    log.info({ peerId: node.peerId.toString(), addrs: node.multiaddrs().map(String) }, 'joined the overlay')

    let etcd: EtcdProcess | undefined
    let endpoints: string[]
    // the etcd this process runs lets in only the holders of the overlay's key (an open overlay's:
    // anyone); an external one takes the login its operator gave
    const auth = config.etcd.kind === 'external' ? config.etcd.auth : config.psk == null ? undefined : etcdAuthFor(config.psk)
    const tls = config.etcd.kind === 'external' ? config.etcd.tls : undefined
    if (config.etcd.kind === 'external') {
      endpoints = config.etcd.endpoints
    } else {
      const managed = config.etcd.etcd
      const init = {
        bin: managed.bin,
        name: managed.name,
        dataDir: managed.dataDir,
        ip: managed.ip,
        clientPort: managed.clientPort,
        peerPort: managed.peerPort,
        autoCompactionMs: managed.autoCompactionMs,
        env: managed.env,
        log: log.child({ component: 'etcd' })
      }
      // before anything asks a cluster to add this member: a start that cannot bind would leave it added
      await clearEtcdPorts(init)
      let joinedClientUrls: string[] = []
      if (config.etcd.kind === 'join' && await discardFailedJoin(managed.dataDir, managed.env)) {
        log.warn({ dataDir: managed.dataDir }, 'removed what an etcd that never joined the cluster left in the data folder: joining again')
      }
      const joinVia = config.etcd.kind === 'join' ? config.etcd.joinVia : []
      const peerUrl = hostUrl(managed.ip, managed.peerPort)
      /** Asks a running registry-service to add this member (or to tell the cluster of one it added before). */
      const askToJoin = async (): Promise<JoinAnswer> => {
        const client = createRegistryClient(node, { log: log.child({ component: 'join' }), trusted: config.registryIds ?? [], ...(joinVia.length > 0 ? { peers: joinVia } : {}) })
        return await joinCluster(client, managed.name, peerUrl, config.joinTimeoutMs ?? DEFAULT_JOIN_TIMEOUT_MS, log, signal).catch((err: Error) => {
          signal?.throwIfAborted()
          throw new JoinError(`Asking a registry-service to add this etcd member (${managed.name}, ${peerUrl}) failed: ${err.message}${(err as { code?: string }).code === 'UNAUTHORIZED' ? `. Start that registry with --admin ${node.peerId.toString()}, or with --open-writes` : ''}`)
        })
      }
      if (config.etcd.kind === 'new' && !hasEtcdData(managed.dataDir, managed.env)) {
        // a unit with --new-etcd-cluster on a host whose etcd data was lost would otherwise start
        // an empty cluster beside the real one, and answer NOT_FOUND for every service
        const client = createRegistryClient(node, { trusted: config.registryIds ?? [] })
        const running = (await client.registries({ signal }).catch(() => [])).filter(found => found.rttMs != null)
        signal?.throwIfAborted()
        if (running.length > 0) {
          throw new JoinError(`--new-etcd-cluster with an empty etcd data folder (${managed.dataDir}), while registry-services already run in this overlay (${running.map(found => found.peerId.toString()).join(', ')}): a new cluster would have none of their records. If this host's etcd data was lost, remove its old member (etcdctl member list, member remove) and start it with --join-etcd-cluster`)
        }
      }
      if (config.etcd.kind === 'join' && !hasEtcdData(managed.dataDir, managed.env)) {
        const answer = await askToJoin()
        log.info({ initialCluster: answer.initialCluster }, 'added as an etcd member; starting etcd')
        etcd = new EtcdProcess({ ...init, clusterState: 'existing', initialCluster: answer.initialCluster })
        joinedClientUrls = answer.clientUrls
      } else {
        if (config.etcd.kind === 'join') {
          log.info({ dataDir: managed.dataDir }, 'the etcd data folder holds a member already: starting it without joining again')
        }
        etcd = new EtcdProcess({ ...init, clusterState: config.etcd.kind === 'new' ? 'new' : 'existing' })
      }
      await etcd.start(ETCD_START_TIMEOUT_MS, signal)
      const started = etcd
      cleanups.push(async () => { await started.stop() })
      // a stop signals etcd too (systemd's control group, a terminal's Ctrl-C): no restart meanwhile
      signal?.addEventListener('abort', () => { started.endSupervision() }, { once: true })
      signal?.throwIfAborted()
      /** Makes this member, added as a learner, a voter through the other members (`clientUrls`) once it caught up. */
      const promote = async (clientUrls: string[]): Promise<void> => {
        const cluster = new RegistryStore({ endpoints: clientUrls, timeoutMs: 5_000, ...(auth == null ? {} : { auth }) })
        try {
          await cluster.memberPromote(started.peerUrl, ETCD_START_TIMEOUT_MS, signal)
        } catch (err) {
          signal?.throwIfAborted()
          throw new JoinError(`This etcd member (${managed.name}, ${started.peerUrl}) started as a learner but could not be made a voting member: ${(err as Error).message}`)
        } finally {
          cluster.close()
        }
        log.info({ name: managed.name }, 'promoted to a voting etcd member')
      }
      /**
       * Every member's client URL: from the members this one's promotion went through, if it was
       * promoted in this start (the local etcd may not have applied the promotion yet, and would
       * refuse as a learner still), else from the local etcd (a learner lists none).
       */
      const memberUrls = async (): Promise<string[]> => {
        const probe = new RegistryStore({ endpoints: joinedClientUrls.length > 0 ? joinedClientUrls : [started.clientUrl], timeoutMs: 5_000, ...(auth == null ? {} : { auth }) })
        try {
          return (await probe.memberList()).flatMap(m => m.clientURLs)
        } finally {
          probe.close()
        }
      }
      /**
       * Turns etcd's authentication on unless it is (a new cluster at its first start, one made by
       * an earlier version at the next start of a voting member); true when this call did.
       */
      const ensureAuth = async (): Promise<boolean> => {
        if (auth == null) {
          return false
        }
        const outcome = await ensureEtcdAuth(started.clientUrl, auth, ETCD_AUTH_TIMEOUT_MS)
        if (outcome.removed.length > 0) {
          log.warn({ removed: outcome.removed }, 'etcd had users or roles this registry-service did not make, made while its client port was open without a login: deleted')
        }
        if (outcome.turnedOn) {
          log.info({ user: auth.username }, 'turned etcd\'s authentication on: only holders of the overlay\'s key get in')
        }
        return outcome.turnedOn
      }
      if (config.etcd.kind === 'new') {
        await ensureAuth()
      }
      if (joinedClientUrls.length > 0) {
        await promote(joinedClientUrls)
      }
      // every member's client URL: when the local etcd is down, requests go to the others
      let members = await memberUrls().catch((err: Error) => err)
      if (members instanceof Error && config.etcd.kind === 'join' && /learner/.test(members.message)) {
        // a join cut short before its promotion: asked again, the cluster names its members
        log.warn({ name: managed.name }, 'this etcd member is still a learner (its join was cut short): asking to be promoted')
        joinedClientUrls = (await askToJoin()).clientUrls.filter(url => url !== started.clientUrl)
        await promote(joinedClientUrls)
        members = await memberUrls().catch((err: Error) => err)
      }
      if (config.etcd.kind === 'join') {
        // a voter by now; a member of a cluster an earlier version made reads the members again
        if (await ensureAuth() && members instanceof Error) {
          members = await memberUrls().catch((err: Error) => err)
        }
      }
      endpoints = [started.clientUrl, ...joinedClientUrls]
      if (members instanceof Error) {
        log.warn({ err: members.message }, 'could not list the etcd members; using the local one only')
      } else {
        endpoints.push(...members)
      }
      endpoints = [...new Set(endpoints)]
    }

    const store = new RegistryStore({ endpoints, timeoutMs: config.etcdTimeoutMs, ...(auth == null ? {} : { auth }), ...(tls == null ? {} : { tls }) })
    cleanups.push(() => { store.close() })
    const health = await store.health()
    // an etcd that is down may come back, but a wrong login or certificate stays wrong: the
    // registry would answer UNAVAILABLE for ever with the reason in a log line nobody reads
    if (!health.ok && config.etcd.kind === 'external' && health.error != null && REFUSED.test(health.error)) {
      // a login given to an etcd whose authentication is off fails every call: etcd answers no
      // token to a login it does not check
      const check = AUTH_OFF.test(health.error)
        ? 'its authentication is off, and it takes no login: give no --etcd-user, or turn it on (etcdctl auth enable)'
        : 'check --etcd-user and --etcd-password-file; for https://, --etcd-ca, --etcd-cert and --etcd-key'
      throw new Error(`etcd (${endpoints.join(', ')}) does not let this registry-service in (${check}): ${health.error}`)
    }
    if (!health.ok && config.etcd.kind === 'external') {
      // gRPC says only "Failed to connect" when an etcd serving TLS is given as http://: it
      // would never be reachable
      const secure = await firstAnsweringTls(endpoints.filter(endpoint => endpoint.startsWith('http:')), config.etcdTimeoutMs)
      if (secure != null) {
        throw new Error(`etcd at ${secure} answers with TLS: give its URLs as ${secure.replace(/^http:/, 'https:')} (with --etcd-ca, and --etcd-cert and --etcd-key if it asks for a client certificate)`)
      }
    }
    if (!health.ok) {
      log.warn({ endpoints, err: health.error }, 'etcd is not healthy yet (unreachable, or refusing writes); requests it cannot serve are answered UNAVAILABLE until it is')
    }

    const service = createRegistryService({ node, store, logger: log.child({ component: 'service' }), registry }, { admins: config.admins, openWrites: config.openWrites })
    await service.start()
    cleanups.push(async () => { await service.stop() })

    const etcdProcess = etcd
    signal?.throwIfAborted()
    const metrics = await startMetricsServer({
      listen: config.metricsListen,
      registry,
      health: async () => {
        const etcdHealth = await store.health()
        const status: EtcdStatus | undefined = etcdProcess?.status()
        return {
          ok: etcdHealth.ok,
          peerId: node.peerId.toString(),
          connectedPeers: node.libp2p.getPeers().length,
          etcd: { ...etcdHealth, endpoints, ...(status == null ? {} : { process: status }) }
        }
      }
    })
    cleanups.push(async () => { await metrics.close() })
    signal?.throwIfAborted()

    let stopped: Promise<void> | undefined
    return {
      node,
      service,
      store,
      ...(etcd == null ? {} : { etcd }),
      metrics,
      stop: async () => {
        // stop taking work first (the protocol, the node), then the store, etcd and the HTTP server
        stopped ??= (async () => {
          etcdProcess?.endSupervision()
          cleanups.length = 0
          cleanups.push(
            async () => { await metrics.close() },
            async () => { await etcdProcess?.stop() },
            () => { store.close() },
            async () => { await node.stop() },
            async () => { await service.stop() }
          )
          await cleanup()
        })()
        await stopped
      }
    }
  } catch (err) {
    await cleanup()
    throw err
  }
}

/** etcd's answer to a login when its authentication is off. */
const AUTH_OFF = /authentication is not enabled/
/** etcd's answers to a login it refuses, and TLS's to a certificate it cannot verify. */
const REFUSED = new RegExp(`authentication failed|${AUTH_OFF.source}|user name is empty|permission denied|certificate|SSL routines`)

/**
 * The first of the http:// `endpoints` where a TLS server answers: one that finishes a handshake
 * (no certificate checked: this only asks what it speaks), or answers it with a TLS alert, as an
 * etcd that wants a client certificate does. A plain etcd's answer, a refused connection or
 * silence past `timeoutMs` are not TLS.
 */
async function firstAnsweringTls (endpoints: string[], timeoutMs: number): Promise<string | undefined> {
  const answersTls = async (endpoint: string): Promise<boolean> => await new Promise(resolve => {
    const url = new URL(endpoint)
    // no SNI: the host is an IP address more often than not, which SNI may not name
    const socket = tlsConnect({ host: url.hostname.replace(/^\[(.*)\]$/, '$1'), port: Number(url.port), servername: '', rejectUnauthorized: false, timeout: timeoutMs })
    const done = (tls: boolean): void => {
      socket.destroy()
      resolve(tls)
    }
    socket.once('secureConnect', () => { done(true) })
    socket.once('error', (err: NodeJS.ErrnoException) => { done(/^ERR_SSL_.*ALERT/.test(err.code ?? '')) })
    socket.once('timeout', () => { done(false) })
  })
  for (const endpoint of endpoints) {
    if (await answersTls(endpoint)) {
      return endpoint
    }
  }
  return undefined
}

/**
 * Asks for membership until it is granted or refused for good: while no registry is found yet (the
 * DHT), or the cluster cannot take a member yet (etcd wants every member connected for 5 s before
 * it adds a voter), it asks again with a growing pause.
 */
async function joinCluster (client: RegistryClient, name: string, peerUrl: string, timeoutMs: number, log: Logger, signal?: AbortSignal): Promise<JoinAnswer> {
  const deadline = Date.now() + timeoutMs
  for (let pause = 500; ; pause = Math.min(pause * 2, 2_000)) {
    try {
      return await client.join(name, [peerUrl], { signal })
    } catch (err) {
      signal?.throwIfAborted()
      const transient = err instanceof NoRegistryError || err instanceof RpcTimeoutError || err instanceof RpcProtocolError ||
        (err instanceof RpcFailureError && (err.code === 'UNAVAILABLE' || err.code === 'TIMEOUT'))
      if (!transient || Date.now() + pause > deadline) {
        throw err
      }
      log.info({ err: err.message, retryInMs: pause }, 'cannot join the etcd cluster yet; asking again')
      await sleep(pause, undefined, { signal })
    }
  }
}
