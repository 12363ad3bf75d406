import assert from 'node:assert/strict'
import { createServer } from 'node:net'
import { after, before, describe, it } from 'node:test'
import { eventually } from '../../registry-service/test/helpers.ts'
import { rawRequest, startProxiedService } from './helpers.ts'
import type { Server } from 'node:net'
import type { ProxiedService } from './helpers.ts'

const SERVICE = 'plain-server'

/** A service that answers every request 200 with its path. */
function plainService (): Server {
  return createServer((socket) => {
    let buffered = ''
    socket.on('data', (chunk: Buffer) => {
      buffered += chunk.toString('latin1')
      for (let end = buffered.indexOf('\r\n\r\n'); end >= 0; end = buffered.indexOf('\r\n\r\n')) {
        const path = buffered.slice(0, end).split(' ')[1] ?? ''
        buffered = buffered.slice(end + 4)
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

describe('client proxy: requests it does not forward', { timeout: 120_000 }, () => {
  let proxied: ProxiedService

  const raw = async (request: string): Promise<string> => await rawRequest(proxied.proxy.port, request)

  before(async () => {
    proxied = await startProxiedService(SERVICE, 'plain', plainService())
    await eventually('the instance answers', async () => (await fetch(`http://127.0.0.1:${proxied.proxy.port}/${SERVICE}/`).catch(() => undefined))?.status === 200 ? true : undefined, 30_000, 200)
  })

  after(async () => { await proxied?.stop() })

  it('answers CONNECT with a JSON 501 and closes the connection', async () => {
    const { status, body } = jsonAnswer(await raw('CONNECT 127.0.0.1:22 HTTP/1.1\r\nHost: 127.0.0.1:22\r\n\r\n'))
    assert.equal(status, 501)
    assert.equal(body.status, 501)
    assert.match(body.error, /no tunnels/)
  })
})
