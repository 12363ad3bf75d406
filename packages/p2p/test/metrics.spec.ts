import assert from 'node:assert/strict'
import { once } from 'node:events'
import { connect } from 'node:net'
import { after, describe, it } from 'node:test'
import { createMetricsRegistry, parseHostPort, startMetricsServer } from '../src/index.ts'
import { startNode, stopAll } from './helpers.ts'
import type { MetricsServer, PhysarumNode } from '../src/index.ts'

describe('metrics server', () => {
  const nodes: PhysarumNode[] = []
  const servers: MetricsServer[] = []
  after(async () => {
    await Promise.all(servers.map(async s => { await s.close() }))
    await stopAll(nodes)
  })

  it('serves process and libp2p metrics from one registry, health, and extra routes', async () => {
    const registry = createMetricsRegistry()
    const node = await startNode({ metricsRegistry: registry })
    nodes.push(node)
    let healthy = true
    const server = await startMetricsServer({
      listen: { host: '127.0.0.1', port: 0 },
      registry,
      health: () => ({ ok: healthy, peers: 0 }),
      routes: { '/hello': (_req, res) => { res.end('hi') } }
    })
    servers.push(server)
    const base = `http://127.0.0.1:${server.address().port}`

    const metrics = await (await fetch(`${base}/metrics`)).text()
    assert.match(metrics, /^process_cpu_seconds_total /m)
    assert.match(metrics, /^libp2p_/m, 'libp2p metrics on the same registry')
    assert.equal((await fetch(`${base}/healthz`)).status, 200)
    healthy = false
    const unhealthy = await fetch(`${base}/healthz`)
    assert.equal(unhealthy.status, 503)
    assert.deepEqual(await unhealthy.json(), { ok: false, peers: 0 })
    assert.equal(await (await fetch(`${base}/hello`)).text(), 'hi')
    assert.equal((await fetch(`${base}/nope`)).status, 404)
    assert.equal((await fetch(`${base}/metrics`, { method: 'POST' })).status, 405)
  })

  it('answers any request target, and a route that throws, without going down', async () => {
    const server = await startMetricsServer({
      listen: { host: '127.0.0.1', port: 0 },
      registry: createMetricsRegistry(),
      health: () => ({ ok: true }),
      routes: { '/throws': () => { throw new Error('broken route') } }
    })
    servers.push(server)
    const { port } = server.address()
    /** The status line of the answer to a raw request for `target` (fetch would normalize it). */
    const statusOf = async (target: string): Promise<string> => {
      const socket = connect({ host: '127.0.0.1', port })
      await once(socket, 'connect')
      socket.end(`GET ${target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`)
      let answer = ''
      for await (const chunk of socket) {
        answer += (chunk as Buffer).toString('latin1')
      }
      return answer.split('\r\n')[0] ?? ''
    }
    for (const target of ['//x:99999', '//[', '//a:b@']) {
      assert.equal(await statusOf(target), 'HTTP/1.1 400 Bad Request', target)
    }
    assert.equal(await statusOf('/throws'), 'HTTP/1.1 500 Internal Server Error')
    assert.equal(await statusOf('/healthz'), 'HTTP/1.1 200 OK')
  })

  it('serves IPv6 and IPv4 on :port, as Go\'s servers do', async () => {
    const server = await startMetricsServer({ listen: parseHostPort('--metrics-listen', ':0'), registry: createMetricsRegistry(), health: () => ({ ok: true }) })
    try {
      const { port } = server.address()
      for (const host of ['127.0.0.1', '[::1]']) {
        assert.equal((await fetch(`http://${host}:${port}/healthz`)).status, 200, host)
      }
    } finally {
      await server.close()
    }
  })

  it('says so when the port is taken', async () => {
    const first = await startMetricsServer({ listen: { host: '127.0.0.1', port: 0 }, registry: createMetricsRegistry(), health: () => ({ ok: true }) })
    servers.push(first)
    await assert.rejects(
      startMetricsServer({ listen: first.address(), registry: createMetricsRegistry(), health: () => ({ ok: true }) }),
      { name: 'ConfigError', message: /in use/ }
    )
  })
})
