import assert from 'node:assert/strict'
import { once } from 'node:events'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { multiaddr } from '@multiformats/multiaddr'
import { createRegistryClient } from '../src/index.ts'
import { KEY_PREFIX, RPC_TIMEOUT_MS } from '../src/constants.ts'
import { EtcdProcess } from '../src/etcd-process.ts'
import { RegistryStore } from '../src/store.ts'
import { startDelayRelay } from '../../p2p/test/helpers.ts'
import { etcdSnapshot, eventually, FAST_ETCD_ENV, freePort, sampleRecord, silentLog, tempDir, startClient, startNode, startRegistry, startResettingRelay, stopAll, TestEtcd } from './helpers.ts'
import type { AddressInfo, Socket } from 'node:net'
import type { InProcessRegistry } from './helpers.ts'
import type { RegistryClient } from '../src/index.ts'
import type { PhysarumNode, RpcFailureError } from '@physarum/p2p'

describe('when etcd is down', () => {
  let etcd: TestEtcd
  let bootstrap: PhysarumNode
  let registry: InProcessRegistry
  let writer: { node: PhysarumNode, client: RegistryClient }

  before(async () => {
    etcd = await TestEtcd.start()
    bootstrap = await startNode()
    registry = await startRegistry(bootstrap, [etcd.endpoint], { openWrites: true })
    writer = await startClient(bootstrap, { peers: [registry.node.multiaddrs()[0]!.toString()], cacheTtlMs: 0 })
  })
  after(async () => {
    await registry?.stop()
    await stopAll([writer?.node, bootstrap])
    await etcd?.remove()
  })

  it('answers UNAVAILABLE quickly, and serves again once etcd is back, records kept', async () => {
    const added = await writer.client.add(sampleRecord('durable-server'))
    await etcd.stop('SIGKILL')

    for (const request of [
      async () => await writer.client.get('durable-server'),
      async () => await writer.client.add(sampleRecord('durable-server', { softRttMs: 1 })),
      async () => await writer.client.list(),
      async () => await writer.client.delete('durable-server')
    ]) {
      const started = performance.now()
      await assert.rejects(request(), (err: RpcFailureError) => {
        assert.equal(err.name, 'RpcFailureError')
        assert.equal(err.code, 'UNAVAILABLE')
        assert.match(err.message, /etcd is unreachable/)
        return true
      })
      const elapsed = performance.now() - started
      assert.ok(elapsed < 2_500, `answered within the etcd deadline, not a hang (${Math.round(elapsed)} ms)`)
    }
    assert.equal((await registry.service.health()).ok, false)
    assert.match(await registry.registry.metrics(), /physarum_registry_etcd_up 0/)
    assert.match(await registry.registry.metrics(), /physarum_registry_requests_total\{operation="get",outcome="UNAVAILABLE"\} 1/)

    // the same data folder: the record is there after the restart, and the service resumes by itself
    await etcd.start()
    const back = await eventually('the registry to serve again', async () => await writer.client.get('durable-server'), 10_000, 100)
    assert.deepEqual(back, added)
    assert.equal((await registry.service.health()).ok, true)
    const updated = await writer.client.add(sampleRecord('durable-server', { softRttMs: 5 }), { expectedRevision: added.revision })
    assert.equal(updated.softRttMs, 5)

    // an etcd that hangs (connections open, no answers) costs the etcd deadline, not a hang
    await writer.client.add(sampleRecord('doomed-server'))
    await etcd.pause()
    try {
      const started = performance.now()
      await assert.rejects(writer.client.get('durable-server'), { name: 'RpcFailureError', code: 'UNAVAILABLE' })
      const elapsed = performance.now() - started
      assert.ok(elapsed >= 1_000 && elapsed < 3_000, `answered at the 1.5 s etcd deadline (${Math.round(elapsed)} ms)`)
      // a write sent to etcd may have been applied when its deadline passed: the answer says so
      // (a put first reads the record, and fails UNAVAILABLE there: nothing was sent)
      await assert.rejects(writer.client.delete('doomed-server'), { name: 'RpcFailureError', code: 'TIMEOUT', message: /the write may or may not have been applied/ })
    } finally {
      etcd.resume()
    }
    assert.equal((await eventually('the registry to serve again', async () => await writer.client.get('durable-server'), 10_000, 100)).softRttMs, 5)
  })

  it('answers a write to an etcd whose space quota is full UNAVAILABLE, saying so, not TIMEOUT: it was not applied', async () => {
    const dir = await tempDir('physarum-etcd-full')
    // a quota smaller than the database: etcd raises its NOSPACE alarm at the first write
    const full = new EtcdProcess({
      name: 'full', dataDir: join(dir.path, 'etcd'), ip: '127.0.0.1', clientPort: await freePort(), peerPort: await freePort(),
      clusterState: 'new', env: { PATH: process.env.PATH, ...FAST_ETCD_ENV, ETCD_QUOTA_BACKEND_BYTES: '1' }, log: silentLog
    })
    let fullRegistry: InProcessRegistry | undefined
    try {
      await full.start()
      fullRegistry = await startRegistry(bootstrap, [full.clientUrl], { openWrites: true })
      const client = createRegistryClient(writer.node, { peers: [fullRegistry.node.multiaddrs()[0]!.toString()], cacheTtlMs: 0 })
      const refused = await client.add(sampleRecord('crowded-server')).then(() => undefined, (err: RpcFailureError) => err)
      assert.equal(refused?.code, 'UNAVAILABLE', refused?.message)
      assert.match(refused.message, /space quota \(alarm NOSPACE\)/)
      await assert.rejects(client.get('crowded-server'), { code: 'NOT_FOUND' })
      // reads work on, but a health check that says ok would hide that no write can
      const health = await fullRegistry.service.health()
      assert.equal(health.ok, false)
      assert.match(health.error ?? '', /^etcd refuses every write: its database reached its space quota \(alarm NOSPACE\)/)
    } finally {
      await fullRegistry?.stop()
      await full.stop()
      await dir.remove()
    }
  })

  it('keeps each store call to one deadline across every etcd host and the login', async () => {
    // three hosts that take connections and never answer, as a hung cluster does
    const sockets: Socket[] = []
    const hung = await Promise.all([0, 1, 2].map(async () => {
      const server = createServer(socket => { sockets.push(socket); socket.on('error', () => {}) })
      server.listen(0, '127.0.0.1')
      await once(server, 'listening')
      return server
    }))
    const store = new RegistryStore({
      endpoints: hung.map(server => `http://127.0.0.1:${(server.address() as AddressInfo).port}`),
      // a second: twice that leaves a busy host's timers a second of slack, and a call that took a
      // deadline per host (three) or per login would take three seconds or more
      timeoutMs: 1_000,
      auth: { username: 'root', password: 'not asked' }
    })
    try {
      // the login never ends: the write was not sent, so it is not one that may have been applied
      for (const [call, code] of [[async () => await store.get('x'), 'UNAVAILABLE'], [async () => await store.delete('x'), 'UNAVAILABLE']] as const) {
        const started = performance.now()
        await assert.rejects(call(), { name: 'RpcFailureError', code })
        const elapsed = performance.now() - started
        assert.ok(elapsed < 2_000, `answered at the 1 s deadline, not once per host and login (${Math.round(elapsed)} ms)`)
      }
      const started = performance.now()
      const health = await store.health()
      assert.equal(health.ok, false)
      assert.match(health.error ?? '', /^etcd is unreachable/)
      assert.ok(performance.now() - started < 2_000)
    } finally {
      store.close()
      for (const socket of sockets) socket.destroy()
      for (const server of hung) server.close()
    }
  })

  it('still answers from a live etcd host when another one hangs', async () => {
    const sockets: Socket[] = []
    const hung = createServer(socket => { sockets.push(socket); socket.on('error', () => {}) })
    hung.listen(0, '127.0.0.1')
    await once(hung, 'listening')
    // etcd3 picks a host at random for each call: the hung one is met first about half the time
    const store = new RegistryStore({ endpoints: [`http://127.0.0.1:${(hung.address() as AddressInfo).port}`, etcd.endpoint], timeoutMs: 600 })
    try {
      for (let i = 0; i < 12; i++) {
        assert.equal(typeof await store.count(), 'number')
      }
      assert.deepEqual(await store.health(), { ok: true })
    } finally {
      store.close()
      for (const socket of sockets) socket.destroy()
      hung.close()
    }
  })

  it('answers TIMEOUT for a write whose connection to etcd broke after it was sent, and sends it to no other host', async () => {
    // two etcd hosts (relays to the same etcd), each cutting the next answer it is sent
    const relays = [await startResettingRelay(etcd.clientPort), await startResettingRelay(etcd.clientPort)] as const
    const store = new RegistryStore({ endpoints: relays.map(relay => relay.endpoint) })
    const single = new RegistryStore({ endpoints: [relays[0].endpoint] })
    const key = `${KEY_PREFIX}reset-server`
    try {
      await store.put(sampleRecord('reset-server'))
      for (const relay of relays) relay.cutAnswer(1)
      await assert.rejects(store.delete('reset-server'), { name: 'RpcFailureError', code: 'TIMEOUT', message: /may or may not have been applied/ })
      assert.equal(relays[0].cuts + relays[1].cuts, 1, 'the delete went to one etcd host only')
      assert.equal((await etcdSnapshot(etcd.endpoint)).keys[key], undefined, 'etcd applied the delete')

      // a compare-and-swap put reads, then writes: its write's answer is cut
      for (const relay of relays) relay.cutAnswer(0)
      relays[0].cutAnswer(2)
      await assert.rejects(single.put(sampleRecord('reset-server'), { expectedRevision: '0' }), { name: 'RpcFailureError', code: 'TIMEOUT' })
      assert.notEqual((await etcdSnapshot(etcd.endpoint)).keys[key], undefined, 'etcd applied the put')
    } finally {
      store.close()
      single.close()
      for (const relay of relays) await relay.close()
    }
  })

  it('ends a client\'s Add and Delete with what etcd applied when the first registry lost its etcd connection after the write', async () => {
    const relay = await startResettingRelay(etcd.clientPort)
    const cut = await startRegistry(bootstrap, [relay.endpoint], { openWrites: true })
    const direct = await startRegistry(bootstrap, [etcd.endpoint], { openWrites: true })
    // the registry with its etcd behind the relay is the nearer one, so it is asked first
    const port = Number(direct.node.multiaddrs()[0]!.getComponents().find(c => c.name === 'tcp')!.value)
    const slow = await startDelayRelay({ target: { port }, delayMs: 20 })
    const node = await startNode({ dhtMode: 'client' })
    const peers = [cut.node.multiaddrs()[0]!, multiaddr(`/ip4/127.0.0.1/tcp/${slow.port}/p2p/${direct.node.peerId.toString()}`)]
    const key = `${KEY_PREFIX}cut-server`
    try {
      relay.cutAnswer(2)
      const added = await createRegistryClient(node, { peers, cacheTtlMs: 0 }).add(sampleRecord('cut-server'), { expectedRevision: '0' })
      assert.equal(relay.cuts, 1)
      assert.equal((await etcdSnapshot(etcd.endpoint)).keys[key]?.split(':')[0], added.revision, 'the record etcd holds, not a CONFLICT with the caller\'s own write')

      relay.cutAnswer(1)
      assert.equal(await createRegistryClient(node, { peers, cacheTtlMs: 0 }).delete('cut-server'), '0')
      assert.equal(relay.cuts, 2)
      assert.equal((await etcdSnapshot(etcd.endpoint)).keys[key], undefined, 'deleted, not NOT_FOUND')
    } finally {
      await stopAll([node])
      await cut.stop()
      await direct.stop()
      await slow.close()
      await relay.close()
    }
  })

  it('answers from a cached record while no registry can, to a client that allows it, and never for a deleted one', async () => {
    const added = await writer.client.add(sampleRecord('cached-server'))
    const peers = [registry.node.multiaddrs()[0]!]
    const patient = createRegistryClient(writer.node, { peers, cacheTtlMs: 300, staleIfErrorMs: 60_000 })
    const strict = createRegistryClient(writer.node, { peers, cacheTtlMs: 300 })
    assert.deepEqual(await patient.get('cached-server'), added)
    assert.deepEqual(await strict.get('cached-server'), added)
    const unavailableGets = async (): Promise<number> => Number(/physarum_registry_requests_total\{operation="get",outcome="UNAVAILABLE"\} (\d+)/.exec(await registry.registry.metrics())?.[1] ?? 0)

    await etcd.stop('SIGKILL')
    try {
      await new Promise(resolve => setTimeout(resolve, 400))
      const before = await unavailableGets()
      assert.deepEqual(await patient.get('cached-server'), added)
      // served from the copy for another TTL without asking the registry again
      assert.deepEqual(await patient.get('cached-server'), added)
      assert.equal(await unavailableGets(), before + 1)
      await assert.rejects(strict.get('cached-server'), { name: 'RpcFailureError', code: 'UNAVAILABLE' })
      // a record it never fetched has no copy
      await assert.rejects(patient.get('never-fetched-server'), { name: 'RpcFailureError', code: 'UNAVAILABLE' })
    } finally {
      await etcd.start()
    }

    // deleted meanwhile: NOT_FOUND drops the copy, so a later outage does not bring it back
    await eventually('the registry to serve again', async () => await writer.client.delete('cached-server'), 10_000, 100)
    await new Promise(resolve => setTimeout(resolve, 400))
    await assert.rejects(patient.get('cached-server'), { name: 'RpcFailureError', code: 'NOT_FOUND' })
    await etcd.stop('SIGKILL')
    try {
      await assert.rejects(patient.get('cached-server'), { name: 'RpcFailureError', code: 'UNAVAILABLE' })
    } finally {
      await etcd.start()
    }
  })

  it('serves an expired copy at once while a Get refreshes it in the background, to a client that asks so, even from a silent registry', async () => {
    const added = await writer.client.add(sampleRecord('revalidated-server'))
    await writer.client.add(sampleRecord('dropped-server'))
    // a node that reaches the registry only through a relay, which can make it silent
    const port = Number(registry.node.multiaddrs()[0]!.getComponents().find(c => c.name === 'tcp')!.value)
    const relay = await startDelayRelay({ target: { port }, delayMs: 0 })
    const node = await startNode({ dhtMode: 'client' })
    try {
      const client = createRegistryClient(node, {
        peers: [multiaddr(`/ip4/127.0.0.1/tcp/${relay.port}/p2p/${registry.node.peerId.toString()}`)],
        cacheTtlMs: 300,
        staleIfErrorMs: 60_000,
        revalidateInBackground: true
      })
      assert.deepEqual(await client.get('revalidated-server'), added)
      await client.get('dropped-server')

      // changed meanwhile: the expired copy is served once more, then what the refresh brought
      const updated = await writer.client.add(sampleRecord('revalidated-server', { softRttMs: 7 }), { expectedRevision: added.revision })
      await new Promise(resolve => setTimeout(resolve, 400))
      assert.deepEqual(await client.get('revalidated-server'), added)
      assert.deepEqual(await eventually('the refreshed record', async () => {
        const record = await client.get('revalidated-server')
        return record.softRttMs === 7 ? record : undefined
      }), updated)

      // deleted meanwhile: served once more, then NOT_FOUND, which dropped the copy
      await writer.client.delete('dropped-server')
      await new Promise(resolve => setTimeout(resolve, 400))
      await client.get('dropped-server')
      await eventually('NOT_FOUND for the deleted record', async () => await client.get('dropped-server').then(() => undefined, (err: RpcFailureError) => err.code === 'NOT_FOUND' ? true : undefined))

      // the registry's host goes silent: the copy is served at once, not after the Get's timeout
      relay.hold()
      await new Promise(resolve => setTimeout(resolve, 400))
      for (let i = 0; i < 3; i++) {
        const started = performance.now()
        assert.deepEqual(await client.get('revalidated-server'), updated)
        const elapsed = performance.now() - started
        assert.ok(elapsed < RPC_TIMEOUT_MS / 5, `answered in ${Math.round(elapsed)} ms, not after the ${RPC_TIMEOUT_MS} ms timeout`)
      }
    } finally {
      await stopAll([node])
      await relay.close()
    }
  })

  it('lets a client fail over from a registry whose etcd is down to one whose etcd is up', async () => {
    const other = await TestEtcd.start()
    const healthy = await startRegistry(bootstrap, [other.endpoint], { openWrites: true })
    try {
      await createRegistryClient(writer.node, { peers: [healthy.node.multiaddrs()[0]!] }).add(sampleRecord('elsewhere-server'))
      await etcd.stop('SIGKILL')
      const client = createRegistryClient(writer.node, { peers: [registry.node.multiaddrs()[0]!, healthy.node.multiaddrs()[0]!], cacheTtlMs: 0 })
      // whichever is ranked first, the answer comes from the registry that can reach its etcd
      for (let i = 0; i < 3; i++) {
        assert.equal((await client.get('elsewhere-server')).name, 'elsewhere-server')
      }
    } finally {
      await healthy.stop()
      await other.remove()
      await etcd.start()
    }
  })

  it('takes a registry\'s answer over an expired copy of a later revision, as after the records were added again to a new etcd', async () => {
    // the etcd lost, a new one with the records added again: its revisions start over
    const rebuilt = await TestEtcd.start()
    const replacement = await startRegistry(bootstrap, [rebuilt.endpoint])
    const old = await startRegistry(bootstrap, [etcd.endpoint])
    try {
      for (const softRttMs of [10, 11, 12]) {
        await old.store.put(sampleRecord('rebuilt-server', { softRttMs }))
      }
      const now = await replacement.store.put(sampleRecord('rebuilt-server', { softRttMs: 60 }))
      const cacheTtlMs = 300
      const client = createRegistryClient(writer.node, { peers: [old.node.multiaddrs()[0]!, replacement.node.multiaddrs()[0]!], cacheTtlMs })
      // the client's copy comes from the old etcd; then only the new one is left
      await rebuilt.stop()
      const copy = await client.get('rebuilt-server')
      assert.equal(copy.softRttMs, 12)
      assert.ok(BigInt(now.revision) < BigInt(copy.revision), `${now.revision} < ${copy.revision}`)
      await rebuilt.start()
      await old.stop()
      await eventually('the new etcd reachable again', async () => (await replacement.store.health()).ok ? true : undefined, 10_000, 50)
      await new Promise(resolve => setTimeout(resolve, cacheTtlMs))
      assert.deepEqual(await client.get('rebuilt-server'), now)
      assert.deepEqual(await client.get('rebuilt-server', { fresh: true }), now)
    } finally {
      await Promise.allSettled([old.stop(), replacement.stop()])
      await rebuilt.remove()
    }
  })
})
