import assert from 'node:assert/strict'
import { createServer } from 'node:http'
import { after, before, describe, it } from 'node:test'
import { eventually } from '../../registry-service/test/helpers.ts'
import { startProxiedService } from './helpers.ts'
import type { ClientProxy } from '../src/client.ts'
import type { ProxiedService } from './helpers.ts'
import type { Registry } from 'prom-client'

const SERVICE = 'closing-server'

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
