import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { after, before, describe, it } from 'node:test'
import { peerIdFromString } from '@libp2p/peer-id'
import { allocate } from '../src/client.ts'
import { LABELS } from '../src/constants.ts'
import {
  buildServiceImage, containersOf, ensureNodeImage, eventually, freePort, HELLO_SERVER, httpThroughSidecar, NODE_IMAGE, stopTestbed,
  startDocker, startImageRegistry, startOverlay, tempDir
} from './helpers.ts'
import type { TestDocker, TestImageRegistry, TestOverlay } from './helpers.ts'
import type { ChildProcess } from 'node:child_process'

const BIN = new URL('../bin/allocator.js', import.meta.url).pathname

/** The allocator CLI in a process of its own. */
class AllocatorProcess {
  readonly child: ChildProcess
  readonly lines: string[] = []
  readonly exited: Promise<unknown>

  constructor (args: string[], env: Record<string, string> = {}) {
    this.child = spawn(process.execPath, [BIN, ...args], {
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/root', PHYSARUM_PSK: 'physarum-test-network', ...env },
      stdio: ['ignore', 'pipe', 'pipe']
    })
    this.exited = once(this.child, 'exit')
    for (const stream of [this.child.stdout!, this.child.stderr!]) {
      createInterface({ input: stream }).on('line', line => { this.lines.push(line) })
    }
  }

  async started (): Promise<void> {
    await eventually('the allocator to start', () => {
      if (this.child.exitCode != null) {
        throw new Error(`the allocator exited with ${this.child.exitCode}: ${this.lines.slice(-5).join('\n')}`)
      }
      return this.lines.some(line => line.startsWith('allocator listening:')) ? true : undefined
    }, 60_000, 50).catch((err: Error) => {
      // what it said meanwhile tells where it stood
      throw new Error(`${err.message}; its output:\n${this.lines.join('\n')}`)
    })
  }

  async kill (signal: NodeJS.Signals): Promise<void> {
    if (this.child.exitCode == null && this.child.signalCode == null) {
      this.child.kill(signal)
      await this.exited
    }
  }
}

describe('allocator restart', { timeout: 240_000 }, () => {
  let engine: TestDocker
  let images: TestImageRegistry
  let overlay: TestOverlay
  let state: { path: string, remove: () => Promise<void> }
  const processes: AllocatorProcess[] = []

  before(async () => {
    engine = await startDocker()
    images = await startImageRegistry()
    state = await tempDir('physarum-adopt')
    await ensureNodeImage(engine)
    const hello = await buildServiceImage(engine, images, 'hello', HELLO_SERVER)
    overlay = await startOverlay()
    await overlay.register('kept-server', hello, { contentHash: 'hash-kept' })
    await overlay.register('broken-server', hello, { contentHash: 'hash-broken' })
  })

  after(async () => {
    for (const p of processes) {
      await p.kill('SIGKILL')
    }
    await stopTestbed({ overlay, engine, images, state })
  })

  it('hands its sidecars the log level it runs with, not an empty PHYSARUM_LOG_LEVEL (an environment file\'s NAME=)', async () => {
    const dir = await tempDir('physarum-adopt-level')
    // no --log-level: the allocator takes the empty variable for unset, as every daemon does
    const level = new AllocatorProcess([
      '--ephemeral', '--state-dir', dir.path, '--listen', '/ip4/127.0.0.1/tcp/0', '--bootstrap', overlay.bootstrap.multiaddrs()[0]!.toString(),
      '--metrics-listen', '127.0.0.1:0', '--docker-host', engine.host, '--node-image', NODE_IMAGE,
      '--registry', overlay.registry.node.multiaddrs()[0]!.toString(), '--sidecar-listen', '/ip4/127.0.0.1/tcp/0', '--ready-timeout', '20s'
    ], { PHYSARUM_LOG_LEVEL: '' })
    processes.push(level)
    try {
      await level.started()
      const allocator = peerIdFromString(/12D3KooW\w+/.exec(level.lines.find(l => l.startsWith('allocator listening:'))!)![0])
      const allocation = await allocate(overlay.client.libp2p, allocator, 'kept-server')
      const answer = await httpThroughSidecar(overlay.client, allocation.multiaddrs, '/')
      assert.equal(answer.status, 200)
    } finally {
      await level.kill('SIGTERM')
      await dir.remove()
    }
  })

  it('after kill -9, adopts the instances that check in again and removes the orphans', async () => {
    const port = await freePort()
    const args = [
      '--identity', join(state.path, 'identity.key'), '--state-dir', state.path,
      '--listen', `/ip4/127.0.0.1/tcp/${port}`, '--bootstrap', overlay.bootstrap.multiaddrs()[0]!.toString(),
      '--metrics-listen', '127.0.0.1:0', '--docker-host', engine.host, '--node-image', NODE_IMAGE,
      '--registry', overlay.registry.node.multiaddrs()[0]!.toString(), '--sidecar-listen', '/ip4/127.0.0.1/tcp/0',
      '--stats-interval', '200ms', '--ready-timeout', '20s', '--log-level', 'info'
    ]
    const first = new AllocatorProcess(args)
    processes.push(first)
    await first.started()
    const allocator = peerIdFromString(/12D3KooW\w+/.exec(first.lines.find(l => l.startsWith('allocator listening:'))!)![0])
    const kept = await allocate(overlay.client.libp2p, allocator, 'kept-server')
    const broken = await allocate(overlay.client.libp2p, allocator, 'broken-server')
    // a container of someone else, with the label prefix but another allocator: never touched
    const foreign = await engine.docker.createContainer({ Image: NODE_IMAGE, Cmd: ['sleep', '600'], Labels: { [LABELS.allocator]: 'someone-else' } })
    await foreign.start()

    await first.kill('SIGKILL')
    const brokenSidecar = (await containersOf(engine, allocator.toString())).find(c => c.Labels[LABELS.instance] === broken.instanceId && c.Labels[LABELS.role] === 'sidecar')!
    await engine.docker.getContainer(brokenSidecar.Id).kill()

    const second = new AllocatorProcess(args)
    processes.push(second)
    await second.started()
    await eventually('the orphan to be removed', async () => {
      const left = await containersOf(engine, allocator.toString())
      return left.every(c => c.Labels[LABELS.instance] === kept.instanceId) && left.length === 2 ? left : undefined
    }, 20_000)
    const again = await eventually('the kept instance to be adopted', async () => {
      const answer = await allocate(overlay.client.libp2p, allocator, 'kept-server')
      return answer.reused ? answer : undefined
    }, 20_000, 200)
    assert.equal(again.instanceId, kept.instanceId)
    const answer = await httpThroughSidecar(overlay.client, kept.multiaddrs, '/after-restart')
    assert.equal(answer.status, 200)
    assert.match(answer.body, new RegExp(`from ${kept.instanceId}`))
    assert.equal((await foreign.inspect()).State.Running, true)
    await foreign.remove({ force: true })

    await second.kill('SIGTERM')
    assert.equal((await containersOf(engine, allocator.toString())).length, 0, 'SIGTERM drains and removes the instances')
  })
})
