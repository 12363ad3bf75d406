import assert from 'node:assert/strict'
import { createServer } from 'node:net'
import { after, before, describe, it } from 'node:test'
import { eventually } from '../../registry-service/test/helpers.ts'
import { rawRequest, startProxiedService } from './helpers.ts'
import type { Server } from 'node:net'
import type { ProxiedService } from './helpers.ts'

const SERVICE = 'trailer-server'

/**
 * A service that announces a trailer on every response, by hand (Node's server refuses to): with a
 * length and none at /, chunked with it at /chunked; at /two-connection-lines, a response whose
 * Connection header comes in two lines, the second naming a header not to pass on.
 */
function trailerService (): Server {
  return createServer((socket) => {
    let buffered = ''
    socket.on('data', (chunk: Buffer) => {
      buffered += chunk.toString('latin1')
      for (let end = buffered.indexOf('\r\n\r\n'); end >= 0; end = buffered.indexOf('\r\n\r\n')) {
        const [method, path] = buffered.slice(0, end).split(' ')
        buffered = buffered.slice(end + 4)
        if (path === '/two-connection-lines') {
          socket.write('HTTP/1.1 200 OK\r\nconnection: keep-alive\r\nconnection: x-secret\r\nx-secret: hidden\r\ncontent-length: 3\r\n\r\nok\n')
        } else if (path === '/chunked') {
          socket.write('HTTP/1.1 200 OK\r\ntrailer: x-checksum\r\ntransfer-encoding: chunked\r\n\r\nd\r\nchunked body\n\r\n0\r\nx-checksum: abc\r\n\r\n')
        } else {
          socket.write(`HTTP/1.1 200 OK\r\ntrailer: x-checksum\r\ncontent-length: 5\r\n\r\n${method === 'HEAD' ? '' : 'body\n'}`)
        }
      }
    })
    socket.on('error', () => {})
  })
}

describe('client proxy: responses that announce a trailer, or have two Connection lines', { timeout: 120_000 }, () => {
  let proxied: ProxiedService

  const raw = async (request: string): Promise<string> => await rawRequest(proxied.proxy.port, request)

  before(async () => {
    proxied = await startProxiedService(SERVICE, 'trailer', trailerService())
    await eventually('the instance answers', async () => (await fetch(`http://127.0.0.1:${proxied.proxy.port}/${SERVICE}/`).catch(() => undefined))?.status === 200 ? true : undefined, 30_000, 200)
  })

  after(async () => { await proxied?.stop() })

  it('relays them unchunked without the Trailer header, to HEAD, to HTTP/1.0 and with a length', async () => {
    const head = await raw(`HEAD /${SERVICE}/ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`)
    assert.match(head, /^HTTP\/1\.1 200 OK\r\n/)
    assert.doesNotMatch(head, /\r\ntrailer:/i)

    const old = await raw(`GET /${SERVICE}/ HTTP/1.0\r\n\r\n`)
    assert.match(old, /^HTTP\/1\.1 200 OK\r\n/)
    assert.match(old, /\r\n\r\nbody\n$/)

    const sized = await fetch(`http://127.0.0.1:${proxied.proxy.port}/${SERVICE}/`)
    assert.equal(sized.status, 200)
    assert.equal(sized.headers.get('trailer'), null)
    assert.equal(await sized.text(), 'body\n')

    // chunked to an HTTP/1.1 client: the header and the trailer pass
    const chunked = await raw(`GET /${SERVICE}/chunked HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`)
    assert.match(chunked, /\r\ntrailer: x-checksum\r\n/i)
    assert.match(chunked, /\r\nx-checksum: abc\r\n/i)

    const counted = (await proxied.metrics.metrics()).split('\n').filter(line => line.startsWith(`physarum_proxy_requests_total{service="${SERVICE}",code="200"}`))
    // the readiness probe's requests, and these five
    assert.ok(Number(counted[0]?.split(' ')[1]) >= 5, counted.join('\n'))
  })

  it('drops what two Connection lines name, and keeps the instance that sent them', async () => {
    const answer = await fetch(`http://127.0.0.1:${proxied.proxy.port}/${SERVICE}/two-connection-lines`)
    assert.equal(answer.status, 200)
    assert.equal(answer.headers.get('x-secret'), null)
    assert.equal(await answer.text(), 'ok\n')
    assert.notEqual(proxied.proxy.instanceOf(SERVICE), undefined)
    const failures = (await proxied.metrics.metrics()).split('\n').filter(line => line.startsWith('physarum_proxy_upstream_failures_total{'))
    assert.deepEqual(failures, [])
  })
})
