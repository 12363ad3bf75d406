import assert from 'node:assert/strict'
import { once } from 'node:events'
import { createServer } from 'node:http'
import { after, before, describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { freePort, silentLog, startNode, stopAll, TEST_PSK } from '../../registry-service/test/helpers.ts'
import { startSidecar } from '../src/sidecar.ts'
import { startLocalInstance, startTestProxy, waitForProviders } from './helpers.ts'
import type { AddressInfo } from 'node:net'
import type { Server } from 'node:http'
import type { PhysarumNode } from '@physarum/p2p'
import type { ClientProxy } from '../src/client.ts'
import type { Sidecar } from '../src/sidecar.ts'
import type { LocalInstance } from './helpers.ts'

const SERVICE = 'stopping-server'
/** startLocalInstance names the record's version after its sidecar. */
const CONTENT_HASH = 'hash-a'
/** Each POST takes this long at the service: one is in flight whenever the stop comes. */
const ANSWER_MS = 300
/** Long enough that a stop waiting it out is told apart from one that does not. */
const GRACE_MS = 20_000

describe('client proxy: a sidecar that stops while requests keep coming', { timeout: 120_000 }, () => {
  let server: Server
  let received = 0
  let local: LocalInstance
  let second: Sidecar
  let proxyNode: PhysarumNode
  let proxy: ClientProxy

  before(async () => {
    // both sidecars front this one service: it counts every POST that reached it
    server = createServer((req, res) => {
      received++
      req.resume()
      req.on('end', () => { setTimeout(() => { res.end(`posted ${received}\n`) }, ANSWER_MS) })
    })
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    const port = (server.address() as AddressInfo).port
    local = await startLocalInstance(SERVICE, 'a', port)
    second = await startSidecar({
      psk: TEST_PSK,
      listen: [`/ip4/127.0.0.1/tcp/${await freePort()}`],
      bootstrap: [local.bootstrap.multiaddrs()[0]!.toString()],
      service: SERVICE,
      contentHash: CONTENT_HASH,
      servicePort: port,
      instanceId: 'b'
    }, silentLog)
    proxyNode = await startNode({ bootstrap: [local.bootstrap.multiaddrs()[0]!.toString()], dhtMode: 'client' })
    await waitForProviders(proxyNode, CONTENT_HASH, 2)
    ;({ proxy } = await startTestProxy(proxyNode, local.registry.node.multiaddrs()[0]!))
  })

  after(async () => {
    await proxy?.stop()
    await second?.stop(0)
    await stopAll([proxyNode])
    await local?.stop()
    server?.closeAllConnections()
    server?.close()
  })

  it('sends the new requests elsewhere and lets the one in flight finish, without waiting out its grace', async () => {
    const statuses: number[] = []
    let sending = true
    // POSTs back to back on a few kept connections: the proxy's streams to the instance stay open
    const worker = async (): Promise<void> => {
      while (sending) {
        const response = await fetch(`http://127.0.0.1:${proxy.port}/${SERVICE}/`, { method: 'POST', body: 'not to be sent twice' })
        await response.text()
        statuses.push(response.status)
      }
    }
    const workers = [worker(), worker(), worker()]
    await sleep(3 * ANSWER_MS)
    const chosen = proxy.instanceOf(SERVICE)!.peerId
    const stopping = [local.sidecar, second].find(sidecar => sidecar.node.peerId.equals(chosen))!
    const startedAt = Date.now()
    await stopping.stop(GRACE_MS)
    const tookMs = Date.now() - startedAt
    await sleep(3 * ANSWER_MS)
    sending = false
    await Promise.all(workers)

    assert.ok(tookMs < GRACE_MS / 2, `the stop waited ${tookMs} ms: the proxy kept sending on its streams`)
    assert.deepEqual(statuses.filter(status => status !== 200), [], 'every POST answered')
    assert.equal(received, statuses.length, 'each POST reached the service once')
    assert.ok(!proxy.instanceOf(SERVICE)!.peerId.equals(chosen), 'the instance left serves')
  })
})
