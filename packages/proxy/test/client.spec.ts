import assert from 'node:assert/strict'
import { once } from 'node:events'
import { Agent, request } from 'node:http'
import { connect } from 'node:net'
import { after, before, describe, it } from 'node:test'
import { createRegistryClient } from '@physarum/registry-service'
import { createMetricsRegistry } from '@physarum/p2p'
import {
  buildServiceImage, containersOf, ensureNodeImage, eventually, silentLog, startDocker, startImageRegistry, startOverlay,
  startTestAllocator, stopTestbed, tempDir, waitForAllocator
} from '../../allocator/test/helpers.ts'
import { HTTP_PROTOCOL, LABELS } from '@physarum/allocator'
import { startClientProxy } from '../src/client.ts'
import { COLD_START_HEADER } from '../src/constants.ts'
import { rawRequest, startTestProxy } from './helpers.ts'
import type { TestDocker, TestImageRegistry, TestOverlay } from '../../allocator/test/helpers.ts'
import type { AllocatorDaemon } from '@physarum/allocator'
import type { ClientProxy } from '../src/client.ts'
import type { Registry } from 'prom-client'

/**
 * hello-world, plus POST /echo that streams the body back, POST /sink that answers once the whole
 * body came, and GET /headers that shows what arrived.
 */
const SERVER = `
const http = require('node:http')
const server = http.createServer((req, res) => {
  if (req.method === 'POST' && req.url.startsWith('/echo')) {
    res.writeHead(200, { 'content-type': 'application/octet-stream' })
    req.pipe(res)
    return
  }
  if (req.method === 'POST' && req.url.startsWith('/sink')) {
    let bytes = 0
    req.on('data', (chunk) => { bytes += chunk.length })
    req.on('end', () => { res.end('got ' + bytes + ' bytes\\n') })
    return
  }
  if (req.url.startsWith('/break')) {
    req.socket.destroy()
    return
  }
  if (req.url.startsWith('/stall')) {
    return
  }
  if (req.url.startsWith('/hints')) {
    res.writeEarlyHints({ link: ['</style.css>; rel=preload; as=style', '</app.js>; rel=preload; as=script'] })
    res.writeHead(200, { 'content-type': 'text/plain', trailer: 'x-checksum' })
    res.write('a body with a trailer\\n')
    res.addTrailers({ 'x-checksum': 'abc123' })
    res.end()
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
// a WebSocket echo, small frames only
server.on('upgrade', (req, socket) => {
  if (req.url.startsWith('/refuse-ws')) {
    socket.end('HTTP/1.1 403 Forbidden\\r\\ncontent-length: 0\\r\\nconnection: close\\r\\n\\r\\n')
    return
  }
  const accept = require('node:crypto').createHash('sha1').update(req.headers['sec-websocket-key'] + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64')
  socket.write('HTTP/1.1 101 Switching Protocols\\r\\nUpgrade: websocket\\r\\nConnection: Upgrade\\r\\nSec-WebSocket-Accept: ' + accept + '\\r\\n\\r\\n')
  let buffered = Buffer.alloc(0)
  socket.on('data', (chunk) => {
    buffered = Buffer.concat([buffered, chunk])
    while (buffered.length >= 6 && buffered.length >= 6 + (buffered[1] & 0x7f)) {
      const opcode = buffered[0] & 0x0f
      const length = buffered[1] & 0x7f
      const mask = buffered.subarray(2, 6)
      const payload = Buffer.from(buffered.subarray(6, 6 + length).map((b, i) => b ^ mask[i % 4]))
      buffered = buffered.subarray(6 + length)
      if (opcode === 8) {
        socket.end(Buffer.from([0x88, 0]))
        return
      }
      socket.write(Buffer.concat([Buffer.from([0x80 | opcode, payload.length]), payload]))
    }
  })
})
server.listen(Number(process.env.SERVICE_PORT), '127.0.0.1')
process.on('SIGTERM', () => { server.close(); process.exit(0) })
`

/** Listens only after 3 s: a cold start that takes a while. */
const SLOW_SERVER = `
const http = require('node:http')
const server = http.createServer((req, res) => { res.end('slow but there\\n') })
setTimeout(() => { server.listen(Number(process.env.SERVICE_PORT), '127.0.0.1') }, 3000)
process.on('SIGTERM', () => { process.exit(0) })
`

/** Front of a chain: asks the next service through its sidecar's client port (ProxyClientMode). */
const CHAIN_SERVER = `
const http = require('node:http')
const server = http.createServer((req, res) => {
  http.get('http://127.0.0.1:' + process.env.PROXY_PORT + '/hello-world-server/from-chain', (answer) => {
    let body = ''
    answer.setEncoding('utf8')
    answer.on('data', (part) => { body += part })
    answer.on('end', () => { res.writeHead(answer.statusCode); res.end('front got: ' + body) })
  }).on('error', (err) => { res.writeHead(500); res.end(err.message) })
})
server.listen(Number(process.env.SERVICE_PORT), '127.0.0.1')
process.on('SIGTERM', () => { process.exit(0) })
`

describe('client proxy', { timeout: 300_000 }, () => {
  let engine: TestDocker
  let images: TestImageRegistry
  let image: string
  let overlay: TestOverlay
  let daemon: AllocatorDaemon
  let state: { path: string, remove: () => Promise<void> }
  let proxy: ClientProxy
  let metrics: Registry
  let base: string

  const coldStarts = async (service: string): Promise<string[]> => await series('physarum_proxy_cold_starts_total', service)
  const series = async (name: string, service: string): Promise<string[]> => {
    const text = await metrics.metrics()
    return text.split('\n').filter(line => line.startsWith(`${name}{service="${service}"`))
  }
  /** HTTP streams open from the proxy's node to `peer`. */
  const httpStreams = (peer: string): number => overlay.client.libp2p.getConnections()
    .filter(c => c.remotePeer.toString() === peer)
    .flatMap(c => c.streams)
    .filter(s => s.protocol === HTTP_PROTOCOL && s.status === 'open').length

  before(async () => {
    engine = await startDocker()
    images = await startImageRegistry()
    state = await tempDir('physarum-proxy')
    await ensureNodeImage(engine)
    image = await buildServiceImage(engine, images, 'hello-echo', SERVER)
    const slowImage = await buildServiceImage(engine, images, 'slow-start', SLOW_SERVER)
    const chainImage = await buildServiceImage(engine, images, 'chain-front', CHAIN_SERVER)
    overlay = await startOverlay()
    await overlay.register('hello-world-server', image, { contentHash: 'hash-hello', hardRttMs: 1_000 })
    await overlay.register('cold-server', image, { contentHash: 'hash-cold', hardRttMs: 1_000 })
    await overlay.register('steady-server', image, { contentHash: 'hash-steady', hardRttMs: 1_000 })
    await overlay.register('slow-server', slowImage, { contentHash: 'hash-slow', hardRttMs: 1_000 })
    await overlay.register('slow-leave', slowImage, { contentHash: 'hash-slow-leave', hardRttMs: 1_000 })
    await overlay.register('slow-queue', slowImage, { contentHash: 'hash-slow-queue', hardRttMs: 1_000 })
    await overlay.register('post-server', image, { contentHash: 'hash-post', hardRttMs: 1_000 })
    await overlay.register('versioned-server', image, { contentHash: 'hash-v1', hardRttMs: 1_000 })
    await overlay.register('chain-front', chainImage, { contentHash: 'hash-chain', hardRttMs: 1_000, proxyClientMode: true })
    daemon = await startTestAllocator(engine, overlay, state.path, { maxInstances: 16 })
    await waitForAllocator(overlay, daemon)
    metrics = createMetricsRegistry()
    const registry = createRegistryClient(overlay.client, { peers: [overlay.registry.node.multiaddrs()[0]!], cacheTtlMs: 10_000 })
    proxy = await startClientProxy({ node: overlay.client, registry, metrics, log: silentLog }, {
      host: '127.0.0.1', port: 0, discoveryTimeoutMs: 500, coldStartTimeoutMs: 60_000, maxPending: 200, idleStreamTimeoutMs: 1_000
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

  it('shares one allocation among 100 concurrent first requests', async () => {
    const answers = await Promise.all(Array.from({ length: 100 }, async (_, i) => {
      const response = await fetch(`${base}/cold-server/n${i}`)
      return { status: response.status, body: await response.text(), cold: response.headers.get(COLD_START_HEADER) }
    }))
    assert.deepEqual(answers.map(a => a.status), Array(100).fill(200), JSON.stringify(answers.find(a => a.status !== 200)))
    assert.ok(answers.every((a, i) => a.body.endsWith(` /n${i}\n`)))
    assert.equal(new Set(answers.map(a => /from (\S+)/.exec(a.body)![1])).size, 1)
    assert.ok(answers.every(a => Number(a.cold) > 0))
    const allocations = await coldStarts('cold-server')
    const failures = await series('physarum_proxy_upstream_failures_total', 'cold-server')
    const total = (lines: string[], outcome?: string): number => lines.filter(line => outcome == null || line.includes(`outcome="${outcome}"`))
      .reduce((sum, line) => sum + Number(line.split(' ').at(-1)), 0)
    assert.equal(total(allocations, 'started'), 1, allocations.join('\n'))
    // the 100 share that one: any other Allocate is a request that failed at the fresh instance and
    // went again (once in CI), which the allocator answers with the same instance
    assert.ok(total(allocations) - 1 <= total(failures), `${allocations.join('\n')}\n${failures.join('\n')}`)
    assert.equal(daemon.allocator.instances().filter(i => i.service === 'cold-server').length, 1)
  })

  it('streams a POST body to the instance and back, and forwards headers: hop-by-hop ones dropped, Host kept or filled in', async () => {
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
    assert.equal(headers.host, `127.0.0.1:${proxy.port}`)

    // an HTTP/1.0 request with no Host: the service sees the address the client called
    const socket = connect(proxy.port, '127.0.0.1')
    socket.write('GET /hello-world-server/headers HTTP/1.0\r\n\r\n')
    const parts: Buffer[] = []
    socket.on('data', (part: Buffer) => { parts.push(part) })
    await once(socket, 'close')
    const answer = Buffer.concat(parts).toString('utf8')
    assert.match(answer, /^HTTP\/1\.1 200 /)
    const forwarded = JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4)) as Record<string, string>
    assert.equal(forwarded.host, `127.0.0.1:${proxy.port}`)
  })

  it('answers 421 to a request or an upgrade named for another host (a web page led here by DNS rebinding)', async () => {
    for (const host of ['localhost', '[::1]', `LOCALHOST:${proxy.port}`]) {
      const answer = await rawRequest(proxy.port, `GET /hello-world-server/x HTTP/1.1\r\nhost: ${host}\r\nconnection: close\r\n\r\n`)
      assert.match(answer, /^HTTP\/1\.1 200 /, host)
    }
    // absolute-form, as a client told to use an HTTP proxy sends it: its own host is the one
    // checked, and the one the service sees, whatever the Host header says (RFC 9112 3.2.2)
    const absolute = await rawRequest(proxy.port, `GET http://127.0.0.1:${proxy.port}/hello-world-server/headers?x=1 HTTP/1.1\r\nhost: elsewhere.example\r\nconnection: close\r\n\r\n`)
    assert.match(absolute, /^HTTP\/1\.1 200 /)
    assert.equal((JSON.parse(/\{.*\}/s.exec(absolute)![0]) as Record<string, string>).host, `127.0.0.1:${proxy.port}`)
    const foreign = await rawRequest(proxy.port, `GET http://attacker.example/hello-world-server/x HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n`)
    assert.match(foreign, /^HTTP\/1\.1 421 /)
    for (const head of [
      `GET /hello-world-server/x HTTP/1.1\r\nhost: attacker.example:${proxy.port}\r\nconnection: close\r\n\r\n`,
      `GET /hello-world-server/ws HTTP/1.1\r\nhost: 10.0.0.9\r\nconnection: upgrade\r\nupgrade: websocket\r\nsec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`
    ]) {
      const answer = await rawRequest(proxy.port, head)
      assert.match(answer, /^HTTP\/1\.1 421 /, head)
      assert.match(answer, /serves requests to 127\.0\.0\.1, \[::1\] or localhost, not to \W+(attacker\.example:\d+|10\.0\.0\.9)\W/)
    }
  })

  it('asks for the body of an Expect: 100-continue request only once the service is known', async () => {
    const refused = await rawRequest(proxy.port, 'POST /no-such-service/x HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-length: 1000000000\r\nexpect: 100-continue\r\n\r\n')
    assert.match(refused, /^HTTP\/1\.1 404 /)
    assert.match(refused, /\r\nconnection: close\r\n/i)
    assert.match(refused, /No service named no-such-service/)
    // a known service: 100, then the body, then the answer
    const socket = connect(proxy.port, '127.0.0.1')
    let text = ''
    socket.on('data', (chunk: Buffer) => { text += chunk.toString('latin1') })
    socket.write('POST /hello-world-server/echo HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-length: 5\r\nexpect: 100-continue\r\nconnection: close\r\n\r\n')
    await eventually('the 100', () => text.startsWith('HTTP/1.1 100 Continue\r\n\r\n') ? true : undefined, 10_000, 10)
    socket.write('hello')
    await once(socket, 'close')
    assert.match(text, /^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 200 [\s\S]*\r\n\r\n(5\r\n)?hello/)
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

  it('keeps one stream alive for sequential requests and closes it when idle', async () => {
    await fetch(`${base}/hello-world-server/warm`).then(async r => await r.text())
    const peer = proxy.instanceOf('hello-world-server')!.peerId.toString()
    // each request on a kept stream must leave no listener behind (Node warns past 10)
    const warnings: Error[] = []
    const onWarning = (warning: Error): void => { warnings.push(warning) }
    process.on('warning', onWarning)
    const bodies = []
    for (let i = 0; i < 20; i++) {
      const response = await fetch(`${base}/hello-world-server/k${i}`)
      bodies.push(await response.text())
    }
    await new Promise(resolve => setImmediate(resolve))
    process.off('warning', onWarning)
    assert.deepEqual(warnings.map(w => w.message), [])
    assert.ok(bodies.every((body, i) => body.endsWith(` /k${i}\n`)), bodies.join(''))
    assert.equal(httpStreams(peer), 1)
    await eventually('the idle stream closed', () => httpStreams(peer) === 0 ? true : undefined, 5_000)
  })

  it('keeps idempotent requests succeeding when the instance is killed under traffic', async () => {
    const first = await fetch(`${base}/steady-server/`)
    assert.equal(first.status, 200)
    const killed = /from (\S+)/.exec(await first.text())![1]
    const statuses: number[] = []
    const instances = new Set<string>()
    let stop = false
    const worker = async (): Promise<void> => {
      while (!stop) {
        const response = await fetch(`${base}/steady-server/tick`)
        const body = await response.text()
        statuses.push(response.status)
        if (response.status === 200) {
          instances.add(/from (\S+)/.exec(body)![1]!)
        } else {
          instances.add(body)
        }
      }
    }
    const workers = Array.from({ length: 4 }, worker)
    await new Promise(resolve => setTimeout(resolve, 500))
    const containers = (await containersOf(engine, daemon.node.peerId.toString())).filter(c => c.Labels[LABELS.instance] === killed)
    assert.equal(containers.length, 2)
    await Promise.all(containers.map(async c => { await engine.docker.getContainer(c.Id).kill() }))
    await eventually('traffic reached another instance', () => [...instances].some(i => i !== killed) ? true : undefined, 30_000)
    await new Promise(resolve => setTimeout(resolve, 500))
    stop = true
    await Promise.all(workers)
    assert.ok(statuses.length > 20, `only ${statuses.length} requests`)
    assert.deepEqual(statuses.filter(s => s !== 200), [], [...instances].join(', '))
    const failures = await series('physarum_proxy_upstream_failures_total', 'steady-server')
    assert.ok(failures.length > 0 && failures.every(line => Number(line.split(' ')[1]) > 0), failures.join('\n'))
    assert.match((await series('physarum_proxy_retries_total', 'steady-server'))[0] ?? '', / [1-9]\d*$/)
  })

  it('sends a request with a body to a new instance when its instance is gone', async () => {
    assert.equal((await fetch(`${base}/post-server/`)).status, 200)
    const gone = proxy.instanceOf('post-server')!.peerId.toString()
    const containers = (await containersOf(engine, daemon.node.peerId.toString())).filter(c => c.Labels[LABELS.service] === 'post-server')
    await Promise.all(containers.map(async c => { await engine.docker.getContainer(c.Id).kill() }))
    // its kept stream closed with the connection, and the instance is forgotten with it
    await eventually('the proxy saw its instance go', () => httpStreams(gone) === 0 ? true : undefined, 5_000)
    const response = await fetch(`${base}/post-server/echo`, { method: 'POST', body: 'sent once, arrived once' })
    assert.equal(response.status, 200)
    assert.equal(await response.text(), 'sent once, arrived once')
  })

  it('moves to the new version of a service once it is added again', async () => {
    const instanceOf = async (): Promise<string> => {
      const response = await fetch(`${base}/versioned-server/`)
      assert.equal(response.status, 200)
      return /^Hello, world from (\S+) /.exec(await response.text())![1]!
    }
    const first = await instanceOf()
    await overlay.register('versioned-server', image, { contentHash: 'hash-v2', hardRttMs: 1_000 })
    // once the proxy's and the allocator's copies of the record are refreshed
    const second = await eventually('an instance of the new version', async () => {
      const answering = await instanceOf()
      return answering !== first ? answering : undefined
    }, 30_000, 200)
    const hashes = Object.fromEntries(daemon.allocator.instances().filter(i => i.service === 'versioned-server').map(i => [i.id, i.contentHash]))
    assert.deepEqual(hashes, { [first]: 'hash-v1', [second]: 'hash-v2' })
    for (let i = 0; i < 5; i++) {
      assert.equal(await instanceOf(), second)
    }
  })

  it('leaves nothing behind of clients that go away during a cold start: a request, an upgrade', async () => {
    const leaving = request(`${base}/slow-leave/`)
    leaving.on('error', () => {})
    leaving.end()
    const upgrading = connect({ host: '127.0.0.1', port: proxy.port })
    await once(upgrading, 'connect')
    upgrading.write('GET /slow-leave/ws HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: upgrade\r\nupgrade: websocket\r\nsec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n')
    await new Promise(resolve => setTimeout(resolve, 500))
    leaving.destroy()
    // a reset: the proxy's side of the connection gets ECONNRESET while it waits for the instance
    upgrading.resetAndDestroy()
    // the service listens 3 s after it starts
    const later = await fetch(`${base}/slow-leave/`)
    assert.equal(later.status, 200)
    assert.equal(await later.text(), 'slow but there\n')
    const peer = proxy.instanceOf('slow-leave')!.peerId.toString()
    await eventually('no stream left to the instance', () => httpStreams(peer) === 0 ? true : undefined, 5_000)
    const gone = await series('physarum_proxy_requests_total', 'slow-leave')
    assert.ok(gone.some(line => /code="499"} 2$/.test(line)), gone.join('\n'))
  })

  it('gives the places in a cold start\'s queue of clients that left to the next ones', async () => {
    const { proxy: limited, metrics: limitedMetrics } = await startTestProxy(overlay.client, overlay.registry.node.multiaddrs()[0]!, { discoveryTimeoutMs: 500, coldStartTimeoutMs: 20_000, maxPending: 2 })
    const url = `http://127.0.0.1:${limited.port}/slow-queue/`
    const pending = async (): Promise<number> => (await limitedMetrics.getSingleMetric('physarum_proxy_pending_requests')!.get()).values.find(sample => sample.labels.service === 'slow-queue')?.value ?? 0
    try {
      // two clients wait for the cold start, and leave long before --cold-start-timeout
      await Promise.all(Array.from({ length: 2 }, async () => { await fetch(url, { signal: AbortSignal.timeout(300) }).catch(() => undefined) }))
      await eventually('their places given up', async () => await pending() === 0 ? true : undefined, 5_000, 20)
      // two more take the places, a third is refused
      const waiting = Array.from({ length: 2 }, () => new AbortController())
      const admitted = waiting.map(async controller => await fetch(url, { signal: controller.signal }).catch(() => undefined))
      await eventually('the two admitted', async () => await pending() === 2 ? true : undefined, 5_000, 20)
      const refused = await fetch(url)
      assert.equal(refused.status, 503)
      assert.match((await refused.json() as { error: string }).error, /2 requests already wait for slow-queue/)
      for (const controller of waiting) {
        controller.abort()
      }
      await Promise.all(admitted)
    } finally {
      await limited.stop()
    }
  })

  it('answers 503 with Retry-After past --max-pending, and 504 past --cold-start-timeout', async () => {
    const { proxy: limited } = await startTestProxy(overlay.client, overlay.registry.node.multiaddrs()[0]!, { discoveryTimeoutMs: 500, coldStartTimeoutMs: 1_500, maxPending: 2 })
    try {
      const answers = await Promise.all(Array.from({ length: 5 }, async () => {
        const response = await fetch(`http://127.0.0.1:${limited.port}/slow-server/`)
        return { status: response.status, retryAfter: response.headers.get('retry-after'), body: await response.json() as { error: string } }
      }))
      const refused = answers.filter(a => a.status === 503)
      assert.equal(refused.length, 3, JSON.stringify(answers))
      assert.ok(refused.every(a => a.retryAfter === '1' && /2 requests already wait for slow-server/.test(a.body.error)))
      const late = answers.filter(a => a.status === 504)
      assert.equal(late.length, 2, JSON.stringify(answers))
      assert.ok(late.every(a => /slow-server did not start within 1500 ms/.test(a.body.error)))
      // the allocation went on: once the instance is up, requests are served
      await eventually('slow-server answered', async () => {
        const response = await fetch(`http://127.0.0.1:${limited.port}/slow-server/`)
        return response.status === 200 ? await response.text() : undefined
      }, 20_000, 500)
    } finally {
      await limited.stop()
    }
  })

  it('lets a service call another through its sidecar\'s client port (ProxyClientMode)', async () => {
    const response = await fetch(`${base}/chain-front/`)
    const body = await response.text()
    assert.equal(response.status, 200, body)
    assert.match(body, /^front got: Hello, world from \S+ \/from-chain\n$/)
    assert.equal(daemon.allocator.instances().filter(i => i.service === 'chain-front').length, 1)
  })

  it('passes a WebSocket upgrade through, both ways', async () => {
    const socket = new WebSocket(`ws://127.0.0.1:${proxy.port}/hello-world-server/ws`)
    await new Promise((resolve, reject) => {
      socket.onopen = resolve
      socket.onerror = () => { reject(new Error('the WebSocket did not open')) }
    })
    const messages: string[] = []
    const echoed = new Promise<void>(resolve => {
      socket.onmessage = (event) => {
        messages.push(String(event.data))
        if (messages.length === 3) {
          resolve()
        }
      }
    })
    for (const message of ['one', 'two', 'three']) {
      socket.send(message)
    }
    await echoed
    assert.deepEqual(messages, ['one', 'two', 'three'])
    socket.close()

    // an instance that refuses the upgrade: the client hears it, and it is counted as answered
    const refused = new WebSocket(`ws://127.0.0.1:${proxy.port}/hello-world-server/refuse-ws`)
    await new Promise(resolve => { refused.onerror = resolve })
    const counted = await series('physarum_proxy_requests_total', 'hello-world-server')
    assert.ok(counted.some(line => /code="101"} 1$/.test(line)) && counted.some(line => /code="403"} 1$/.test(line)), counted.join('\n'))
  })

  it('serves another protocol\'s upgrade request (h2c) as plain HTTP/1.1 on a connection that stays the proxy\'s', async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 })
    const get = async (path: string, headers: Record<string, string> = {}): Promise<{ status: number, body: string }> => await new Promise((resolve, reject) => {
      request(`${base}${path}`, { agent, headers }, (res) => {
        let body = ''
        res.setEncoding('utf8')
        res.on('data', (part: string) => { body += part })
        res.on('end', () => { resolve({ status: res.statusCode ?? 0, body }) })
      }).on('error', reject).end()
    })
    try {
      // what curl --http2 sends on http://
      const upgrade = await get('/hello-world-server/headers', { connection: 'Upgrade, HTTP2-Settings', upgrade: 'h2c', 'http2-settings': 'AAMAAABkAAQCAAAAAAIAAAAA' })
      assert.equal(upgrade.status, 200, upgrade.body)
      const seen = JSON.parse(upgrade.body) as Record<string, string>
      assert.equal(seen.upgrade, undefined)
      assert.equal(seen['http2-settings'], undefined)
      // the same connection, again through the proxy: the prefix is stripped
      const next = await get('/hello-world-server/after-h2c')
      assert.equal(next.status, 200)
      assert.match(next.body, /^Hello, world from \S+ \/after-h2c\n$/)
    } finally {
      agent.destroy()
    }
  })

  it('refuses a huge header, and closes the stream of a client that vanishes mid-request', async () => {
    const big = await fetch(`${base}/hello-world-server/`, { headers: { 'x-big': 'y'.repeat(64 * 1024) } }).catch((err: Error) => err)
    assert.equal(big instanceof Error ? big.message : big.status, 431)
    const peer = proxy.instanceOf('hello-world-server')!.peerId.toString()
    await eventually('no stream left', () => httpStreams(peer) === 0 ? true : undefined, 5_000)
    const socket = connect({ host: '127.0.0.1', port: proxy.port })
    await once(socket, 'connect')
    socket.write('POST /hello-world-server/echo HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-length: 100000\r\n\r\nonly a part')
    await eventually('the request reached the instance', () => httpStreams(peer) === 1 ? true : undefined, 5_000, 10)
    socket.destroy()
    await eventually('its stream closed', () => httpStreams(peer) === 0 ? true : undefined, 5_000)
    // and the proxy still serves
    assert.equal((await fetch(`${base}/hello-world-server/`)).status, 200)
  })

  it('passes 103 Early Hints and response trailers', async () => {
    const answer = await new Promise<{ hints: Array<{ statusCode: number, link: unknown }>, body: string, trailers: Record<string, string | undefined> }>((resolve, reject) => {
      const hints: Array<{ statusCode: number, link: unknown }> = []
      const req = request(`${base}/hello-world-server/hints`, (res) => {
        let body = ''
        res.setEncoding('utf8')
        res.on('data', (part: string) => { body += part })
        res.on('end', () => { resolve({ hints, body, trailers: res.trailers }) })
        res.on('error', reject)
      })
      req.on('information', (info) => { hints.push({ statusCode: info.statusCode, link: info.headers.link }) })
      req.on('error', reject)
      req.end()
    })
    assert.deepEqual(answer.hints, [{ statusCode: 103, link: '</style.css>; rel=preload; as=style, </app.js>; rel=preload; as=script' }])
    assert.equal(answer.body, 'a body with a trailer\n')
    assert.equal(answer.trailers['x-checksum'], 'abc123')
  })

  it('answers HEAD without a body, 502 when the instance breaks, 504 when it does not answer in time', async () => {
    const head = await fetch(`${base}/hello-world-server/`, { method: 'HEAD' })
    assert.equal(head.status, 200)
    assert.equal(await head.text(), '')
    assert.equal(head.headers.get('content-type'), 'text/plain')

    // a POST with a body is not sent twice; a GET is, once, and breaks again
    for (const init of [{ method: 'POST', body: 'data' }, { method: 'GET' }]) {
      const broken = await fetch(`${base}/hello-world-server/break`, init)
      assert.equal(broken.status, 502, init.method)
      assert.match((await broken.json() as { error: string }).error, /The instance of hello-world-server failed before answering/)
    }

    const { proxy: impatient } = await startTestProxy(overlay.client, overlay.registry.node.multiaddrs()[0]!, { discoveryTimeoutMs: 500, upstreamTimeoutMs: 500 })
    try {
      const stalled = await fetch(`http://127.0.0.1:${impatient.port}/hello-world-server/stall`)
      assert.equal(stalled.status, 504)
      assert.match((await stalled.json() as { error: string }).error, /did not answer within 500 ms/)

      // a client that stops sending its body is answered 408 once it sent nothing for the upstream
      // timeout, its stream closed and its instance kept: the stream was the client's to hold
      const peer = impatient.instanceOf('hello-world-server')!.peerId.toString()
      await eventually('no stream left', () => httpStreams(peer) === 0 ? true : undefined, 5_000)
      const socket = connect({ host: '127.0.0.1', port: impatient.port })
      let answer = ''
      socket.on('data', (part: Buffer) => { answer += part.toString('latin1') })
      await once(socket, 'connect')
      socket.write('POST /hello-world-server/sink HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-length: 1000\r\n\r\nten bytes.')
      await once(socket, 'close')
      assert.match(answer, /^HTTP\/1\.1 408 /)
      assert.match(answer, /\r\nconnection: close\r\n/i)
      assert.match(answer, /sent nothing of its request body for 500 ms/)
      await eventually('its stream closed', () => httpStreams(peer) === 0 ? true : undefined, 5_000)
      assert.equal(impatient.instanceOf('hello-world-server')?.peerId.toString(), peer)
    } finally {
      await impatient.stop()
    }
  })
})
