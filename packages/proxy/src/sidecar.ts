import { connect } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { raceSignal } from 'race-signal'
import { callRpc, createMetricsRegistry, createPhysarumNode, nodeOptions, RpcFailureError, serviceTopic } from '@physarum/p2p'
import { createRegistryClient, DAEMON_STALE_IF_ERROR_MS } from '@physarum/registry-service'
import { CheckIn, CHECKIN_RETRY_MAX_MS, CHECKIN_RETRY_MS, checkInRpc, DEFAULT_STATS_INTERVAL_MS, HTTP_PROTOCOL } from '@physarum/allocator/client'
import { DISOWNED_AFTER_MS, DRAIN_GRACE_MS, MAX_HTTP_STREAMS, SERVICE_CONNECT_TIMEOUT_MS, SERVICE_POLL_INTERVAL_MS, SERVICE_REFUSED_WAIT_MS } from './constants.ts'
import { isOpen, joinSocket } from './duplex.ts'
import { startClientProxy } from './client.ts'
import type { ClientProxy } from './client.ts'
import type { DaemonNodeOptions, Logger, PhysarumNode } from '@physarum/p2p'
import type { Socket } from 'node:net'
import type { Stream } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'
import type { CheckInResponse } from '@physarum/allocator/client'

export interface SidecarConfig extends DaemonNodeOptions {
  service: string
  contentHash: string
  servicePort: number
  /** The allocator that started this sidecar: a multiaddr with /p2p/<peer id>. */
  allocator?: Multiaddr
  instanceId: string
  statsIntervalMs?: number
  hostName?: string
  /**
   * ProxyClientMode: also serve the client proxy on 127.0.0.1:<clientPort> (the service's
   * PROXY_PORT), so the service calls other services as `/<service>/<path>` there.
   */
  clientPort?: number
  /** The registry-services the client proxy trusts with the records (empty: any). */
  registryIds?: string[]
  /** How long the allocator may disown the sidecar before `disowned` resolves (default DISOWNED_AFTER_MS). */
  disownedAfterMs?: number
}

export interface Sidecar {
  node: PhysarumNode
  /** The client proxy for the service's own calls (ProxyClientMode), if asked for. */
  client?: ClientProxy
  /** Requests being served now. */
  inFlight(): number
  /** Resolves once the allocator took the Ready check-in. */
  ready: Promise<void>
  /** Stops providing the service topic; requests still arriving are served. */
  drain(reason: string): Promise<void>
  /**
   * Drains, waits for requests in flight (at most `graceMs`; those still in flight then are
   * reset), stops the node. A stop while one is under way ends its grace sooner if it gives less
   * (`stop(0)`: now), never later.
   */
  stop(graceMs?: number): Promise<void>
  /**
   * Resolves, with why, once its allocator has refused its check-ins as not its own for
   * `disownedAfterMs` in a row: the process should then stop, as nothing else would stop it.
   */
  disowned: Promise<string>
}

/** A check-in failure that says the allocator does not (or no longer) know this sidecar. */
function disowning (err: Error): boolean {
  if (err instanceof RpcFailureError) {
    return err.code === 'NOT_FOUND' || err.code === 'UNAUTHORIZED'
  }
  // another peer at the allocator's address: its identity (or key) is not the one dialled, and the
  // connection's handshake fails (libp2p's upgrader keeps only the message of why)
  return (err.cause as Error | undefined)?.name === 'EncryptionFailedError'
}

/**
 * The sidecar next to one service instance: joins the overlay, serves `/physarum/http/1.0.0`
 * streams as byte pipes to 127.0.0.1:<servicePort>, checks in with its allocator as soon as it
 * listens and its service accepts connections (so the allocator can hand out its addresses at
 * once), provides the service topic in the background, and reports its stats on an interval.
 */
export async function startSidecar (config: SidecarConfig, log: Logger, options: { signal?: AbortSignal } = {}): Promise<Sidecar> {
  const node = await createPhysarumNode({
    ...nodeOptions(config),
    dhtMode: 'client',
    role: 'sidecar',
    ...(config.hostName == null ? {} : { hostName: config.hostName }),
    requireBootstrap: false,
    log
  })
  const topic = serviceTopic(config.contentHash)
  const controller = new AbortController()
  const signal = controller.signal
  // aborted as a stop begins (`signal` only at its end): a Ready check-in then would end its
  // drain at the allocator, which would hand out again an instance that refuses new streams
  const stopBegun = new AbortController()
  let inFlight = 0
  // the streams in flight: reset once a stop's grace is over
  const served = new Set<Stream>()
  let requestsTotal = 0n
  // performance.now(): a step of the host's clock (NTP, a resumed VM) must not make it idle
  let lastActivity = performance.now()
  let draining = false
  const idleWaiters = new Set<() => void>()
  const servicePort = new ServicePort(config.servicePort, signal)
  // a restarting service fails every stream that waited for it: one line for them all
  const refusals = {
    saidAt: -Infinity,
    since: 0,
    say (err: Error): void {
      this.since++
      if (performance.now() - this.saidAt >= SERVICE_REFUSED_WAIT_MS) {
        log.warn({ err: err.message, port: config.servicePort, streams: this.since }, 'the service accepts no connection')
        this.saidAt = performance.now()
        this.since = 0
      }
    }
  }

  const serve = (stream: Stream): void => {
    // the client may reset a stream while libp2p is still getting it ready (it updates the peer
    // store before it calls the handler): such a stream is not served, nor counted, as pause()
    // throws on it and a count taken before would never be given back
    if (!isOpen(stream)) {
      log.debug({ status: stream.status }, 'a stream closed before it was served')
      return
    }
    // paused meanwhile: what the stream carries waits in its read buffer, and the sender for
    // window (an upload would otherwise fill the buffer past its limit, and the stream be reset)
    try {
      stream.pause()
    } catch (err) {
      log.debug({ err: (err as Error).message }, 'a stream closed before it was served')
      stream.abort(err as Error)
      return
    }
    inFlight++
    served.add(stream)
    requestsTotal++
    lastActivity = performance.now()
    const finished = (): void => {
      inFlight--
      served.delete(stream)
      lastActivity = performance.now()
      if (inFlight === 0) {
        for (const wake of idleWaiters) {
          wake()
        }
      }
    }
    connectToService(servicePort, stream, signal).then(socket => {
      // the client gave up while the service was restarting
      if (!isOpen(stream)) {
        socket.destroy()
        finished()
        return
      }
      joinSocket(socket, stream, (err) => {
        if (err != null) {
          log.debug({ err: err.message }, 'http stream failed')
        }
        finished()
      })
      stream.resume()
    }, (err: Error) => {
      if (err instanceof ServiceWaitEnded) {
        log.debug({ err: err.message }, 'a stream gave up waiting for the service')
      } else {
        refusals.say(err)
      }
      if (isOpen(stream)) {
        stream.abort(err)
      }
      finished()
    })
  }

  await node.libp2p.handle(HTTP_PROTOCOL, (stream) => {
    serve(stream)
  }, { maxInboundStreams: MAX_HTTP_STREAMS, runOnLimitedConnection: false })

  let client: ClientProxy | undefined
  try {
    await node.start(options)
    if (config.clientPort != null) {
      client = await startClientProxy({
        node,
        registry: createRegistryClient(node, { staleIfErrorMs: DAEMON_STALE_IF_ERROR_MS, revalidateInBackground: true, trusted: config.registryIds ?? [], log: log.child({ component: 'registry-client' }) }),
        metrics: createMetricsRegistry(),
        log: log.child({ component: 'client-proxy' })
      }, { host: '127.0.0.1', port: config.clientPort })
    }
  } catch (err) {
    await node.stop().catch(() => {})
    throw err
  }

  const addrs = (): string[] => node.multiaddrs().map(String)

  const checkIn = async (kind: CheckIn.Kind, until = signal): Promise<CheckInResponse> => {
    if (config.allocator == null) {
      return { drain: false, awaitService: false }
    }
    const response = await callRpc(node.libp2p, config.allocator, checkInRpc, {
      kind,
      instanceId: config.instanceId,
      multiaddrs: addrs(),
      idleMs: BigInt(inFlight > 0 ? 0 : Math.round(performance.now() - lastActivity)),
      inFlight,
      requestsTotal,
      draining
    }, { signal: until })
    return response
  }

  // since when every check-in was refused as not the allocator's; any other outcome resets it
  let disownedSince: number | undefined
  let disownedSaid = false
  const disowned = Promise.withResolvers<string>()
  const checkedInOrNot = (err?: Error): void => {
    if (disownedSaid) {
      // said once: the stop it asked for is under way, its stats ticks meanwhile say nothing new
      return
    }
    if (err == null || !disowning(err)) {
      disownedSince = undefined
      return
    }
    disownedSince ??= performance.now()
    const forMs = performance.now() - disownedSince
    if (forMs >= (config.disownedAfterMs ?? DISOWNED_AFTER_MS)) {
      const reason = `the allocator has not known this instance for ${Math.round(forMs / 1000)} s: ${err.message}`
      log.error({ instance: config.instanceId, allocator: config.allocator?.toString() }, `${reason}; stopping`)
      disownedSaid = true
      disowned.resolve(reason)
    }
  }

  const drain = async (reason: string): Promise<void> => {
    if (draining) {
      return
    }
    draining = true
    log.info({ reason, inFlight }, 'draining: no longer providing the service topic')
    await node.discovery.stopProviding(topic).catch((err: Error) => { log.warn({ err: err.message }, 'stopProviding failed') })
  }

  // ends as a stop begins
  const checkInReady = async (): Promise<void> => {
    const until = stopBegun.signal
    await waitForPort(config.servicePort, until)
    if (config.allocator == null) {
      return
    }
    for (let retryMs = CHECKIN_RETRY_MS; ; retryMs = Math.min(retryMs * 2, CHECKIN_RETRY_MAX_MS)) {
      try {
        const response = await checkIn(CheckIn.Kind.READY, until)
        checkedInOrNot()
        if (response.drain) {
          await drain('the allocator asked')
        }
        return
      } catch (err) {
        until.throwIfAborted()
        checkedInOrNot(err as Error)
        log.warn({ err: (err as Error).message, retryInMs: retryMs }, 'check-in failed; trying again')
        await sleep(retryMs, undefined, { signal: until })
      }
    }
  }
  const ready = checkInReady()
  ready.then(() => {
    log.info({ addrs: addrs(), service: config.service, instance: config.instanceId }, config.allocator == null ? 'serving (no --allocator to check in with)' : 'checked in')
  }, (err: Error) => {
    if (!stopBegun.signal.aborted) {
      log.error({ err: err.message }, 'never checked in')
    }
  })

  // providing takes a DHT round (about a second): the allocator already gave the caller our addresses
  const provide = (async () => {
    await ready
    if (!draining) {
      await node.discovery.provide(topic, { signal })
      // a drain meanwhile ended the provide early
      if (!draining) {
        log.info({ topic }, 'providing the service topic')
      }
    }
  })()
  provide.catch((err: Error) => {
    if (!stopBegun.signal.aborted) {
      log.warn({ err: err.message, topic }, 'providing the service topic failed; the periodic reprovide will try again')
    }
  })

  // stats once checked in, one report at a time: ticks while the allocator is away are skipped,
  // not queued up to reach it all at once when it is back
  const interval = config.statsIntervalMs ?? DEFAULT_STATS_INTERVAL_MS
  let checkedIn = false
  ready.then(() => { checkedIn = true }, () => {})
  let reporting = false
  // the allocator restarted the service, and hands this instance out again only once this sidecar
  // checks in ready again: as at start, once the service accepts connections; one wait at a time
  let readyingAgain: Promise<void> | undefined
  const readyAgain = (): void => {
    // a draining sidecar says ready no more: the allocator takes a Ready as the end of a drain, and
    // would hand out again an instance that a stop under way refuses new streams for
    if (readyingAgain != null || draining) {
      return
    }
    log.info({ port: config.servicePort }, 'the allocator restarted the service: checking in ready once it accepts connections')
    readyingAgain = checkInReady().then(() => {
      log.info({ service: config.service, instance: config.instanceId }, 'checked in again')
    }, (err: Error) => {
      if (!stopBegun.signal.aborted) {
        log.warn({ err: err.message }, 'checking in again failed')
      }
    }).finally(() => { readyingAgain = undefined })
  }
  const stats = setInterval(() => {
    if (!checkedIn || reporting) {
      return
    }
    reporting = true
    checkIn(CheckIn.Kind.STATS).then(async (response) => {
      checkedInOrNot()
      if (response.awaitService) {
        readyAgain()
      }
      if (response.drain) {
        await drain('the allocator asked')
      }
    }).catch((err: Error) => {
      if (!signal.aborted) {
        checkedInOrNot(err)
        log.debug({ err: err.message }, 'stats check-in failed')
      }
    }).finally(() => { reporting = false })
  }, interval)
  stats.unref()

  let stopping: Promise<void> | undefined
  // the end of the grace: the shortest any stop gave, from when it was called
  const graceOver = new AbortController()
  let graceEndsAt = Infinity
  let graceTimer: NodeJS.Timeout | undefined
  const endGraceWithin = (graceMs: number): void => {
    if (performance.now() + graceMs < graceEndsAt) {
      graceEndsAt = performance.now() + graceMs
      clearTimeout(graceTimer)
      graceTimer = setTimeout(() => { graceOver.abort() }, graceMs)
      // the streams in flight keep the process alive, not a stop called again once it ended
      graceTimer.unref()
    }
  }
  return {
    node,
    ...(client == null ? {} : { client }),
    ready,
    inFlight: () => inFlight,
    drain,
    disowned: disowned.promise,
    stop: async (graceMs = DRAIN_GRACE_MS) => {
      endGraceWithin(graceMs)
      stopping ??= (async () => {
        stopBegun.abort(new Error('the sidecar is stopping'))
        await drain('stopping')
        // told at once rather than at the next stats: it hands this instance out no more meanwhile
        const told = checkedIn
          ? checkIn(CheckIn.Kind.STATS).then(() => {}, (err: Error) => { log.debug({ err: err.message }, 'the check-in saying it drains failed') })
          : undefined
        // new streams are refused from now on: a client proxy sends their requests elsewhere, as
        // nothing reached this instance; the streams open finish, within the grace time
        await node.libp2p.unhandle(HTTP_PROTOCOL).catch(() => {})
        if (inFlight > 0) {
          await raceSignal(new Promise<void>(resolve => { idleWaiters.add(resolve) }), graceOver.signal).catch(() => {})
        }
        // and awaited, within the grace: the abort below would cut it off, and with nothing in
        // flight that came before it reached the allocator
        if (told != null) {
          await raceSignal(told, graceOver.signal).catch(() => {})
        }
        clearTimeout(graceTimer)
        // reset, not ended: a client proxy would take an answer without a length, cut off, for
        // the whole of it
        for (const stream of served) {
          stream.abort(new Error('The sidecar stopped before the stream ended'))
        }
        clearInterval(stats)
        controller.abort()
        await client?.stop()
        await node.stop()
      })()
      await stopping
    }
  }
}

/**
 * One attempt at a connection to 127.0.0.1:<port>: the socket, or why it failed (its socket
 * destroyed): the signal's reason when it aborted first, ServiceConnectTimeout after
 * SERVICE_CONNECT_TIMEOUT_MS. A service whose accept queue is full (it hangs) leaves a connect
 * neither done nor failed for about two minutes, as the kernel sends the SYN again and again.
 */
async function tryConnect (port: number, signal: AbortSignal): Promise<Socket | Error> {
  if (signal.aborted) {
    return abortReason(signal)
  }
  // half-open allowed: a service that answered and ended its side may still read the rest of an upload
  const socket = connect({ host: '127.0.0.1', port, noDelay: true, allowHalfOpen: true })
  return await new Promise<Socket | Error>(resolve => {
    const settled = (): void => {
      clearTimeout(timer)
      signal.removeEventListener('abort', aborted)
      socket.off('error', failed)
    }
    const failed = (err: Error): void => {
      settled()
      socket.destroy()
      resolve(err)
    }
    const aborted = (): void => { failed(abortReason(signal)) }
    const timer = setTimeout(() => {
      failed(new ServiceConnectTimeout(`The service accepted no connection on port ${port} within ${SERVICE_CONNECT_TIMEOUT_MS} ms: it hangs, or its accept queue is full`))
    }, SERVICE_CONNECT_TIMEOUT_MS)
    signal.addEventListener('abort', aborted, { once: true })
    socket.once('error', failed)
    socket.once('connect', () => {
      settled()
      resolve(socket)
    })
  })
}

function abortReason (signal: AbortSignal): Error {
  return signal.reason instanceof Error ? signal.reason : new Error(String(signal.reason))
}

/** A connection to the service neither accepted nor refused in time: the service is at fault. */
class ServiceConnectTimeout extends Error {
  static override name = 'ServiceConnectTimeout'
  override name = 'ServiceConnectTimeout'
}

/** Why a stream got no connection to its service other than the service's own failure: not the service's fault. */
class ServiceWaitEnded extends Error {
  static override name = 'ServiceWaitEnded'
  override name = 'ServiceWaitEnded'
}

/**
 * Waits for the service's port to accept connections again, for every stream that found it
 * refusing them (the service is restarting): one poll every SERVICE_POLL_INTERVAL_MS for all of
 * them, not one each (250 streams polling on their own took 80% of a core from the service
 * starting up), and none once no stream waits.
 */
class ServicePort {
  readonly port: number
  readonly #stopping: AbortSignal
  #waiters = 0
  #back?: Promise<void>

  constructor (port: number, stopping: AbortSignal) {
    this.port = port
    this.#stopping = stopping
  }

  /** Resolves once the port accepts a connection, or rejects when `signal` aborts first. */
  async back (signal: AbortSignal): Promise<void> {
    this.#waiters++
    try {
      this.#back ??= this.#poll().finally(() => { this.#back = undefined })
      await raceSignal(this.#back, signal)
    } finally {
      this.#waiters--
    }
  }

  async #poll (): Promise<void> {
    while (this.#waiters > 0 && !this.#stopping.aborted) {
      await sleep(SERVICE_POLL_INTERVAL_MS, undefined, { signal: this.#stopping }).catch(() => {})
      const attempt = await tryConnect(this.port, this.#stopping)
      if (!(attempt instanceof Error)) {
        attempt.destroy()
        return
      }
    }
  }
}

/**
 * A connection to the service. An attempt ends when the stream closes or the sidecar stops
 * (ServiceWaitEnded), or fails after SERVICE_CONNECT_TIMEOUT_MS (a hung service). While the
 * service refuses connections (it is restarting), the stream waits for its port for up to
 * SERVICE_REFUSED_WAIT_MS; another error fails at once.
 */
async function connectToService (service: ServicePort, stream: Stream, stopping: AbortSignal): Promise<Socket> {
  // watched from the first attempt on: a client that resets its stream while that attempt hangs
  // (or is refused) leaves at once
  const closed = new AbortController()
  const onClose = (): void => { closed.abort() }
  stream.addEventListener('close', onClose)
  if (!isOpen(stream)) {
    closed.abort()
  }
  const ended = AbortSignal.any([closed.signal, stopping])
  const waitEnded = (): ServiceWaitEnded => new ServiceWaitEnded(stopping.aborted ? 'the sidecar is stopping' : 'the client left before the service accepted a connection')
  let deadline: AbortSignal | undefined
  try {
    for (;;) {
      const attempt = await tryConnect(service.port, ended)
      if (!(attempt instanceof Error)) {
        return attempt
      }
      if (ended.aborted) {
        throw waitEnded()
      }
      if ((attempt as NodeJS.ErrnoException).code !== 'ECONNREFUSED') {
        throw attempt
      }
      // refused: the stream waits, until the port is back, its time is up, it closes or the sidecar stops
      deadline ??= AbortSignal.timeout(SERVICE_REFUSED_WAIT_MS)
      try {
        await service.back(AbortSignal.any([deadline, ended]))
      } catch {
        if (ended.aborted) {
          throw waitEnded()
        }
        throw new Error(`The service refused connections on port ${service.port} for ${SERVICE_REFUSED_WAIT_MS} ms: ${attempt.message}`, { cause: attempt })
      }
    }
  } finally {
    stream.removeEventListener('close', onClose)
  }
}

/** Resolves once something accepts TCP connections on 127.0.0.1:<port>. */
async function waitForPort (port: number, signal: AbortSignal): Promise<void> {
  for (;;) {
    signal.throwIfAborted()
    const attempt = await tryConnect(port, signal)
    if (!(attempt instanceof Error)) {
      attempt.destroy()
      return
    }
    await sleep(SERVICE_POLL_INTERVAL_MS, undefined, { signal })
  }
}
