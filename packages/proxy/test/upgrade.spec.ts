import assert from 'node:assert/strict'
import { once } from 'node:events'
import { request } from 'node:http'
import { connect, createServer } from 'node:net'
import { after, before, describe, it } from 'node:test'
import { HTTP_PROTOCOL } from '@physarum/allocator/client'
import { eventually } from '../../registry-service/test/helpers.ts'
import { MAX_EARLY_UPGRADE_BYTES, MAX_RESPONSE_HEAD_BYTES, MAX_UPGRADES_PER_INSTANCE } from '../src/constants.ts'
import { startProxiedService } from './helpers.ts'
import type { IncomingMessage } from 'node:http'
import type { Server, Socket } from 'node:net'
import type { ClientProxy } from '../src/client.ts'
import type { ProxiedService } from './helpers.ts'
import type { Registry } from 'prom-client'

const SERVICE = 'socket-server'
const UPSTREAM_TIMEOUT_MS = 1_000
/** How long /slow-ws takes to answer 101. */
const SLOW_101_MS = 500
/** The body of /refuse-big's refusal: far more than the buffers between the service and a client. */
const REFUSAL_BODY_BYTES = 512 * 2 ** 20

/**
 * A service that speaks HTTP/1.1 by hand, as servers that keep a connection after refusing an
 * upgrade do: /ws switches to an echo (/slow-ws after SLOW_101_MS), /refuse answers 404 and keeps the connection for the next
 * request, /refuse-big answers 403 with a body of REFUSAL_BODY_BYTES (counted in `refusalSent` as
 * its socket takes them), /hang never answers, /not-http answers with a control character in a
 * header value, /two-lengths with two Content-Lengths that differ, /unasked-upgrade
 * with a 101 whatever was asked, /low-status with the status 099, /bad-reason with a control
 * character in its reason phrase, anything else answers 200 with the path it got.
 */
function handBuiltService (seen: string[], refusalSent: { bytes: number }): Server {
  return createServer((socket) => {
    let buffered = ''
    let echoing = false
    /** What came after a /slow-ws request, until its 101. */
    let held: Buffer[] | undefined
    socket.on('data', (chunk: Buffer) => {
      if (echoing) {
        socket.write(chunk)
        return
      }
      if (held != null) {
        held.push(chunk)
        return
      }
      buffered += chunk.toString('latin1')
      for (let end = buffered.indexOf('\r\n\r\n'); end >= 0 && !echoing; end = buffered.indexOf('\r\n\r\n')) {
        const path = buffered.slice(0, end).split(' ')[1] ?? ''
        seen.push(path)
        buffered = buffered.slice(end + 4)
        if (path === '/ws') {
          echoing = true
          socket.write('HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\n\r\n')
        } else if (path === '/slow-ws') {
          // what comes before the 101 is echoed after it, as a WebSocket server would read it then
          held = [Buffer.from(buffered, 'latin1')]
          buffered = ''
          setTimeout(() => {
            socket.write('HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\n\r\n')
            echoing = true
            for (const part of held ?? []) {
              socket.write(part)
            }
            held = undefined
          }, SLOW_101_MS)
          return
        } else if (path.startsWith('/head-of/')) {
          // a response whose head is this many bytes, in cookies of at most 8 KiB
          const cookies = []
          for (let left = Number(path.slice('/head-of/'.length)); left > 0; left -= 8_192) {
            cookies.push(`set-cookie: c${cookies.length}=${'x'.repeat(Math.min(left, 8_192))}\r\n`)
          }
          socket.write(`HTTP/1.1 200 OK\r\n${cookies.join('')}content-length: 3\r\n\r\nok\n`)
        } else if (path === '/unasked-continue') {
          socket.write('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nok\n')
        } else if (path === '/not-http') {
          // a header value with a control character: not HTTP, which undici's parser refuses
          socket.write('HTTP/1.1 200 OK\r\nx-bad: a\x01b\r\ncontent-length: 3\r\n\r\nok\n')
        } else if (path === '/unasked-upgrade') {
          socket.write('HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\n')
        } else if (path === '/bad-reason') {
          // a control character in the reason phrase: undici takes it, Node's server does not send it
          socket.write('HTTP/1.1 200 O\x01K\r\ncontent-length: 3\r\n\r\nok\n')
        } else if (path === '/low-status') {
          socket.write('HTTP/1.1 099 Low\r\ncontent-length: 3\r\n\r\nok\n')
        } else if (path === '/two-lengths') {
          socket.write('HTTP/1.1 200 OK\r\ncontent-length: 3\r\ncontent-length: 4\r\n\r\nok\n')
        } else if (path === '/refuse-big') {
          socket.write(`HTTP/1.1 403 Forbidden\r\ncontent-length: ${REFUSAL_BODY_BYTES}\r\n\r\n`)
          const chunk = Buffer.alloc(64 * 1024, 'x')
          const more = (): void => {
            while (refusalSent.bytes < REFUSAL_BODY_BYTES && !socket.destroyed) {
              refusalSent.bytes += chunk.byteLength
              if (!socket.write(chunk)) {
                socket.once('drain', more)
                return
              }
            }
          }
          more()
        } else if (path === '/refuse') {
          socket.write('HTTP/1.1 404 Not Found\r\ncontent-length: 9\r\n\r\nnot here\n')
        } else if (path !== '/hang') {
          const body = `got ${path}\n`
          socket.write(`HTTP/1.1 200 OK\r\ncontent-length: ${body.length}\r\n\r\n${body}`)
        }
      }
    })
    socket.on('error', () => {})
  })
}

const UPGRADE = 'Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n'

describe('client proxy: upgrades the instance refuses or leaves unanswered, and answers it cannot pass on', { timeout: 120_000 }, () => {
  let proxied: ProxiedService
  let proxy: ClientProxy
  let metrics: Registry
  /** The request paths the service read, in order. */
  const seen: string[] = []
  const refusalSent = { bytes: 0 }

  /** A connection to the proxy; `received()` is all it got so far, `closed` settles once it closed. */
  const open = async (): Promise<{ socket: Socket, received: () => string, closed: Promise<unknown> }> => {
    const socket = connect({ host: '127.0.0.1', port: proxy.port })
    const closed = new Promise(resolve => socket.once('close', resolve))
    await once(socket, 'connect')
    let text = ''
    socket.on('data', (chunk: Buffer) => { text += chunk.toString('latin1') })
    socket.on('error', () => {})
    return { socket, received: () => text, closed }
  }

  before(async () => {
    proxied = await startProxiedService(SERVICE, 'socket', handBuiltService(seen, refusalSent), { upstreamTimeoutMs: UPSTREAM_TIMEOUT_MS })
    proxy = proxied.proxy
    metrics = proxied.metrics
    await eventually('the instance answers', async () => (await fetch(`http://127.0.0.1:${proxy.port}/${SERVICE}/x`).catch(() => undefined))?.status === 200 ? true : undefined, 30_000, 200)
  })

  after(async () => { await proxied?.stop() })

  it('switches to a byte pipe on 101', async () => {
    const { socket, received } = await open()
    socket.write(`GET /${SERVICE}/ws HTTP/1.1\r\nHost: 127.0.0.1\r\n${UPGRADE}\r\n`)
    await eventually('the 101', () => received().includes('\r\n\r\n') ? true : undefined, 10_000, 20)
    assert.match(received(), /^HTTP\/1\.1 101 /)
    socket.write('ping over the pipe')
    await eventually('the echo', () => received().endsWith('ping over the pipe') ? true : undefined, 10_000, 20)
    socket.destroy()
  })

  it('relays a refusal with connection: close, and sends nothing more of that connection to the instance', async () => {
    const { socket, received, closed } = await open()
    // a client that sends another request on the connection right behind: it must not reach the
    // instance unrouted, and the proxy ends the connection once the refusal's body has passed
    socket.write(`GET /${SERVICE}/refuse HTTP/1.1\r\nHost: 127.0.0.1\r\n${UPGRADE}\r\nGET /another-service/secret HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`)
    await eventually('the refusal', () => received().endsWith('not here\n') ? true : undefined, 10_000, 20)
    assert.match(received(), /^HTTP\/1\.1 404 Not Found\r\n/)
    assert.match(received(), /\r\nconnection: close\r\n/)
    await closed
    assert.doesNotMatch(received(), /got \/another-service\/secret/)
    // nor did the instance read it: it would have bypassed the routing and the forwarding headers
    assert.ok(seen.includes('/refuse'))
    assert.ok(!seen.includes('/another-service/secret'), `the instance read ${seen.join(', ')}`)
    assert.match(await metrics.metrics(), new RegExp(`physarum_proxy_requests_total\\{service="${SERVICE}",code="404"\\} 1`))
  })

  it('ends the connection with a refusal or an error to a client that sent more than a little before it', async () => {
    for (const [path, status] of [['/refuse', '404 Not Found'], ['/hang', '504 Gateway Timeout']]) {
      const { socket, received, closed } = await open()
      let ended = false
      void closed.then(() => { ended = true })
      // far past what the proxy reads before the answer (it stops reading this client until then),
      // and past what the socket buffers between them hold: this client's writes wait on the proxy
      socket.write(`GET /${SERVICE}${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n${UPGRADE}\r\n`)
      socket.write(Buffer.alloc(512 * MAX_EARLY_UPGRADE_BYTES, 'e'))
      // what it sent is read (and dropped) once it is answered: its writes finish, its end comes
      // through, and the connection closes, not held until the client gives up on it
      await eventually(`the connection closed after ${path}'s answer`, () => ended ? true : undefined, 10_000, 20)
      assert.match(received(), new RegExp(`^HTTP/1\\.1 ${status}\r\n`))
    }
  })

  it('passes a refusal\'s body on at the pace its client reads it', async () => {
    const socket = connect({ host: '127.0.0.1', port: proxy.port })
    socket.on('error', () => {})
    try {
      await once(socket, 'connect')
      // a client that reads nothing of the answer
      socket.pause()
      socket.write(`GET /${SERVICE}/refuse-big HTTP/1.1\r\nHost: 127.0.0.1\r\n${UPGRADE}\r\n`)
      await eventually('the service to begin its body', () => refusalSent.bytes > 0 ? true : undefined, 10_000, 20)
      // until the buffers between them are full: the service's count stops growing
      let last = -1
      await eventually('the service to be held back', async () => {
        const now = refusalSent.bytes
        const held = now === last
        last = now
        await new Promise(resolve => setTimeout(resolve, 500))
        return held ? true : undefined
      }, 20_000, 0)
      // the sockets' and the stream's buffers, tens of MiB, not the whole body
      assert.ok(refusalSent.bytes < REFUSAL_BODY_BYTES / 4, `the service sent ${(refusalSent.bytes / 2 ** 20).toFixed(1)} MiB to a client that read nothing`)
    } finally {
      socket.destroy()
    }
  })

  it('passes a large response head on, answers 502 for one it cannot pass on, and keeps the instance', async () => {
    // a client that takes large heads (fetch's limit is 16 KiB)
    const get = async (path: string): Promise<{ status: number, text: string }> => {
      const [answer] = await once(request(`http://127.0.0.1:${proxy.port}/${SERVICE}${path}`, { maxHeaderSize: 2 * MAX_RESPONSE_HEAD_BYTES }).end(), 'response') as [IncomingMessage]
      let text = ''
      for await (const chunk of answer) {
        text += (chunk as Buffer).toString()
      }
      return { status: answer.statusCode ?? 0, text }
    }
    // larger than undici's 16 KiB default: a few big cookies
    assert.deepEqual(await get('/head-of/40000'), { status: 200, text: 'ok\n' })
    const tooLarge = await get(`/head-of/${MAX_RESPONSE_HEAD_BYTES + 1_000}`)
    assert.equal(tooLarge.status, 502)
    assert.match(tooLarge.text, /answered with a response the proxy cannot pass on/)
    assert.equal((await get('/unasked-continue')).status, 502)
    const notHttp = await get('/not-http')
    assert.equal(notHttp.status, 502)
    assert.match(notHttp.text, /answered with a response the proxy cannot pass on/)
    // a 101 to a request that asked for no upgrade: not retried either
    const unasked = seen.length
    const upgraded = await get('/unasked-upgrade')
    assert.equal(upgraded.status, 502)
    assert.match(upgraded.text, /answered with a response the proxy cannot pass on/)
    assert.deepEqual(seen.slice(unasked), ['/unasked-upgrade'])
    const twoLengths = await get('/two-lengths')
    assert.equal(twoLengths.status, 502)
    assert.match(twoLengths.text, /answered with a response the proxy cannot pass on/)
    // a status below 100 is no HTTP status: not retried either
    const low = seen.length
    const lowStatus = await get('/low-status')
    assert.equal(lowStatus.status, 502)
    assert.match(lowStatus.text, /answered with the status 99, which HTTP does not have/)
    assert.deepEqual(seen.slice(low), ['/low-status'])
    // a head Node's server refuses to send
    const reason = seen.length
    const badReason = await get('/bad-reason')
    assert.equal(badReason.status, 502)
    assert.match(badReason.text, /answered with a head that cannot be relayed/)
    assert.deepEqual(seen.slice(reason), ['/bad-reason'])
    // the instance was neither rested nor asked twice: the next request is its, at once
    const before = seen.length
    assert.deepEqual(await get('/x'), { status: 200, text: 'got /x\n' })
    assert.deepEqual(seen.slice(before), ['/x'])
    assert.doesNotMatch(await metrics.metrics(), new RegExp(`physarum_proxy_upstream_failures_total[{]service="${SERVICE}"`))
  })

  it('refuses upgrades past MAX_UPGRADES_PER_INSTANCE with 503, and takes them again once one closed', async () => {
    const upgrade = async (): Promise<Awaited<ReturnType<typeof open>>> => {
      const opened = await open()
      opened.socket.write(`GET /${SERVICE}/ws HTTP/1.1\r\nHost: 127.0.0.1\r\n${UPGRADE}\r\n`)
      await eventually('an answer', () => opened.received().includes('\r\n\r\n') ? true : undefined, 10_000, 20)
      return opened
    }
    const held = []
    for (let i = 0; i < MAX_UPGRADES_PER_INSTANCE; i++) {
      held.push(await upgrade())
    }
    assert.ok(held.every(one => one.received().startsWith('HTTP/1.1 101 ')))
    const refused = await upgrade()
    assert.match(refused.received(), /^HTTP\/1\.1 503 /)
    assert.match(refused.received(), /\r\nretry-after: \d+\r\n/)
    assert.match(refused.received(), new RegExp(`carries ${MAX_UPGRADES_PER_INSTANCE} upgraded connections`))
    // requests still have streams to the instance
    assert.equal((await fetch(`http://127.0.0.1:${proxy.port}/${SERVICE}/x`)).status, 200)
    held.pop()!.socket.destroy()
    await eventually('an upgrade taken again', async () => {
      const again = await upgrade()
      again.socket.destroy()
      return again.received().startsWith('HTTP/1.1 101 ') ? true : undefined
    }, 10_000, 100)
    for (const one of held) {
      one.socket.destroy()
    }
    // the next test's upgrade must find the instance free again
    await eventually('the upgraded streams closed', () => proxied.node.libp2p.getConnections().flatMap(c => c.streams).filter(s => s.protocol === HTTP_PROTOCOL).length <= 1 ? true : undefined, 10_000, 50)
  })

  it('joins nothing for a client that closed its end before the 101 came, and keeps no stream', async () => {
    const streams = (): number => proxied.node.libp2p.getConnections().flatMap(c => c.streams).filter(s => s.protocol === HTTP_PROTOCOL).length
    const before = streams()
    const { socket, closed } = await open()
    socket.write(`GET /${SERVICE}/slow-ws HTTP/1.1\r\nHost: 127.0.0.1\r\n${UPGRADE}\r\n`)
    // a tab closed while the instance was asked: a FIN, not a reset
    setTimeout(() => { socket.end() }, SLOW_101_MS / 5)
    await closed
    await eventually('the stream to the instance closed', () => streams() <= before ? true : undefined, 5_000, 50)
    await eventually('counted as gone', async () => (await metrics.metrics()).includes(`physarum_proxy_requests_total{service="${SERVICE}",code="499"} 1`) ? true : undefined, 5_000, 50)
  })

  it('stops reading a client that sends more than a little before the 101, and passes it all after', async () => {
    const { socket, received } = await open()
    socket.write(`GET /${SERVICE}/slow-ws HTTP/1.1\r\nHost: 127.0.0.1\r\n${UPGRADE}\r\n`)
    const early = Buffer.alloc(32 * 1024 * 1024, 'e')
    socket.write(early)
    // before the 101: what the proxy does not read waits in this socket's buffer, not in the proxy
    await new Promise(resolve => setTimeout(resolve, SLOW_101_MS / 2))
    assert.ok(socket.writableLength > early.byteLength / 2, `${socket.writableLength} bytes still to send`)
    await eventually('the 101 and everything echoed', () => received().length >= early.byteLength ? true : undefined, 30_000, 50)
    assert.match(received(), /^HTTP\/1\.1 101 /)
    assert.equal(received().length - received().indexOf('\r\n\r\n') - 4, early.byteLength)
    socket.destroy()
  })

  it('answers 504 to an upgrade the instance leaves unanswered past the upstream timeout', async () => {
    const { socket, received, closed } = await open()
    const began = performance.now()
    socket.write(`GET /${SERVICE}/hang HTTP/1.1\r\nHost: 127.0.0.1\r\n${UPGRADE}\r\n`)
    await closed
    assert.match(received(), /^HTTP\/1\.1 504 /)
    assert.ok(performance.now() - began >= UPSTREAM_TIMEOUT_MS - 50, 'not before the timeout')
  })

  // last: it stops the proxy
  it('stops at once with a WebSocket open, closing it', async () => {
    const { socket, received, closed } = await open()
    socket.write(`GET /${SERVICE}/ws HTTP/1.1\r\nHost: 127.0.0.1\r\n${UPGRADE}\r\n`)
    await eventually('the 101', () => received().includes('\r\n\r\n') ? true : undefined, 10_000, 20)
    const began = performance.now()
    await proxy.stop()
    assert.ok(performance.now() - began < 2_000, `stopped after ${Math.round(performance.now() - began)} ms`)
    await closed
  })
})
