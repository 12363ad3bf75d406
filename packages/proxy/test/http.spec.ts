import assert from 'node:assert/strict'
import { once } from 'node:events'
import { connect, createServer } from 'node:net'
import { after, before, describe, it } from 'node:test'
import { eventually } from '../../registry-service/test/helpers.ts'
import { MAX_REQUEST_HEADERS } from '../src/constants.ts'
import { rawRequest, startProxiedService } from './helpers.ts'
import type { Server, Socket } from 'node:net'
import type { ProxiedService } from './helpers.ts'

const SERVICE = 'plain-server'
const HEAD_TIMEOUT_MS = 1_000

/** The paths the service was asked for. */
const seen: string[] = []

/** A service that answers every request 200 with its path, /head with its head, /no-content 204 with a Content-Length. */
function plainService (): Server {
  return createServer((socket) => {
    let buffered = ''
    socket.on('data', (chunk: Buffer) => {
      buffered += chunk.toString('latin1')
      for (let end = buffered.indexOf('\r\n\r\n'); end >= 0; end = buffered.indexOf('\r\n\r\n')) {
        const head = buffered.slice(0, end)
        const path = head.split(' ')[1] ?? ''
        buffered = buffered.slice(end + 4)
        seen.push(path)
        if (path === '/head') {
          socket.write(`HTTP/1.1 200 OK\r\ncontent-length: ${Buffer.byteLength(head, 'latin1')}\r\n\r\n${head}`, 'latin1')
          continue
        }
        if (path === '/no-content') {
          socket.write('HTTP/1.1 204 No Content\r\ncontent-length: 5\r\n\r\n')
          continue
        }
        socket.write(`HTTP/1.1 200 OK\r\ncontent-length: ${Buffer.byteLength(path) + 1}\r\n\r\n${path}\n`)
      }
    })
    socket.on('error', () => {})
  })
}

/** The status and the parsed JSON body of a raw answer. */
function jsonAnswer (text: string): { status: number, body: { error: string, status: number } } {
  const status = Number(/^HTTP\/1\.1 (\d{3}) /.exec(text)?.[1])
  assert.match(text, /\r\ncontent-type: application\/json\r\n/i, text)
  return { status, body: JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4)) as { error: string, status: number } }
}

describe('client proxy: requests it does not forward, and response framing it corrects', { timeout: 120_000 }, () => {
  let proxied: ProxiedService

  const raw = async (request: string): Promise<string> => await rawRequest(proxied.proxy.port, request)

  before(async () => {
    proxied = await startProxiedService(SERVICE, 'plain', plainService(), { headTimeoutMs: HEAD_TIMEOUT_MS })
    await eventually('the instance answers', async () => (await fetch(`http://127.0.0.1:${proxied.proxy.port}/${SERVICE}/`).catch(() => undefined))?.status === 200 ? true : undefined, 30_000, 200)
  })

  after(async () => { await proxied?.stop() })

  /** A connection that sent `request` (its head reached the proxy), and `ended` once it closed. */
  const halfSent = async (request: string): Promise<{ socket: Socket, ended: Promise<unknown> }> => {
    const before = seen.length
    const socket = connect(proxied.proxy.port, '127.0.0.1')
    socket.on('error', () => {})
    socket.resume()
    const ended = once(socket, 'close')
    socket.write(request)
    await eventually('the request to reach the instance', () => seen.length > before ? true : undefined, 10_000, 20)
    return { socket, ended }
  }

  it('answers CONNECT with a JSON 501 and closes the connection', async () => {
    const { status, body } = jsonAnswer(await raw('CONNECT 127.0.0.1:22 HTTP/1.1\r\nHost: 127.0.0.1:22\r\n\r\n'))
    assert.equal(status, 501)
    assert.equal(body.status, 501)
    assert.match(body.error, /no tunnels/)
  })

  it('answers a request its parser refuses with a JSON error, the instance never asked', async () => {
    const cases: Array<[string, string, number, RegExp]> = [
      ['Content-Length beside Transfer-Encoding', `POST /${SERVICE}/a HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /${SERVICE}/smuggled HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`, 400, /not valid HTTP\/1\.1/],
      ['two Content-Lengths', `POST /${SERVICE}/b HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde`, 400, /not valid HTTP\/1\.1/],
      ['a folded header line', `GET /${SERVICE}/c HTTP/1.1\r\nHost: 127.0.0.1\r\nX-A: one\r\n two\r\n\r\n`, 400, /not valid HTTP\/1\.1/],
      ['a huge URL', `GET /${SERVICE}/${'a'.repeat(20_000)} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`, 431, /more than \d+ bytes/],
      // small ones: the head is within the bytes the proxy takes
      ['more header lines than the proxy takes', `GET /${SERVICE}/e HTTP/1.1\r\nHost: 127.0.0.1\r\n${'a:1\r\n'.repeat(MAX_REQUEST_HEADERS)}\r\n`, 431, new RegExp(`more than ${MAX_REQUEST_HEADERS} header lines`)]
    ]
    for (const [name, request, expected, message] of cases) {
      const { status, body } = jsonAnswer(await raw(request))
      assert.equal(status, expected, name)
      assert.equal(body.status, expected, name)
      assert.match(body.error, message, name)
    }
    assert.deepEqual(seen.filter(path => path !== '/'), [])
    // a client that ends its side mid-request is no bad request: it reads no answer
    const { socket, ended } = await halfSent(`POST /${SERVICE}/d HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 10\r\n\r\n12345`)
    socket.end()
    await ended
    const counted = (await proxied.metrics.metrics()).split('\n').filter(line => line.startsWith('physarum_proxy_requests_total{service="unknown"'))
    assert.ok(counted.some(line => /code="400"} 3$/.test(line)) && counted.some(line => /code="431"} 2$/.test(line)), counted.join('\n'))
  })

  it('answers 408 to a client that stops sending its request head, and closes its connection', { timeout: 10_000 }, async () => {
    const began = performance.now()
    const [partial, silent] = await Promise.all([
      // all but the blank line that ends the head
      raw(`GET /${SERVICE}/slow HTTP/1.1\r\nHost: 127.0.0.1\r\n`),
      // connected, and nothing sent
      raw('')
    ])
    for (const answer of [partial, silent]) {
      const { status, body } = jsonAnswer(answer)
      assert.equal(status, 408)
      assert.match(body.error, /did not come whole in time/)
    }
    assert.ok(performance.now() - began < 4 * HEAD_TIMEOUT_MS, 'closed soon after the head timeout')
    assert.ok(!seen.includes('/slow'))
  })

  it('answers an HTTP/1.1 request with no Host, or two, with a JSON 400, the instance never asked', async () => {
    const before = seen.length
    const cases: Array<[string, RegExp]> = [
      [`GET /${SERVICE}/no-host HTTP/1.1\r\nConnection: close\r\n\r\n`, /no Host header/],
      [`GET http://127.0.0.1/${SERVICE}/no-host HTTP/1.1\r\nConnection: close\r\n\r\n`, /no Host header/],
      [`GET /${SERVICE}/ws HTTP/1.1\r\nConnection: upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`, /no Host header/],
      [`GET /${SERVICE}/two-hosts HTTP/1.1\r\nHost: 127.0.0.1\r\nHost: attacker.example\r\nConnection: close\r\n\r\n`, /more than one Host header/]
    ]
    for (const [request, message] of cases) {
      const { status, body } = jsonAnswer(await raw(request))
      assert.equal(status, 400, request)
      assert.equal(body.status, 400)
      assert.match(body.error, message, request)
    }
    assert.deepEqual(seen.slice(before), [])
    // HTTP/1.0 has no Host to require
    assert.match(await raw(`GET /${SERVICE}/old HTTP/1.0\r\n\r\n`), /^HTTP\/1\.1 200 /)
  })

  it('answers an expectation other than 100-continue with a JSON 417, the instance never asked', async () => {
    const before = seen.length
    const { status, body } = jsonAnswer(await raw(`POST /${SERVICE}/expecting HTTP/1.1\r\nHost: 127.0.0.1\r\nExpect: 200-ok\r\nContent-Length: 5\r\n\r\nhello`))
    assert.equal(status, 417)
    assert.equal(body.status, 417)
    assert.match(body.error, /no expectation but 100-continue, not "200-ok"/)
    assert.deepEqual(seen.slice(before), [])
    const counted = (await proxied.metrics.metrics()).split('\n').filter(line => line.startsWith('physarum_proxy_requests_total{service="unknown",code="417"}'))
    assert.deepEqual(counted, ['physarum_proxy_requests_total{service="unknown",code="417"} 1'])
  })

  it('appends the client to X-Forwarded-For and Forwarded, not to lists its Connection header named hop-by-hop', async () => {
    const forwarded = async (extra: string): Promise<string[]> => {
      const answer = await raw(`GET /${SERVICE}/head HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Forwarded-For: 10.0.0.1\r\nForwarded: for=10.0.0.1\r\n${extra}\r\n`)
      assert.match(answer, /^HTTP\/1\.1 200 /, answer)
      return answer.split('\r\n').filter(line => /^(x-forwarded-for|forwarded):/i.test(line))
    }
    assert.deepEqual(await forwarded('Connection: close\r\n'), ['x-forwarded-for: 10.0.0.1, 127.0.0.1', 'forwarded: for=10.0.0.1, for=127.0.0.1'])
    assert.deepEqual(await forwarded('Connection: close, X-Forwarded-For, Forwarded\r\n'), ['x-forwarded-for: 127.0.0.1', 'forwarded: for=127.0.0.1'])
  })

  it('relays a 204 without the Content-Length its instance sent with it', async () => {
    const answer = await raw(`GET /${SERVICE}/no-content HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`)
    assert.match(answer, /^HTTP\/1\.1 204 /)
    assert.doesNotMatch(answer, /\r\ncontent-length:/i)
    assert.ok(answer.endsWith('\r\n\r\n'), answer)
  })

  it('refuses a request body in a transfer coding other than chunked with a JSON 501', async () => {
    const before = seen.length
    const { status, body } = jsonAnswer(await raw(`POST /${SERVICE}/gzipped HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: gzip, chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n`))
    assert.equal(status, 501)
    assert.match(body.error, /no transfer coding but chunked/)
    assert.deepEqual(seen.slice(before), [])
  })
})
