import assert from 'node:assert/strict'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, afterEach, before, describe, it } from 'node:test'
import { Etcd3 } from 'etcd3'
import { createRegistryClient } from '../src/index.ts'
import { etcdAuthFor } from '../src/etcd-auth.ts'
import { EtcdProcess } from '../src/etcd-process.ts'
import { Cli, eventually, FAST_ETCD_ENV, freePort, sampleRecord, silentLog, startNode, stopAll, tempDir, TEST_PSK } from './helpers.ts'
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
  // each test's cluster is alone in the overlay: a new cluster beside running registries is refused
  afterEach(async () => {
    await Promise.all(members.splice(0).map(async m => { await m.cli.kill('SIGKILL') }))
  })
  after(async () => {
    await stopAll([clientNode, bootstrap])
    await state?.remove()
  })

  const args = (name: string, mode: '--new-etcd-cluster' | '--join-etcd-cluster', clientPort: number, peerPort: number): string[] => [
    mode, '--etcd-ip', '127.0.0.1', '--etcd-client-port', String(clientPort), '--etcd-peer-port', String(peerPort),
    '--state-dir', join(state.path, name), '--listen', '/ip4/127.0.0.1/tcp/0', '--metrics-listen', '127.0.0.1:0',
    '-bootstrap', bootstrap.multiaddrs()[0]!.toString(), '--open-writes'
  ]

  const start = async (name: string, mode: '--new-etcd-cluster' | '--join-etcd-cluster', ports?: { client: number, peer: number }, extra: string[] = []): Promise<Member> => {
    const clientPort = ports?.client ?? await freePort()
    const cli = new Cli([...args(name, mode, clientPort, ports?.peer ?? await freePort()), ...extra], {})
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

    // a host whose etcd data was lost, still started with --new-etcd-cluster: refused, not a
    // second, empty cluster
    const wiped = new Cli(args('wiped', '--new-etcd-cluster', await freePort(), await freePort()), {})
    assert.equal(await wiped.ended(), 1, wiped.lines.join('\n'))
    assert.match(wiped.lines.join('\n'), /--new-etcd-cluster with an empty etcd data folder .* while registry-services already run in this overlay/)

    // etcd lets in only holders of the overlay's key
    const anonymous = new Etcd3({ hosts: first.clientUrl })
    await assert.rejects(async () => await anonymous.put('/physarum/v1/services/intruder').value('{}'), /user name is empty/)
    anonymous.close()
    const etcd = new Etcd3({ hosts: first.clientUrl, auth: etcdAuthFor(TEST_PSK) })
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

  it('keeps its majority when a joining etcd never starts, and lets the host join again once it can', async () => {
    const first = await start('x', '--new-etcd-cluster')
    const ports = { client: await freePort(), peer: await freePort() }
    // an etcd that cannot reach the cluster: etcd 3.4 leaves member/ with a database and no log
    const broken = join(state.path, 'broken-etcd.sh')
    await writeFile(broken, [
      '#!/bin/sh',
      'while [ $# -gt 0 ]; do [ "$1" = --data-dir ] && dir=$2; shift; done',
      'mkdir -p "$dir/member/snap" && touch "$dir/member/snap/db"',
      'echo \'{"msg":"cannot fetch cluster info from peer urls"}\'',
      'exit 1'
    ].join('\n'), { mode: 0o755 })
    // --join-via: the registries of the other test's cluster are in the overlay too
    const failed = new Cli([...args('y', '--join-etcd-cluster', ports.client, ports.peer), '--etcd-bin', broken, '--join-via', first.addr], {})
    const code = await failed.ended()
    assert.equal(code, 1, failed.lines.slice(-3).join('\n'))
    assert.ok(failed.lines.some(line => /etcd .* exited with 1 before it was healthy/.test(line)), failed.lines.slice(-3).join('\n'))

    // the member it was given waits as a learner: the first registry still has its majority
    const direct = createRegistryClient(clientNode, { peers: [first.addr] })
    await direct.add(sampleRecord('written-after-a-failed-join'), { signal: AbortSignal.timeout(5_000) })
    const etcd = new Etcd3({ hosts: first.clientUrl, auth: etcdAuthFor(TEST_PSK) })
    try {
      const waiting = (await etcd.cluster.memberList({})).members
      assert.deepEqual(waiting.map(m => m.isLearner).sort(), [false, true])

      const joined = await start('y', '--join-etcd-cluster', ports, ['--join-via', first.addr])
      assert.ok(joined.cli.lines.some(line => /removed what an etcd that never joined/.test(line)))
      const members = (await etcd.cluster.memberList({})).members
      assert.deepEqual(members.map(m => [m.isLearner, m.clientURLs.length]), [[false, 1], [false, 1]], JSON.stringify(members))
      const again = createRegistryClient(clientNode, { peers: [joined.addr] })
      assert.equal((await again.get('written-after-a-failed-join')).name, 'written-after-a-failed-join')

      // etcd gets its own settings from the environment, never the overlay's key
      const pid = (await readFile(join(state.path, 'y', 'etcd.pid'), 'utf8')).trim()
      const environ = (await readFile(`/proc/${pid}/environ`, 'utf8')).split('\0')
      assert.ok(environ.some(entry => entry.startsWith('ETCD_ELECTION_TIMEOUT=')), environ.join(' '))
      assert.ok(!environ.some(entry => entry.startsWith('PHYSARUM_')), environ.join(' '))
    } finally {
      etcd.close()
    }
  })

  it('has a member whose join was cut short before its promotion promoted when it starts again', async () => {
    const first = await start('p', '--new-etcd-cluster')
    const ports = { client: await freePort(), peer: await freePort() }
    const etcd = new Etcd3({ hosts: first.clientUrl, auth: etcdAuthFor(TEST_PSK) })
    try {
      // what a join leaves when its process dies between its etcd's start and its promotion
      const added = await etcd.cluster.memberAdd({ peerURLs: [`http://127.0.0.1:${ports.peer}`], isLearner: true })
      const initialCluster = added.members.map(m => `${m.ID === added.member.ID ? 'q-member' : m.name}=${m.peerURLs[0]!}`).join(',')
      const learner = new EtcdProcess({
        name: 'q-member', dataDir: join(state.path, 'q', 'etcd'), ip: '127.0.0.1', clientPort: ports.client, peerPort: ports.peer,
        clusterState: 'existing', initialCluster, env: FAST_ETCD_ENV, log: silentLog
      })
      await learner.start()
      await learner.stop()

      const joined = await start('q', '--join-etcd-cluster', ports, ['--etcd-name', 'q-member', '--join-via', first.addr])
      assert.ok(joined.cli.lines.some(line => /still a learner .*asking to be promoted/.test(line)), joined.cli.lines.join('\n'))
      const members = (await etcd.cluster.memberList({})).members
      assert.deepEqual(members.map(m => m.isLearner), [false, false])
      await createRegistryClient(clientNode, { peers: [joined.addr] }).add(sampleRecord('written-after-a-cut-short-join'))
    } finally {
      etcd.close()
    }
  })
})
