import assert from 'node:assert/strict'
import { after, before, describe, it, mock } from 'node:test'
import { handleRpc, RpcFailureError } from '@physarum/p2p'
import { GET_MANY_RETRY_MS } from '../src/constants.ts'
import { createRegistryClient, recordToWire, registryRpc } from '../src/index.ts'
import { sampleRecord, startNode, stopAll } from './helpers.ts'
import { Failure } from '../src/pb/registry.js'
import type { Request, Response } from '../src/pb/registry.js'
import type { RegistryClientNode, ServiceRecord } from '../src/index.ts'
import type { PhysarumNode } from '@physarum/p2p'

/** What a stored record of `name` looks like. */
function stored (name: string): ServiceRecord {
  return { ...sampleRecord(name), createdAt: '2026-11-23T00:00:00.000Z', updatedAt: '2026-11-23T00:00:00.000Z', revision: '7' }
}

/**
 * A registry on a real node that answers from `stored()`, records every request it gets, holds
 * its answers while `hold` is pending, and refuses GetMany like a registry from before it existed
 * when `refuseGetMany` is set.
 */
class RecordingRegistry {
  readonly requests: Request[] = []
  refuseGetMany = false
  hold: Promise<void> = Promise.resolve()
  node!: PhysarumNode

  async start (): Promise<void> {
    this.node = await startNode()
    await handleRpc(this.node.libp2p, registryRpc, async (request): Promise<Response> => {
      this.requests.push(request)
      await this.hold
      if (request.get != null) {
        if (request.get.name.startsWith('missing-')) {
          throw new RpcFailureError('NOT_FOUND', `No service named ${request.get.name}`)
        }
        return { record: recordToWire(stored(request.get.name)) }
      }
      if (request.getMany != null && !this.refuseGetMany) {
        return {
          getMany: {
            results: request.getMany.names.map(name => name.startsWith('missing-')
              ? { failure: { code: Failure.Code.NOT_FOUND, message: `No service named ${name}` } }
              : { record: recordToWire(stored(name)) })
          }
        }
      }
      throw new RpcFailureError('BAD_REQUEST', 'Malformed request: unknown field 6 in Request')
    }, { log: this.node.libp2p.logger.forComponent('test:registry') })
  }

  /** The operation of each request and its names. */
  asked (): string[] {
    return this.requests.splice(0).map(r => r.getMany != null ? `getMany ${r.getMany.names.join(',')}` : `get ${r.get?.name}`)
  }
}

describe('registry client: Gets asked for together', () => {
  let registry: RecordingRegistry
  let caller: PhysarumNode

  before(async () => {
    registry = new RecordingRegistry()
    await registry.start()
    caller = await startNode()
  })
  after(async () => {
    await stopAll([caller, registry?.node])
  })

  it('go in one GetMany of their distinct names, each caller answered for its own', async () => {
    const client = createRegistryClient(caller, { peers: [registry.node.multiaddrs()[0]!], cacheTtlMs: 0 })
    await client.get('warm-up-server')
    registry.asked()

    const names = ['alpha-server', 'beta-server', 'missing-server', 'alpha-server', 'gamma-server:1.2']
    const outcomes = await Promise.allSettled(names.map(async name => await client.get(name, { fresh: true })))
    assert.deepEqual(outcomes.map(o => o.status === 'fulfilled' ? o.value : (o.reason as RpcFailureError).code),
      ['alpha-server', 'beta-server', 'NOT_FOUND', 'alpha-server', 'gamma-server:1.2'].map(n => n === 'NOT_FOUND' ? n : stored(n)))
    assert.match(((outcomes[2] as PromiseRejectedResult).reason as Error).message, /No service named missing-server/)
    assert.deepEqual(registry.asked(), ['getMany alpha-server,beta-server,missing-server,gamma-server:1.2'])

    // a lone Get is a Get; 150 at once are two GetMany (100 names at most)
    assert.deepEqual(await client.get('delta-server'), stored('delta-server'))
    const many = Array.from({ length: 150 }, (_, i) => `bulk-${i}-server`)
    assert.deepEqual((await Promise.all(many.map(async name => await client.get(name)))).map(r => r.name), many)
    assert.deepEqual(registry.asked(), ['get delta-server', `getMany ${many.slice(0, 100).join(',')}`, `getMany ${many.slice(100).join(',')}`])
  })

  it('lets a caller whose signal aborts leave without failing the others', async () => {
    const client = createRegistryClient(caller, { peers: [registry.node.multiaddrs()[0]!], cacheTtlMs: 0 })
    let release!: () => void
    registry.hold = new Promise(resolve => { release = resolve })
    const leaving = new AbortController()
    const gets = [client.get('stay-server'), client.get('leave-server', { signal: leaving.signal }), client.get('stay-too-server')]
    await new Promise(resolve => setTimeout(resolve, 50))
    leaving.abort(new Error('the caller left'))
    await assert.rejects(gets[1]!, /the caller left/)
    release()
    assert.deepEqual(await gets[0], stored('stay-server'))
    assert.deepEqual(await gets[2], stored('stay-too-server'))
    assert.deepEqual(registry.asked(), ['getMany stay-server,leave-server,stay-too-server'])
  })

  it('asks one name at a time once a registry refused a GetMany', async () => {
    registry.refuseGetMany = true
    const client = createRegistryClient(caller, { peers: [registry.node.multiaddrs()[0]!], cacheTtlMs: 0 })
    const first = await Promise.all(['one-server', 'two-server'].map(async name => await client.get(name)))
    assert.deepEqual(first, [stored('one-server'), stored('two-server')])
    await assert.rejects(Promise.all(['three-server', 'missing-four'].map(async name => await client.get(name))), { code: 'NOT_FOUND' })
    const asked = registry.asked()
    assert.deepEqual([asked[0], ...asked.slice(1).sort()], ['getMany one-server,two-server', 'get missing-four', 'get one-server', 'get three-server', 'get two-server'])
  })

  it('passes by a registry that refused a GetMany for the others, and asks it one again later, when it may have been upgraded', async () => {
    const older = new RecordingRegistry()
    const newer = new RecordingRegistry()
    older.refuseGetMany = true
    try {
      await older.start()
      await newer.start()
      // the older registry is the nearer one: asked first
      const node: RegistryClientNode = {
        libp2p: caller.libp2p,
        peerId: caller.peerId,
        discovery: caller.discovery,
        measureRtt: async (peer) => await Promise.resolve(peer.equals(older.node.peerId) ? 1 : 5)
      }
      const client = createRegistryClient(node, { peers: [older.node.multiaddrs()[0]!, newer.node.multiaddrs()[0]!], cacheTtlMs: 0 })
      const getAll = async (names: string[]): Promise<string[]> => (await Promise.all(names.map(async name => await client.get(name)))).map(r => r.name)

      assert.deepEqual(await getAll(['a-server', 'b-server']), ['a-server', 'b-server'])
      assert.deepEqual([older.asked(), newer.asked()], [['getMany a-server,b-server'], ['getMany a-server,b-server']])
      // remembered for that registry only: the next GetMany goes straight to the other
      assert.deepEqual(await getAll(['c-server', 'd-server']), ['c-server', 'd-server'])
      assert.deepEqual([older.asked(), newer.asked()], [[], ['getMany c-server,d-server']])

      // upgraded meanwhile: asked a GetMany again once the refusal is old enough
      older.refuseGetMany = false
      mock.timers.enable({ apis: ['Date'], now: Date.now() })
      try {
        mock.timers.setTime(Date.now() + GET_MANY_RETRY_MS + 1_000)
        assert.deepEqual(await getAll(['e-server', 'f-server']), ['e-server', 'f-server'])
      } finally {
        mock.timers.reset()
      }
      assert.deepEqual([older.asked(), newer.asked()], [['getMany e-server,f-server'], []])
    } finally {
      await stopAll([older.node, newer.node])
    }
  })
})
