import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { callRpc, createMetricsRegistry, loadOrCreateIdentity } from '@physarum/p2p'
import { pino } from 'pino'
import { Allocator } from '../src/allocator.ts'
import { allocate, CheckIn, checkInRpc } from '../src/client.ts'
import { LABELS } from '../src/constants.ts'
import { DockerError, ImageError, SidecarImageError } from '../src/errors.ts'
import { eventually, silentLog, startNode, stopAll, tempDir, TEST_PSK } from './helpers.ts'
import type { AllocatorInit } from '../src/allocator.ts'
import type { Allocation } from '../src/client.ts'
import type { ContainerEvent, DockerRuntime } from '../src/docker.ts'
import type { PhysarumNode } from '@physarum/p2p'
import type { Logger } from 'pino'
import type { Registry } from 'prom-client'
import type { ServiceRecord } from '@physarum/registry-service'
import type { ContainerCreateOptions } from 'dockerode'

interface StubContainer {
  Id: string
  State: string
  Labels: Record<string, string>
  options: ContainerCreateOptions
}

/**
 * A Docker engine in memory: containers are records, and starting a sidecar starts a libp2p node
 * with the identity the allocator mounted for it, which checks in as the real sidecar does. The
 * rest (allocator, caller, check-ins) is real.
 */
class StubEngine {
  readonly containers = new Map<string, StubContainer>()
  readonly sidecars: PhysarumNode[] = []
  images = new Set(['sidecar'])
  startDelayMs = 0
  stopDelayMs = 0
  /** Containers of this role fail to be created, as the engine fails them (a name taken, a bad mount). */
  failCreating?: string
  /** Containers of this role are created, but the call times out before the engine says so. */
  createTimesOut?: string
  /** Removals fail, as on an engine whose storage driver is stuck. */
  failRemoving = false
  /** Asking whether a container runs fails, as on an engine that does not answer. */
  failInspecting = false
  /** Sidecars started from now on never check in (their process wedged at start). */
  silentSidecars = false
  /** Images the engine lacks, whose pull goes on until it is aborted (a registry that trickles). */
  endlessPulls = new Set<string>()
  onEvent: (event: ContainerEvent) => void = () => {}
  #next = 0

  readonly allocatorNode: PhysarumNode

  constructor (allocatorNode: PhysarumNode) {
    this.allocatorNode = allocatorNode
  }

  async ping (): Promise<void> {}
  async hasImage (ref: string): Promise<boolean> { return await Promise.resolve(!this.endlessPulls.has(ref) && (!ref.startsWith('sidecar') || this.images.has(ref))) }
  async pull (ref: string, options: { signal?: AbortSignal }): Promise<void> {
    if (this.endlessPulls.has(ref)) {
      await new Promise((_resolve, reject) => { options.signal?.addEventListener('abort', () => { reject(new ImageError(`Pulling ${ref} failed: aborted`)) }) })
    }
  }
  async create (options: ContainerCreateOptions): Promise<string> {
    if (this.failCreating != null && options.Labels?.[LABELS.role] === this.failCreating) {
      throw new DockerError(`Creating the container ${options.name ?? ''} failed: (HTTP code 409) conflict`)
    }
    const id = String(++this.#next).padStart(64, '0')
    this.containers.set(id, { Id: id, State: 'created', Labels: options.Labels ?? {}, options })
    if (this.createTimesOut != null && options.Labels?.[LABELS.role] === this.createTimesOut) {
      throw new DockerError(`Creating the container ${options.name ?? ''} failed: the engine did not answer in time`)
    }
    return await Promise.resolve(id)
  }

  async start (id: string): Promise<void> {
    await sleep(this.startDelayMs)
    const container = this.containers.get(id)!
    container.State = 'running'
    if (container.Labels[LABELS.role] !== 'sidecar') {
      return
    }
    if (this.silentSidecars) {
      return
    }
    const dir = container.options.HostConfig!.Binds![0]!.split(':')[0]!
    const node = await startNode({ privateKey: await loadOrCreateIdentity(join(dir, 'identity.key')) })
    this.sidecars.push(node)
    await callRpc(node.libp2p, this.allocatorNode.multiaddrs()[0]!, checkInRpc, {
      kind: CheckIn.Kind.READY, instanceId: container.Labels[LABELS.instance]!, multiaddrs: node.multiaddrs().map(String), idleMs: 0n, inFlight: 0, requestsTotal: 0n, draining: false
    })
  }

  async stop (id: string): Promise<void> {
    await sleep(this.stopDelayMs)
    const container = this.containers.get(id)
    if (container != null) {
      container.State = 'exited'
    }
  }

  async restart (): Promise<void> {}
  async remove (id: string): Promise<void> {
    if (this.failRemoving) {
      throw new DockerError(`Removing the container ${id.slice(0, 12)} failed: device or resource busy`)
    }
    await Promise.resolve(this.containers.delete(id))
  }

  async running (id: string): Promise<boolean> {
    if (this.failInspecting) {
      throw new DockerError(`Inspecting the container ${id.slice(0, 12)} failed: the engine did not answer in time`)
    }
    return await Promise.resolve(this.containers.get(id)?.State === 'running')
  }

  async list (): Promise<StubContainer[]> { return await Promise.resolve([...this.containers.values()]) }
  watch (_label: string, _value: string, handlers: { onEvent: (event: ContainerEvent) => void }): void { this.onEvent = handlers.onEvent }
}

function record (name: string): ServiceRecord {
  return { name, contentHash: `hash-${name}`, image: `127.0.0.1:5000/x@sha256:${'ab'.repeat(32)}`, softRttMs: 20, hardRttMs: 100, cpu: 0, memoryMb: 0, proxyClientMode: false, createdAt: '', updatedAt: '', revision: '1' }
}

describe('allocator state against an engine in memory', { timeout: 180_000 }, () => {
  const nodes: PhysarumNode[] = []
  const dirs: Array<{ remove: () => Promise<void> }> = []
  after(async () => {
    await stopAll(nodes)
    await Promise.all(dirs.map(async dir => { await dir.remove() }))
  })

  /**
   * An allocator over the engine in memory. Its registry notes each Get's name in `lookups` when it
   * starts, and answers it after `lookupMs` with
   * `records` (default: the same record of each name, whatever the Get).
   */
  const setUp = async (init: Partial<AllocatorInit> & { lookupMs?: number, records?: (name: string, fresh: boolean) => ServiceRecord, log?: Logger } = {}): Promise<{ allocator: Allocator, engine: StubEngine, caller: PhysarumNode, stateDir: string, keepAndRestart: (changed?: Partial<AllocatorInit>) => Promise<Allocator>, lookups: string[], metrics: Registry }> => {
    const node = await startNode()
    const caller = await startNode()
    nodes.push(node, caller)
    const engine = new StubEngine(node)
    const dir = await tempDir('physarum-alloc-state')
    dirs.push(dir)
    const { lookupMs = 0, records = record, log = silentLog, ...overrides } = init
    const lookups: string[] = []
    const registries: Registry[] = []
    // a run of the allocator over this node, engine and state folder (called again: a restart,
    // with the settings `changed` since)
    const restarted = (changed: Partial<AllocatorInit> = {}): Allocator => new Allocator({
      node,
      runtime: engine as unknown as DockerRuntime,
      registry: {
        get: async (name: string, options?: { fresh?: boolean, signal?: AbortSignal }) => {
          lookups.push(name)
          await sleep(lookupMs, undefined, { signal: options?.signal })
          return records(name, options?.fresh === true)
        }
      },
      logger: log,
      metricsRegistry: registries[registries.push(createMetricsRegistry()) - 1]!
    }, {
      sidecarImage: 'sidecar',
      restoreSidecarImage: async () => { await Promise.reject(new SidecarImageError('The sidecar image sidecar (--sidecar-image) is not in the engine')) },
      stateDir: dir.path,
      psk: TEST_PSK,
      maxInstances: 10,
      cpuBudget: 0,
      memoryBudgetMb: 0,
      readyTimeoutMs: 10_000,
      pullTimeoutMs: 60_000,
      idleTimeoutMs: 60_000,
      drainDelayMs: 50,
      statsIntervalMs: 1_000,
      restart: { backoffMinMs: 1_000, backoffMaxMs: 10_000, maxRestarts: 5, windowMs: 60_000 },
      rate: { perSecond: 100, burst: 100 },
      ...overrides,
      ...changed
    })
    const allocator = restarted()
    // stops the first run, keeping its instances, and starts the next with the settings `changed` since
    const keepAndRestart = async (changed: Partial<AllocatorInit> = {}): Promise<Allocator> => {
      await allocator.stop({ keepInstances: true })
      // a restart ends the connections, and the RPC streams kept on them with the old run's handlers
      await Promise.all([caller, ...engine.sidecars].map(async peer => { await peer.libp2p.hangUp(node.peerId) }))
      const next = restarted(changed)
      await next.start()
      return next
    }
    return { allocator, engine, caller, stateDir: dir.path, keepAndRestart, lookups, metrics: registries[0]! }
  }

  /** A stats report of `sidecar`'s instance, as a sidecar sends one every stats interval. */
  const reportStats = async (engine: StubEngine, sidecar: PhysarumNode, instanceId: string): Promise<void> => {
    await callRpc(sidecar.libp2p, engine.allocatorNode.multiaddrs()[0]!, checkInRpc, {
      kind: CheckIn.Kind.STATS, instanceId, multiaddrs: sidecar.multiaddrs().map(String), idleMs: 0n, inFlight: 0, requestsTotal: 1n, draining: false
    })
  }

  it('leaves no instance folder, with its copy of the key, behind a cold start that fails at once', async () => {
    const { allocator, engine, caller, stateDir } = await setUp()
    await allocator.start()
    nodes.push(...engine.sidecars)
    engine.images.clear()
    for (let i = 0; i < 10; i++) {
      await assert.rejects(allocate(caller.libp2p, engine.allocatorNode.multiaddrs()[0]!, `svc-${i}`), { code: 'INTERNAL', message: /--sidecar-image/ })
    }
    assert.deepEqual(await readdir(join(stateDir, 'instances')), [])
    await allocator.stop()
  })

  it('leaves no instance folder behind a cold start whose port reservation fails at once, and says why', async () => {
    const { allocator, engine, caller, stateDir } = await setUp({ freePort: async () => await Promise.reject(new Error('listen EMFILE: too many open files 0.0.0.0')) })
    await allocator.start()
    for (let i = 0; i < 10; i++) {
      await assert.rejects(allocate(caller.libp2p, engine.allocatorNode.multiaddrs()[0]!, `svc-no-port-${i}`), {
        code: 'INTERNAL',
        message: /Asking the kernel for a free port for the instance failed: listen EMFILE: too many open files/
      })
      // its files were still being written when the reservation failed: they must not outlive it
      assert.deepEqual(await readdir(join(stateDir, 'instances')), [], `after cold start ${i}`)
    }
    assert.deepEqual(allocator.instances(), [])
    await allocator.stop()
  })

  it('removes the container created when its partner could not be, frees the capacity and says why', async () => {
    const { allocator, engine, caller, stateDir } = await setUp({ maxInstances: 1 })
    await allocator.start()
    const target = engine.allocatorNode.multiaddrs()[0]!
    engine.failCreating = 'sidecar'
    await assert.rejects(allocate(caller.libp2p, target, 'svc-create'), { code: 'INTERNAL', message: /Creating the container .* failed: \(HTTP code 409\) conflict/ })
    assert.deepEqual([...engine.containers.values()], [], 'the service container created beside it was left')
    assert.deepEqual(await readdir(join(stateDir, 'instances')), [])
    assert.deepEqual(allocator.instances(), [])
    // the one instance allowed is free again
    engine.failCreating = undefined
    const allocation = await allocate(caller.libp2p, target, 'svc-create')
    nodes.push(...engine.sidecars)
    assert.equal(allocation.reused, false)
    await allocator.stop()
  })

  it('picks anew a port the kernel hands out while another instance holds it', async () => {
    // the kernel gives back a port freed a moment ago: here, the first instance's
    const ports = [40_000, 40_000, 40_001]
    const { allocator, engine, caller } = await setUp({ freePort: async () => await Promise.resolve(ports.shift() ?? 40_002) })
    await allocator.start()
    const target = engine.allocatorNode.multiaddrs()[0]!
    await allocate(caller.libp2p, target, 'svc-port-a')
    await allocate(caller.libp2p, target, 'svc-port-b')
    nodes.push(...engine.sidecars)
    const servicePorts = [...engine.containers.values()].filter(c => c.Labels[LABELS.role] === 'service').map(c => c.options.Env?.find(e => e.startsWith('SERVICE_PORT=')))
    assert.deepEqual(servicePorts.sort(), ['SERVICE_PORT=40000', 'SERVICE_PORT=40001'])
    await allocator.stop()
  })

  it('hands out none of the ports an instance adopted after a restart holds', async () => {
    // the kernel hands out again the three ports of the first instance (service, client proxy, published sidecar)
    const ports = [40_100, 40_101, 40_102, 40_100, 40_101, 40_102]
    let next = 40_103
    const { allocator, engine, caller, keepAndRestart } = await setUp({
      networkMode: 'bridge',
      adoptTimeoutMs: 60_000,
      freePort: async () => await Promise.resolve(ports.shift() ?? next++),
      records: name => ({ ...record(name), proxyClientMode: true })
    })
    const target = engine.allocatorNode.multiaddrs()[0]!
    const portsOf = (instanceId: string): number[] => [...engine.containers.values()].filter(c => c.Labels[LABELS.instance] === instanceId).flatMap(c => [
      ...(c.options.Env ?? []).filter(e => /^(SERVICE|PROXY)_PORT=/.test(e)).map(e => Number(e.split('=')[1])),
      ...Object.values((c.options.HostConfig?.PortBindings ?? {}) as Record<string, Array<{ HostPort: string }>>).flat().map(binding => Number(binding.HostPort))
    ]).sort((a, b) => a - b)
    await allocator.start()
    const first = await allocate(caller.libp2p, target, 'svc-ports-a')
    nodes.push(...engine.sidecars)
    assert.deepEqual(portsOf(first.instanceId), [40_100, 40_101, 40_102])
    const adopting = await keepAndRestart()
    assert.deepEqual(adopting.instances().map(i => [i.id, i.state]), [[first.instanceId, 'adopting']])
    const second = await allocate(caller.libp2p, target, 'svc-ports-b')
    nodes.push(...engine.sidecars)
    assert.deepEqual(portsOf(second.instanceId), [40_103, 40_104, 40_105])
    await adopting.stop()
  })

  it('says so when it cannot write an instance\'s files in its state folder', async () => {
    const { allocator, engine, caller, stateDir } = await setUp()
    await allocator.start()
    // the folder of the instances is a file now, as a damaged or full state folder would fail
    await rm(join(stateDir, 'instances'), { recursive: true })
    await writeFile(join(stateDir, 'instances'), '')
    await assert.rejects(allocate(caller.libp2p, engine.allocatorNode.multiaddrs()[0]!, 'svc-no-room'), {
      code: 'INTERNAL',
      message: new RegExp(`Writing the instance's files under ${stateDir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} failed: ENOTDIR`)
    })
    assert.deepEqual(allocator.instances(), [])
    await allocator.stop()
  })

  it('removes the containers a create that timed out left, which no instance knows', async () => {
    const { allocator, engine, caller } = await setUp({ maxInstances: 1, reconcileIntervalMs: 200 })
    await allocator.start()
    engine.createTimesOut = 'sidecar'
    await assert.rejects(allocate(caller.libp2p, engine.allocatorNode.multiaddrs()[0]!, 'svc-slow-create'), { code: 'INTERNAL', message: /did not answer in time/ })
    assert.deepEqual(allocator.instances(), [])
    await eventually('the sidecar container the engine made after all to be removed', () => engine.containers.size === 0 ? true : undefined, 5_000, 20)
    await allocator.stop()
  })

  it('keeps counting an instance whose containers the engine failed to remove, and removes them once it can', async () => {
    const { allocator, engine, caller } = await setUp({ maxInstances: 1, idleTimeoutMs: 300, statsIntervalMs: 100, removeRetryMs: 300 })
    await allocator.start()
    const target = engine.allocatorNode.multiaddrs()[0]!
    await allocate(caller.libp2p, target, 'svc-stuck')
    nodes.push(...engine.sidecars)
    engine.failRemoving = true
    // reaped as idle, but its containers stay: so does its place on this host
    await eventually('the removal failed', () => allocator.instances()[0]?.state === 'stopping' ? true : undefined, 5_000, 20)
    await sleep(700)
    assert.deepEqual(allocator.instances().map(i => [i.service, i.state]), [['svc-stuck', 'stopping']])
    await assert.rejects(allocate(caller.libp2p, target, 'svc-next'), { code: 'CAPACITY' })
    engine.failRemoving = false
    await eventually('the containers removed on a later try', () => allocator.instances().length === 0 && engine.containers.size === 0 ? true : undefined, 5_000, 20)
    await allocator.stop()
  })

  it('waits at stop for the removal of an instance under way, without removing it a second time', async () => {
    const { allocator, engine, caller } = await setUp({ idleTimeoutMs: 300, statsIntervalMs: 100 })
    await allocator.start()
    await allocate(caller.libp2p, engine.allocatorNode.multiaddrs()[0]!, 'svc-reaped')
    nodes.push(...engine.sidecars)
    const stopped: string[] = []
    const stop = engine.stop.bind(engine)
    engine.stop = async (id: string) => { stopped.push(id); await stop(id) }
    // each container takes a while to stop: the stop() below comes while the reaped instance's removal is under way
    engine.stopDelayMs = 500
    await eventually('the idle instance being removed', () => allocator.instances()[0]?.state === 'stopping' ? true : undefined, 5_000, 5)
    await allocator.stop()
    assert.equal(stopped.length, new Set(stopped).size, 'a container was stopped twice')
    assert.deepEqual([allocator.instances(), [...engine.containers.values()]], [[], []], 'stop() returned before the removal was done')
  })

  it('finishes at a stop that keeps the instances the removal of one under way, and keeps the others', async () => {
    const { allocator, engine, caller, stateDir } = await setUp({ idleTimeoutMs: 300, statsIntervalMs: 100 })
    await allocator.start()
    const target = engine.allocatorNode.multiaddrs()[0]!
    const reaped = await allocate(caller.libp2p, target, 'svc-reaped-at-stop')
    nodes.push(...engine.sidecars)
    // each container takes a while to stop: the stop() below comes while the reaped instance's removal is under way
    engine.stopDelayMs = 500
    await eventually('the idle instance being removed', () => allocator.instances()[0]?.state === 'stopping' ? true : undefined, 5_000, 5)
    const kept = await allocate(caller.libp2p, target, 'svc-kept-at-stop')
    nodes.push(...engine.sidecars.filter(node => !nodes.includes(node)))
    await allocator.stop({ keepInstances: true })
    assert.deepEqual([...engine.containers.values()].map(c => c.Labels[LABELS.instance]), [kept.instanceId, kept.instanceId], `${reaped.instanceId} left half removed`)
    assert.deepEqual(await readdir(join(stateDir, 'instances')), [kept.instanceId])
  })

  it('leaves an instance it was draining alone once stopped to keep it, for the next run to go on draining', async () => {
    const { allocator, engine, caller, stateDir } = await setUp({ idleTimeoutMs: 300, statsIntervalMs: 100, drainDelayMs: 1_000 })
    await allocator.start()
    const drained = await allocate(caller.libp2p, engine.allocatorNode.multiaddrs()[0]!, 'svc-drained-at-stop')
    nodes.push(...engine.sidecars)
    await eventually('the idle instance draining', () => allocator.instances()[0]?.state === 'draining' ? true : undefined, 5_000, 5)
    await allocator.stop({ keepInstances: true })
    // past its drain delay: the process would be exiting, halfway through a removal begun now
    await sleep(1_500)
    assert.deepEqual([...engine.containers.values()].map(c => [c.Labels[LABELS.instance], c.State]), [[drained.instanceId, 'running'], [drained.instanceId, 'running']])
    assert.deepEqual(await readdir(join(stateDir, 'instances')), [drained.instanceId])
  })

  it('tries once more at stop a removal the engine failed, rather than leave its containers', async () => {
    const { allocator, engine, caller } = await setUp({ idleTimeoutMs: 300, statsIntervalMs: 100, removeRetryMs: 60_000 })
    await allocator.start()
    await allocate(caller.libp2p, engine.allocatorNode.multiaddrs()[0]!, 'svc-stuck-at-stop')
    nodes.push(...engine.sidecars)
    let refused = 0
    const remove = engine.remove.bind(engine)
    engine.remove = async (id: string) => { refused += engine.failRemoving ? 1 : 0; await remove(id) }
    engine.failRemoving = true
    await eventually('the removal failed', () => refused > 0 ? true : undefined, 5_000, 20)
    engine.failRemoving = false
    await allocator.stop()
    assert.deepEqual([allocator.instances(), [...engine.containers.values()]], [[], []])
  })

  it('names the containers whose removal the engine refused during a stop as left, not tried again', async () => {
    const lines: string[] = []
    const { allocator, engine, caller } = await setUp({ statsIntervalMs: 100, log: pino({ level: 'error' }, { write: (line: string) => { lines.push(line) } }) })
    await allocator.start()
    await allocate(caller.libp2p, engine.allocatorNode.multiaddrs()[0]!, 'svc-refused-at-stop')
    nodes.push(...engine.sidecars)
    engine.failRemoving = true
    await allocator.stop()
    engine.failRemoving = false
    assert.equal(engine.containers.size, 2)
    // named, for the operator to remove: an --ephemeral run has no next run to adopt them
    assert.deepEqual(lines.map(line => JSON.parse(line) as { msg: string, containers: string[] }).map(({ msg, containers }) => [msg, containers.toSorted()]),
      [['removing containers failed as the allocator stops: they are left (remove them with docker rm -f; a next run with the same identity adopts or removes them)', [...engine.containers.keys()].toSorted()]])
  })

  it('removes at start the folders no container names and the containers no instance id names, and nothing else', async () => {
    const { allocator, engine, stateDir } = await setUp({ adoptTimeoutMs: 60_000 })
    const allocatorId = engine.allocatorNode.peerId.toString()
    const kept = 'a1b2c3d4e5f6'
    for (const role of ['service', 'sidecar']) {
      const id = await engine.create({ Labels: { [LABELS.allocator]: allocatorId, [LABELS.instance]: kept, [LABELS.role]: role, [LABELS.service]: 'kept' } })
      engine.containers.get(id)!.State = 'running'
    }
    const unnamed = await engine.create({ Labels: { [LABELS.allocator]: allocatorId } })
    for (const folder of [kept, 'f00dfeedbeef']) {
      await mkdir(join(stateDir, 'instances', folder), { recursive: true })
      await writeFile(join(stateDir, 'instances', folder, 'swarm.key'), 'a copy of the key')
    }
    await allocator.start()
    assert.ok(existsSync(join(stateDir, 'instances', kept, 'swarm.key')), 'the folder of an instance being adopted stays')
    assert.ok(!existsSync(join(stateDir, 'instances', 'f00dfeedbeef')), 'a folder no container names goes')
    assert.ok(!engine.containers.has(unnamed), 'a container with no instance id goes')
    assert.deepEqual(allocator.instances().map(i => [i.id, i.state]), [[kept, 'adopting']])
    await allocator.stop({ keepInstances: true })
  })

  it('leaves the instances it is adopting alone once stopped to keep them', async () => {
    const { allocator, engine } = await setUp({ adoptTimeoutMs: 300 })
    const allocatorId = engine.allocatorNode.peerId.toString()
    for (const role of ['service', 'sidecar']) {
      const id = await engine.create({ Labels: { [LABELS.allocator]: allocatorId, [LABELS.instance]: 'b1c2d3e4f5a6', [LABELS.role]: role, [LABELS.service]: 'kept' } })
      engine.containers.get(id)!.State = 'running'
    }
    await allocator.start()
    assert.deepEqual(allocator.instances().map(i => i.state), ['adopting'])
    // restarted again at once: the next run adopts them, this one must not remove them meanwhile
    await allocator.stop({ keepInstances: true })
    await sleep(600)
    assert.equal(engine.containers.size, 2)
  })

  it('leaves the instances it is adopting alone during a stop that keeps them, not only after it', async () => {
    const { allocator, engine } = await setUp({ adoptTimeoutMs: 300 })
    const allocatorId = engine.allocatorNode.peerId.toString()
    for (const role of ['service', 'sidecar']) {
      const id = await engine.create({ Labels: { [LABELS.allocator]: allocatorId, [LABELS.instance]: 'd1e2f3a4b5c6', [LABELS.role]: role, [LABELS.service]: 'kept' } })
      engine.containers.get(id)!.State = 'running'
    }
    // an orphan (its sidecar gone) whose removal, slow to stop its service, the stop finishes: the
    // stop lasts past the adoption's timeout
    const orphan = await engine.create({ Labels: { [LABELS.allocator]: allocatorId, [LABELS.instance]: 'e1f2a3b4c5d6', [LABELS.role]: 'service', [LABELS.service]: 'orphan' } })
    engine.containers.get(orphan)!.State = 'running'
    engine.stopDelayMs = 1_000
    const stopped: string[] = []
    const stop = engine.stop.bind(engine)
    engine.stop = async (id: string) => { stopped.push(engine.containers.get(id)?.Labels[LABELS.instance] ?? ''); await stop(id) }
    await allocator.start()
    await allocator.stop({ keepInstances: true })
    // the process exits now: a removal begun during the stop would leave the instance half removed
    assert.deepEqual(stopped, ['e1f2a3b4c5d6'])
    assert.deepEqual([...engine.containers.values()].map(c => c.Labels[LABELS.instance]), ['d1e2f3a4b5c6', 'd1e2f3a4b5c6'])
  })

  it('removes an instance of a previous run whose sidecar died before it checked in', async () => {
    // restarted (after 100 ms) well before the adoption's timeout
    const { allocator, engine } = await setUp({ adoptTimeoutMs: 1_000, restart: { backoffMinMs: 100, backoffMaxMs: 100, maxRestarts: 5, windowMs: 60_000 } })
    engine.silentSidecars = true
    const allocatorId = engine.allocatorNode.peerId.toString()
    const ids: string[] = []
    for (const role of ['service', 'sidecar']) {
      const id = await engine.create({ Labels: { [LABELS.allocator]: allocatorId, [LABELS.instance]: 'c1d2e3f4a5b6', [LABELS.role]: role, [LABELS.service]: 'crashed' } })
      engine.containers.get(id)!.State = 'running'
      ids.push(id)
    }
    await allocator.start()
    // its sidecar dies while it is being adopted: restarted, and still never checks in
    engine.onEvent({ id: ids[1]!, action: 'die', labels: {}, exitCode: 1 })
    await eventually('the instance given up', () => allocator.instances().length === 0 ? true : undefined, 5_000, 50)
    await allocator.stop()
  })

  it('lets an instance drained before a restart go on draining when its sidecar says so, instead of handing it out', async () => {
    const { allocator, engine, caller, keepAndRestart } = await setUp({ adoptTimeoutMs: 60_000 })
    const target = engine.allocatorNode.multiaddrs()[0]!
    await allocator.start()
    const drained = await allocate(caller.libp2p, target, 'svc-drained')
    nodes.push(...engine.sidecars)
    const sidecar = engine.sidecars[0]!
    const draining = {
      kind: CheckIn.Kind.STATS, instanceId: drained.instanceId, multiaddrs: sidecar.multiaddrs().map(String), idleMs: 5_000n, inFlight: 0, requestsTotal: 1n, draining: true
    }
    // a sidecar of this run drains on its own when stopped (docker stop): its 'die' restarts it
    assert.equal((await callRpc(sidecar.libp2p, target, checkInRpc, draining)).drain, false)
    assert.deepEqual(allocator.instances().map(i => i.state), ['ready'])
    const next = await keepAndRestart()
    assert.deepEqual(next.instances().map(i => [i.id, i.state]), [[drained.instanceId, 'adopting']])
    // the sidecar reports as one the first run had asked to drain
    assert.equal((await callRpc(sidecar.libp2p, target, checkInRpc, draining)).drain, true)
    const fresh = await allocate(caller.libp2p, target, 'svc-drained')
    nodes.push(...engine.sidecars)
    assert.notEqual(fresh.instanceId, drained.instanceId)
    assert.equal(fresh.reused, false)
    await eventually('the drained instance removed', () => next.instances().some(i => i.id === drained.instanceId) ? undefined : true, 5_000, 20)
    await next.stop()
  })

  it('waits for an adopted sidecar as long as the stats interval it was started with calls for, not a shorter one set since', async () => {
    const { allocator, engine, caller, keepAndRestart } = await setUp({ statsIntervalMs: 3_000 })
    const target = engine.allocatorNode.multiaddrs()[0]!
    await allocator.start()
    const kept = await allocate(caller.libp2p, target, 'svc-slow-stats')
    nodes.push(...engine.sidecars)
    const sidecar = engine.sidecars[0]!
    // restarted with a shorter interval: the sidecar still reports every 3 s, 9 s for three reports
    const next = await keepAndRestart({ statsIntervalMs: 100 })
    // past the 5 s that would be allowed for a sidecar of this run's interval
    await sleep(6_000)
    assert.deepEqual(next.instances().map(i => [i.id, i.state]), [[kept.instanceId, 'adopting']], 'given up though its sidecar reports every 3 s')
    await reportStats(engine, sidecar, kept.instanceId)
    assert.deepEqual(next.instances().map(i => [i.id, i.state]), [[kept.instanceId, 'ready']])
    await next.stop()
  })

  it('answers an Allocate that comes before an adopted instance checked in with that instance, unless the caller avoids it', async () => {
    let registryUp = true
    const { allocator, engine, caller, keepAndRestart, lookups } = await setUp({
      adoptTimeoutMs: 60_000,
      records: name => {
        if (!registryUp) {
          throw new Error('no registry-service answers')
        }
        return record(name)
      }
    })
    const target = engine.allocatorNode.multiaddrs()[0]!
    await allocator.start()
    const services = ['svc-adopted', 'svc-adopted-avoided', 'svc-adopted-no-registry']
    const kept = new Map<string, Allocation>()
    for (const service of services) {
      kept.set(service, await allocate(caller.libp2p, target, service))
    }
    nodes.push(...engine.sidecars)
    const sidecars = [...engine.sidecars]
    const next = await keepAndRestart()
    assert.deepEqual(next.instances().map(i => i.state), ['adopting', 'adopting', 'adopting'])
    // the adopted sidecar's next stats, as it sends them once its allocator is back
    const checkIn = async (service: string): Promise<void> => {
      const { instanceId, peerId } = kept.get(service)!
      await reportStats(engine, sidecars.find(node => node.peerId.equals(peerId))!, instanceId)
    }
    const countOf = (service: string): number => next.instances().filter(i => i.service === service).length
    // an Allocate of `service`, once it reached the allocator (its record is being read)
    const askFor = async (service: string): Promise<{ answer: Promise<Allocation> }> => {
      const before = lookups.filter(name => name === service).length
      const answer = allocate(caller.libp2p, target, service)
      await eventually(`the Allocate of ${service}`, () => lookups.filter(name => name === service).length > before ? true : undefined, 5_000, 5)
      return { answer }
    }

    let settled = false
    const waiting = (await askFor('svc-adopted')).answer.finally(() => { settled = true })
    // an instance the caller avoids is not waited for: a new one starts at once
    const avoiding = await allocate(caller.libp2p, target, 'svc-adopted-avoided', { avoid: [kept.get('svc-adopted-avoided')!.peerId.toString()] })
    nodes.push(...engine.sidecars.filter(node => !nodes.includes(node)))
    assert.deepEqual([avoiding.reused, avoiding.instanceId === kept.get('svc-adopted-avoided')!.instanceId], [false, false])
    assert.deepEqual([settled, countOf('svc-adopted')], [false, 1], 'a second instance started beside the one being adopted')
    await checkIn('svc-adopted')
    const answer = await waiting
    assert.deepEqual([answer.reused, answer.instanceId], [true, kept.get('svc-adopted')!.instanceId])

    // with no registry to ask, the instance being adopted beats none
    registryUp = false
    const unlisted = (await askFor('svc-adopted-no-registry')).answer
    await checkIn('svc-adopted-no-registry')
    assert.equal((await unlisted).instanceId, kept.get('svc-adopted-no-registry')!.instanceId)
    assert.deepEqual(services.map(countOf), [1, 2, 1])
    await next.stop()
  })

  it('says why a cold start failed when its sidecar exits: no restart for flags it refuses, the exit code in a timeout', async () => {
    const { allocator, engine, caller } = await setUp({ readyTimeoutMs: 1_500, restart: { backoffMinMs: 100, backoffMaxMs: 100, maxRestarts: 5, windowMs: 60_000 } })
    const target = engine.allocatorNode.multiaddrs()[0]!
    await allocator.start()
    engine.silentSidecars = true
    const sidecarOf = async (service: string): Promise<string> => await eventually(`the sidecar of ${service}`, () =>
      [...engine.containers.values()].find(c => c.Labels[LABELS.service] === service && c.Labels[LABELS.role] === 'sidecar' && c.State === 'running')?.Id, 5_000, 10)

    const refusing = allocate(caller.libp2p, target, 'svc-refused')
    engine.onEvent({ id: await sidecarOf('svc-refused'), action: 'die', labels: {}, exitCode: 2 })
    await assert.rejects(refusing, { code: 'INTERNAL', message: /its sidecar refused its configuration, flags or key files \(exit code 2; docker logs physarum-svc-refused-\w+-sidecar\)/ })

    const crashing = allocate(caller.libp2p, target, 'svc-crashing')
    engine.onEvent({ id: await sidecarOf('svc-crashing'), action: 'die', labels: {}, exitCode: 1 })
    await assert.rejects(crashing, { code: 'TIMEOUT', message: /did not check in within 1500 ms \(its sidecar container exited with code 1 \(docker logs physarum-svc-crashing-\w+-sidecar\), 1 restart\(s\)\)/ })
    await allocator.stop()
  })

  it('lets no cold start outlive a stop() that began while its record was read', async () => {
    const { allocator, engine, caller, lookups } = await setUp({ lookupMs: 300 })
    await allocator.start()
    engine.stopDelayMs = 500
    const first = await allocate(caller.libp2p, engine.allocatorNode.multiaddrs()[0]!, 'svc-one')
    nodes.push(...engine.sidecars)
    const late = allocate(caller.libp2p, engine.allocatorNode.multiaddrs()[0]!, 'svc-two').then(() => 'answered', (err: Error & { code?: string }) => err.code)
    await eventually('the record of svc-two being read', () => lookups.includes('svc-two') ? true : undefined, 5_000, 5)
    await allocator.stop()
    assert.deepEqual(allocator.instances(), [])
    assert.deepEqual([...engine.containers.values()].map(c => c.Labels[LABELS.service]), [], `left behind, ${first.instanceId} was the first`)
    assert.equal(await late, 'UNAVAILABLE')
  })

  it('ends the cold starts under way at a stop that keeps the instances, leaving neither their folders nor their containers', async () => {
    const endless = `127.0.0.1:5000/endless@sha256:${'cd'.repeat(32)}`
    const { allocator, engine, caller, stateDir } = await setUp({ records: name => ({ ...record(name), ...(name === 'svc-pulling' ? { image: endless } : {}) }) })
    await allocator.start()
    const target = engine.allocatorNode.multiaddrs()[0]!
    engine.endlessPulls.add(endless)
    engine.silentSidecars = true
    const codeOf = async (service: string): Promise<string | undefined> => await allocate(caller.libp2p, target, service).then(() => 'answered', (err: Error & { code?: string }) => err.code)
    // one in its pull, its folder written; one whose sidecar has not checked in yet, its containers running
    const pulling = codeOf('svc-pulling')
    const waiting = codeOf('svc-waiting')
    await eventually('both cold starts under way', () => allocator.instances().length === 2 && engine.containers.size === 2 ? true : undefined, 5_000, 5)
    assert.equal((await readdir(join(stateDir, 'instances'))).length, 2)
    await allocator.stop({ keepInstances: true })
    assert.deepEqual([allocator.instances(), [...engine.containers.values()], await readdir(join(stateDir, 'instances'))], [[], [], []])
    assert.deepEqual([await pulling, await waiting], ['UNAVAILABLE', 'UNAVAILABLE'])
  })

  it('ends at a stop the fresh read of a record before a cold start, rather than wait for the registry', async () => {
    // a registry that takes 5 s to answer: each Get, the fresh one before the cold start too
    const { allocator, engine, caller, lookups } = await setUp({ lookupMs: 5_000 })
    await allocator.start()
    const late = allocate(caller.libp2p, engine.allocatorNode.multiaddrs()[0]!, 'svc-slow-registry').then(() => 'answered', (err: Error & { code?: string }) => err.code)
    await eventually('the fresh read before the cold start', () => lookups.length === 2 ? true : undefined, 15_000, 10)
    const began = performance.now()
    await allocator.stop({ keepInstances: true })
    const tookMs = performance.now() - began
    assert.ok(tookMs < 1_000, `stop() took ${Math.round(tookMs)} ms`)
    assert.equal(await late, 'UNAVAILABLE')
  })

  it('ends at a stop the build of the sidecar image a cold start found gone, rather than wait for it', async () => {
    // a build that goes on until it is ended
    const { allocator, engine, caller } = await setUp({
      restoreSidecarImage: async (signal?: AbortSignal) => {
        await new Promise((_resolve, reject) => { signal?.addEventListener('abort', () => { reject(new SidecarImageError('Building sidecar failed: aborted')) }) })
      }
    })
    await allocator.start()
    engine.images.clear()
    const late = allocate(caller.libp2p, engine.allocatorNode.multiaddrs()[0]!, 'svc-rebuilding').then(() => 'answered', (err: Error & { code?: string }) => err.code)
    await eventually('the cold start under way', () => allocator.instances().length === 1 ? true : undefined, 5_000, 5)
    await Promise.race([allocator.stop({ keepInstances: true }), sleep(2_000).then(() => { throw new Error('stop() still waits for the build after 2 s') })])
    assert.equal(await late, 'UNAVAILABLE')
    assert.deepEqual(allocator.instances(), [])
  })

  it('hands no caller an instance whose sidecar checked in while stop() drained it', async () => {
    // stop() waits 1.2 s for the sidecars to hear "drain"; the sidecar checks in meanwhile
    const { allocator, engine, caller } = await setUp({ drainDelayMs: 5_000, statsIntervalMs: 1_000 })
    await allocator.start()
    engine.startDelayMs = 300
    const late = allocate(caller.libp2p, engine.allocatorNode.multiaddrs()[0]!, 'svc-late').then(() => 'answered', (err: Error & { code?: string }) => err.code)
    await eventually('the cold start under way', () => engine.containers.size > 0 ? true : undefined, 5_000, 5)
    const stopped = allocator.stop()
    assert.equal(await late, 'UNAVAILABLE')
    assert.equal(engine.sidecars.length, 1, 'its sidecar never started')
    nodes.push(...engine.sidecars)
    await stopped
    assert.deepEqual([allocator.instances(), [...engine.containers.values()]], [[], []])
  })

  it('starts a new version once when its callers came with the old copy of the record and with the new', async () => {
    // this allocator's copy names v1; the registry has v2 since
    const { allocator, engine, caller } = await setUp({ lookupMs: 300, records: (name, fresh) => ({ ...record(name), contentHash: fresh ? 'v2' : 'v1' }) })
    await allocator.start()
    // the cold start takes a while: the second caller comes during it
    engine.startDelayMs = 500
    const target = engine.allocatorNode.multiaddrs()[0]!
    // an older proxy names no version: the copy's v1 is checked, then the cold start reads v2
    const old = allocate(caller.libp2p, target, 'svc-upgraded')
    await eventually('the cold start under way', () => engine.containers.size > 0 ? true : undefined, 5_000, 5)
    // a proxy that read the record since names v2: it reads the record again, and finds v2
    const current = allocate(caller.libp2p, target, 'svc-upgraded', { contentHash: 'v2' })
    const answers = await Promise.all([old, current])
    nodes.push(...engine.sidecars)
    assert.deepEqual(answers.map(a => a.contentHash), ['v2', 'v2'])
    assert.equal(answers[0].instanceId, answers[1].instanceId)
    assert.deepEqual(allocator.instances().map(i => i.contentHash), ['v2'])
    await allocator.stop()
  })

  it('answers a caller with the old copy of the record with the ready instance of the new version, not a second one', async () => {
    // this allocator's copy names v1; the registry has v2 since
    const { allocator, engine, caller, metrics } = await setUp({ records: (name, fresh) => ({ ...record(name), contentHash: fresh ? 'v2' : 'v1' }) })
    await allocator.start()
    const target = engine.allocatorNode.multiaddrs()[0]!
    // a proxy that read the record since names v2: v2 starts
    const current = await allocate(caller.libp2p, target, 'svc-upgraded-ready', { contentHash: 'v2' })
    // an older proxy names no version: the copy's v1 runs nowhere, and the fresh read finds v2 running
    const old = await allocate(caller.libp2p, target, 'svc-upgraded-ready')
    nodes.push(...engine.sidecars)
    assert.deepEqual([old.contentHash, old.instanceId, old.reused], ['v2', current.instanceId, true])
    assert.deepEqual(allocator.instances().map(i => i.contentHash), ['v2'])
    // the second caller reused the running instance: it shared no cold start
    const outcomes = (await metrics.getSingleMetric('physarum_alloc_allocations_total')!.get()).values.map(v => [v.labels.outcome, v.value])
    assert.deepEqual(outcomes.sort(), [['reused', 1], ['started', 1]])
    await allocator.stop()
  })

  it('counts one restart when both containers of an instance die together', async () => {
    const { allocator, engine, caller } = await setUp()
    await allocator.start()
    const allocation = await allocate(caller.libp2p, engine.allocatorNode.multiaddrs()[0]!, 'svc-both')
    nodes.push(...engine.sidecars)
    const [info] = allocator.instances()
    assert.equal(info!.id, allocation.instanceId)
    // as when the engine restarts: both die at once
    for (const id of info!.containers) {
      engine.onEvent({ id, action: 'die', labels: {}, exitCode: 137 })
    }
    assert.equal(allocator.instances()[0]!.restarts, 1)
    await allocator.stop()
  })

  it('gives up an instance that exits again within the restart window, whatever the host\'s clock does', async (t) => {
    const { allocator, engine, caller } = await setUp({ restart: { backoffMinMs: 50, backoffMaxMs: 50, maxRestarts: 1, windowMs: 60_000 } })
    await allocator.start()
    await allocate(caller.libp2p, engine.allocatorNode.multiaddrs()[0]!, 'svc-clock-step')
    nodes.push(...engine.sidecars)
    const service = [...engine.containers.values()].find(c => c.Labels[LABELS.role] === 'service')!
    engine.onEvent({ id: service.Id, action: 'die', labels: {}, exitCode: 1 })
    service.State = 'exited'
    await eventually('the service restarted once', () => service.State === 'running' ? true : undefined, 5_000, 10)
    // the clock steps two hours ahead (NTP correcting a clock that ran behind) just as it exits again
    const wall = Date.now() + 2 * 3_600_000
    const now = t.mock.method(Date, 'now', () => wall)
    engine.onEvent({ id: service.Id, action: 'die', labels: {}, exitCode: 1 })
    now.mock.restore()
    assert.deepEqual(allocator.instances().map(i => [i.state, i.restarts]), [['stopping', 1]], 'its restart of a moment ago was forgotten')
    await allocator.stop()
  })

  it('hands out an instance whose service was restarted only once its sidecar says the service listens again', async () => {
    const { allocator, engine, caller, metrics } = await setUp({ readyTimeoutMs: 2_000, restart: { backoffMinMs: 50, backoffMaxMs: 50, maxRestarts: 5, windowMs: 60_000 } })
    await allocator.start()
    const target = engine.allocatorNode.multiaddrs()[0]!
    // the service dies and is restarted; its sidecar runs on, and sent its ready long ago
    const restartService = async (service: string): Promise<{ first: Allocation, report: (kind: CheckIn.Kind) => Promise<boolean> }> => {
      const first = await allocate(caller.libp2p, target, service)
      const sidecar = engine.sidecars.at(-1)!
      nodes.push(sidecar)
      const container = [...engine.containers.values()].find(c => c.Labels[LABELS.instance] === first.instanceId && c.Labels[LABELS.role] === 'service')!
      container.State = 'exited'
      engine.onEvent({ id: container.Id, action: 'die', labels: {}, exitCode: 1 })
      await eventually(`the service of ${service} restarted`, () => container.State === 'running' ? true : undefined, 5_000, 10)
      const report = async (kind: CheckIn.Kind): Promise<boolean> => (await callRpc(sidecar.libp2p, target, checkInRpc, {
        kind, instanceId: first.instanceId, multiaddrs: sidecar.multiaddrs().map(String), idleMs: 0n, inFlight: 0, requestsTotal: 1n, draining: false
      })).awaitService
      return { first, report }
    }

    // its sidecar hears with its stats to check in ready once the service listens, and does
    const back = await restartService('svc-listens-again')
    assert.equal(await back.report(CheckIn.Kind.STATS), true)
    const meanwhile = await allocate(caller.libp2p, target, 'svc-listens-again')
    nodes.push(...engine.sidecars.filter(node => !nodes.includes(node)))
    assert.notEqual(meanwhile.instanceId, back.first.instanceId, 'handed out before its service listened again')
    assert.equal(await back.report(CheckIn.Kind.READY), false)
    const again = await allocate(caller.libp2p, target, 'svc-listens-again', { avoid: [meanwhile.peerId.toString()] })
    assert.deepEqual([again.reused, again.instanceId], [true, back.first.instanceId])

    // the sidecar of a service that never listens again never says so: given up after the ready timeout
    const never = await restartService('svc-never-listens')
    assert.equal(await never.report(CheckIn.Kind.STATS), true)
    await eventually('the instance given up', () => allocator.instances().some(i => i.id === never.first.instanceId && i.state !== 'stopping') ? undefined : true, 10_000, 50)
    const failed = (await metrics.getSingleMetric('physarum_alloc_failed_instances_total')!.get()).values.map(v => [v.labels.service, v.value])
    assert.deepEqual(failed, [['svc-never-listens', 1]])
    assert.deepEqual(allocator.instances().find(i => i.id === back.first.instanceId)?.state, 'ready')
    await allocator.stop()
  })

  it('does not reap an idle instance just handed to a caller before the first request of that caller', async () => {
    // margins of two seconds each way, a third of the idle timeout each: a loaded machine's pauses
    // do not decide it
    const { allocator, engine, caller } = await setUp({ idleTimeoutMs: 6_000, statsIntervalMs: 200 })
    await allocator.start()
    const target = engine.allocatorNode.multiaddrs()[0]!
    const started = await allocate(caller.libp2p, target, 'svc-idle')
    nodes.push(...engine.sidecars)
    await sleep(4_000)
    // idle for 4 s by its sidecar's account, of the 6 s allowed: handed out once more
    const again = await allocate(caller.libp2p, target, 'svc-idle')
    assert.deepEqual([again.reused, again.instanceId], [true, started.instanceId])
    await sleep(4_000)
    // idle for 8 s by its sidecar's account, past the 6 s (reaped, were that all that counted), and
    // 4 s since it was handed out again
    assert.deepEqual(allocator.instances().map(i => i.state), ['ready'], 'reaped before its new caller could use it')
    await allocator.stop()
  })

  it('keeps a busy instance whose sidecar reported a negative idle time, its clock stepped back', async () => {
    const { allocator, engine, caller } = await setUp({ idleTimeoutMs: 3_000, statsIntervalMs: 200 })
    await allocator.start()
    const target = engine.allocatorNode.multiaddrs()[0]!
    const { instanceId } = await allocate(caller.libp2p, target, 'svc-clock')
    const [sidecar] = engine.sidecars
    nodes.push(sidecar!)
    const stats = async (idleMs: bigint): Promise<void> => {
      await callRpc(sidecar!.libp2p, target, checkInRpc, { kind: CheckIn.Kind.STATS, instanceId, multiaddrs: [], idleMs, inFlight: 0, requestsTotal: 1n, draining: false })
    }
    // requests all along, longer than the idle timeout since it was handed out
    const until = performance.now() + 3_500
    while (performance.now() < until) {
      await stats(50n)
      await sleep(100)
    }
    // -250 ms, as BigInt(-250) goes on the wire as a uint64
    await stats(2n ** 64n - 250n)
    await sleep(600)
    assert.deepEqual(allocator.instances().map(i => i.state), ['ready'])
    await allocator.stop()
  })

  it('hands out no instance whose sidecar said it drains, until it checks in ready again', async () => {
    const { allocator, engine, caller } = await setUp()
    await allocator.start()
    const target = engine.allocatorNode.multiaddrs()[0]!
    const first = await allocate(caller.libp2p, target, 'svc-stopping')
    const [sidecar] = engine.sidecars
    nodes.push(sidecar!)
    const report = async (kind: CheckIn.Kind, draining: boolean): Promise<void> => {
      await callRpc(sidecar!.libp2p, target, checkInRpc, { kind, instanceId: first.instanceId, multiaddrs: sidecar!.multiaddrs().map(String), idleMs: 0n, inFlight: 0, requestsTotal: 1n, draining })
    }
    // a docker stop: the sidecar drains before its container dies
    await report(CheckIn.Kind.STATS, true)
    const second = await allocate(caller.libp2p, target, 'svc-stopping')
    nodes.push(...engine.sidecars)
    assert.deepEqual([second.reused, second.instanceId === first.instanceId], [false, false])
    // its container started again: its new sidecar checks in ready, and it is handed out again
    await report(CheckIn.Kind.READY, false)
    const third = await allocate(caller.libp2p, target, 'svc-stopping', { avoid: [second.peerId.toString()] })
    assert.deepEqual([third.reused, third.instanceId], [true, first.instanceId])
    await allocator.stop()
  })

  it('hands out no instance whose sidecar says it drains in a Ready (an older sidecar stopped while it retried its Ready)', async () => {
    const { allocator, engine, caller } = await setUp()
    await allocator.start()
    const target = engine.allocatorNode.multiaddrs()[0]!
    const first = await allocate(caller.libp2p, target, 'svc-ready-draining')
    const [sidecar] = engine.sidecars
    nodes.push(sidecar!)
    await callRpc(sidecar!.libp2p, target, checkInRpc, { kind: CheckIn.Kind.READY, instanceId: first.instanceId, multiaddrs: sidecar!.multiaddrs().map(String), idleMs: 0n, inFlight: 0, requestsTotal: 1n, draining: true })
    const second = await allocate(caller.libp2p, target, 'svc-ready-draining')
    nodes.push(...engine.sidecars)
    assert.deepEqual([second.reused, second.instanceId === first.instanceId], [false, false], 'handed out the draining instance')
    await allocator.stop()
  })

  it('answers a cold start only with a sidecar whose Ready does not say it drains', async () => {
    const { allocator, engine, caller } = await setUp()
    const target = engine.allocatorNode.multiaddrs()[0]!
    await allocator.start()
    engine.silentSidecars = true
    let settled = false
    const starting = allocate(caller.libp2p, target, 'svc-starting-draining').finally(() => { settled = true })
    const container = await eventually('the sidecar container', () => [...engine.containers.values()].find(c => c.Labels[LABELS.role] === 'sidecar' && c.State === 'running'), 5_000, 10)
    const dir = container.options.HostConfig!.Binds![0]!.split(':')[0]!
    const sidecar = await startNode({ privateKey: await loadOrCreateIdentity(join(dir, 'identity.key')) })
    nodes.push(sidecar)
    const ready = async (draining: boolean): Promise<void> => {
      await callRpc(sidecar.libp2p, target, checkInRpc, { kind: CheckIn.Kind.READY, instanceId: container.Labels[LABELS.instance]!, multiaddrs: sidecar.multiaddrs().map(String), idleMs: 0n, inFlight: 0, requestsTotal: 0n, draining })
    }
    // its stop began while it still retried its first Ready
    await ready(true)
    await sleep(300)
    assert.equal(settled, false, 'answered with a sidecar that said it drains')
    // its container's restart: the new sidecar checks in
    await ready(false)
    assert.equal((await starting).instanceId, container.Labels[LABELS.instance])
    await allocator.stop()
  })

  it('lets the requests a drained instance still has in flight finish before it is removed', async () => {
    const { allocator, engine, caller } = await setUp({ idleTimeoutMs: 1_000, statsIntervalMs: 100, drainDelayMs: 500 })
    await allocator.start()
    const target = engine.allocatorNode.multiaddrs()[0]!
    const { instanceId } = await allocate(caller.libp2p, target, 'svc-late-request')
    const [sidecar] = engine.sidecars
    nodes.push(sidecar!)
    const stats = async (idleMs: bigint, inFlight: number): Promise<void> => {
      await callRpc(sidecar!.libp2p, target, checkInRpc, { kind: CheckIn.Kind.STATS, instanceId, multiaddrs: [], idleMs, inFlight, requestsTotal: 1n, draining: false })
    }
    await eventually('the idle instance drained', async () => {
      await stats(5_000n, 0)
      return allocator.instances().map(i => i.state).join() === 'draining' ? true : undefined
    }, 10_000, 100)
    // a client proxy that still had the instance sent a request as the drain began: it is in
    // flight for four times the drain delay
    const until = performance.now() + 2_000
    while (performance.now() < until) {
      await stats(0n, 1)
      await sleep(100)
    }
    assert.deepEqual(allocator.instances().map(i => i.state), ['draining'], 'removed with a request in flight')
    assert.equal(engine.containers.size, 2)
    await stats(0n, 0)
    await eventually('the instance removed once its request finished', () => allocator.instances().length === 0 ? true : undefined, 5_000, 50)
    await allocator.stop()
  })

  /**
   * An allocator taking a sidecar silent after 2 s, and an instance of `service` whose sidecar sent
   * one report, a request in flight, then nothing (its containers keep running: no 'die' comes).
   * `reported` is taken before the report: the allocator counts from when it took it, a little later.
   */
  const reportOnce = async (service: string): Promise<{ allocator: Allocator, engine: StubEngine, reported: number }> => {
    const { allocator, engine, caller } = await setUp({ statsIntervalMs: 100, silentSidecarMs: 2_000 })
    await allocator.start()
    const target = engine.allocatorNode.multiaddrs()[0]!
    const { instanceId } = await allocate(caller.libp2p, target, service)
    const [sidecar] = engine.sidecars
    nodes.push(sidecar!)
    const reported = performance.now()
    await callRpc(sidecar!.libp2p, target, checkInRpc, { kind: CheckIn.Kind.STATS, instanceId, multiaddrs: [], idleMs: 0n, inFlight: 1, requestsTotal: 1n, draining: false })
    return { allocator, engine, reported }
  }

  it('removes an instance whose sidecar stopped sending stats, a request in flight at its last report', async () => {
    const { allocator, engine, reported } = await reportOnce('svc-wedged')
    await sleep(1_000)
    assert.deepEqual(allocator.instances().map(i => i.state), ['ready'], 'removed before it was silent for long')
    await eventually('the instance removed', () => allocator.instances().length === 0 ? true : undefined, 10_000, 50)
    assert.ok(performance.now() - reported >= 2_000 - 100, 'not before it was silent for 2 s')
    assert.deepEqual([...engine.containers.values()].map(c => c.Labels[LABELS.service]), [])
    await allocator.stop()
  })

  it('counts a sidecar\'s silence from its report taken after a pause, not from later', async (t) => {
    const { allocator, engine, caller } = await setUp({ statsIntervalMs: 100, silentSidecarMs: 2_000 })
    await allocator.start()
    const target = engine.allocatorNode.multiaddrs()[0]!
    const { instanceId } = await allocate(caller.libp2p, target, 'svc-report-after-pause')
    const [sidecar] = engine.sidecars
    nodes.push(sidecar!)
    // the process does not run for 4 s just as the report arrives: it is taken after the pause,
    // before the sweep that notices the pause
    const now = performance.now.bind(performance)
    let paused = false
    t.mock.method(performance, 'now', () => {
      if (!paused && new Error().stack?.includes('#checkIn') === true) {
        paused = true
        const until = now() + 4_000
        while (now() < until) {
          // blocked
        }
      }
      return now()
    })
    await callRpc(sidecar!.libp2p, target, checkInRpc, { kind: CheckIn.Kind.STATS, instanceId, multiaddrs: [], idleMs: 0n, inFlight: 1, requestsTotal: 1n, draining: false })
    const resumed = now()
    assert.equal(paused, true)
    // silent for 2 s from its report; 4 s later still, had the pause been forgiven it too
    await eventually('the instance removed', () => allocator.instances().length === 0 ? true : undefined, 10_000, 50)
    assert.ok(now() - resumed < 4_000, `removed ${Math.round(now() - resumed)} ms after its report, not about 2 s`)
    await allocator.stop()
  })

  it('restarts, not removes as wedged, an instance whose containers exited unseen while Docker\'s events were down', async () => {
    const { allocator, engine } = await reportOnce('svc-unseen-exit')
    const [info] = allocator.instances()
    // the engine restarted with its events stream down: both containers exited, and no 'die' came
    await engine.sidecars[0]!.stop()
    for (const container of engine.containers.values()) {
      container.State = 'exited'
    }
    // silent for 2 s, then a restart after a 1 s backoff, whose new sidecar checks in ready
    const settled = await eventually('the instance restarted or removed', () => {
      const now = allocator.instances()
      return now.length === 0 || now[0]!.state !== 'ready' || (now[0]!.restarts > 0 && now[0]!.checkedIn && [...engine.containers.values()].every(c => c.State === 'running')) ? now : undefined
    }, 20_000, 50)
    nodes.push(...engine.sidecars)
    assert.deepEqual(settled.map(i => [i.id, i.state, i.restarts, i.checkedIn]), [[info!.id, 'ready', 1, true]])
    await allocator.stop()
  })

  it('removes a silent sidecar\'s instance only once the engine says its containers run', async () => {
    const { allocator, engine, reported } = await reportOnce('svc-silent-engine-down')
    engine.failInspecting = true
    await sleep(3_500)
    assert.deepEqual(allocator.instances().map(i => i.state), ['ready'], 'removed while the engine did not answer')
    engine.failInspecting = false
    await eventually('the instance removed', () => allocator.instances().length === 0 ? true : undefined, 10_000, 50)
    assert.ok(performance.now() - reported >= 3_500, 'not before the engine answered')
    await allocator.stop()
  })

  it('does not count the time the allocator itself did not run as its sidecars\' silence', async () => {
    const { allocator } = await reportOnce('svc-paused')
    // as if the process were suspended for 2.5 s: nothing of it runs
    const until = performance.now() + 2_500
    while (performance.now() < until) {
      // blocked
    }
    await sleep(500)
    assert.deepEqual(allocator.instances().map(i => i.state), ['ready'])
    await eventually('the instance removed once silent for 2 s of the allocator\'s own time', () => allocator.instances().length === 0 ? true : undefined, 10_000, 50)
    await allocator.stop()
  })
})
