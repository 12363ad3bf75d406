import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { callRpc, handleRpc, RpcFailureError } from '@physarum/p2p'
import { Etcd3 } from 'etcd3'
import { createRegistryClient, KEY_PREFIX, recordFromWire, recordToWire, REGISTRY_PROTOCOL, registryRpc } from '../src/index.ts'
import { Request, Response } from '../src/pb/registry.js'
import { etcdSnapshot, eventually, sampleRecord, startClient, startNode, startRegistry, stopAll, TestEtcd } from './helpers.ts'
import type { InProcessRegistry } from './helpers.ts'
import type { RegistryClient, ServiceRecordInput } from '../src/index.ts'
import type { Stream } from '@libp2p/interface'
import type { PhysarumNode } from '@physarum/p2p'

describe('registry service and client, two registries sharing one etcd', () => {
  let etcd: TestEtcd
  let bootstrap: PhysarumNode
  let one: InProcessRegistry
  let two: InProcessRegistry
  let admin: { node: PhysarumNode, client: RegistryClient }
  let viaOne: RegistryClient
  let viaTwo: RegistryClient
  let stranger: { node: PhysarumNode, client: RegistryClient }

  before(async () => {
    etcd = await TestEtcd.start()
    bootstrap = await startNode()
    admin = await startClient(bootstrap)
    one = await startRegistry(bootstrap, [etcd.endpoint], { admins: [admin.node.peerId.toString()] })
    two = await startRegistry(bootstrap, [etcd.endpoint], { admins: [admin.node.peerId.toString()] })
    viaOne = createRegistryClient(admin.node, { peers: [one.node.multiaddrs()[0]!], cacheTtlMs: 0 })
    viaTwo = createRegistryClient(admin.node, { peers: [two.node.multiaddrs()[0]!], cacheTtlMs: 0 })
    stranger = await startClient(bootstrap, { peers: [one.node.multiaddrs()[0]!.toString()] })
  })
  after(async () => {
    await Promise.allSettled([one?.stop(), two?.stop()])
    await stopAll([admin?.node, stranger?.node, bootstrap])
    await etcd?.remove()
  })

  it('adds, gets, lists and deletes through two different registries', async () => {
    const added = await viaOne.add(sampleRecord('hello-world-server'))
    assert.match(added.revision, /^[1-9][0-9]*$/)
    assert.equal(added.createdAt, added.updatedAt)
    const got = await viaTwo.get('hello-world-server')
    assert.deepEqual(got, added)

    // stored as JSON under the key of the design
    const snapshot = await etcdSnapshot(etcd.endpoint)
    const stored = JSON.parse(snapshot.keys[`${KEY_PREFIX}hello-world-server`]!.split(':').slice(1).join(':')) as Record<string, unknown>
    assert.equal(stored.image, sampleRecord('hello-world-server').image)

    // replacing keeps createdAt, moves the revision on
    const replaced = await viaTwo.add(sampleRecord('hello-world-server', { softRttMs: 50 }))
    assert.equal(replaced.createdAt, added.createdAt)
    assert.ok(BigInt(replaced.revision) > BigInt(added.revision))
    assert.equal((await viaOne.get('hello-world-server')).softRttMs, 50)

    for (const name of ['calc-server:1.0', 'calc-server:1.1', 'calc-server:2.0', 'calc-x', 'other']) {
      await viaOne.add(sampleRecord(name))
    }
    const first = await viaTwo.list({ prefix: 'calc-', pageSize: 2 })
    assert.deepEqual(first.records.map(r => r.name), ['calc-server:1.0', 'calc-server:1.1'])
    assert.notEqual(first.nextPageToken, '')
    // a write between pages does not shift the pages: they read one snapshot
    await viaOne.add(sampleRecord('calc-server:0.9'))
    const second = await viaOne.list({ prefix: 'calc-', pageSize: 2, pageToken: first.nextPageToken })
    assert.deepEqual(second.records.map(r => r.name), ['calc-server:2.0', 'calc-x'])
    assert.equal(second.nextPageToken, '')
    // a token continues only a listing of its own prefix: another prefix's does not read past it
    await assert.rejects(viaOne.list({ prefix: 'other', pageSize: 2, pageToken: first.nextPageToken }),
      { name: 'RpcFailureError', code: 'BAD_REQUEST', message: /^pageToken: continues a listing of names after "calc-server:1\.1", which does not start with the prefix "other"/ })
    const all = []
    for await (const record of viaTwo.listAll({ pageSize: 3 })) {
      all.push(record.name)
    }
    assert.deepEqual(all, ['calc-server:0.9', 'calc-server:1.0', 'calc-server:1.1', 'calc-server:2.0', 'calc-x', 'hello-world-server', 'other'])

    const deletedAt = await viaTwo.delete('calc-x')
    assert.ok(BigInt(deletedAt) > BigInt(replaced.revision))
    await assert.rejects(viaOne.get('calc-x'), { name: 'RpcFailureError', code: 'NOT_FOUND', message: /calc-x/ })
    await assert.rejects(viaOne.delete('calc-x'), { name: 'RpcFailureError', code: 'NOT_FOUND' })
  })

  it('lists around a value that is not a record, and reads fields a newer registry stored', async () => {
    const etcdClient = new Etcd3({ hosts: etcd.endpoint })
    try {
      await viaOne.add(sampleRecord('zz-newer'))
      const stored = JSON.parse(await etcdClient.get(`${KEY_PREFIX}zz-newer`).string() ?? '') as Record<string, unknown>
      await etcdClient.put(`${KEY_PREFIX}zz-newer`).value(JSON.stringify({ ...stored, placement: 'edge' }))
      await etcdClient.put(`${KEY_PREFIX}zz-bad`).value('{"name":"zz-bad"}')
      // a key that is not UTF-8, before the others: paging must pass it, not meet it again
      await etcdClient.put(Buffer.concat([Buffer.from(`${KEY_PREFIX}zz-a`), Buffer.from([0xff])])).value('{}')
      assert.equal((await viaTwo.get('zz-newer')).image, sampleRecord('zz-newer').image)
      assert.deepEqual((await viaTwo.list({ prefix: 'zz-' })).records.map(r => r.name), ['zz-newer'])
      // a page whose only value is not a record still leads to the next
      const names: string[] = []
      let pages = 0
      for (let token = ''; pages === 0 || token !== ''; pages++) {
        assert.ok(pages < 5, 'paging goes round in circles')
        const page = await viaOne.list({ prefix: 'zz-', pageSize: 1, pageToken: token })
        names.push(...page.records.map(r => r.name))
        token = page.nextPageToken
      }
      // three values, one page each: the two that are not records lead to the next page
      assert.deepEqual([names, pages], [['zz-newer'], 3])
    } finally {
      await etcdClient.delete().prefix(`${KEY_PREFIX}zz-`)
      etcdClient.close()
    }
  })

  it('lets one caller give up on finding the registries without failing another that waits for the same search', async () => {
    await eventually('a registry found through the DHT', async () => (await createRegistryClient(admin.node).registries().catch(() => [])).length > 0 ? true : undefined, 15_000, 200)
    const client = createRegistryClient(admin.node)
    const impatient = client.registries({ signal: AbortSignal.timeout(1) })
    const patient = client.registries()
    await assert.rejects(impatient, { name: 'TimeoutError' })
    assert.ok((await patient).length >= 1)
  })

  it('compares and swaps on the revision', async () => {
    const created = await viaOne.add(sampleRecord('cas-server'), { expectedRevision: 0 })
    await assert.rejects(viaTwo.add(sampleRecord('cas-server'), { expectedRevision: 0 }), { name: 'RpcFailureError', code: 'CONFLICT', message: new RegExp(`revision is ${created.revision}`) })
    const updated = await viaTwo.add(sampleRecord('cas-server', { hardRttMs: 500 }), { expectedRevision: created.revision })
    await assert.rejects(viaOne.add(sampleRecord('cas-server', { hardRttMs: 900 }), { expectedRevision: created.revision }), { code: 'CONFLICT' })
    await assert.rejects(viaOne.delete('cas-server', { expectedRevision: created.revision }), { code: 'CONFLICT' })
    assert.equal((await viaOne.get('cas-server')).hardRttMs, 500)
    await viaOne.delete('cas-server', { expectedRevision: updated.revision })
    await assert.rejects(viaOne.get('cas-server'), { code: 'NOT_FOUND' })
  })

  it('keeps the newer record cached when a Get read before a write is answered after it', async () => {
    const client = createRegistryClient(admin.node, { peers: [one.node.multiaddrs()[0]!], cacheTtlMs: 60_000 })
    const first = await client.add(sampleRecord('racing-server'))
    const { readOld, release, restore } = holdGets(one)
    try {
      const slow = client.get('racing-server', { fresh: true })
      await readOld
      const second = await client.add(sampleRecord('racing-server', { softRttMs: 60 }))
      release()
      const late = await slow
      assert.ok(BigInt(second.revision) > BigInt(first.revision))
      assert.deepEqual(await client.get('racing-server'), second, 'the cache keeps the newer record')
      assert.deepEqual(late, second, 'the late answer gives way to the newer record')
    } finally {
      restore()
    }
  })

  it('never serves a record it deleted from a Get read before the deletion and answered after it', async () => {
    const client = createRegistryClient(admin.node, { peers: [one.node.multiaddrs()[0]!], cacheTtlMs: 60_000 })
    await client.add(sampleRecord('deleted-racing-server'))
    client.invalidate()
    const { readOld, release, restore } = holdGets(one)
    try {
      // shared by the callers without a signal of their own, as the proxy's are
      const slow = client.get('deleted-racing-server')
      await readOld
      await client.delete('deleted-racing-server')
      // asked after the deletion, while the Get from before it is still on the wire
      const joined = client.get('deleted-racing-server')
      release()
      await assert.rejects(slow, { code: 'NOT_FOUND' }, 'the late answer gives way to the deletion')
      await assert.rejects(joined, { code: 'NOT_FOUND' })
      restore()
      await assert.rejects(client.get('deleted-racing-server'), { code: 'NOT_FOUND' }, 'nothing was cached')
      const again = await client.add(sampleRecord('deleted-racing-server', { softRttMs: 60 }))
      assert.deepEqual(await client.get('deleted-racing-server'), again, 'a record added again is served')
    } finally {
      restore()
    }
  })

  it('finds both registries through the DHT, ranks them by RTT, and caches Get for its TTL', async () => {
    // a client keeps its ranking for a minute, even one that a loaded host made from one answer:
    // each attempt is a new client, which walks the DHT afresh
    let client = createRegistryClient(admin.node, { cacheTtlMs: 400 })
    const ranked = await eventually('both registries found through the DHT', async () => {
      client = createRegistryClient(admin.node, { cacheTtlMs: 400 })
      const found = await client.registries().catch(() => [])
      return found.length >= 2 ? found : undefined
    }, 15_000, 200).catch(async () => await client.registries())
    assert.deepEqual(new Set(ranked.map(r => r.peerId.toString())), new Set([one.node.peerId.toString(), two.node.peerId.toString()]))
    assert.ok(ranked.every(r => typeof r.rttMs === 'number'), 'every registry was pinged')
    assert.ok(ranked[0]!.rttMs! <= ranked[1]!.rttMs!)

    await client.add(sampleRecord('cached-server'))
    const first = await client.get('cached-server')
    // removed behind the client's back: the cache still answers until the TTL is over
    const raw = new Etcd3({ hosts: etcd.endpoint })
    await raw.delete().key(`${KEY_PREFIX}cached-server`)
    raw.close()
    assert.deepEqual(await client.get('cached-server'), first)
    await assert.rejects(client.get('cached-server', { fresh: true }), { code: 'NOT_FOUND' })
    await eventually('the cached record to expire', async () => await client.get('cached-server').then(() => undefined, (err: RpcFailureError) => err.code), 3_000)

    // many callers at once while the copy is stale: one Get on the wire answers them all
    await client.add(sampleRecord('busy-server'))
    await new Promise(resolve => setTimeout(resolve, 450))
    const gets = async (): Promise<number> => {
      let total = 0
      for (const registry of [one, two]) {
        for (const line of (await registry.registry.metrics()).split('\n')) {
          if (line.startsWith('physarum_registry_requests_total{') && line.includes('operation="get"')) {
            total += Number(line.split(' ').at(-1))
          }
        }
      }
      return total
    }
    const before = await gets()
    const answers = await Promise.all(Array.from({ length: 20 }, async () => await client.get('busy-server')))
    assert.ok(answers.every(record => record.name === 'busy-server'))
    assert.equal(await gets() - before, 1)
  })

  it('refuses writes from a peer that is not an admin with UNAUTHORIZED, and still serves it reads', async () => {
    await viaOne.add(sampleRecord('guarded-server'))
    const before = await etcdSnapshot(etcd.endpoint)
    await assert.rejects(stranger.client.add(sampleRecord('guarded-server', { softRttMs: 1 })), { name: 'RpcFailureError', code: 'UNAUTHORIZED', message: new RegExp(stranger.node.peerId.toString()) })
    await assert.rejects(stranger.client.add(sampleRecord('intruder')), { code: 'UNAUTHORIZED' })
    await assert.rejects(stranger.client.delete('guarded-server'), { code: 'UNAUTHORIZED' })
    await assert.rejects(stranger.client.join('intruder', ['http://127.0.0.1:1']), { code: 'UNAUTHORIZED' })
    // asked before the work that ends in a write: refused the same way, allowed for an admin
    await assert.rejects(stranger.client.mayWrite(), { name: 'RpcFailureError', code: 'UNAUTHORIZED', message: new RegExp(`${stranger.node.peerId.toString()} may not write: writes are allowed only from the registry's --admin peers`) })
    assert.equal(await viaOne.mayWrite(), true)
    assert.match(await one.registry.metrics(), /physarum_registry_requests_total\{operation="mayWrite",outcome="UNAUTHORIZED"\} 1/)
    assert.equal((await stranger.client.get('guarded-server')).softRttMs, 20)
    assert.ok((await stranger.client.list()).records.some(r => r.name === 'guarded-server'))
    assert.deepEqual(await etcdSnapshot(etcd.endpoint), before)
    const members = await one.store.memberList()
    assert.equal(members.length, 1)
  })

  it('answers bad input with a clear error, keeps serving, and leaves etcd as it was', async () => {
    const before = await etcdSnapshot(etcd.endpoint)
    const open = async (): Promise<Stream> => await admin.node.libp2p.dialProtocol(one.node.peerId, REGISTRY_PROTOCOL)
    const answer = async (bytes: Uint8Array[]): Promise<Response | Error> => {
      const stream = await open()
      for (const chunk of bytes) {
        stream.send(chunk)
      }
      const signal = AbortSignal.timeout(5_000)
      try {
        return await readResponse(stream, signal)
      } catch (err) {
        // a reset passes for some inputs; no answer at all never does
        if (signal.aborted) {
          throw new Error('the registry neither answered nor reset the stream within 5 s', { cause: err })
        }
        return err as Error
      }
    }
    const frame = (body: Uint8Array): Uint8Array => Uint8Array.from([...varint(body.length), ...body])
    const token = (revision: string): string => Buffer.from(JSON.stringify({ after: '', revision })).toString('base64url')
    const wire = (record: ServiceRecordInput): Request => ({ add: { record: { ...record, createdAt: '', updatedAt: '', revision: 0n } } })

    const cases: Array<[string, Uint8Array[], RegExp]> = [
      ['garbage', [Uint8Array.from([0x05, 0xff, 0xff, 0xff, 0xff, 0xff])], /Malformed request/],
      ['an oversized frame', [Uint8Array.from([...varint(1024 * 1024)]), new Uint8Array(8192)], /too long/],
      ['an unknown field', [frame(Uint8Array.from([...Request.encode(wire(sampleRecord('ok-name'))), ...varint(20 << 3), 1]))], /unknown field 20 in Request/],
      ['an unknown field in the record', [frame(Uint8Array.from([1 << 3 | 2, 5, 1 << 3 | 2, 3, ...varint(30 << 3), 1]))], /unknown field 30 in Request\.add\.record/],
      ['no operation', [frame(new Uint8Array(0))], /exactly one of .*sets none/],
      ['two operations', [frame(Request.encode({ get: { name: 'a' }, delete: { name: 'a' } }))], /sets get and delete/],
      ['an invalid name', [frame(Request.encode(wire(sampleRecord('Bad Name'))))], /^name: .*not a service name/],
      ['an invalid name in Get', [frame(Request.encode({ get: { name: '../etc' } }))], /^name: /],
      ['an image without digest', [frame(Request.encode(wire(sampleRecord('ok-name', { image: 'registry.example.com/x:latest' }))))], /^image: .*no sha256 digest/],
      ['an oversized record', [frame(Request.encode(wire(sampleRecord('ok-name', { image: `registry.example.com/${'a'.repeat(100_000)}@sha256:${'ab'.repeat(32)}` }))))], /^image: is \d+ characters long, more than 512/],
      ['soft over hard', [frame(Request.encode(wire(sampleRecord('ok-name', { softRttMs: 500 }))))], /^softRttMs: /],
      ['a missing record', [frame(Request.encode({ add: {} }))], /^record: is missing/],
      ['a bad page token', [frame(Request.encode({ list: { prefix: '', pageSize: 0, pageToken: 'nonsense' } }))], /^pageToken: /],
      ['a page token from the future', [frame(Request.encode({ list: { prefix: '', pageSize: 0, pageToken: token('1000000000000') } }))], /^pageToken: names revision 1000000000000, which etcd has not reached: start the listing again/],
      ['a page token past any revision', [frame(Request.encode({ list: { prefix: '', pageSize: 0, pageToken: token('9'.repeat(30)) } }))], /^pageToken: is not a token/],
      ['a page too large', [frame(Request.encode({ list: { prefix: '', pageSize: 5000, pageToken: '' } }))], /^pageSize: /],
      ['a bad join', [frame(Request.encode({ join: { memberName: 'x y', peerUrls: [] } }))], /^member_name: /],
      ['a join peer URL with two ports', [frame(Request.encode({ join: { memberName: 'x', peerUrls: ['http://a:b:c'] } }))], /^peer_urls: /],
      ['a GetMany of no names', [frame(Request.encode({ getMany: { names: [] } }))], /1 to 100 names, not 0/],
      ['a GetMany of too many names', [frame(Request.encode({ getMany: { names: Array.from({ length: 101 }, (_, i) => `n-${i}`) } }))], /1 to 100 names, not 101/]
    ]
    for (const [what, bytes, message] of cases) {
      const response = await answer(bytes)
      if (what === 'garbage' && response instanceof Error) {
        continue // a reset is an acceptable answer to bytes that are not a frame
      }
      assert.ok(!(response instanceof Error), `${what}: ${response instanceof Error ? response.message : ''}`)
      assert.equal(response.failure?.code, 'BAD_REQUEST', `${what}: ${JSON.stringify(response.failure)}`)
      assert.match(response.failure.message, message, what)
    }
    // the client library refuses the same before sending
    await assert.rejects(viaOne.add(sampleRecord('Bad Name')), { name: 'InvalidRecordError', field: 'name' })

    assert.deepEqual(await etcdSnapshot(etcd.endpoint), before)
    assert.equal((await viaOne.get('hello-world-server')).name, 'hello-world-server')
    const metrics = await one.registry.metrics()
    assert.match(metrics, /physarum_registry_requests_total\{operation="add",outcome="BAD_REQUEST"\} [1-9]/)
    assert.match(metrics, /physarum_registry_etcd_up 1/)
    assert.match(metrics, /physarum_registry_records [1-9]/)
  })

  it('reads the Gets that arrive together in one etcd transaction, each answered for its own name', async (t) => {
    const a = await viaOne.add(sampleRecord('together-a-server'))
    const b = await viaOne.add(sampleRecord('together-b-server', { softRttMs: 7 }))
    // the transactions etcd has served, from its own /metrics
    const transactions = async (): Promise<number> => {
      const text = await (await fetch(`${etcd.endpoint}/metrics`)).text()
      return Number(/^grpc_server_handled_total\{grpc_code="OK",grpc_method="Txn",[^}]*\} (\d+)$/m.exec(text)?.[1])
    }
    // a value that is not a record, written past the registry
    const raw = new Etcd3({ hosts: etcd.endpoint })
    t.after(async () => {
      await raw.delete().key(`${KEY_PREFIX}together-bad-server`)
      raw.close()
    })
    await raw.put(`${KEY_PREFIX}together-bad-server`).value('{"name":')
    const before = await transactions()
    assert.ok(Number.isInteger(before), 'etcd counts its transactions')
    // 200 Gets at once, 161 different names: past the 128 operations one etcd transaction may hold
    const names = Array.from({ length: 200 }, (_, i) => i % 10 === 0 ? a.name : i % 10 === 1 ? b.name : i % 10 === 2 ? 'together-bad-server' : `together-missing-${i}`)
    const outcomes = await Promise.allSettled(names.map(async name => await one.store.get(name)))
    assert.deepEqual(outcomes.map(o => o.status === 'fulfilled' ? o.value?.name : (o.reason as RpcFailureError).code),
      names.map(name => name.startsWith('together-missing') ? undefined : name === 'together-bad-server' ? 'INTERNAL' : name))
    assert.deepEqual(outcomes[1], { status: 'fulfilled', value: b })
    assert.match(((outcomes[2] as PromiseRejectedResult).reason as Error).message, /together-bad-server is not a service record/)
    assert.equal(await transactions() - before, 2, 'two transactions: 128 names, then the other 33')
  })

  it('answers each name of a GetMany on its own, in the order asked', async (t) => {
    const a = await viaOne.add(sampleRecord('many-a-server'))
    const b = await viaOne.add(sampleRecord('many-b-server', { softRttMs: 3 }))
    const raw = new Etcd3({ hosts: etcd.endpoint })
    t.after(async () => {
      await raw.delete().key(`${KEY_PREFIX}many-bad-server`)
      raw.close()
    })
    await raw.put(`${KEY_PREFIX}many-bad-server`).value('[]')
    const metricsBefore = await two.registry.getSingleMetricAsString('physarum_registry_requests_total')
    const count = (text: string, outcome: string): number => Number(new RegExp(`operation="get",outcome="${outcome}"\\} (\\d+)`).exec(text)?.[1] ?? 0)

    const names = [b.name, 'many-missing-server', 'Bad Name', a.name, 'many-bad-server', b.name]
    const response = await callRpc(admin.node.libp2p, two.node.peerId, registryRpc, { getMany: { names } })
    const results = response.getMany!.results
    assert.deepEqual(results.map(r => r.record == null ? r.failure?.code : recordFromWire(r.record)),
      [b, 'NOT_FOUND', 'BAD_REQUEST', a, 'INTERNAL', b])
    assert.match(results[1]!.failure!.message, /No service named many-missing-server/)
    assert.match(results[2]!.failure!.message, /^name: .*not a service name/)
    assert.match(results[4]!.failure!.message, /many-bad-server is not a service record/)

    // each name counts as a Get
    const metricsAfter = await two.registry.getSingleMetricAsString('physarum_registry_requests_total')
    assert.deepEqual(['ok', 'NOT_FOUND', 'BAD_REQUEST', 'INTERNAL'].map(outcome => count(metricsAfter, outcome) - count(metricsBefore, outcome)), [3, 1, 1, 1])
  })

  it('takes a stored value with a field that would not fit in an answer for no record, without failing the names asked with it', async (t) => {
    const fine = await viaOne.add(sampleRecord('huge-a-server'))
    const raw = new Etcd3({ hosts: etcd.endpoint })
    t.after(async () => {
      for (const name of ['huge-b-server', 'huge-c-server', 'huge-d-server']) {
        await raw.delete().key(`${KEY_PREFIX}${name}`)
      }
      raw.close()
    })
    // records written past the registry, valid but for a value larger than a whole message: a
    // timestamp, a number written as a string, a value that is a string and not an object
    const stored = JSON.parse(await raw.get(`${KEY_PREFIX}huge-a-server`).string() ?? '') as Record<string, unknown>
    const huge = '0'.repeat(300_000)
    await raw.put(`${KEY_PREFIX}huge-b-server`).value(JSON.stringify({ ...stored, name: 'huge-b-server', createdAt: `2026-01-01T00:00:00.${huge}Z` }))
    await raw.put(`${KEY_PREFIX}huge-c-server`).value(JSON.stringify({ ...stored, name: 'huge-c-server', softRttMs: huge }))
    await raw.put(`${KEY_PREFIX}huge-d-server`).value(JSON.stringify(huge))

    const names = [fine.name, 'huge-b-server', 'huge-c-server', 'huge-d-server']
    const response = await callRpc(admin.node.libp2p, one.node.peerId, registryRpc, { getMany: { names } })
    assert.deepEqual(response.getMany!.results.map(r => r.record == null ? r.failure?.code : recordFromWire(r.record)), [fine, 'INTERNAL', 'INTERNAL', 'INTERNAL'])
    assert.match(response.getMany!.results[1]!.failure!.message, /huge-b-server is not a service record: createdAt: .*not a string of 300021 characters/)
    assert.match(response.getMany!.results[2]!.failure!.message, /huge-c-server is not a service record: softRttMs: .*not a string of 300000 characters/)
    assert.match(response.getMany!.results[3]!.failure!.message, /huge-d-server is not a service record: record: must be an object, not a string of 300000 characters/)
    assert.deepEqual((await viaOne.list({ prefix: 'huge-' })).records, [fine])
  })

  it('takes a record stored under another name\'s key for no record, and keeps the client\'s copy of that other name', async (t) => {
    const client = createRegistryClient(admin.node, { peers: [one.node.multiaddrs()[0]!], cacheTtlMs: 60_000 })
    const raw = new Etcd3({ hosts: etcd.endpoint })
    t.after(async () => {
      await raw.delete().key(`${KEY_PREFIX}copied-b-server`)
      raw.close()
    })
    // an operator "renames" a service by copying an old value of another under a new key
    await client.add(sampleRecord('copied-a-server'))
    const old = await raw.get(`${KEY_PREFIX}copied-a-server`).string()
    const current = await client.add(sampleRecord('copied-a-server', { softRttMs: 60 }))
    await raw.put(`${KEY_PREFIX}copied-b-server`).value(old!)

    await assert.rejects(client.get('copied-b-server'), { name: 'RpcFailureError', code: 'INTERNAL', message: /copied-b-server is not a service record: .*copied-a-server/ })
    assert.deepEqual(await client.get('copied-a-server', { fresh: true }), current)
    assert.deepEqual((await viaOne.list({ prefix: 'copied-' })).records, [current])
  })

  it('never loses an update among 20 concurrent writers', async () => {
    const base = await viaOne.add(sampleRecord('contended-server', { contentHash: 'n-0' }))
    const clients = [viaOne, viaTwo]

    // all start from one revision: exactly one lands, the others get CONFLICT
    const outcomes = await Promise.allSettled(Array.from({ length: 20 }, async (_, i) =>
      await clients[i % 2]!.add(sampleRecord('contended-server', { contentHash: `w-${i}` }), { expectedRevision: base.revision })))
    const landed = outcomes.flatMap((o, i) => o.status === 'fulfilled' ? [i] : [])
    assert.equal(landed.length, 1, `exactly one write lands: ${JSON.stringify(outcomes.map(o => o.status === 'rejected' ? (o.reason as RpcFailureError).code : 'ok'))}`)
    for (const outcome of outcomes) {
      if (outcome.status === 'rejected') {
        assert.equal((outcome.reason as RpcFailureError).code, 'CONFLICT')
      }
    }
    assert.equal((await viaTwo.get('contended-server')).contentHash, `w-${landed[0]}`)

    // read-modify-write with retries: 20 increments from 0 end at exactly 20
    await viaOne.add(sampleRecord('contended-server', { contentHash: 'n-0' }))
    let conflicts = 0
    await Promise.all(Array.from({ length: 20 }, async (_, i) => {
      const client = clients[i % 2]!
      for (;;) {
        const current = await client.get('contended-server')
        const n = Number(current.contentHash.slice(2))
        try {
          await client.add(sampleRecord('contended-server', { contentHash: `n-${n + 1}` }), { expectedRevision: current.revision })
          return
        } catch (err) {
          if (!(err instanceof RpcFailureError) || err.code !== 'CONFLICT') {
            throw err
          }
          conflicts++
        }
      }
    }))
    assert.equal((await viaOne.get('contended-server')).contentHash, 'n-20')
    assert.ok(conflicts > 0, 'the writers did collide')
  })

  // last: the rogue registry's provider record outlives it in the DHT
  it('asks only the trusted registries when given their ids, and says so when only others announce themselves', async () => {
    // any member may announce the registry topic: this one answers with records of its own
    const rogueEtcd = await TestEtcd.start()
    const rogue = await startRegistry(bootstrap, [rogueEtcd.endpoint], { openWrites: true })
    try {
      const trusted = [one.node.peerId.toString(), two.node.peerId.toString()]
      const all = await eventually('the rogue registry found through the DHT', async () => {
        const found = await createRegistryClient(admin.node).registries().catch(() => [])
        return found.some(r => r.peerId.equals(rogue.node.peerId)) ? found : undefined
      }, 15_000, 200)
      assert.ok(all.length >= 2, String(all.length))
      const careful = createRegistryClient(admin.node, { trusted })
      const asked = await careful.registries()
      assert.ok(asked.length > 0 && asked.every(r => trusted.includes(r.peerId.toString())), asked.map(r => r.peerId.toString()).join(' '))
      await createRegistryClient(admin.node, { cacheTtlMs: 0, peers: [rogue.node.multiaddrs()[0]!] }).add(sampleRecord('trusted-server', { image: '127.0.0.1:5000/evil@sha256:' + 'e'.repeat(64) }))
      await viaOne.add(sampleRecord('trusted-server'))
      for (let i = 0; i < 5; i++) {
        assert.equal((await careful.get('trusted-server', { fresh: true })).image, sampleRecord('trusted-server').image)
      }
      const misled = createRegistryClient(admin.node, { trusted: [rogue.node.peerId.toString().replace(/.$/, c => c === 'a' ? 'b' : 'a')] })
      await assert.rejects(misled.registries(), { name: 'NoRegistryError', message: /other peer\(s\) announce it, none of them a trusted registry \(--registry-id\)/ })
    } finally {
      await rogue.stop()
      await rogueEtcd.remove()
      await viaOne.delete('trusted-server').catch(() => {})
    }
  })
})

/**
 * Has `registry` read each record at once and hold its answer until `release` (as a slow path
 * would); `readOld` settles once a record was read, `restore` releases and reads as before.
 */
function holdGets (registry: InProcessRegistry): { readOld: Promise<void>, release: () => void, restore: () => void } {
  let release!: () => void
  const held = new Promise<void>(resolve => { release = resolve })
  let readDone!: () => void
  const readOld = new Promise<void>(resolve => { readDone = resolve })
  const read = registry.store.get.bind(registry.store)
  registry.store.get = async (name) => {
    const record = await read(name)
    readDone()
    await held
    return record
  }
  return { readOld, release, restore: () => { release(); registry.store.get = read } }
}

function varint (value: number): number[] {
  const bytes = []
  while (value > 0x7f) {
    bytes.push((value & 0x7f) | 0x80)
    value >>>= 7
  }
  bytes.push(value)
  return bytes
}

/** Reads one length-prefixed Response from a raw stream (what pbStream does, without the dependency). */
async function readResponse (stream: Stream, signal: AbortSignal): Promise<Response> {
  let buffered = new Uint8Array(0)
  const onAbort = (): void => { stream.abort(new Error('timed out reading the response')) }
  signal.addEventListener('abort', onAbort)
  try {
    for await (const chunk of stream) {
      const bytes = chunk instanceof Uint8Array ? chunk : chunk.subarray()
      buffered = Uint8Array.from([...buffered, ...bytes])
      let length = 0
      let shift = 0
      let at = 0
      while (at < buffered.length) {
        const byte = buffered[at++]!
        length += (byte & 0x7f) * 2 ** shift
        shift += 7
        if ((byte & 0x80) === 0) {
          if (buffered.length - at >= length) {
            return Response.decode(buffered.subarray(at, at + length))
          }
          break
        }
      }
    }
  } finally {
    signal.removeEventListener('abort', onAbort)
  }
  throw new Error('the stream ended without a response')
}

describe('what a registry answers', () => {
  let bootstrap: PhysarumNode
  let rogue: PhysarumNode
  let caller: { node: PhysarumNode, client: RegistryClient }
  // what the registry answers for each name asked: any member of the overlay may answer as one
  const answers = new Map<string, ServiceRecordInput>()
  // the names and the next page token it answers to a List with a page token
  let listPage: (pageToken: string) => { names: string[], next: string } = () => ({ names: [], next: '' })

  before(async () => {
    bootstrap = await startNode()
    rogue = await startNode({ bootstrap: [bootstrap.multiaddrs()[0]!.toString()] })
    const answer = (name: string): ReturnType<typeof recordToWire> => recordToWire({ ...answers.get(name)!, createdAt: new Date().toISOString(), updatedAt: new Date().toISOString(), revision: '7' })
    await handleRpc(rogue.libp2p, registryRpc, async (request) => {
      if (request.list != null) {
        const page = listPage(request.list.pageToken)
        return await Promise.resolve({ list: { records: page.names.map(answer), nextPageToken: page.next } })
      }
      if (request.getMany != null) {
        return await Promise.resolve({ getMany: { results: request.getMany.names.map(name => ({ record: answer(name) })) } })
      }
      return await Promise.resolve({ record: answer(request.get!.name) })
    }, { log: rogue.libp2p.logger.forComponent('test:rogue-registry') })
    caller = await startClient(bootstrap, { peers: [rogue.multiaddrs()[0]!] })
  })
  after(async () => {
    await stopAll([caller?.node, rogue, bootstrap])
  })

  it('refuses a record of another name, or one no registry would store, instead of caching it', async () => {
    answers.set('a', sampleRecord('b'))
    answers.set('c', sampleRecord('c', { softRttMs: 500, hardRttMs: 100 }))
    answers.set('d', sampleRecord('d', { image: 'evil.example/d:latest' }))
    answers.set('b', sampleRecord('b', { contentHash: 'hash-b-real' }))
    await assert.rejects(caller.client.get('a'), { name: 'RpcProtocolError', message: /answered the record of "b" for "a"/ })
    // one Get and GetMany alike
    const failure = async (name: string): Promise<string> => await caller.client.get(name).then(record => `answered ${record.name}`, (err: Error) => err.message)
    const [c, d] = await Promise.all([failure('c'), failure('d')])
    assert.match(c, /answered a record of "c" that is not one: .*softRttMs/)
    assert.match(d, /answered a record of "d" that is not one: .*image/)
    // the record of "b" answered for "a" was not taken for b's
    assert.equal((await caller.client.get('b')).contentHash, 'hash-b-real')
  })

  it('ends a listing whose registry gives a page token again, or pages that do not go on, instead of asking for ever', async () => {
    for (const name of ['a', 'b', 'c']) {
      answers.set(name, sampleRecord(name))
    }
    const listed = async (): Promise<string> => {
      const names: string[] = []
      try {
        for await (const record of caller.client.listAll()) {
          names.push(record.name)
          if (names.length > 20) {
            return `still listing after ${names.length} records`
          }
        }
        return `listed ${names.join(',')}`
      } catch (err) {
        return `${(err as Error).name} after ${names.join(',')}: ${(err as Error).message}`
      }
    }
    const pages = (map: Record<string, { names: string[], next: string }>) => (token: string) => map[token] ?? { names: [], next: '' }
    listPage = pages({ '': { names: ['a'], next: 't1' }, t1: { names: [], next: 't2' }, t2: { names: ['b', 'c'], next: '' } })
    assert.equal(await listed(), 'listed a,b,c', 'a page left empty (its values not records) is passed by')
    listPage = pages({ '': { names: ['a'], next: 't1' }, t1: { names: ['b'], next: 't2' }, t2: { names: ['c'], next: 't1' } })
    assert.match(await listed(), /^RpcProtocolError after a,b,c: A registry answered List page 3 with a page token it had given before/)
    // a new token each time, the same page behind it
    listPage = token => ({ names: ['a', 'b'], next: `${token}x` })
    assert.match(await listed(), /^RpcProtocolError after a,b: A registry answered List page 2 starting at "a", not after "b"/)
  })
})
