import assert from 'node:assert/strict'
import { once } from 'node:events'
import { createServer } from 'node:http'
import { after, before, describe, it } from 'node:test'
import { HTTP_PROTOCOL } from '@physarum/allocator/client'
import { eventually } from '../../registry-service/test/helpers.ts'
import { SERVICE_REFUSED_WAIT_MS } from '../src/constants.ts'
import { startProxiedService } from './helpers.ts'
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { ProxiedService } from './helpers.ts'

const SERVICE = 'restarting-server'
/** How long the service is away in the test: its allocator starts it again after 1 s at first. */
const AWAY_MS = 1_200

describe('sidecar: a service that restarts behind it', { timeout: 120_000 }, () => {
  let proxied: ProxiedService
  const echo = (req: IncomingMessage, res: ServerResponse): void => {
    const chunks: Buffer[] = []
    req.on('data', (chunk: Buffer) => chunks.push(chunk))
    req.on('end', () => { res.end(Buffer.concat(chunks)) })
  }
  const service = createServer(echo)
  let port: number

  const post = async (body: string): Promise<{ status: number, body: string, ms: number }> => {
    const began = performance.now()
    const response = await fetch(`http://127.0.0.1:${proxied.proxy.port}/${SERVICE}/`, { method: 'POST', body, signal: AbortSignal.timeout(20_000) })
    return { status: response.status, body: await response.text(), ms: performance.now() - began }
  }
  /**
   * Stops the service: its port refuses connections, and its connections close, which ends the
   * streams the proxy kept (a request on one that is closing fails: a race of keep-alive).
   */
  const stopService = async (): Promise<void> => {
    service.closeAllConnections()
    await new Promise<void>(resolve => { service.close(() => { resolve() }) })
    await eventually('the kept streams closed', () => proxied.node.libp2p.getConnections().flatMap(c => c.streams).some(s => s.protocol === HTTP_PROTOCOL) ? undefined : true, 5_000, 20)
  }

  before(async () => {
    proxied = await startProxiedService(SERVICE, 'restarting', service)
    port = (service.address() as AddressInfo).port
    await eventually('the instance is found', async () => (await post('found?').catch(() => undefined))?.status === 200 ? true : undefined, 30_000, 200)
  })

  after(async () => { await proxied?.stop() })

  it('holds a request while the service refuses connections and sends it once the service is back', async () => {
    await stopService()
    const back = setTimeout(() => { service.listen(port, '127.0.0.1') }, AWAY_MS)
    // an upload larger than a stream's read buffer (4 MiB) waits too, not reset
    const upload = 'u'.repeat(8 * 1024 * 1024)
    const [answered, uploaded] = await Promise.all([post('sent while the service was away'), post(upload)])
    clearTimeout(back)
    assert.equal(answered.status, 200, answered.body)
    assert.equal(answered.body, 'sent while the service was away')
    assert.ok(answered.ms >= AWAY_MS - 100, `answered after ${answered.ms} ms`)
    assert.equal(uploaded.status, 200, uploaded.body.slice(0, 300))
    assert.equal(uploaded.body.length, upload.length)
  })

  it('answers 502 once the service refused connections for longer than the sidecar waits', async () => {
    await stopService()
    const answered = await post('nobody takes this')
    assert.equal(answered.status, 502, answered.body)
    assert.match(answered.body, /failed before answering/)
    assert.ok(answered.ms >= SERVICE_REFUSED_WAIT_MS - 100, `answered after ${answered.ms} ms`)
    service.listen(port, '127.0.0.1')
    await once(service, 'listening')
  })
})
