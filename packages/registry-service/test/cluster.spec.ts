import assert from 'node:assert/strict'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { Etcd3 } from 'etcd3'
import { createRegistryClient } from '../src/index.ts'
import { Cli, eventually, freePort, sampleRecord, startNode, stopAll, tempDir } from './helpers.ts'
import type { PhysarumNode } from '@physarum/p2p'

interface Member {
  cli: Cli
  peerId: string
  addr: string
  clientUrl: string
}

describe('three registry-services forming one etcd cluster', () => {
  let state: Awaited<ReturnType<typeof tempDir>>
  let bootstrap: PhysarumNode
  let clientNode: PhysarumNode
  const members: Member[] = []

  before(async () => {
    state = await tempDir('physarum-registry-cluster')
    bootstrap = await startNode()
    clientNode = await startNode({ bootstrap: [bootstrap.multiaddrs()[0]!.toString()], dhtMode: 'client' })
  })
  after(async () => {
    await Promise.all(members.map(async m => { await m.cli.kill('SIGKILL') }))
    await stopAll([clientNode, bootstrap])
    await state?.remove()
  })

  const start = async (name: string, mode: '--new-etcd-cluster' | '--join-etcd-cluster'): Promise<Member> => {
    const clientPort = await freePort()
    const cli = new Cli([
      mode, '--etcd-ip', '127.0.0.1', '--etcd-client-port', String(clientPort), '--etcd-peer-port', String(await freePort()),
      '--state-dir', join(state.path, name), '--listen', '/ip4/127.0.0.1/tcp/0', '--metrics-listen', '127.0.0.1:0',
      '-bootstrap', bootstrap.multiaddrs()[0]!.toString(), '--open-writes'
    ], {})
    const member: Member = { cli, peerId: '', addr: '', clientUrl: `http://127.0.0.1:${clientPort}` }
    members.push(member)
    member.addr = (await cli.line(/listening: (\S+)/, 45_000))[1]!
    member.peerId = member.addr.split('/p2p/')[1]!
    return member
  }

  it('builds the cluster with --join-etcd-cluster, and survives losing a member', async () => {
    const first = await start('a', '--new-etcd-cluster')
    await start('b', '--join-etcd-cluster')
    await start('c', '--join-etcd-cluster')

    const etcd = new Etcd3({ hosts: first.clientUrl })
    try {
      const list = await etcd.cluster.memberList({})
      assert.equal(list.members.length, 3)
      assert.deepEqual(new Set(list.members.flatMap(m => m.clientURLs)), new Set(members.map(m => m.clientUrl)))
    } finally {
      etcd.close()
    }

    const client = createRegistryClient(clientNode, { cacheTtlMs: 0, restMs: 60_000 })
    const added = await eventually('a registry through the DHT', async () => await client.add(sampleRecord('clustered-server')), 15_000, 200)
    for (const member of members) {
      const direct = createRegistryClient(clientNode, { peers: [member.addr] })
      assert.deepEqual(await direct.get('clustered-server'), added, `served by ${member.peerId}`)
    }

    // the client's favourite dies with its etcd, as when its host goes down
    const ranked = await eventually('all three registries ranked', async () => {
      const found = await client.registries()
      return found.length === 3 ? found : undefined
    }, 15_000, 200).catch(async () => await client.registries())
    const victim = members.find(m => m.peerId === ranked[0]!.peerId.toString())!
    await victim.cli.kill('SIGKILL')

    // the caller notices nothing but latency: reads and writes still succeed
    const started = performance.now()
    assert.deepEqual(await client.get('clustered-server'), added)
    const updated = await client.add(sampleRecord('clustered-server', { hardRttMs: 250 }), { expectedRevision: added.revision })
    const elapsed = performance.now() - started
    assert.equal(updated.hardRttMs, 250)
    assert.ok(elapsed < 8_000, `failover took ${Math.round(elapsed)} ms`)
    assert.notEqual((await client.registries())[0]!.peerId.toString(), victim.peerId, 'the dead registry is tried last now')

    // every surviving registry serves the new value, and takes writes
    for (const member of members.filter(m => m !== victim)) {
      const direct = createRegistryClient(clientNode, { peers: [member.addr] })
      assert.equal((await direct.get('clustered-server')).hardRttMs, 250)
      await direct.add(sampleRecord(`written-via-${member.peerId.slice(-6).toLowerCase()}`))
    }
    assert.equal((await client.list()).records.length, 3)
  })
})
