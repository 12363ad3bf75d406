import { randomBytes } from 'node:crypto'
import { availableParallelism } from 'node:os'
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { raceSignal } from 'race-signal'
import { handleRpc, loadOrCreateIdentity, RpcFailureError } from '@physarum/p2p'
import { nameProblem, NoRegistryError } from '@physarum/registry-service'
import { ADOPT_TIMEOUT_MIN_MS, DRAIN_IN_FLIGHT_MAX_MS, HEALTH_DOCKER_TIMEOUT_MS, LABELS, MAX_AVOID_PEERS, NO_NEW_PRIVILEGES, PAUSE_FORGIVEN_MS, PORT_PICK_TRIES, RECONCILE_INTERVAL_MS, REMOVE_RETRY_MS, SERVICE_CAP_DROP, SERVICE_PIDS_LIMIT, SIDECAR_BRIDGE_PORT, SIDECAR_PIDS_LIMIT, SIDECAR_SECRETS_DIR, SILENT_SIDECAR_INTERVALS, SILENT_SIDECAR_MIN_MS, STOP_TIMEOUT_S } from './constants.ts'
import { DockerError, ImageError, SidecarImageError } from './errors.ts'
import { createAllocatorMetrics, PHASES } from './metrics.ts'
import { CheckIn, allocRpc, checkInRpc, statusRpc } from './protocol.ts'
import type { Capacity } from './protocol.ts'
import { RateLimiter } from './rate-limit.ts'
import type { ContainerEvent, DockerRuntime } from './docker.ts'
import type { ContainerInfo } from 'dockerode'
import type { AllocatorMetrics, Phase } from './metrics.ts'
import type { AllocateRequest, AllocateResponse, CheckInResponse } from './protocol.ts'
import type { PeerId } from '@libp2p/interface'
import type { Logger, PhysarumNode, PreSharedKey } from '@physarum/p2p'
import type { ServiceRecord } from '@physarum/registry-service'
import type { ContainerCreateOptions } from 'dockerode'
import type { Registry } from 'prom-client'

export interface AllocatorComponents {
  node: Pick<PhysarumNode, 'libp2p' | 'peerId' | 'multiaddrs' | 'listenAddrs'>
  runtime: DockerRuntime
  /** Where service records come from (a RegistryClient). */
  registry: { get(name: string, options?: { signal?: AbortSignal, fresh?: boolean }): Promise<ServiceRecord> }
  logger: Logger
  metricsRegistry: Registry
}

export interface RestartPolicy {
  backoffMinMs: number
  backoffMaxMs: number
  /** Most restarts of one instance within `windowMs`; one more and it is given up on. */
  maxRestarts: number
  windowMs: number
}

export interface AllocatorInit {
  /** The sidecar image (physarum/sidecar:<version>), present in the engine at start. */
  sidecarImage: string
  /**
   * Called at a cold start that finds the sidecar image gone from the engine (an operator's
   * `docker image prune -a` removes it while no instance runs): builds it again, or throws a
   * SidecarImageError that says what to do. The build ends when `signal` aborts (stop()).
   */
  restoreSidecarImage: (signal: AbortSignal) => Promise<unknown>
  /** Instances' mounted files (key, identity) live in <stateDir>/instances/<id>. */
  stateDir: string
  psk: PreSharedKey | null
  /**
   * 'host' (default): both containers on the host's network. 'bridge': the sidecar on Docker's
   * bridge network, its overlay port published on a free host port, and the service in the
   * sidecar's network namespace.
   */
  networkMode?: 'host' | 'bridge'
  maxInstances: number
  /** CPU cores all instances may reserve together (0: no limit). */
  cpuBudget: number
  /** Memory in MiB all instances may reserve together (0: no limit). */
  memoryBudgetMb: number
  readyTimeoutMs: number
  idleTimeoutMs: number
  drainDelayMs: number
  statsIntervalMs: number
  restart: RestartPolicy
  rate: { perSecond: number, burst: number }
  /** What the sidecars listen on (default /ip4/0.0.0.0/tcp/0). */
  sidecarListen?: string[]
  /** What the sidecars announce instead (a forwarded port of `sidecarListen`'s fixed one). */
  sidecarAnnounce?: string[]
  /** Bootstraps handed to the sidecars besides this allocator itself. */
  bootstrap?: string[]
  /** How long an instance found at start may take to check in again before it is removed. */
  adoptTimeoutMs?: number
  /** How soon a removal the engine failed is tried again (default REMOVE_RETRY_MS). */
  removeRetryMs?: number
  /** How often the containers are checked against the instances (default RECONCILE_INTERVAL_MS). */
  reconcileIntervalMs?: number
  /** For tests: picks a port the kernel calls free (default: listen on port 0 and close). */
  freePort?: () => Promise<number>
  /**
   * A checked-in sidecar that sends no stats for this long is taken for wedged and its instance
   * removed (default: SILENT_SIDECAR_INTERVALS of its sidecar's stats intervals, at least SILENT_SIDECAR_MIN_MS).
   */
  silentSidecarMs?: number
  /** A pull that reports no progress for this long fails (default STREAM_STALL_MS). */
  pullStallMs?: number
  /** A pull that has not finished within this long fails, however it progresses. */
  pullTimeoutMs: number
  /** The sidecars' log level. */
  sidecarLogLevel?: string
  /** The registry-services trusted with the records, for this allocator and its sidecars (empty: any). */
  registryIds?: string[]
}

type InstanceState = 'starting' | 'ready' | 'adopting' | 'draining' | 'stopping'
type ContainerRole = 'service' | 'sidecar'

interface Instance {
  id: string
  service: string
  contentHash: string
  cpu: number
  memoryMb: number
  servicePort: number
  /** Where the sidecar serves the client proxy to its service (PROXY_PORT) when the record asks; 0 otherwise. */
  clientPort?: number
  sidecarPeer: string
  /**
   * How often its sidecar reports: the --stats-interval it was started with, which an instance
   * adopted after a restart keeps whatever this run's setting is.
   */
  statsIntervalMs: number
  dir: string
  serviceContainer?: string
  sidecarContainer?: string
  /** With --network-mode bridge: the host port the sidecar's overlay port is published on. */
  sidecarHostPort?: number
  /** The service container is being restarted to join its sidecar's new network namespace. */
  rejoining?: boolean
  /** The instance's containers that died and wait for `restartTimer` to start them again. */
  dead: Set<ContainerRole>
  /** Starting again the containers that died, once the timer fired. */
  restarting?: Promise<void>
  state: InstanceState
  multiaddrs: string[]
  idleMs: number
  inFlight: number
  /** When its sidecar last reported (performance.now(): a step of the host's clock moves neither). */
  statsAt: number
  /**
   * Its sidecar said it is draining (it was told to stop: a docker stop) while this run counts it
   * ready: not handed out until it checks in ready, not draining, again, after its container's restart.
   */
  sidecarDraining: boolean
  /**
   * Its service was restarted while its sidecar ran on: not handed out until the sidecar checks in
   * ready again, which it does once the service accepts connections (told so in the answers to its stats).
   */
  awaitingService: boolean
  /** When its containers were restarted (performance.now()). */
  restarts: number[]
  /** The last exit of one of its containers, for the messages of a cold start that then fails. */
  lastExit?: string
  restartTimer?: NodeJS.Timeout
  /** Gives the instance up when its restarted sidecar does not check in within the ready timeout. */
  checkInTimer?: NodeJS.Timeout
  /** The engine is being asked whether the containers of a silent sidecar's instance still run. */
  askingEngine?: boolean
  /** Gives an instance of a previous run up when its sidecar does not check in within the adoption's timeout. */
  adoptTimer?: NodeJS.Timeout
  /** Tries again to remove the containers of a stopping instance the engine did not remove. */
  removeTimer?: NodeJS.Timeout
  /** The last removal of its containers begun (it may be under way still). */
  removal?: Promise<void>
  ready: PromiseWithResolvers<void>
  checkedIn: boolean
  /** When it was last handed to a caller (performance.now(); -Infinity: never): idle since then at most. */
  handedOutAt: number
}

export interface AllocationAnswer {
  peerId: string
  multiaddrs: string[]
  instanceId: string
  phases: Record<Phase, number>
  reused: boolean
  /** The version the instance runs (its record's content hash). */
  contentHash: string
}

/** What an instance looks like from outside, for tests and /instances. */
export interface InstanceInfo {
  id: string
  service: string
  /** The version of the service it runs (the record's content hash when it started). */
  contentHash: string
  state: InstanceState
  peerId: string
  multiaddrs: string[]
  inFlight: number
  restarts: number
  /** Whether its sidecar is checked in (since its last start). */
  checkedIn: boolean
  containers: string[]
}

/** Instance ids: 6 random bytes in hex. */
const INSTANCE_ID_BYTES = 6
const INSTANCE_ID = /^[0-9a-f]{12}$/

class GaveUpError extends Error {
  static override name = 'GaveUpError'
  override name = 'GaveUpError'
}

/**
 * Starts service instances on demand and looks after them. Serves `/physarum/alloc/1.0.0`
 * (Allocate) and `/physarum/checkin/1.0.0` (the sidecars' Ready and Stats), watches the engine's
 * container events to restart what exits, drains idle instances, and on start adopts the
 * instances a previous run of this allocator (same peer id) left running.
 */
export class Allocator {
  readonly #c: AllocatorComponents
  readonly #init: AllocatorInit
  readonly #log: Logger
  readonly #metrics: AllocatorMetrics
  readonly #instances = new Map<string, Instance>()
  readonly #pending = new Map<string, Promise<AllocationAnswer>>()
  /** The sidecar image being restored, shared by the cold starts that found it gone. */
  #restoring: Promise<unknown> | undefined
  readonly #limiter: RateLimiter
  readonly #controller = new AbortController()
  #sweep?: NodeJS.Timeout
  #reconciling?: NodeJS.Timeout
  /** When the sweep last ran, and how often it should. */
  #sweptAt = 0
  #sweepMs = 0
  #stopped = false

  constructor (components: AllocatorComponents, init: AllocatorInit) {
    this.#c = components
    this.#init = init
    this.#log = components.logger
    this.#metrics = createAllocatorMetrics(components.metricsRegistry, async () => await this.engineHealth() === 'ok')
    this.#limiter = new RateLimiter(init.rate)
    this.#metrics.capacityLimit.set({ resource: 'instances' }, init.maxInstances)
    this.#metrics.capacityLimit.set({ resource: 'cpu' }, init.cpuBudget)
    this.#metrics.capacityLimit.set({ resource: 'memory_bytes' }, init.memoryBudgetMb * 1024 * 1024)
    this.#updateGauges()
  }

  get #allocatorId (): string {
    return this.#c.node.peerId.toString()
  }

  async start (): Promise<void> {
    await mkdir(join(this.#init.stateDir, 'instances'), { recursive: true, mode: 0o700 })
    // watched once the adoption knows the kept instances, from before it listed their containers
    // on: a container that dies meanwhile has its 'die' replayed to an instance that knows it,
    // not dropped (or sent before the stream opened) and seen only at the next reconcile
    const listedFrom = new Date()
    await this.#adopt()
    this.#c.runtime.watch(LABELS.allocator, this.#allocatorId, {
      onEvent: (event) => { this.#onContainerEvent(event) },
      onError: (err) => { this.#log.warn({ err: err.message }, 'Docker events') },
      onReopen: () => {
        this.#reconcile().catch((err: Error) => { this.#log.warn({ err: err.message }, 'looking for containers that died while Docker\'s events were down failed') })
      }
    }, this.#controller.signal, listedFrom)
    const libp2p = this.#c.node.libp2p
    await handleRpc(libp2p, allocRpc, async (request, { remotePeer, signal }) => ({ allocated: await this.#allocateFor(request, remotePeer, signal) }),
      { log: libp2p.logger.forComponent('physarum:alloc'), maxOutboundStreams: 8 })
    await handleRpc(libp2p, checkInRpc, async (request, { remotePeer }) => await Promise.resolve(this.#checkIn(request, remotePeer)),
      { log: libp2p.logger.forComponent('physarum:checkin'), maxOutboundStreams: 8 })
    await handleRpc(libp2p, statusRpc, async () => await Promise.resolve({ capacity: this.capacity() }),
      { log: libp2p.logger.forComponent('physarum:alloc-status'), maxOutboundStreams: 8 })
    this.#sweepMs = Math.max(50, Math.min(1_000, this.#init.idleTimeoutMs / 4, this.#init.statsIntervalMs))
    this.#sweptAt = performance.now()
    this.#sweep = setInterval(() => { this.#reapIdle() }, this.#sweepMs)
    this.#sweep.unref()
    this.#reconciling = setInterval(() => {
      this.#reconcile().catch((err: Error) => { this.#log.warn({ err: err.message }, 'checking the containers against the instances failed') })
    }, this.#init.reconcileIntervalMs ?? RECONCILE_INTERVAL_MS)
    this.#reconciling.unref()
  }

  /**
   * Stops serving; ends the cold starts under way, which remove what they made; drains and removes
   * every instance unless `keepInstances` (then a new run of this allocator adopts them, and only
   * the removals begun are finished).
   */
  async stop (options: { keepInstances?: boolean } = {}): Promise<void> {
    if (this.#stopped) {
      return
    }
    this.#stopped = true
    clearInterval(this.#sweep)
    clearInterval(this.#reconciling)
    // no restart, nor removal, begins during the stop: the process exits at its end, halfway through
    // it, and an instance kept would be left half removed or half restarted
    this.#clearTimers()
    const libp2p = this.#c.node.libp2p
    await libp2p.unhandle(allocRpc.protocol).catch(() => {})
    await libp2p.unhandle(statusRpc.protocol).catch(() => {})
    // a cold start answers no caller now: its pull and its wait for the sidecar end, and it removes
    // its containers and its folder (a copy of the key) itself, once its every step settled (a
    // removal from here could run while its files are being written). Kept instances or not: the
    // next run would adopt an instance nobody asked for, or find the folder only at its start
    this.#controller.abort()
    await Promise.allSettled(this.#pending.values())
    const keep = options.keepInstances === true
    // kept or not, an instance being removed (reaped, given up) is not left half removed: its
    // sidecar stopped and its service running on, holding its port, until the next start
    const removed = [...this.#instances.values()].filter(instance => !keep || instance.state === 'stopping')
    if (!keep) {
      for (const instance of removed) {
        // one being removed stays so: set back to draining, its removal would run a second time beside the first
        if (instance.state !== 'stopping') {
          instance.state = 'draining'
        }
      }
      // the sidecars hear "drain" with their next stats; then each finishes what is in flight
      if (removed.length > 0) {
        await new Promise(resolve => setTimeout(resolve, Math.min(this.#init.drainDelayMs, this.#init.statsIntervalMs + 200)))
      }
    }
    // a removal the engine failed is tried once more now: its timer does not outlive the stop
    await Promise.all(removed.map(async instance => { await (instance.removeTimer == null ? this.#remove(instance, 'allocator stopping') : this.#removeAgain(instance)) }))
    if (!keep) {
      // a create the engine carried out after its call had timed out left a container no instance knows
      await this.#c.runtime.list(LABELS.allocator, this.#allocatorId).then(async containers => { await this.#removeStrays(containers) })
        .catch((err: Error) => { this.#log.warn({ err: err.message }, 'looking for containers left by a cold start failed') })
    }
    // and those a restart under way at the stop set since (its wait for the sidecar's check-in)
    this.#clearTimers()
    await libp2p.unhandle(checkInRpc.protocol).catch(() => {})
  }

  /** Ends every instance's timers: none restarts, gives up or removes an instance from then on. */
  #clearTimers (): void {
    for (const instance of this.#instances.values()) {
      clearTimeout(instance.restartTimer)
      clearTimeout(instance.checkInTimer)
      clearTimeout(instance.adoptTimer)
      clearTimeout(instance.removeTimer)
    }
  }

  /** 'ok', or why the Docker engine did not answer a ping in time: nothing can be started or restarted then. */
  async engineHealth (): Promise<string> {
    return await this.#c.runtime.ping(AbortSignal.timeout(HEALTH_DOCKER_TIMEOUT_MS)).then(() => 'ok', (err: Error) => err.message)
  }

  /** The instances on this host now. */
  instances (): InstanceInfo[] {
    return [...this.#instances.values()].map(i => ({
      id: i.id,
      service: i.service,
      contentHash: i.contentHash,
      state: i.state,
      peerId: i.sidecarPeer,
      multiaddrs: i.multiaddrs,
      inFlight: i.inFlight,
      restarts: i.restarts.length,
      checkedIn: i.checkedIn,
      containers: [i.serviceContainer, i.sidecarContainer].filter((c): c is string => c != null)
    }))
  }

  async #allocateFor (request: AllocateRequest, remotePeer: PeerId, signal: AbortSignal): Promise<NonNullable<AllocateResponse['allocated']>> {
    const answer = await this.#allocate(request.service, request.avoidPeers, remotePeer.toString(), signal, request.contentHash)
    return {
      peerId: answer.peerId,
      multiaddrs: answer.multiaddrs,
      instanceId: answer.instanceId,
      reused: answer.reused,
      contentHash: answer.contentHash,
      phases: { pullMs: answer.phases.pull, createMs: answer.phases.create, startMs: answer.phases.start, readyMs: answer.phases.ready, totalMs: answer.phases.total }
    }
  }

  /**
   * A ready instance of `service` if there is one, else one cold start shared by its callers. An
   * instance whose sidecar is in `avoidPeers` (the caller found it failing: a hung service answers
   * its pings) is not answered; a new one is started beside it. `wanted` is the content hash of
   * the caller's record: when this allocator's copy names another, it reads the record again.
   * `signal` ends with the caller's deadline.
   */
  async #allocate (service: string, avoidPeers: string[], caller: string, signal: AbortSignal, wanted = ''): Promise<AllocationAnswer> {
    try {
      const problem = nameProblem(service)
      if (problem != null) {
        throw new RpcFailureError('BAD_REQUEST', `service ${problem}`)
      }
      if (avoidPeers.length > MAX_AVOID_PEERS) {
        throw new RpcFailureError('BAD_REQUEST', `at most ${MAX_AVOID_PEERS} instances to avoid, not ${avoidPeers.length}`)
      }
      const avoid = new Set(avoidPeers)
      const retryAfter = this.#limiter.take(caller)
      if (retryAfter != null) {
        throw new RpcFailureError('RATE_LIMITED', `Too many Allocate requests: try again in ${Math.ceil(retryAfter / 1000)} s`)
      }
      if (this.#stopped) {
        throw shuttingDown()
      }
      // the record says which version runs: an instance of an older one (the service was added
      // again with a new image) is not answered, and is reaped once idle. With no registry to
      // ask, any instance of the service beats none.
      let record: ServiceRecord
      let fresh = false
      try {
        record = await this.#lookup(service)
        if (wanted !== '' && record.contentHash !== wanted) {
          record = await this.#lookup(service, true)
          fresh = true
        }
      } catch (err) {
        const any = err instanceof RpcFailureError && err.code === 'UNAVAILABLE'
          ? (wanted === '' ? undefined : await this.#servingOrAdopted(service, avoid, signal, wanted)) ?? await this.#servingOrAdopted(service, avoid, signal)
          : undefined
        if (any == null) {
          throw err
        }
        this.#metrics.allocations.inc({ outcome: 'reused' })
        return this.#answer(any, zeroPhases(), true)
      }
      const running = await this.#servingOrAdopted(service, avoid, signal, record.contentHash)
      if (running != null) {
        this.#metrics.allocations.inc({ outcome: 'reused' })
        return this.#answer(running, zeroPhases(), true)
      }
      // one cold start per version: a caller of the new one does not get the old one's
      const key = `${service}\n${record.contentHash}`
      const pending = this.#pending.get(key)
      if (pending != null) {
        const answer = await pending
        this.#metrics.allocations.inc({ outcome: 'shared' })
        return { ...answer, reused: true }
      }
      // containers start from the record as the registry has it now, not from a copy. The fresh
      // read may find the current version running: this caller reuses it, shares no cold start
      let foundRunning = false
      const started = (async () => {
        const current = fresh ? record : await this.#lookup(service, true)
        const currentKey = `${service}\n${current.contentHash}`
        if (currentKey === key) {
          return await this.#coldStart(current)
        }
        // the copy named an older version: the current one may run already, or be starting, for
        // a caller that named it; the callers of the current one that come now share this cold start
        const ready = await this.#servingOrAdopted(service, avoid, this.#controller.signal, current.contentHash)
        if (ready != null) {
          foundRunning = true
          return this.#answer(ready, zeroPhases(), true)
        }
        const other = this.#pending.get(currentKey)
        if (other != null) {
          return { ...await other, reused: true }
        }
        const own = this.#coldStart(current)
        this.#pending.set(currentKey, own)
        try {
          return await own
        } finally {
          this.#pending.delete(currentKey)
        }
      })().finally(() => { this.#pending.delete(key) })
      this.#pending.set(key, started)
      const answer = await started
      this.#metrics.allocations.inc({ outcome: foundRunning ? 'reused' : answer.reused ? 'shared' : 'started' })
      return answer
    } catch (err) {
      const code = err instanceof RpcFailureError ? err.code : 'INTERNAL'
      this.#metrics.allocations.inc({ outcome: code })
      if (code !== 'RATE_LIMITED' && code !== 'BAD_REQUEST') {
        this.#log.warn({ service: typeof service === 'string' ? service.slice(0, 200) : '', caller, code, reason: (err as Error).message }, 'allocation failed')
      }
      throw err
    }
  }

  /**
   * A ready instance of `service` (of `contentHash` when given) whose sidecar checked in, whose
   * containers all run, and that the caller does not avoid.
   */
  #serving (service: string, avoid: ReadonlySet<string>, contentHash?: string): Instance | undefined {
    for (const i of this.#instances.values()) {
      if (i.service === service && i.state === 'ready' && i.checkedIn && !i.sidecarDraining && !i.awaitingService && i.dead.size === 0 && i.restarting == null &&
        !avoid.has(i.sidecarPeer) && (contentHash == null || i.contentHash === contentHash)) {
        return i
      }
    }
    return undefined
  }

  /**
   * #serving, or else an instance of the previous run (adopted at this start) that the caller
   * does not avoid, of `contentHash` when given, once its sidecar checked in. Until then it is
   * 'adopting', and a cold start meanwhile, right after a restart with --keep-instances, would
   * run a second instance beside it. The wait ends at the adoption's deadline (the instance is
   * removed then), the caller's, or this allocator's stop (one that keeps the instances leaves
   * them adopting).
   */
  async #servingOrAdopted (service: string, avoid: ReadonlySet<string>, signal: AbortSignal, contentHash?: string): Promise<Instance | undefined> {
    const ended = AbortSignal.any([signal, this.#controller.signal])
    for (;;) {
      const serving = this.#serving(service, avoid, contentHash)
      if (serving != null) {
        return serving
      }
      const adopted = [...this.#instances.values()].find(i => i.service === service && i.state === 'adopting' &&
        !avoid.has(i.sidecarPeer) && (contentHash == null || i.contentHash === contentHash))
      if (adopted == null) {
        return undefined
      }
      if (this.#stopped) {
        throw shuttingDown()
      }
      if (signal.aborted) {
        throw new RpcFailureError('TIMEOUT', `The instance of ${service} this allocator's previous run left did not check in before the caller's deadline`)
      }
      // settled by its check-in, or by its removal (the adoption's deadline passed, its sidecar
      // refused its flags): either way it is no longer adopting
      await new Promise<void>(resolve => {
        const done = (): void => {
          ended.removeEventListener('abort', done)
          resolve()
        }
        ended.addEventListener('abort', done)
        adopted.ready.promise.then(done, done)
      })
    }
  }

  #answer (instance: Instance, phases: Record<Phase, number>, reused: boolean): AllocationAnswer {
    // a caller is about to use it: not reaped as idle before its first request arrives
    instance.handedOutAt = performance.now()
    return { peerId: instance.sidecarPeer, multiaddrs: instance.multiaddrs, instanceId: instance.id, phases, reused, contentHash: instance.contentHash }
  }

  /** The service's record: the registry client's copy (refreshed behind the callers once stale), or a `fresh` read. */
  async #lookup (service: string, fresh = false): Promise<ServiceRecord> {
    try {
      // the fresh read before a cold start is one stop() waits for: it ends with the stop, not up to 10 s later
      return await this.#c.registry.get(service, fresh ? { fresh, signal: AbortSignal.any([AbortSignal.timeout(10_000), this.#controller.signal]) } : {})
    } catch (err) {
      if (this.#stopped) {
        throw shuttingDown()
      }
      if (err instanceof RpcFailureError && (err.code === 'NOT_FOUND' || err.code === 'BAD_REQUEST')) {
        throw new RpcFailureError(err.code, err.code === 'NOT_FOUND' ? `No service named ${service} is registered` : err.message)
      }
      if (err instanceof NoRegistryError) {
        throw new RpcFailureError('UNAVAILABLE', 'No registry-service is reachable from this allocator')
      }
      throw new RpcFailureError('UNAVAILABLE', `The registry did not answer for ${service}: ${(err as Error).message}`)
    }
  }

  #used (): { instances: number, cpu: number, memoryMb: number } {
    let cpu = 0
    let memoryMb = 0
    for (const instance of this.#instances.values()) {
      cpu += instance.cpu
      memoryMb += instance.memoryMb
    }
    return { instances: this.#instances.size, cpu, memoryMb }
  }

  /** Capacity in use on this host, and its limits (0: no limit). */
  capacity (): Capacity {
    const used = this.#used()
    return {
      instances: used.instances,
      maxInstances: this.#init.maxInstances,
      cpu: used.cpu,
      cpuBudget: this.#init.cpuBudget,
      memoryMb: used.memoryMb,
      memoryBudgetMb: this.#init.memoryBudgetMb
    }
  }

  #checkCapacity (record: ServiceRecord): void {
    const used = this.#used()
    const { maxInstances, cpuBudget, memoryBudgetMb } = this.#init
    if (used.instances + 1 > maxInstances) {
      throw new RpcFailureError('CAPACITY', `This host runs ${used.instances} of at most ${maxInstances} instances`)
    }
    // the engine would refuse the container's limit, after the pull
    if (record.cpu > availableParallelism()) {
      throw new RpcFailureError('CAPACITY', `${record.name} needs ${record.cpu} CPU cores; this host has ${availableParallelism()}`)
    }
    if (cpuBudget > 0 && used.cpu + record.cpu > cpuBudget + 1e-9) {
      throw new RpcFailureError('CAPACITY', `${record.name} needs ${record.cpu} CPU cores; ${round(cpuBudget - used.cpu)} of ${cpuBudget} are free`)
    }
    if (memoryBudgetMb > 0 && used.memoryMb + record.memoryMb > memoryBudgetMb) {
      throw new RpcFailureError('CAPACITY', `${record.name} needs ${record.memoryMb} MiB; ${memoryBudgetMb - used.memoryMb} of ${memoryBudgetMb} MiB are free`)
    }
  }

  async #coldStart (record: ServiceRecord): Promise<AllocationAnswer> {
    const began = performance.now()
    const service = record.name
    // stop() may have begun while the record was read: what it did not see would outlive it
    if (this.#stopped) {
      throw shuttingDown()
    }
    this.#checkCapacity(record)
    const id = randomBytes(INSTANCE_ID_BYTES).toString('hex')
    const dir = join(this.#init.stateDir, 'instances', id)
    const instance = newInstance({
      id,
      service: record.name,
      contentHash: record.contentHash,
      cpu: record.cpu,
      memoryMb: record.memoryMb,
      servicePort: 0,
      sidecarPeer: '',
      statsIntervalMs: this.#init.statsIntervalMs,
      dir,
      state: 'starting'
    })
    // reserved from here: a concurrent allocation of another service sees the capacity taken
    this.#instances.set(id, instance)
    this.#updateGauges()
    const phases = zeroPhases()
    try {
      const bridge = this.#init.networkMode === 'bridge'
      let mark = performance.now()
      // every step settles before a failure is thrown: #remove must not delete the instance's folder
      // while its secrets are still being written into it (they would come back, owned by nobody)
      const steps = await Promise.allSettled([
        this.#ensureImage(record.image),
        this.#ensureSidecarImage(),
        this.#reservePorts(instance, record.proxyClientMode, bridge),
        this.#prepareSecrets(instance)
      ])
      for (const step of steps) {
        if (step.status === 'rejected') {
          throw step.reason
        }
      }
      phases.pull = performance.now() - mark

      const { runtime } = this.#c
      mark = performance.now()
      let serviceId: string
      let sidecarId: string
      if (bridge) {
        // the service joins the sidecar's network namespace, so the sidecar comes first
        sidecarId = await runtime.create(this.#sidecarContainer(instance))
        instance.sidecarContainer = sidecarId
        serviceId = await runtime.create(this.#serviceContainer(instance, record))
        instance.serviceContainer = serviceId
      } else {
        const [serviceCreated, sidecarCreated] = await Promise.allSettled([
          runtime.create(this.#serviceContainer(instance, record)),
          runtime.create(this.#sidecarContainer(instance))
        ])
        // the container created is kept when the other failed, for #remove to remove it
        if (serviceCreated.status === 'fulfilled') {
          instance.serviceContainer = serviceCreated.value
        }
        if (sidecarCreated.status === 'fulfilled') {
          instance.sidecarContainer = sidecarCreated.value
        }
        if (serviceCreated.status === 'rejected') {
          throw serviceCreated.reason
        }
        if (sidecarCreated.status === 'rejected') {
          throw sidecarCreated.reason
        }
        serviceId = serviceCreated.value
        sidecarId = sidecarCreated.value
      }
      phases.create = performance.now() - mark

      mark = performance.now()
      if (bridge) {
        await runtime.start(sidecarId)
        await runtime.start(serviceId)
      } else {
        await Promise.all([runtime.start(serviceId), runtime.start(sidecarId)])
      }
      phases.start = performance.now() - mark

      mark = performance.now()
      await this.#waitReady(instance)
      // stop() ends the cold starts, also one whose sidecar checked in as it began: none may be
      // handed to a caller; nor one given up meanwhile (its sidecar died at once)
      if (this.#stopped || instance.state !== 'starting') {
        throw this.#stopped ? shuttingDown() : new RpcFailureError('UNAVAILABLE', `The instance of ${service} was given up as it checked in`)
      }
      phases.ready = performance.now() - mark
      phases.total = performance.now() - began
      instance.state = 'ready'
      this.#updateGauges()
      for (const phase of PHASES) {
        this.#metrics.coldStart.observe({ phase }, phases[phase] / 1000)
      }
      this.#log.info({ event: 'allocation', service, instance: id, peerId: instance.sidecarPeer, phasesMs: roundPhases(phases) }, 'instance ready')
      return this.#answer(instance, roundPhases(phases), false)
    } catch (err) {
      // never handed out, it has no request to finish: its containers are killed, not stopped, or
      // a service that ignores SIGTERM (node as PID 1) would hold the caller's answer 10 s longer
      // per container, past its deadline after a long pull and ready timeout
      await this.#remove(instance, `allocation failed: ${(err as Error).message}`, { kill: true })
      if (err instanceof RpcFailureError) {
        throw err
      }
      if (err instanceof ImageError) {
        throw new RpcFailureError('IMAGE', err.message)
      }
      if (err instanceof GaveUpError || err instanceof SidecarImageError) {
        throw new RpcFailureError('INTERNAL', err.message)
      }
      if (err instanceof DockerError) {
        throw new RpcFailureError('INTERNAL', err.message)
      }
      throw err
    }
  }

  async #ensureImage (image: string): Promise<void> {
    if (await this.#c.runtime.hasImage(image)) {
      return
    }
    this.#log.info({ image }, 'pulling')
    const signal = this.#controller.signal
    await this.#c.runtime.pull(image, { signal, timeoutMs: this.#init.pullTimeoutMs, ...(this.#init.pullStallMs == null ? {} : { stallMs: this.#init.pullStallMs }) }).catch((err: unknown) => {
      // stop() ended it: the image is not to blame
      throw signal.aborted ? shuttingDown() : err
    })
  }

  async #ensureSidecarImage (): Promise<void> {
    if (await this.#c.runtime.hasImage(this.#init.sidecarImage)) {
      return
    }
    const signal = this.#controller.signal
    this.#restoring ??= (async () => {
      this.#log.warn({ image: this.#init.sidecarImage }, 'the sidecar image is gone from the engine: restoring it')
      await this.#init.restoreSidecarImage(signal)
    })().finally(() => { this.#restoring = undefined })
    await this.#restoring.catch((err: unknown) => {
      // stop() ended the build: the sidecar image is not to blame
      throw signal.aborted ? shuttingDown() : err
    })
  }

  /**
   * Picks the instance's ports and holds them at once in its record: nothing else holds a port
   * until the service binds it, after the pull, and the kernel hands recently freed ports out
   * again, so a port another instance of this allocator holds is picked anew.
   */
  async #reservePorts (instance: Instance, clientPort: boolean, bridge: boolean): Promise<void> {
    const pick = async (): Promise<number> => {
      for (let tries = 0; tries < PORT_PICK_TRIES; tries++) {
        let port: number
        try {
          port = await (this.#init.freePort ?? freePort)()
        } catch (err) {
          // the kernel refused (EMFILE: out of file descriptors): the caller learns why, not just that the allocator failed
          throw new RpcFailureError('INTERNAL', `Asking the kernel for a free port for the instance failed: ${(err as Error).message}`)
        }
        const held = [...this.#instances.values()].some(other => [other.servicePort, other.clientPort, other.sidecarHostPort].includes(port))
        if (!held) {
          return port
        }
      }
      throw new RpcFailureError('INTERNAL', `No free port that no instance holds in ${PORT_PICK_TRIES} tries`)
    }
    instance.servicePort = await pick()
    instance.clientPort = clientPort ? await pick() : 0
    instance.sidecarHostPort = bridge ? await pick() : 0
  }

  async #prepareSecrets (instance: Instance): Promise<void> {
    try {
      await mkdir(instance.dir, { recursive: true, mode: 0o700 })
      const key = await loadOrCreateIdentity(join(instance.dir, 'identity.key'))
      instance.sidecarPeer = peerIdFromPrivateKey(key).toString()
      if (this.#init.psk != null) {
        await writeFile(join(instance.dir, 'swarm.key'), this.#init.psk.toSwarmKey(), { mode: 0o600 })
      }
    } catch (err) {
      // a full disk or a state folder it may not write: the caller learns that much, not just
      // that the allocator failed
      throw new RpcFailureError('INTERNAL', `Writing the instance's files under ${this.#init.stateDir} failed: ${(err as Error).message}`)
    }
  }

  #labels (instance: Instance, role: 'service' | 'sidecar'): Record<string, string> {
    return {
      [LABELS.allocator]: this.#allocatorId,
      [LABELS.service]: instance.service,
      [LABELS.instance]: instance.id,
      [LABELS.role]: role,
      [LABELS.sidecarPeer]: instance.sidecarPeer,
      // the ports it holds: the next run, adopting it after a restart, hands none of them out again
      [LABELS.servicePort]: String(instance.servicePort),
      [LABELS.clientPort]: String(instance.clientPort ?? 0),
      [LABELS.sidecarHostPort]: String(instance.sidecarHostPort ?? 0),
      [LABELS.cpu]: String(instance.cpu),
      [LABELS.memoryMb]: String(instance.memoryMb),
      [LABELS.contentHash]: instance.contentHash,
      // the next run waits for the sidecar's check-in as long as this interval calls for
      [LABELS.statsIntervalMs]: String(instance.statsIntervalMs)
    }
  }

  #containerName (instance: Instance, role: string): string {
    return `physarum-${instance.service.replace(/[^a-zA-Z0-9_.-]/g, '-')}-${instance.id}-${role}`
  }

  #serviceContainer (instance: Instance, record: ServiceRecord): ContainerCreateOptions {
    return {
      name: this.#containerName(instance, 'service'),
      Image: record.image,
      Env: [
        `SERVICE_PORT=${instance.servicePort}`, `PHYSARUM_SERVICE=${record.name}`, `PHYSARUM_INSTANCE=${instance.id}`,
        ...(instance.clientPort == null || instance.clientPort === 0 ? [] : [`PROXY_PORT=${instance.clientPort}`])
      ],
      Labels: this.#labels(instance, 'service'),
      HostConfig: {
        NetworkMode: this.#init.networkMode === 'bridge' ? `container:${instance.sidecarContainer ?? ''}` : 'host',
        ...(record.cpu > 0 ? { NanoCpus: Math.round(record.cpu * 1e9) } : {}),
        ...(record.memoryMb > 0 ? { Memory: record.memoryMb * 1024 * 1024 } : {}),
        PidsLimit: SERVICE_PIDS_LIMIT,
        CapDrop: SERVICE_CAP_DROP,
        SecurityOpt: [NO_NEW_PRIVILEGES]
      }
    }
  }

  /**
   * Where a sidecar on this host reaches the allocator: a listen address, never an announced one;
   * loopback with host networking, any other address from a bridge network.
   */
  #allocatorAddr (): string {
    const addrs = this.#c.node.listenAddrs().map(String)
    const loopback = (addr: string): boolean => addr.startsWith('/ip4/127.') || addr.startsWith('/ip6/::1/')
    return (this.#init.networkMode === 'bridge' ? addrs.find(a => !loopback(a)) : addrs.find(loopback)) ?? addrs[0] ?? ''
  }

  /** With bridge networking: the sidecar's published port at every address the allocator announces. */
  #publishedAddrs (hostPort: number): string[] {
    const addrs = new Set<string>()
    for (const addr of this.#c.node.multiaddrs()) {
      const host = addr.getComponents().find(c => c.name === 'ip4' || c.name === 'ip6' || c.name === 'dns4' || c.name === 'dns6' || c.name === 'dns')
      if (host != null) {
        addrs.add(`/${host.name}/${host.value ?? ''}/tcp/${hostPort}`)
      }
    }
    return [...addrs]
  }

  #sidecarContainer (instance: Instance): ContainerCreateOptions {
    const own = this.#allocatorAddr()
    const args = [
      '--service', instance.service,
      '--content-hash', instance.contentHash,
      '--service-port', String(instance.servicePort),
      '--allocator', own,
      '--instance', instance.id,
      '--identity', `${SIDECAR_SECRETS_DIR}/identity.key`,
      ...(this.#init.psk == null ? ['--no-psk'] : ['--swarm-key', `${SIDECAR_SECRETS_DIR}/swarm.key`]),
      '--stats-interval', `${instance.statsIntervalMs}ms`,
      '--log-level', this.#init.sidecarLogLevel ?? 'info',
      ...(instance.clientPort == null || instance.clientPort === 0 ? [] : ['--client-port', String(instance.clientPort)]),
      ...(this.#init.registryIds ?? []).flatMap(id => ['--registry-id', id])
    ]
    const bridge = this.#init.networkMode === 'bridge'
    const listen = bridge ? [`/ip4/0.0.0.0/tcp/${SIDECAR_BRIDGE_PORT}`] : this.#init.sidecarListen ?? ['/ip4/0.0.0.0/tcp/0']
    const announce = bridge ? this.#publishedAddrs(instance.sidecarHostPort ?? 0) : this.#init.sidecarAnnounce ?? []
    for (const addr of listen) {
      args.push('--listen', addr)
    }
    for (const addr of announce) {
      args.push('--announce', addr)
    }
    for (const addr of [own, ...(this.#init.bootstrap ?? [])]) {
      args.push('--bootstrap', addr)
    }
    return {
      name: this.#containerName(instance, 'sidecar'),
      Image: this.#init.sidecarImage,
      Cmd: args,
      // the allocator's own user, which owns the mounted key files (mode 0600): the sidecar reads
      // them with no capability, and it needs none else (its ports are above 1024), nor to write
      User: `${process.getuid?.() ?? 0}:${process.getgid?.() ?? 0}`,
      Labels: this.#labels(instance, 'sidecar'),
      ...(bridge ? { ExposedPorts: { [`${SIDECAR_BRIDGE_PORT}/tcp`]: {} } } : {}),
      HostConfig: {
        NetworkMode: bridge ? 'bridge' : 'host',
        ...(bridge ? { PortBindings: { [`${SIDECAR_BRIDGE_PORT}/tcp`]: [{ HostPort: String(instance.sidecarHostPort) }] } } : {}),
        Binds: [`${instance.dir}:${SIDECAR_SECRETS_DIR}:ro`],
        PidsLimit: SIDECAR_PIDS_LIMIT,
        CapDrop: ['ALL'],
        SecurityOpt: [NO_NEW_PRIVILEGES],
        ReadonlyRootfs: true
      }
    }
  }

  /** Until the instance's sidecar checked in; cut by the ready timeout, and by stop(). */
  async #waitReady (instance: Instance): Promise<void> {
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => {
        const exited = instance.lastExit == null ? '' : ` (${instance.lastExit}, ${instance.restarts.length} restart(s))`
        reject(new RpcFailureError('TIMEOUT', `The instance of ${instance.service} did not check in within ${this.#init.readyTimeoutMs} ms${exited}`))
      }, this.#init.readyTimeoutMs)
    })
    try {
      await raceSignal(Promise.race([instance.ready.promise, timeout]), this.#controller.signal, {
        translateError: shuttingDown
      })
    } finally {
      clearTimeout(timer)
    }
  }

  #checkIn (request: CheckIn, remotePeer: PeerId): CheckInResponse {
    const instance = this.#instances.get(request.instanceId)
    if (instance == null) {
      throw new RpcFailureError('NOT_FOUND', `No instance ${request.instanceId} here`)
    }
    if (remotePeer.toString() !== instance.sidecarPeer) {
      throw new RpcFailureError('UNAUTHORIZED', `Instance ${request.instanceId} has another sidecar`)
    }
    const adopted = instance.state === 'adopting'
    instance.multiaddrs = request.multiaddrs
    // a sidecar whose clock stepped back sent a negative idle time, which the uint64 wrapped
    instance.idleMs = request.idleMs >= 2n ** 63n ? 0 : Number(request.idleMs)
    instance.inFlight = request.inFlight
    instance.statsAt = performance.now()
    // a Ready ends a drain only when it says so: an older sidecar stopped while it was still
    // trying its Ready sends it draining, and would be handed out as its stop refuses new streams
    instance.sidecarDraining = request.draining
    if (request.kind === CheckIn.Kind.READY) {
      instance.awaitingService = false
    }
    // nor does it end a cold start: its caller would get an instance being stopped; the
    // container's restart checks in ready again, or the ready timeout ends the wait
    if (instance.state === 'starting' && request.draining) {
      return { drain: false, awaitService: false }
    }
    if (!instance.checkedIn || request.kind === CheckIn.Kind.READY) {
      instance.checkedIn = true
      if (instance.state === 'adopting') {
        instance.state = 'ready'
        this.#log.info({ event: 'adoption', service: instance.service, instance: instance.id }, 'adopted an instance of a previous run')
        this.#updateGauges()
      }
      instance.ready.resolve()
    }
    // drained by an earlier run of this allocator (it stopped providing its topic): handed out
    // again, it would never be found through the DHT; it goes as it was going. (A sidecar of this
    // run drains on SIGTERM, a docker stop: its container's 'die' then restarts it.)
    if (request.draining && adopted) {
      void this.#drain(instance, 'drained before a restart')
    }
    return { drain: instance.state === 'draining' || instance.state === 'stopping', awaitService: instance.awaitingService }
  }

  #reapIdle (): void {
    const now = performance.now()
    // this process did not run for a while (suspended, its event loop blocked): the stats it did
    // not take meanwhile were not the sidecars' silence
    const pausedMs = now - this.#sweptAt - this.#sweepMs
    this.#sweptAt = now
    if (pausedMs > PAUSE_FORGIVEN_MS) {
      this.#log.warn({ pausedMs }, 'this allocator did not run for a while: the sidecars\' stats are counted from now')
      for (const instance of this.#instances.values()) {
        // not past now: a report taken after the pause, before this sweep, was no silence to forgive
        instance.statsAt = Math.min(instance.statsAt + pausedMs, now)
      }
    }
    for (const instance of this.#instances.values()) {
      if (instance.state !== 'ready' || !instance.checkedIn) {
        continue
      }
      // its running containers send no 'die': without this, one whose last report had a request
      // in flight would never be idle, and would be handed out for good. Counted in its own
      // sidecar's intervals: one adopted after a restart may report less often than this run's
      const silentAfterMs = this.#init.silentSidecarMs ?? Math.max(SILENT_SIDECAR_MIN_MS, SILENT_SIDECAR_INTERVALS * instance.statsIntervalMs)
      const silentMs = now - instance.statsAt
      if (silentMs >= silentAfterMs) {
        void this.#judgeSilence(instance, silentAfterMs)
        continue
      }
      if (instance.inFlight > 0) {
        continue
      }
      // the sidecar's idle time, unless a caller was handed the instance since
      const idle = Math.min(instance.idleMs + (now - instance.statsAt), now - instance.handedOutAt)
      if (idle >= this.#init.idleTimeoutMs) {
        void this.#drain(instance, 'idle', idle)
      }
    }
  }

  /**
   * A sidecar silent for `silentAfterMs` is wedged only if its containers still run: ones that
   * exited while Docker's events were down sent no 'die', and are restarted as if it had come
   * (the reconcile that would find them runs a minute apart at most, later than this). An engine
   * that does not answer leaves the verdict to a later sweep.
   */
  async #judgeSilence (instance: Instance, silentAfterMs: number): Promise<void> {
    if (instance.askingEngine === true) {
      return
    }
    instance.askingEngine = true
    const ids = [instance.sidecarContainer, instance.serviceContainer].filter((id): id is string => id != null)
    let running: boolean[]
    try {
      running = await Promise.all(ids.map(async id => await this.#c.runtime.running(id)))
    } catch (err) {
      this.#log.warn({ service: instance.service, instance: instance.id, err: (err as Error).message }, 'a sidecar is silent, and the engine did not say whether its containers run: asking again later')
      return
    } finally {
      instance.askingEngine = false
    }
    // judged on what holds now: a report, a 'die' or a removal may have come while the engine was asked
    const silentMs = performance.now() - instance.statsAt
    if (instance.state !== 'ready' || !instance.checkedIn || silentMs < silentAfterMs || instance.restartTimer != null || instance.restarting != null) {
      return
    }
    const stopped = ids.filter((_id, i) => running[i] !== true)
    if (stopped.length > 0) {
      for (const id of stopped) {
        this.#log.warn({ service: instance.service, instance: instance.id, container: id.slice(0, 12) }, 'a container stopped unseen (its sidecar went silent, Docker\'s events did not tell)')
        this.#onContainerEvent({ id, action: 'die', labels: {} })
      }
      return
    }
    this.#metrics.failed.inc({ service: instance.service })
    const reason = `its sidecar sent no stats for ${Math.round(silentMs / 1000)} s: gave up`
    this.#log.error({ event: 'failure', service: instance.service, instance: instance.id, silentMs }, reason)
    void this.#remove(instance, reason)
  }

  async #drain (instance: Instance, reason: string, idleMs?: number): Promise<void> {
    instance.state = 'draining'
    this.#updateGauges()
    this.#metrics.reaps.inc({ reason })
    this.#log.info({ event: 'reap', service: instance.service, instance: instance.id, reason, idleMs }, 'draining an instance')
    await new Promise(resolve => setTimeout(resolve, this.#init.drainDelayMs).unref())
    // requests still in flight by the sidecar's latest stats finish first, for a while at most
    const until = performance.now() + DRAIN_IN_FLIGHT_MAX_MS
    if (instance.state === 'draining' && instance.inFlight > 0) {
      this.#log.info({ service: instance.service, instance: instance.id, inFlight: instance.inFlight }, 'a drained instance has requests in flight: waiting for them')
    }
    while (!this.#stopped && instance.state === 'draining' && instance.inFlight > 0 && performance.now() < until) {
      await new Promise(resolve => setTimeout(resolve, Math.min(instance.statsIntervalMs, until - performance.now())).unref())
    }
    // stop() removed it itself, or kept it (--keep-instances): a removal begun now would be cut
    // halfway by the exit, and the next run goes on draining it, as its sidecar reports
    if (this.#stopped) {
      return
    }
    await this.#remove(instance, reason)
  }

  /**
   * Stops (sidecar first, so it finishes what is in flight) and removes an instance's containers.
   * Of an instance being removed already, waits for that removal.
   */
  async #remove (instance: Instance, reason: string, options: { kill?: boolean } = {}): Promise<void> {
    if (instance.state === 'stopping') {
      await instance.removal
      return
    }
    instance.state = 'stopping'
    clearTimeout(instance.restartTimer)
    clearTimeout(instance.checkInTimer)
    instance.ready.reject(new GaveUpError(`The instance was removed: ${reason}`))
    this.#updateGauges()
    instance.removal = this.#removeContainers(instance, options.kill === true)
    await instance.removal
  }

  /** Tries again now to remove the containers of a stopping instance the engine did not remove. */
  async #removeAgain (instance: Instance): Promise<void> {
    clearTimeout(instance.removeTimer)
    instance.removeTimer = undefined
    instance.removal = this.#removeContainers(instance)
    await instance.removal
  }

  /**
   * Removes a stopping instance's containers, then its folder and its entry. When the engine fails
   * that, the instance stays, counted against the capacity, its sidecar told to drain when it
   * checks in, and the removal is tried again every `removeRetryMs`. With `kill`, the containers
   * are removed without being stopped first.
   */
  async #removeContainers (instance: Instance, kill = false): Promise<void> {
    const runtime = this.#c.runtime
    try {
      // the sidecar first, which finishes the requests in flight; then the service, which has
      // none left, gets its SIGTERM too (a forced removal would kill it, nothing flushed or closed)
      for (const id of [instance.sidecarContainer, instance.serviceContainer]) {
        if (id != null && !kill) {
          await runtime.stop(id, STOP_TIMEOUT_S).catch(() => {})
        }
      }
      await Promise.all([instance.sidecarContainer, instance.serviceContainer]
        .filter((c): c is string => c != null)
        .map(async id => { await runtime.remove(id) }))
    } catch (err) {
      // no timer outlives a stop: the next run with this identity adopts or removes what is left,
      // and an --ephemeral run has none: the operator is told which containers to remove
      if (this.#stopped) {
        const containers = [instance.sidecarContainer, instance.serviceContainer].filter(id => id != null)
        this.#log.error({ instance: instance.id, containers, err: (err as Error).message }, 'removing containers failed as the allocator stops: they are left (remove them with docker rm -f; a next run with the same identity adopts or removes them)')
        return
      }
      const retryMs = this.#init.removeRetryMs ?? REMOVE_RETRY_MS
      this.#log.error({ instance: instance.id, err: (err as Error).message, retryInMs: retryMs }, 'removing containers failed; trying again')
      instance.removeTimer = setTimeout(() => { void this.#removeAgain(instance) }, retryMs)
      instance.removeTimer.unref()
      return
    }
    await rm(instance.dir, { recursive: true, force: true }).catch(() => {})
    this.#instances.delete(instance.id)
    this.#updateGauges()
  }

  #onContainerEvent (event: ContainerEvent): void {
    // a stop under way restarts nothing (the containers it stops die too)
    if (event.action !== 'die' || this.#stopped) {
      return
    }
    const instance = [...this.#instances.values()].find(i => i.serviceContainer === event.id || i.sidecarContainer === event.id)
    if (instance == null || instance.state === 'stopping') {
      return
    }
    const role = instance.serviceContainer === event.id ? 'service' : 'sidecar'
    if (instance.state === 'draining') {
      return
    }
    if (role === 'service' && instance.rejoining === true) {
      // restarted on purpose, to join the sidecar's new network namespace
      instance.rejoining = false
      return
    }
    if (role === 'sidecar') {
      instance.checkedIn = false
    }
    instance.lastExit = `its ${role} container exited with code ${event.exitCode ?? '?'} (docker logs ${this.#containerName(instance, role)})`
    instance.dead.add(role)
    // a restart already waiting takes this container along (both die together when the engine
    // restarts): one event, one restart counted
    if (instance.restartTimer != null) {
      return
    }
    // monotonic: a step of the host's clock would otherwise forget the restarts in the window, or keep them for good
    const now = performance.now()
    instance.restarts = instance.restarts.filter(at => now - at < this.#init.restart.windowMs)
    // the sidecar exits 2 for flags or key files it refuses, which this allocator gave: no restart mends that
    const refused = role === 'sidecar' && event.exitCode === 2
    if (refused || instance.restarts.length >= this.#init.restart.maxRestarts) {
      this.#metrics.failed.inc({ service: instance.service })
      const reason = refused
        ? `its sidecar refused its configuration, flags or key files (exit code 2; docker logs ${this.#containerName(instance, role)}): gave up`
        : `its ${role} exited (code ${event.exitCode ?? '?'}) after ${instance.restarts.length} restarts within ${Math.round(this.#init.restart.windowMs / 1000)} s: gave up`
      this.#log.error({ event: 'failure', service: instance.service, instance: instance.id, container: role, exitCode: event.exitCode }, reason)
      instance.ready.reject(new GaveUpError(`The instance of ${instance.service} failed: ${reason}`))
      void this.#remove(instance, reason)
      return
    }
    const backoff = Math.min(this.#init.restart.backoffMaxMs, this.#init.restart.backoffMinMs * 2 ** instance.restarts.length)
    instance.restarts.push(now)
    this.#log.warn({ event: 'restart', service: instance.service, instance: instance.id, container: role, exitCode: event.exitCode, backoffMs: backoff, restarts: instance.restarts.length }, `the ${role} container exited: restarting it`)
    instance.restartTimer = setTimeout(() => {
      instance.restartTimer = undefined
      const roles = new Set(instance.dead)
      instance.dead.clear()
      if (instance.state === 'stopping' || instance.state === 'draining') {
        return
      }
      const restarted = this.#restart(instance, roles).catch((err: Error) => {
        this.#metrics.failed.inc({ service: instance.service })
        this.#log.error({ instance: instance.id, err: err.message }, 'restart failed')
        void this.#remove(instance, `restart failed: ${err.message}`)
      })
      instance.restarting = restarted
      void restarted.finally(() => {
        if (instance.restarting === restarted) {
          instance.restarting = undefined
        }
      })
    }, backoff)
    instance.restartTimer.unref()
  }

  /**
   * A restarted sidecar checks in once its service accepts connections again, and so does a
   * running one told its service was restarted. When that does not happen within the ready
   * timeout (the service came back but does not listen), the instance would stay 'ready' but
   * unanswerable, never idle and holding its capacity: it is given up.
   */
  #awaitCheckIn (instance: Instance): void {
    clearTimeout(instance.checkInTimer)
    instance.checkInTimer = setTimeout(() => {
      if ((instance.checkedIn && !instance.awaitingService) || instance.state !== 'ready') {
        return
      }
      // a restart is under way (the service died meanwhile): the wait starts again after it
      if (instance.restartTimer != null || instance.dead.size > 0 || instance.restarting != null) {
        this.#awaitCheckIn(instance)
        return
      }
      this.#metrics.failed.inc({ service: instance.service })
      const reason = instance.checkedIn
        ? `its service did not accept connections within ${this.#init.readyTimeoutMs} ms of its restart: gave up`
        : `its sidecar did not check in within ${this.#init.readyTimeoutMs} ms of its restart: gave up`
      this.#log.error({ event: 'failure', service: instance.service, instance: instance.id }, reason)
      void this.#remove(instance, reason)
    }, this.#init.readyTimeoutMs)
    instance.checkInTimer.unref()
  }

  /** Starts the instance's containers that died again, the sidecar first. */
  async #restart (instance: Instance, roles: Set<ContainerRole>): Promise<void> {
    const { runtime } = this.#c
    if (roles.has('sidecar') && instance.sidecarContainer != null) {
      this.#metrics.restarts.inc({ service: instance.service, container: 'sidecar' })
      await runtime.start(instance.sidecarContainer)
      this.#awaitCheckIn(instance)
      // bridge networking: a running service lost its network with the sidecar's namespace
      if (this.#init.networkMode === 'bridge' && !roles.has('service') && instance.serviceContainer != null) {
        if (await runtime.running(instance.serviceContainer)) {
          instance.rejoining = true
          await runtime.restart(instance.serviceContainer, STOP_TIMEOUT_S)
        } else {
          await runtime.start(instance.serviceContainer)
        }
      }
    }
    if (roles.has('service') && instance.serviceContainer != null) {
      this.#metrics.restarts.inc({ service: instance.service, container: 'service' })
      // a running sidecar sent its ready once, for the service before: it is told with the answer
      // to its next stats to say when this one accepts connections (a restarted one waits anyway)
      if (!roles.has('sidecar')) {
        instance.awaitingService = true
      }
      await runtime.start(instance.serviceContainer)
      if (!roles.has('sidecar')) {
        this.#awaitCheckIn(instance)
      }
    }
  }

  /**
   * Docker's events stream broke and is open again (the engine restarted, its socket closed): a
   * container that died meanwhile told nobody. Each container of a ready instance that is not
   * running now, and not being restarted already, is handled as if its 'die' had come: restarted,
   * or the instance removed. A removal that failed meanwhile is tried again now.
   */
  async #reconcile (): Promise<void> {
    // an instance whose containers changed while the engine was asked (a restart) is not judged
    const idsOf = (instance: Instance): string => `${instance.sidecarContainer ?? ''} ${instance.serviceContainer ?? ''}`
    const asked = new Map([...this.#instances.values()].map(instance => [instance, idsOf(instance)]))
    const containers = await this.#c.runtime.list(LABELS.allocator, this.#allocatorId)
    await this.#removeStrays(containers)
    for (const instance of this.#instances.values()) {
      if (instance.state === 'stopping' && instance.removeTimer != null) {
        void this.#removeAgain(instance)
      }
    }
    const running = new Set(containers.filter(container => container.State === 'running').map(container => container.Id))
    for (const instance of this.#instances.values()) {
      if (instance.state !== 'ready' || instance.restartTimer != null || instance.restarting != null || asked.get(instance) !== idsOf(instance)) {
        continue
      }
      for (const id of [instance.sidecarContainer, instance.serviceContainer]) {
        if (id != null && !running.has(id)) {
          this.#log.warn({ service: instance.service, instance: instance.id, container: id.slice(0, 12) }, 'a container stopped unseen (Docker\'s events did not tell)')
          this.#onContainerEvent({ id, action: 'die', labels: {} })
        }
      }
    }
  }

  /**
   * Removes this allocator's containers that belong to no instance it knows: those of an instance
   * whose removal failed (the engine was down, as when its events broke), or that a cold start
   * created after its instance was removed (the allocator stopping meanwhile).
   */
  async #removeStrays (containers: ContainerInfo[]): Promise<void> {
    const runtime = this.#c.runtime
    for (const container of containers) {
      const instance = container.Labels[LABELS.instance] ?? ''
      if (!this.#instances.has(instance)) {
        this.#log.warn({ instance, container: container.Id.slice(0, 12), state: container.State }, 'removing a container of no known instance')
        await runtime.remove(container.Id).catch((err: Error) => { this.#log.warn({ container: container.Id.slice(0, 12), err: err.message }, 'removing a stray container failed') })
      }
    }
  }

  /** Takes over the instances a previous run left (same allocator peer id); removes the rest. */
  async #adopt (): Promise<void> {
    const containers = await this.#c.runtime.list(LABELS.allocator, this.#allocatorId)
    const groups = new Map<string, typeof containers>()
    for (const container of containers) {
      const id = container.Labels[LABELS.instance] ?? ''
      groups.set(id, [...(groups.get(id) ?? []), container])
    }
    // an instance folder no container names is what a cold start cut short (or a container removed
    // by hand) left, a copy of the key in it: removed
    const instancesDir = join(this.#init.stateDir, 'instances')
    for (const entry of await readdir(instancesDir).catch(() => [])) {
      if (!groups.has(entry)) {
        await rm(join(instancesDir, entry), { recursive: true, force: true }).catch(() => {})
      }
    }
    for (const [id, group] of groups) {
      if (!INSTANCE_ID.test(id)) {
        // not an instance this allocator made (its label was changed or left out): its containers
        // go, and no folder is touched (an empty id would name the folder of them all)
        this.#log.info({ instance: id, containers: group.map(c => c.Id.slice(0, 12)) }, 'removing containers with no instance id of this allocator')
        await Promise.all(group.map(async c => { await this.#c.runtime.remove(c.Id).catch(() => {}) }))
        continue
      }
      const service = group.find(c => c.Labels[LABELS.role] === 'service')
      const sidecar = group.find(c => c.Labels[LABELS.role] === 'sidecar')
      const labels = (service ?? sidecar)?.Labels ?? {}
      const instance = newInstance({
        id,
        service: labels[LABELS.service] ?? '',
        contentHash: labels[LABELS.contentHash] ?? '',
        cpu: Number(labels[LABELS.cpu] ?? 0) || 0,
        memoryMb: Number(labels[LABELS.memoryMb] ?? 0) || 0,
        servicePort: Number(labels[LABELS.servicePort] ?? 0),
        // containers of an older version carry no label for these: 0, as for a port not asked for
        clientPort: Number(labels[LABELS.clientPort] ?? 0) || 0,
        sidecarHostPort: Number(labels[LABELS.sidecarHostPort] ?? 0) || 0,
        sidecarPeer: labels[LABELS.sidecarPeer] ?? '',
        // containers of an older version carry no label for it: most likely started with the current setting
        statsIntervalMs: Number(labels[LABELS.statsIntervalMs] ?? 0) || this.#init.statsIntervalMs,
        dir: join(this.#init.stateDir, 'instances', id),
        ...(service == null ? {} : { serviceContainer: service.Id }),
        ...(sidecar == null ? {} : { sidecarContainer: sidecar.Id }),
        state: 'adopting'
      })
      this.#instances.set(id, instance)
      const whole = service?.State === 'running' && sidecar?.State === 'running' && group.length === 2
      if (!whole) {
        this.#log.info({ instance: id, containers: group.map(c => `${c.Labels[LABELS.role]}:${c.State}`) }, 'removing an orphaned instance of a previous run')
        void this.#remove(instance, 'orphan of a previous run')
        continue
      }
      // its sidecar checks in with its next stats, at the interval it was started with: a shorter
      // one set since would give it up though it is healthy
      const deadline = this.#init.adoptTimeoutMs ?? Math.max(ADOPT_TIMEOUT_MIN_MS, instance.statsIntervalMs * 3)
      instance.adoptTimer = setTimeout(() => {
        if (instance.state === 'adopting') {
          this.#metrics.failed.inc({ service: instance.service })
          this.#log.info({ instance: id, service: instance.service }, 'an instance of a previous run did not check in: removing it')
          void this.#remove(instance, 'did not check in after a restart')
        }
      }, deadline)
      instance.adoptTimer.unref()
    }
    this.#updateGauges()
  }

  #updateGauges (): void {
    const { instances, capacityUsed } = this.#metrics
    instances.reset()
    for (const instance of this.#instances.values()) {
      instances.inc({ service: instance.service, state: instance.state })
    }
    const used = this.#used()
    capacityUsed.set({ resource: 'instances' }, used.instances)
    capacityUsed.set({ resource: 'cpu' }, used.cpu)
    capacityUsed.set({ resource: 'memory_bytes' }, used.memoryMb * 1024 * 1024)
  }
}

/** An instance with what it knows when it starts or is adopted: no stats, no restarts, not ready. */
function newInstance (known: Pick<Instance, 'id' | 'service' | 'contentHash' | 'cpu' | 'memoryMb' | 'servicePort' | 'clientPort' | 'sidecarHostPort' | 'sidecarPeer' | 'statsIntervalMs' | 'dir' | 'state' | 'serviceContainer' | 'sidecarContainer'>): Instance {
  const instance: Instance = { ...known, multiaddrs: [], idleMs: 0, inFlight: 0, statsAt: performance.now(), sidecarDraining: false, awaitingService: false, restarts: [], dead: new Set(), ready: Promise.withResolvers<void>(), checkedIn: false, handedOutAt: -Infinity }
  // nobody may be waiting when an instance fails before it is ready
  instance.ready.promise.catch(() => {})
  return instance
}

/** What a caller hears of a request the allocator's stop ended, or that came during it. */
function shuttingDown (): RpcFailureError {
  return new RpcFailureError('UNAVAILABLE', 'The allocator is shutting down')
}

function zeroPhases (): Record<Phase, number> {
  return { pull: 0, create: 0, start: 0, ready: 0, total: 0 }
}

function roundPhases (phases: Record<Phase, number>): Record<Phase, number> {
  return Object.fromEntries(Object.entries(phases).map(([k, v]) => [k, Math.round(v)])) as Record<Phase, number>
}

function round (n: number): number {
  return Math.round(n * 1000) / 1000
}

/** A TCP port free on every interface right now (the service listens on it with host networking). */
async function freePort (): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '0.0.0.0', resolve)
  })
  const { port } = server.address() as { port: number }
  await new Promise(resolve => server.close(resolve))
  return port
}

export { GaveUpError }
