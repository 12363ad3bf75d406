import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { ALLOC_STATUS_PROTOCOL } from '@physarum/allocator/client'
import { ALLOCATOR_TOPIC, handleRpc, KAD_PROTOCOL } from '@physarum/p2p'
import { registryRpc } from '@physarum/registry-service'
import { startNode, stopAll, tempDir } from '../../p2p/test/helpers.ts'
import { measureAll } from '../src/commands/status.ts'
import { eventually, runCli, TEST_PASSPHRASE } from './helpers.ts'
import type { StatusReport } from '../src/index.ts'
import type { Overlay } from '../src/overlay.ts'
import type { PeerId, Stream } from '@libp2p/interface'

/** A peer id as far as measureAll looks at one. */
const peer = (id: string): PeerId => ({ toString: () => id }) as unknown as PeerId

/** An overlay whose pings answer from `answers` (per peer, in order; an Error is a failed ping). */
function fakeOverlay (answers: Record<string, Array<number | Error>>): { overlay: Overlay, calls: Record<string, number>, maxSampling: () => number } {
  const calls: Record<string, number> = {}
  let sampling = 0
  let maxSampling = 0
  const measureRtt = async (id: PeerId): Promise<number> => {
    const key = id.toString()
    const call = calls[key] = (calls[key] ?? 0) + 1
    // every ping after a peer's first is a sample taken once every peer is connected
    sampling += call > 1 ? 1 : 0
    maxSampling = Math.max(maxSampling, sampling)
    await new Promise(resolve => setTimeout(resolve, 5))
    sampling -= call > 1 ? 1 : 0
    const answer = answers[key]?.[call - 1] ?? new Error('no answer')
    if (answer instanceof Error) {
      throw answer
    }
    return answer
  }
  return { overlay: { node: { measureRtt } } as unknown as Overlay, calls, maxSampling: () => maxSampling }
}

describe('hl-cli status RTTs', () => {
  it('shows the lowest of a peer\'s pings, taken one peer at a time once all are connected', async () => {
    const { overlay, calls, maxSampling } = fakeOverlay({
      near: [2.4, 0.4, 0.2, 0.3],
      flaky: [1.5, new Error('timed out')],
      gone: [new Error('dial failed')],
      other: [0.9, 0.8, 0.7, 0.75]
    })
    const rtts = await measureAll(overlay, [peer('near'), peer('flaky'), peer('gone'), peer('near'), peer('other')])
    assert.deepEqual(Object.fromEntries(rtts), { near: 0.2, flaky: 1.5, other: 0.7 })
    // once each, a second listing of a peer included; a failed sample ends that peer's samples
    assert.deepEqual(calls, { near: 4, flaky: 2, gone: 1, other: 4 })
    assert.equal(maxSampling(), 1, 'the samples are taken one at a time')

    // peers already measured are not pinged again
    await measureAll(overlay, [peer('near'), peer('other')], rtts)
    assert.deepEqual(calls, { near: 4, flaky: 2, gone: 1, other: 4 })
  })

  it('takes no samples past its deadline: each peer keeps the RTT of its first ping', async () => {
    const { overlay, calls } = fakeOverlay({ near: [2.4, 0.4, 0.2, 0.3], other: [0.9, 0.8, 0.7, 0.75], gone: [new Error('dial failed')] })
    const rtts = await measureAll(overlay, [peer('near'), peer('other'), peer('gone')], undefined, Date.now())
    assert.deepEqual(Object.fromEntries(rtts), { near: 2.4, other: 0.9 })
    assert.deepEqual(calls, { near: 1, other: 1, gone: 1 })
  })
})

describe('hl-cli status and what peers announce', () => {
  it('shows a peer\'s announced role without the control characters in it: they would drive the terminal', async () => {
    // any member of the overlay chooses its identify agent version: here a role that clears the
    // screen (a host name with control characters is no name: p2p's overlay.spec)
    const node = await startNode({ hostName: 'box-1', role: '\u001b[2Jmonitor' })
    const state = await tempDir('hlc-status-agent')
    try {
      const args = ['status', '--timeout', '2s', '-bootstrap', node.multiaddrs()[0]!.toString(), '--listen', '/ip4/127.0.0.1/tcp/0']
      const env = { PHYSARUM_PSK: TEST_PASSPHRASE, PHYSARUM_STATE_DIR: state.path }
      const text = await runCli(args, env)
      const json = await runCli([...args, '--json'], env)
      assert.equal(text.code, 0, text.stderr)
      // eslint-disable-next-line no-control-regex
      assert.doesNotMatch(text.stdout, /[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/, 'a control character reached the terminal')
      assert.match(text.stdout, new RegExp(`${node.peerId.toString()}\\s+box-1\\s+\\\\x1b\\[2Jmonitor\\s`))
      // --json: the strings as they were announced, escaped as JSON
      assert.equal(json.code, 0, json.stderr)
      // eslint-disable-next-line no-control-regex
      assert.doesNotMatch(json.stdout, /[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/, 'a control character reached the terminal')
      const peer = (JSON.parse(json.stdout) as StatusReport).peers.find(p => p.peerId === node.peerId.toString())
      assert.deepEqual([peer?.host, peer?.role], ['box-1', '\u001b[2Jmonitor'])
    } finally {
      await node.stop()
      await state.remove()
    }
  })
})

describe('hl-cli status and a DHT that does not answer', () => {
  it('looks up no more instances once --timeout has passed, and says which services it did not look up', async () => {
    // the bootstrap and registry takes every DHT query and never answers it: each lookup waits its
    // full time, as in a sparse DHT
    const node = await startNode()
    const stalled: Stream[] = []
    await node.libp2p.unhandle(KAD_PROTOCOL)
    await node.libp2p.handle(KAD_PROTOCOL, stream => { stalled.push(stream) })
    const records = Array.from({ length: 12 }, (_, i) => ({
      name: `svc-${i}`, contentHash: `hash-${i}`, image: `127.0.0.1:5000/svc@sha256:${'0'.repeat(64)}`, softRttMs: 10, hardRttMs: 100, cpu: 0, memoryMb: 0,
      proxyClientMode: false, createdAt: '2026-11-25T00:00:00.000Z', updatedAt: '2026-11-25T00:00:00.000Z', revision: 1n
    }))
    await handleRpc(node.libp2p, registryRpc, async () => await Promise.resolve({ list: { records, nextPageToken: '' } }), { log: node.libp2p.logger.forComponent('test:registry') })
    const state = await tempDir('hlc-status-sparse')
    try {
      const address = node.multiaddrs()[0]!.toString()
      const result = await runCli(['status', '--json', '--timeout', '1s', '-bootstrap', address, '--registry', address, '--listen', '/ip4/127.0.0.1/tcp/0'],
        { PHYSARUM_PSK: TEST_PASSPHRASE, PHYSARUM_STATE_DIR: state.path })
      assert.equal(result.code, 0, result.stderr)
      const report = JSON.parse(result.stdout) as StatusReport
      // four lookups at a time, each its full second: the first four begin before the deadline
      const skipped = report.services.filter(service => service.instances == null).map(service => service.name)
      assert.ok(skipped.length >= 4 && skipped.length < 12, `not looked up: ${skipped.join(', ')}`)
      assert.deepEqual(report.services.filter(service => service.instances != null).map(service => service.instances), Array(12 - skipped.length).fill([]))
      assert.ok(report.notes.includes(`instances were not looked up for ${skipped.length} of 12 services, as --timeout (1s) had passed: ${skipped.join(', ')}; give a longer --timeout, or fewer --max-services`), report.notes.join('\n'))
    } finally {
      stalled.forEach(stream => { stream.abort(new Error('test over')) })
      await node.stop()
      await state.remove()
    }
  })
})

describe('hl-cli status and allocators that do not answer', () => {
  it('asks no more allocators for their capacity once --timeout has passed, and says which it did not ask', async () => {
    const bootstrap = await startNode()
    // allocators that take the capacity question and never answer: each waits its full time
    const stalled: Stream[] = []
    const allocators = await Promise.all(Array.from({ length: 10 }, async () => {
      const node = await startNode({ bootstrap: [bootstrap.multiaddrs()[0]!.toString()] })
      await node.libp2p.handle(ALLOC_STATUS_PROTOCOL, stream => { stalled.push(stream) })
      await node.discovery.provide(ALLOCATOR_TOPIC)
      return node
    }))
    const state = await tempDir('hlc-status-allocators')
    try {
      // each provide is stored at the bootstrap once its routing table has it
      await eventually('the bootstrap to know the 10 allocators', async () => {
        const found = new Set<string>()
        for await (const provider of bootstrap.discovery.findProviders(ALLOCATOR_TOPIC, { signal: AbortSignal.timeout(2_000) })) {
          found.add(provider.id.toString())
        }
        return found.size >= 10 ? true : undefined
      }, 30_000, 200)
      const result = await runCli(['status', '--json', '--timeout', '3s', '-bootstrap', bootstrap.multiaddrs()[0]!.toString(), '--listen', '/ip4/127.0.0.1/tcp/0'],
        { PHYSARUM_PSK: TEST_PASSPHRASE, PHYSARUM_STATE_DIR: state.path })
      assert.equal(result.code, 0, result.stderr)
      const report = JSON.parse(result.stdout) as StatusReport
      assert.equal(report.allocators.length, 10, result.stdout)
      // eight questions at a time, each its full 3 s: the first eight begin before the deadline
      const unasked = report.notes.find(note => note.startsWith('capacity was not asked of '))
      assert.match(unasked ?? '', /^capacity was not asked of [12] of 10 allocators, as --timeout \(3s\) had passed: 12D3\w+(, 12D3\w+)?; give a longer --timeout$/, report.notes.join('\n'))
    } finally {
      stalled.forEach(stream => { stream.abort(new Error('test over')) })
      await stopAll([...allocators, bootstrap])
      await state.remove()
    }
  })
})
