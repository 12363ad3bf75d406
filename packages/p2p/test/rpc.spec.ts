import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import { after, before, describe, it } from 'node:test'
import { pbStream } from '@libp2p/utils'
import { callRpc, handleRpc, RPC_STREAM_CLIENT_IDLE_MS, RpcFailureError } from '../src/index.ts'
import { EchoRequest, EchoResponse, Failure } from './fixtures/echo.js'
import { eventually, startDelayRelay, startNode, stopAll } from './helpers.ts'
import type { PhysarumNode, RpcSpec } from '../src/index.ts'
import type { Stream } from '@libp2p/interface'

const spec: RpcSpec<EchoRequest, EchoResponse> = {
  protocol: '/physarum-test/echo/1.0.0',
  request: EchoRequest,
  response: EchoResponse,
  maxMessageBytes: 1024,
  timeoutMs: 1_000,
  maxStreams: 64,
  failure: (code, message) => ({ text: '', failure: { code: code as Failure.Code, message } }),
  failureOf: (response) => response.failure
}

/** What a raw stream got back: a decoded response, or the error that ended the stream. */
/** The answer on `stream`, or the error its reset gave; fails when the server neither answers nor resets it within 5 s. */
async function answerTo (stream: Stream): Promise<EchoResponse | Error> {
  const signal = AbortSignal.timeout(5_000)
  try {
    return await pbStream(stream).read(EchoResponse, { signal })
  } catch (err) {
    if (signal.aborted) {
      throw new Error('the server neither answered nor reset the stream within 5 s', { cause: err })
    }
    return err as Error
  }
}

describe('request/response helper', () => {
  let server: PhysarumNode
  let client: PhysarumNode
  before(async () => {
    server = await startNode()
    client = await startNode({ bootstrap: [server.multiaddrs()[0]!.toString()] })
    await handleRpc(server.libp2p, spec, async (request, { remotePeer }) => {
      if (request.text === '') {
        throw new RpcFailureError('BAD_REQUEST', 'text is empty')
      }
      if (request.text === 'missing') {
        throw new RpcFailureError('NOT_FOUND', 'no such thing')
      }
      if (request.text === 'bug') {
        throw new Error('secret internal detail')
      }
      await sleep(request.delayMs)
      const text = request.replyBytes > 0 ? 'x'.repeat(request.replyBytes) : `${request.text} from ${remotePeer.toString().slice(-6)}`
      return { text }
    }, { log: server.libp2p.logger.forComponent('test:echo') })
  })
  after(async () => { await stopAll([client, server]) })

  const echo = async (request: Partial<EchoRequest>): Promise<EchoResponse> =>
    await callRpc(client.libp2p, server.peerId, spec, { text: '', delayMs: 0, replyBytes: 0, ...request })
  /** Streams the server still answers on (the earlier tests' raw streams it refused stay half-open). */
  const served = (): Stream[] => server.libp2p.getConnections(client.peerId).flatMap(c => c.streams).filter(s => s.protocol === spec.protocol && s.status === 'open' && s.writeStatus === 'writable')

  it('answers a request', async () => {
    const response = await echo({ text: 'hello' })
    assert.equal(response.text, `hello from ${client.peerId.toString().slice(-6)}`)
    // requests and responses of 128 bytes or more have length prefixes of two bytes
    const long = 'l'.repeat(200)
    assert.equal((await echo({ text: long })).text, `${long} from ${client.peerId.toString().slice(-6)}`)
    assert.equal((await echo({ text: 'long answer', replyBytes: 1000 })).text, 'x'.repeat(1000))
  })

  it('carries typed failures, and hides internal errors behind INTERNAL', async () => {
    await assert.rejects(echo({ text: 'missing' }), (err: RpcFailureError) => {
      assert.equal(err.name, 'RpcFailureError')
      assert.equal(err.code, 'NOT_FOUND')
      assert.equal(err.message, 'no such thing')
      return true
    })
    await assert.rejects(echo({ text: 'bug' }), (err: RpcFailureError) => {
      assert.equal(err.code, 'INTERNAL')
      assert.doesNotMatch(err.message, /secret/)
      return true
    })
    await assert.rejects(echo({ text: 'big', replyBytes: 5_000 }), { name: 'RpcFailureError', code: 'INTERNAL', message: /larger/ })
  })

  it('refuses a request over the size limit without sending it', async () => {
    let dials = 0
    const counting = { dialProtocol: async (...args: Parameters<typeof client.libp2p.dialProtocol>) => { dials++; return await client.libp2p.dialProtocol(...args) } }
    // just over the limit, and far over it (past what the serving side buffers before a reset)
    for (const size of [1_100, 500_000]) {
      await assert.rejects(callRpc(counting, server.peerId, spec, { text: 'x'.repeat(size), delayMs: 0, replyBytes: 0 }), {
        name: 'RpcFailureError',
        code: 'BAD_REQUEST',
        message: /request of \d+ bytes is larger than the 1024 bytes the protocol allows: it was not sent/
      })
    }
    assert.equal(dials, 0, 'a stream was opened for a request that cannot be served')
    assert.match((await echo({ text: 'after' })).text, /^after/)
  })

  it('times out a slow answer on the client side', async () => {
    await assert.rejects(echo({ text: 'slow', delayMs: 3_000 }), { name: 'RpcTimeoutError' })
  })

  it('survives garbage, oversized frames, wrong messages and stalled peers, and keeps serving', async () => {
    const open = async (): Promise<Stream> => await client.libp2p.dialProtocol(server.peerId, spec.protocol)

    // a peer that sends one byte of a length prefix and nothing more
    const stalled = await open()
    stalled.send(Uint8Array.of(0x85))

    // concurrent good requests are not held up by it: answered before its deadline reset it
    assert.match((await echo({ text: 'meanwhile' })).text, /^meanwhile/)
    assert.equal(stalled.status, 'open', 'a stalled peer held up another request')

    // a length prefix that goes on past the 2 bytes a 1 KiB message needs: refused at once, not
    // waited on until the deadline resets the stream
    const endless = await open()
    endless.send(Uint8Array.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]))
    const endlessAnswer = await answerTo(endless)
    assert.ok(!(endlessAnswer instanceof Error), `endless prefix: ${endlessAnswer instanceof Error ? endlessAnswer.message : ''}`)
    assert.equal(endlessAnswer.failure?.code, 'BAD_REQUEST')
    // an answer, not the reset its deadline would have given
    assert.match(endlessAnswer.failure.message, /length prefix is too long: a message of at most 1024 bytes needs at most 2/)

    const garbage = await open()
    garbage.send(Uint8Array.from([0x05, 0xff, 0xff, 0xff, 0xff, 0xff]))
    const garbageAnswer = await answerTo(garbage)

    const oversized = await open()
    oversized.send(Uint8Array.of(0x80, 0x80, 0x40)) // a length of 1 MiB, over the 1 KiB limit
    oversized.send(new Uint8Array(4096))
    const oversizedAnswer = await answerTo(oversized)
    assert.ok(!(oversizedAnswer instanceof Error), `oversized: ${oversizedAnswer instanceof Error ? oversizedAnswer.message : ''}`)
    assert.equal(oversizedAnswer.failure?.code, 'BAD_REQUEST')
    assert.match(oversizedAnswer.failure.message, /too long/)

    const wrong = await open()
    await pbStream(wrong).write({ code: Failure.Code.CAPACITY, message: 'not a request' }, Failure)
    const wrongAnswer = await answerTo(wrong)

    for (const [what, answer] of [['garbage', garbageAnswer], ['wrong message', wrongAnswer]] as const) {
      // either refused with BAD_REQUEST or the stream was reset: never a normal answer
      if (!(answer instanceof Error)) {
        assert.equal(answer.failure?.code, 'BAD_REQUEST', `${what}: ${JSON.stringify(answer)}`)
      }
    }

    const stalledAnswer = await answerTo(stalled)
    assert.ok(stalledAnswer instanceof Error, 'the stalled stream was reset')
    assert.match((await echo({ text: 'after' })).text, /^after/)
  })

  it('resets a stream whose peer sends far more than the request being handled and the next', async () => {
    const flood = await client.libp2p.dialProtocol(server.peerId, spec.protocol)
    const messages = pbStream(flood)
    await messages.write({ text: 'slow', delayMs: 300, replyBytes: 0 }, EchoRequest)
    // requests pipelined while the first is handled: 200 KiB of them, never read by the server
    for (let i = 0; i < 2_000; i++) {
      await messages.write({ text: 'x'.repeat(100), delayMs: 0, replyBytes: 0 }, EchoRequest)
    }
    const answer = await answerTo(flood)
    assert.ok(answer instanceof Error, `answered: ${JSON.stringify(answer)}`)
    assert.match((await echo({ text: 'after the flood' })).text, /^after the flood/)
  })

  it('keeps a stream for the next request, opens more only for requests at once, and closes them unused', async () => {
    const before = new Set(served())
    for (let i = 0; i < 20; i++) {
      assert.match((await echo({ text: `one by one ${i}` })).text, /^one by one/)
    }
    assert.ok(served().filter(stream => !before.has(stream)).length <= 1, 'requests one by one share a stream')
    // a burst opens the streams it needs, and all of them serve the next burst
    const burst = 48
    await Promise.all(Array.from({ length: burst }, async () => await echo({ text: 'at once', delayMs: 50 })))
    const afterBurst = new Set(served())
    assert.ok(afterBurst.size >= burst, `${afterBurst.size} streams after a burst of ${burst}`)
    await Promise.all(Array.from({ length: burst }, async () => await echo({ text: 'again at once', delayMs: 50 })))
    assert.deepEqual(served().filter(stream => !afterBurst.has(stream)).map(stream => stream.id), [], 'a burst as large as the last opens no stream')
    // callers asking back to back: answers that come together give their streams back together,
    // and each is asked again on one of them
    const seen = new Set<Stream>()
    await Promise.all(Array.from({ length: burst }, async () => {
      for (let i = 0; i < 10; i++) {
        await echo({ text: 'steady' })
        for (const stream of served()) {
          seen.add(stream)
        }
      }
    }))
    assert.deepEqual([...seen].filter(stream => !afterBurst.has(stream)).map(stream => stream.id), [], `${burst} callers asking back to back opened streams`)
    // unused, they are closed by the caller well before the serving side would give up on them
    const idleSince = Date.now()
    await eventually('the unused streams to close', () => served().some(stream => afterBurst.has(stream)) ? undefined : true, RPC_STREAM_CLIENT_IDLE_MS + 5_000)
    assert.ok(Date.now() - idleSince >= RPC_STREAM_CLIENT_IDLE_MS - 1_000, 'kept streams closed before they were idle for long')
    assert.match((await echo({ text: 'after the idle close' })).text, /^after the idle close/)
  })

  it('opens a new stream when the kept ones were ended by the serving side', async () => {
    await Promise.all(Array.from({ length: 4 }, async () => await echo({ text: 'at once', delayMs: 20 })))
    assert.ok(served().length >= 1)
    // a kept stream the serving side ended is not used again
    for (const stream of served()) {
      stream.abort(new Error('gone'))
    }
    await eventually('the caller to see its kept streams reset', () => client.libp2p.getConnections(server.peerId).flatMap(c => c.streams).some(s => s.protocol === spec.protocol && s.status === 'open' && s.remoteWriteStatus === 'writable') ? undefined : true)
    assert.match((await echo({ text: 'after the reset' })).text, /^after the reset/)
  })

  it('serves a caller that sends one request on a stream and closes it', async () => {
    const stream = await client.libp2p.dialProtocol(server.peerId, spec.protocol)
    const messages = pbStream(stream)
    await messages.write({ text: 'once', delayMs: 0, replyBytes: 0 }, EchoRequest)
    await stream.close()
    assert.match((await messages.read(EchoResponse, { signal: AbortSignal.timeout(5_000) })).text, /^once/)
    await eventually('the serving side to close the stream', () => stream.remoteWriteStatus === 'closed' ? true : undefined)
  })

  it('moves a request to a new stream when a kept one was closed unread by a one-exchange peer', async () => {
    // a peer that serves one request per stream and closes it a moment after answering
    const protocol = '/physarum-test/echo-once/1.0.0'
    let streams = 0
    await server.libp2p.handle(protocol, async (stream) => {
      streams++
      const messages = pbStream(stream)
      const request = await messages.read(EchoRequest)
      await messages.write({ text: `${request.text} once` }, EchoResponse)
      await sleep(100)
      await stream.close()
    })
    const once = { ...spec, protocol }
    const call = async (text: string): Promise<string> => (await callRpc(client.libp2p, server.peerId, once, { text, delayMs: 0, replyBytes: 0 })).text
    assert.equal(await call('first'), 'first once')
    // the kept stream still looks open: the request goes out on it, meets the close, and is sent
    // again on a second stream
    const began = performance.now()
    assert.equal(await call('second'), 'second once')
    assert.ok(performance.now() - began >= 90, 'the request waited on the kept stream until its close')
    assert.equal(streams, 2)
    await server.libp2p.unhandle(protocol)
  })

  /** Serves echo on `protocol`, each request's text recorded; `nextHandled()`: when the next one is being handled. */
  const recordingEcho = async (protocol: string): Promise<{ handled: string[], nextHandled: () => Promise<void> }> => {
    const handled: string[] = []
    let handling = Promise.withResolvers<void>()
    await handleRpc(server.libp2p, { ...spec, protocol }, async (request) => {
      handled.push(request.text)
      handling.resolve()
      await sleep(request.delayMs)
      return { text: request.text }
    }, { log: server.libp2p.logger.forComponent(`test:${protocol}`) })
    return {
      handled,
      nextHandled: async () => {
        handling = Promise.withResolvers<void>()
        await handling.promise
      }
    }
  }

  it('does not send a request again when the serving side closes the connection while handling it', async () => {
    // libp2p closes every stream of a connection it closes (a stop, the connection manager
    // pruning), and refuses new ones only once all have closed: a stream whose peer reads nothing
    // holds that up, so a copy of the request sent on a new stream meanwhile would be handled
    const protocol = '/physarum-test/echo-closing/1.0.0'
    const sink = '/physarum-test/sink/1.0.0'
    const { handled, nextHandled } = await recordingEcho(protocol)
    await server.libp2p.handle(sink, (stream) => { stream.send(new Uint8Array(1024 * 1024)) })
    const connections = client.libp2p.getConnections(server.peerId)
    try {
      const unread = await client.libp2p.dialProtocol(server.peerId, sink)
      unread.pause()
      const call = async (text: string, delayMs: number): Promise<EchoResponse> => await callRpc(client.libp2p, server.peerId, { ...spec, protocol }, { text, delayMs, replyBytes: 0 })
      // the next request goes on the stream kept from this one
      assert.equal((await call('first', 0)).text, 'first')
      const handling = nextHandled()
      // its failure is taken at once: it may come while the connection is still closing
      const second = call('second', 300).then(response => response.text, (err: Error) => err)
      await handling
      // the unread stream never lets the close finish: it gives up after libp2p's close timeout
      const closed = Promise.all(server.libp2p.getConnections(client.peerId).map(async connection => { await connection.close().catch((err: Error) => { connection.abort(err) }) }))
      const outcome = await second
      assert.ok(outcome instanceof Error, `answered ${outcome}: the request was sent again`)
      assert.equal(outcome.name, 'RpcProtocolError')
      await closed
      assert.deepEqual(handled, ['first', 'second'])
    } finally {
      await server.libp2p.unhandle([protocol, sink])
    }
    // the next tests use a new connection (the caller's bootstrapper dials one too)
    await eventually('the caller to see the connection closed', () => connections.every(connection => connection.status !== 'open') ? true : undefined)
    await client.libp2p.dial(server.peerId)
  })

  it('does not send a request again when the connection ends while the request is handled', async () => {
    // the caller reaches the server through a relay that then drops the connection, as a peer
    // whose process died would (its kernel ends the socket); the server itself goes on, at an
    // address the caller knows from identify
    const protocol = '/physarum-test/echo-cut/1.0.0'
    const { handled, nextHandled } = await recordingEcho(protocol)
    const relay = await startDelayRelay({ target: { port: Number(server.multiaddrs()[0]!.getComponents().find(c => c.name === 'tcp')!.value) }, delayMs: 0 })
    const relayed = await startNode({ bootstrap: [`/ip4/127.0.0.1/tcp/${relay.port}/p2p/${server.peerId.toString()}`] })
    try {
      const call = async (text: string, delayMs: number): Promise<EchoResponse> => await callRpc(relayed.libp2p, server.peerId, { ...spec, protocol }, { text, delayMs, replyBytes: 0 })
      assert.equal((await call('first', 0)).text, 'first')
      const handling = nextHandled()
      const second = call('second', 300).then(response => response.text, (err: Error) => err)
      await handling
      await relay.close()
      const outcome = await second
      assert.ok(outcome instanceof Error, `answered ${outcome}: the request was sent again`)
      assert.equal(outcome.name, 'RpcProtocolError')
      // a copy sent on a new connection would be handled well within this
      await sleep(500)
      assert.deepEqual(handled, ['first', 'second'])
    } finally {
      await relay.close()
      await stopAll([relayed])
      await server.libp2p.unhandle(protocol)
    }
  })

  it('says why a request failed when its stream is reset while the request waits to be sent', async () => {
    // a peer that answers once, then stops granting the stream window and resets it a moment later
    const protocol = '/physarum-test/echo-stall/1.0.0'
    await server.libp2p.handle(protocol, async (stream) => {
      const messages = pbStream(stream)
      const request = await messages.read(EchoRequest)
      await messages.write({ text: request.text }, EchoResponse)
      stream.pause()
      await sleep(300)
      stream.abort(new Error('gone'))
    })
    try {
      const large = { ...spec, protocol, maxMessageBytes: 1024 * 1024 }
      await callRpc(client.libp2p, server.peerId, large, { text: 'first', delayMs: 0, replyBytes: 0 })
      // more than Yamux's window: the rest waits for a window update that never comes
      await assert.rejects(callRpc(client.libp2p, server.peerId, large, { text: 'x'.repeat(512 * 1024), delayMs: 0, replyBytes: 0 }), (err: Error) => {
        assert.equal(err.name, 'RpcProtocolError')
        assert.match(err.message, /failed: The stream has been reset$/)
        assert.ok(err.cause instanceof Error, 'the cause is an error')
        return true
      })
    } finally {
      await server.libp2p.unhandle(protocol)
    }
  })

  it('queues the requests past the streams the peer serves at once, instead of having them reset', async () => {
    const narrow = { ...spec, protocol: '/physarum-test/echo-narrow/1.0.0', maxStreams: 8, timeoutMs: 5_000 }
    let running = 0
    let most = 0
    await handleRpc(server.libp2p, narrow, async (request) => {
      most = Math.max(most, ++running)
      await sleep(20)
      running--
      return { text: request.text }
    }, { log: server.libp2p.logger.forComponent('test:echo-narrow') })
    try {
      const call = async (text: string, signal?: AbortSignal): Promise<string> => (await callRpc(client.libp2p, server.peerId, narrow, { text, delayMs: 0, replyBytes: 0 }, signal == null ? {} : { signal })).text
      const answers = Promise.all(Array.from({ length: 100 }, async (_, i) => await call(`n${i}`)))
      // a caller that gives up while queued, or came already given up, leaves with its own reason
      await assert.rejects(call('already', AbortSignal.abort(new Error('given up before'))), { message: 'given up before' })
      await assert.rejects(call('impatient', AbortSignal.timeout(10)), { name: 'TimeoutError' })
      assert.deepEqual(await answers, Array.from({ length: 100 }, (_, i) => `n${i}`))
      assert.equal(most, 8, 'exchanges served at once')
    } finally {
      await server.libp2p.unhandle(narrow.protocol)
    }
  })

  it('serves many requests at once', async () => {
    const answers = await Promise.all(Array.from({ length: 50 }, async (_, i) => await echo({ text: `n${i}`, delayMs: 20 })))
    assert.deepEqual(answers.map(a => a.text.split(' ')[0]), Array.from({ length: 50 }, (_, i) => `n${i}`))
  })
})
