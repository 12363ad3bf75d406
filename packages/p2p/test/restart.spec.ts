import assert from 'node:assert/strict'
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, it } from 'node:test'
import { loadOrCreateIdentity } from '../src/index.ts'
import { eventually, startNode, stopAll } from './helpers.ts'
import type { PhysarumNode } from '../src/index.ts'

describe('restarts', () => {
  const nodes: PhysarumNode[] = []
  const dir = mkdtemp(join(tmpdir(), 'physarum-restart-'))
  after(async () => {
    await stopAll(nodes)
    await rm(await dir, { recursive: true, force: true })
  })

  it('keeps the peer id in a key file created with mode 0600', async () => {
    const path = join(await dir, 'state', 'identity.key')
    const first = await startNode({ privateKey: await loadOrCreateIdentity(path) })
    const id = first.peerId.toString()
    await first.stop()
    assert.equal((await stat(path)).mode & 0o777, 0o600)
    const again = await startNode({ privateKey: await loadOrCreateIdentity(path) })
    nodes.push(again)
    assert.equal(again.peerId.toString(), id)
  })

  it('refuses an identity file that holds no key, naming it', async () => {
    const path = join(await dir, 'broken.key')
    await writeFile(path, 'not a key')
    await assert.rejects(loadOrCreateIdentity(path), { name: 'IdentityError', message: /broken\.key/ })
    assert.equal(await readFile(path, 'utf8'), 'not a key', 'the bad file is left alone')
  })

  /**
   * Restarts a provider's bootstrap on the same address and identity, and returns the provider a
   * newcomer then finds. With `otherPeer`, the provider keeps a connection to another peer (a
   * client proxy's, say) through the restart.
   */
  async function findAfterBootstrapRestart (name: string, otherPeer: boolean): Promise<{ found: string, provider: string }> {
    const key = await loadOrCreateIdentity(join(await dir, `${name}.key`))
    let bootstrap = await startNode({ privateKey: key })
    const addr = bootstrap.multiaddrs()[0]!
    // a DHT client, as a sidecar is: no query reaches it, so its topic is found only in the records
    // other peers hold (a server would answer from its own)
    const provider = await startNode({ bootstrap: [addr.toString()], dhtMode: 'client' })
    nodes.push(provider)
    if (otherPeer) {
      nodes.push(await startNode({ bootstrap: [provider.multiaddrs()[0]!.toString()], dhtMode: 'client' }))
    }
    const topic = `test:${name}`
    await provider.discovery.provide(topic)

    await bootstrap.stop()
    await eventually('the provider to notice', () => provider.libp2p.getConnections(bootstrap.peerId).length === 0 ? true : undefined)
    bootstrap = await startNode({ privateKey: key, listen: [addr.decapsulateCode(421).toString()] })
    nodes.push(bootstrap)
    await eventually('the provider to reconnect', () => provider.libp2p.getConnections(bootstrap.peerId).length > 0 ? true : undefined, 15_000)

    // the restarted bootstrap kept no records: a newcomer finds the topic only if it was provided again
    const newcomer = await startNode({ bootstrap: [addr.toString()] })
    nodes.push(newcomer)
    const found = await eventually('the topic again', async () => {
      for await (const peer of newcomer.discovery.findProviders(topic, { signal: AbortSignal.timeout(2_000) })) {
        return peer.id.toString()
      }
      return undefined
    }, 15_000)
    return { found, provider: provider.peerId.toString() }
  }

  it('reconnects to a bootstrap restarted on the same address and provides its topics again', async () => {
    const { found, provider } = await findAfterBootstrapRestart('alone', false)
    assert.equal(found, provider)
  })

  it('provides its topics again when its bootstrap comes back, though it kept other connections', async () => {
    const { found, provider } = await findAfterBootstrapRestart('with-others', true)
    assert.equal(found, provider)
  })
})
