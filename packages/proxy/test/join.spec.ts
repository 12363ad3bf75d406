import assert from 'node:assert/strict'
import { once } from 'node:events'
import { connect, createServer } from 'node:net'
import { after, before, describe, it } from 'node:test'
import { eventually, freePort, startNode, stopAll } from '../../p2p/test/helpers.ts'
import { joinSocket } from '../src/duplex.ts'
import type { AddressInfo, Server, Socket } from 'node:net'
import type { Stream } from '@libp2p/interface'
import type { PhysarumNode } from '@physarum/p2p'

const PROTOCOL = '/physarum-test/join/1.0.0'

/** Everything a stream receives until its remote end closes, as text. */
async function readAll (stream: Stream): Promise<string> {
  const parts: Buffer[] = []
  for await (const chunk of stream) {
    for (const part of chunk instanceof Uint8Array ? [chunk] : chunk) {
      parts.push(Buffer.from(part))
    }
  }
  return Buffer.concat(parts).toString()
}

describe('joinSocket: a socket and a libp2p stream as one byte pipe', () => {
  let server: PhysarumNode
  let client: PhysarumNode
  let service: Server
  /** The service's side of each connection the joined sockets made, in order. */
  const accepted: Socket[] = []
  /** What the handler's joinSocket reported, one entry per stream. */
  let outcomes: Array<Promise<Error | undefined>> = []
  /** How many times each stream's joinSocket called back. */
  let calls: number[] = []
  let servicePort = 0

  before(async () => {
    server = await startNode()
    client = await startNode()
    // answers what it was sent, counted, once the other side half-closed
    service = createServer({ allowHalfOpen: true }, socket => {
      accepted.push(socket)
      let bytes = 0
      socket.on('data', (chunk: Buffer) => { bytes += chunk.byteLength })
      socket.on('end', () => { socket.end(`got ${bytes} bytes`) })
      socket.on('error', () => {})
    })
    service.listen(0, '127.0.0.1')
    await once(service, 'listening')
    servicePort = (service.address() as AddressInfo).port
    await joinStreamsTo(servicePort)
  })
  after(async () => {
    for (const socket of accepted) {
      socket.destroy()
    }
    service.close()
    await stopAll([client, server])
  })

  /** Joins each stream of PROTOCOL the server takes to a new connection to 127.0.0.1:<port>. */
  const joinStreamsTo = async (port: number): Promise<void> => {
    await server.libp2p.unhandle(PROTOCOL)
    await server.libp2p.handle(PROTOCOL, (stream) => {
      const outcome = Promise.withResolvers<Error | undefined>()
      const index = outcomes.push(outcome.promise) - 1
      calls[index] = 0
      joinSocket(connect({ host: '127.0.0.1', port }), stream, (err) => {
        calls[index]!++
        outcome.resolve(err)
      })
    })
  }

  const open = async (): Promise<Stream> => {
    outcomes = []
    calls = []
    return await client.libp2p.dialProtocol(server.libp2p.getMultiaddrs()[0]!, PROTOCOL)
  }

  it('carries bytes both ways and passes each side\'s end to the other, then reports done once', async () => {
    const stream = await open()
    stream.send(new TextEncoder().encode('hello, '))
    stream.send(new TextEncoder().encode('service'))
    const reply = readAll(stream)
    await stream.close()
    // the service answers only after the stream's end reached it as its socket's end
    assert.equal(await reply, 'got 14 bytes')
    assert.equal(await outcomes[0], undefined)
    await eventually('the service\'s socket to close', () => accepted.at(-1)!.closed ? true : undefined)
    await eventually('the stream to close', () => stream.status === 'closed' ? true : undefined)
    assert.deepEqual(calls, [1])
  })

  it('resets the stream when the service cannot be reached, and reports why', async () => {
    await joinStreamsTo(await freePort())
    try {
      const stream = await open()
      await assert.rejects(readAll(stream))
      assert.match((await outcomes[0])?.message ?? '', /ECONNREFUSED/)
    } finally {
      await joinStreamsTo(servicePort)
    }
  })

  it('tears the socket down when the stream is reset, and reports why', async () => {
    const stream = await open()
    stream.send(new TextEncoder().encode('part of a request'))
    const before = accepted.length
    await eventually('the service to accept the connection', () => accepted.length > before ? true : undefined)
    const socket = accepted.at(-1)!
    stream.abort(new Error('the client gave up'))
    const err = await outcomes[0]
    assert.equal(err?.name, 'StreamResetError', `the reset was reported as it came: ${err?.message}`)
    await eventually('the service\'s socket to close', () => socket.closed ? true : undefined)
  })

  it('ends the stream with everything a service sent that closed while the stream still sent', async () => {
    // answers the first bytes of an upload with a large refusal and closes, as a server does
    // (its sockets are not half-open: the stream's next bytes are refused)
    const body = Buffer.alloc(4 * 1024 * 1024, 'r')
    const refusing = createServer(socket => {
      socket.on('error', () => {})
      socket.on('data', () => {})
      socket.once('data', () => { socket.end(body) })
    })
    refusing.listen(0, '127.0.0.1')
    await once(refusing, 'listening')
    await joinStreamsTo((refusing.address() as AddressInfo).port)
    try {
      for (let round = 0; round < 3; round++) {
        const stream = await open()
        const upload = new Uint8Array(64 * 1024)
        const sending = setInterval(() => {
          try {
            stream.send(upload)
          } catch {
            clearInterval(sending)
          }
        }, 2)
        try {
          assert.equal((await readAll(stream)).length, body.length, `round ${round}: the answer was cut`)
          // and more after the answer's end: no reader for them, and no failure either
          await new Promise(resolve => setTimeout(resolve, 100))
        } finally {
          clearInterval(sending)
        }
        assert.equal(await outcomes[0], undefined, `round ${round}`)
        stream.abort(new Error('done'))
      }
    } finally {
      refusing.close()
      await joinStreamsTo(servicePort)
    }
  })

  it('ends the stream with everything the service sent when the service closes first', async () => {
    const stream = await open()
    const before = accepted.length
    await eventually('the service to accept the connection', () => accepted.length > before ? true : undefined)
    const body = 'x'.repeat(1024 * 1024)
    accepted.at(-1)!.end(body)
    assert.equal((await readAll(stream)).length, body.length)
    await stream.close()
    assert.equal(await outcomes[0], undefined)
  })
})
