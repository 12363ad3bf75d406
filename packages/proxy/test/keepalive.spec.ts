import assert from 'node:assert/strict'
import { createServer } from 'node:http'
import { after, before, describe, it } from 'node:test'
import { startDelayRelay } from '../../p2p/test/helpers.ts'
import { eventually } from '../../registry-service/test/helpers.ts'
import { startNamedInstance, startProxiedService, waitForProviders } from './helpers.ts'
import type { DelayRelay } from '../../p2p/test/helpers.ts'
import type { ClientProxy } from '../src/client.ts'
import type { NamedInstance, ProxiedService } from './helpers.ts'
import type { Server } from 'node:http'
import type { Registry } from 'prom-client'

const SERVICE = 'closing-server'

/**
 * A near instance of SERVICE running `service`, known to a proxy and answering, then a second one,
 * 10 ms away through a relay (within the record's soft 50 ms: no allocation is asked for), that
 * answers "far".
 */
async function nearAndFar (service: Server, init: { idleStreamTimeoutMs?: number } = {}): Promise<{ proxied: ProxiedService, far: NamedInstance, relay: DelayRelay }> {
  const proxied = await startProxiedService(SERVICE, 'closing', service, init)
  const get = async (): Promise<string | undefined> => {
    const response = await fetch(`http://127.0.0.1:${proxied.proxy.port}/${SERVICE}/`)
    return response.status === 200 ? await response.text() : undefined
  }
  // the near instance is the one known, and its stream is kept
  await eventually('the near instance answers', async () => await get().catch(() => undefined) === 'near\n' ? true : undefined, 30_000, 200)
  let relay: DelayRelay | undefined
  const far = await startNamedInstance({
    service: SERVICE,
    contentHash: 'hash-closing',
    name: 'far',
    bootstrap: proxied.instance.bootstrap,
    announce: async (port) => {
      relay = await startDelayRelay({ target: { port }, delayMs: 10 })
      return `/ip4/127.0.0.1/tcp/${relay.port}`
    }
  })
  await waitForProviders(proxied.node, 'hash-closing', 2)
  assert.equal(await get(), 'near\n')
  return { proxied, far, relay: relay! }
}

/** Stops what nearAndFar started. */
async function stopNearAndFar (started: Partial<{ proxied: ProxiedService, far: NamedInstance, relay: DelayRelay }>): Promise<void> {
  await started.far?.sidecar.stop(0)
  await started.relay?.close()
  started.far?.server.server.close()
  await started.proxied?.stop()
}

describe('client proxy: an instance that closes a connection under a request', { timeout: 120_000 }, () => {
  let proxied: ProxiedService
  let proxy: ClientProxy
  let metrics: Registry
  /** The service ends the connection of its next request without answering. */
  let closeNext = false

  const post = async (): Promise<number> => {
    const response = await fetch(`http://127.0.0.1:${proxy.port}/${SERVICE}/`, { method: 'POST', body: 'data' })
    await response.arrayBuffer()
    return response.status
  }
  const failures = async (): Promise<string[]> => (await metrics.metrics()).split('\n')
    .filter(line => line.startsWith(`physarum_proxy_upstream_failures_total{service="${SERVICE}"`))

  before(async () => {
    const service = createServer((req, res) => {
      if (closeNext) {
        closeNext = false
        // the whole request has been read: the connection ends cleanly (FIN), with no answer
        req.socket.end()
        return
      }
      req.resume()
      req.on('end', () => { res.end('ok') })
    })
    proxied = await startProxiedService(SERVICE, 'closing', service, { idleStreamTimeoutMs: 30_000 })
    proxy = proxied.proxy
    metrics = proxied.metrics
    await eventually('the instance answers', async () => await post().catch(() => undefined) === 200 ? true : undefined, 30_000, 200)
  })

  after(async () => { await proxied?.stop() })

  it('takes it for a keep-alive race on a kept stream, and for a failing instance on a new one', async () => {
    assert.equal(await post(), 200)
    // the stream of that request is kept and carries the next one, which the service closes
    // unanswered; a POST is not sent twice, so the client gets the 502
    closeNext = true
    assert.equal(await post(), 502)
    assert.notEqual(proxy.instanceOf(SERVICE), undefined, 'an instance that closed a kept stream is not rested')
    assert.deepEqual(await failures(), [`physarum_proxy_upstream_failures_total{service="${SERVICE}",stage="request"} 1`])

    // no kept stream is left: the next request opens a new one, and its closing unanswered is
    // the instance failing
    closeNext = true
    assert.equal(await post(), 502)
    assert.equal(proxy.instanceOf(SERVICE), undefined, 'an instance that failed a new stream is rested')
    assert.deepEqual(await failures(), [`physarum_proxy_upstream_failures_total{service="${SERVICE}",stage="request"} 2`])
  })
})

describe('client proxy: an instance killed under a GET on a kept stream', { timeout: 120_000 }, () => {
  let started: Awaited<ReturnType<typeof nearAndFar>> | undefined
  /** The service ends the connections of this many next requests without answering. */
  let closing = 0

  before(async () => {
    started = await nearAndFar(createServer((req, res) => {
      if (closing > 0) {
        closing--
        req.socket.end()
        return
      }
      res.end('near\n')
    }), { idleStreamTimeoutMs: 30_000 })
  })

  after(async () => { await stopNearAndFar(started ?? {}) })

  it('sends it again on the same instance after the kept stream, then once on another', async () => {
    const { proxied } = started!
    // what a killed instance does: its kept stream closes under the request, and so does the new
    // stream the request goes again on
    closing = 2
    const response = await fetch(`http://127.0.0.1:${proxied.proxy.port}/${SERVICE}/`)
    assert.equal(response.status, 200)
    assert.equal(await response.text(), 'far\n')
    assert.equal(closing, 0)
    const lines = (await proxied.metrics.metrics()).split('\n')
    assert.ok(lines.includes(`physarum_proxy_upstream_failures_total{service="${SERVICE}",stage="request"} 2`), lines.join('\n'))
    assert.ok(lines.includes(`physarum_proxy_retries_total{service="${SERVICE}"} 2`), lines.join('\n'))
  })
})

describe('client proxy: an instance that breaks off its response head', { timeout: 120_000 }, () => {
  let started: Awaited<ReturnType<typeof nearAndFar>> | undefined
  /** The service sends the start of a response head to each request, then ends the connection. */
  let breaking = false
  /** Requests the service read while breaking. */
  let broken = 0

  before(async () => {
    started = await nearAndFar(createServer((req, res) => {
      if (breaking) {
        broken++
        // what an instance that crashes as it answers leaves: part of a head, then the connection's end
        req.socket.end('HTTP/1.1 200 OK\r\ncontent-')
        return
      }
      res.end('near\n')
    }))
  })

  after(async () => { await stopNearAndFar(started ?? {}) })

  it('counts it as the instance failing, not keep-alive\'s race, and sends a GET once to another', async () => {
    const { proxied, far } = started!
    breaking = true
    const response = await fetch(`http://127.0.0.1:${proxied.proxy.port}/${SERVICE}/`)
    assert.equal(response.status, 200)
    assert.equal(await response.text(), 'far\n')
    assert.equal(broken, 1, 'the instance that broke the response is not asked again')
    assert.equal(proxied.proxy.instanceOf(SERVICE)?.peerId.toString(), far.sidecar.node.peerId.toString())
    const lines = (await proxied.metrics.metrics()).split('\n')
    assert.ok(lines.includes(`physarum_proxy_upstream_failures_total{service="${SERVICE}",stage="request"} 1`), lines.join('\n'))
    assert.ok(lines.includes(`physarum_proxy_retries_total{service="${SERVICE}"} 1`), lines.join('\n'))
  })
})
