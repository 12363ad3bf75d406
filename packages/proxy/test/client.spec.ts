import assert from 'node:assert/strict'
import { request } from 'node:http'
import { after, before, describe, it } from 'node:test'
import { createRegistryClient } from '@physarum/registry-service'
import { createMetricsRegistry } from '@physarum/p2p'
import {
  buildServiceImage, ensureNodeImage, silentLog, startDocker, startImageRegistry, startOverlay,
  startTestAllocator, stopTestbed, tempDir, waitForAllocator
} from '../../allocator/test/helpers.ts'
import { startClientProxy } from '../src/client.ts'
import { COLD_START_HEADER } from '../src/constants.ts'
import type { TestDocker, TestImageRegistry, TestOverlay } from '../../allocator/test/helpers.ts'
import type { AllocatorDaemon } from '@physarum/allocator'
import type { ClientProxy } from '../src/client.ts'
import type { Registry } from 'prom-client'

/** hello-world, plus POST /echo that streams the body back and GET /headers that shows what arrived. */
const SERVER = `
const http = require('node:http')
const server = http.createServer((req, res) => {
  if (req.method === 'POST' && req.url.startsWith('/echo')) {
    res.writeHead(200, { 'content-type': 'application/octet-stream' })
    req.pipe(res)
    return
  }
  if (req.url.startsWith('/headers')) {
    res.writeHead(200, { 'content-type': 'application/json' })
    res.end(JSON.stringify(req.headers))
    return
  }
  res.writeHead(200, { 'content-type': 'text/plain' })
  res.end('Hello, world from ' + process.env.PHYSARUM_INSTANCE + ' ' + req.url + '\\n')
})
server.listen(Number(process.env.SERVICE_PORT), '0.0.0.0')
process.on('SIGTERM', () => { server.close(); process.exit(0) })
`

describe('client proxy', { timeout: 240_000 }, () => {
  let engine: TestDocker
  let images: TestImageRegistry
  let overlay: TestOverlay
  let daemon: AllocatorDaemon
  let state: { path: string, remove: () => Promise<void> }
  let proxy: ClientProxy
  let metrics: Registry
  let base: string

  const coldStarts = async (service: string): Promise<string[]> => {
    const text = await metrics.metrics()
    return text.split('\n').filter(line => line.startsWith(`physarum_proxy_cold_starts_total{service="${service}"`))
  }

  before(async () => {
    engine = await startDocker()
    images = await startImageRegistry()
    state = await tempDir('physarum-proxy')
    await ensureNodeImage(engine)
    const image = await buildServiceImage(engine, images, 'hello-echo', SERVER)
    overlay = await startOverlay()
    await overlay.register('hello-world-server', image, { contentHash: 'hash-hello', hardRttMs: 1_000 })
    await overlay.register('cold-server', image, { contentHash: 'hash-cold', hardRttMs: 1_000 })
    daemon = await startTestAllocator(engine, overlay, state.path)
    await waitForAllocator(overlay, daemon)
    metrics = createMetricsRegistry()
    const registry = createRegistryClient(overlay.client, { peers: [overlay.registry.node.multiaddrs()[0]!], cacheTtlMs: 10_000 })
    proxy = await startClientProxy({ node: overlay.client, registry, metrics, log: silentLog }, {
      host: '127.0.0.1', port: 0, discoveryTimeoutMs: 500, coldStartTimeoutMs: 60_000, maxPending: 100
    })
    base = `http://127.0.0.1:${proxy.port}`
  })

  after(async () => {
    await proxy?.stop()
    await daemon?.stop()
    await stopTestbed({ overlay, engine, images, state })
  })

  it('starts an instance for the first request and reuses it for the next (the seed\'s flow)', async () => {
    assert.equal(daemon.allocator.instances().filter(i => i.service === 'hello-world-server').length, 0)
    const first = await fetch(`${base}/hello-world-server`)
    const body = await first.text()
    assert.equal(first.status, 200, body)
    assert.match(body, /^Hello, world from \S+ \/\n$/)
    const coldMs = Number(first.headers.get(COLD_START_HEADER))
    assert.ok(coldMs > 0, `${COLD_START_HEADER}: ${first.headers.get(COLD_START_HEADER)}`)
    const instanceId = /from (\S+)/.exec(body)![1]

    // the prefix is stripped, the rest and the query pass as they are
    const second = await fetch(`${base}/hello-world-server/a/b?x=1&y=2`)
    assert.equal(second.status, 200)
    assert.equal(second.headers.get(COLD_START_HEADER), null)
    assert.equal(await second.text(), `Hello, world from ${instanceId} /a/b?x=1&y=2\n`)
    assert.equal(daemon.allocator.instances().filter(i => i.service === 'hello-world-server').length, 1)
    assert.deepEqual(await coldStarts('hello-world-server'), ['physarum_proxy_cold_starts_total{service="hello-world-server",outcome="started"} 1'])
  })

  it('shares one allocation among 20 concurrent first requests', async () => {
    const answers = await Promise.all(Array.from({ length: 20 }, async (_, i) => {
      const response = await fetch(`${base}/cold-server/n${i}`)
      return { status: response.status, body: await response.text(), cold: response.headers.get(COLD_START_HEADER) }
    }))
    assert.deepEqual(answers.map(a => a.status), Array(20).fill(200), JSON.stringify(answers.find(a => a.status !== 200)))
    assert.ok(answers.every((a, i) => a.body.endsWith(` /n${i}\n`)))
    assert.equal(new Set(answers.map(a => /from (\S+)/.exec(a.body)![1])).size, 1)
    assert.ok(answers.every(a => Number(a.cold) > 0))
    assert.deepEqual(await coldStarts('cold-server'), ['physarum_proxy_cold_starts_total{service="cold-server",outcome="started"} 1'])
    assert.equal(daemon.allocator.instances().filter(i => i.service === 'cold-server').length, 1)
  })

  it('streams a POST body to the instance and back, and forwards without hop-by-hop headers', async () => {
    const chunks = 64
    const chunk = Buffer.alloc(64 * 1024, 'x')
    const body = new ReadableStream<Uint8Array>({
      pull (controller) {
        if (count++ < chunks) {
          controller.enqueue(chunk)
        } else {
          controller.close()
        }
      }
    })
    let count = 0
    const response = await fetch(`${base}/hello-world-server/echo`, { method: 'POST', body, duplex: 'half' })
    assert.equal(response.status, 200)
    let received = 0
    for await (const part of response.body as AsyncIterable<Uint8Array>) {
      assert.ok(part.every(b => b === 0x78))
      received += part.length
    }
    assert.equal(received, chunks * chunk.length)

    // node:http, not fetch: fetch refuses to send hop-by-hop headers at all
    const headers = await new Promise<Record<string, string>>((resolve, reject) => {
      const req = request(`${base}/hello-world-server/headers`, { headers: { 'keep-alive': 'timeout=5', 'x-custom': 'kept', 'x-drop-me': '1', connection: 'keep-alive, x-drop-me' } }, (res) => {
        const parts: Buffer[] = []
        res.on('data', (part: Buffer) => { parts.push(part) })
        res.on('end', () => { resolve(JSON.parse(Buffer.concat(parts).toString('utf8')) as Record<string, string>) })
        res.on('error', reject)
      })
      req.on('error', reject)
      req.end()
    })
    assert.equal(headers['x-custom'], 'kept')
    assert.equal(headers['x-drop-me'], undefined)
    assert.equal(headers['keep-alive'], undefined)
    assert.equal(headers['x-forwarded-for'], '127.0.0.1')
    assert.equal(headers.forwarded, 'for=127.0.0.1')
  })

  it('answers bad input with JSON errors', async () => {
    const cases: Array<[string, number, RegExp]> = [
      ['/no-such-service/x', 404, /No service named no-such-service/],
      ['/Not_A_Name!/x', 400, /Invalid service name/],
      ['/', 400, /names no service/],
      ['/%zz/x', 400, /not a valid URL path segment/]
    ]
    for (const [path, status, message] of cases) {
      const response = await fetch(`${base}${path}`)
      assert.equal(response.status, status, path)
      assert.match(response.headers.get('content-type') ?? '', /application\/json/)
      const error = await response.json() as { error: string, status: number }
      assert.match(error.error, message, path)
      assert.equal(error.status, status)
    }
  })
})
