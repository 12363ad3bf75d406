import assert from 'node:assert/strict'
import { execFile, spawn } from 'node:child_process'
import { once } from 'node:events'
import { createRequire, syncBuiltinESMExports } from 'node:module'
import { connect, createServer } from 'node:net'
import { createInterface } from 'node:readline'
import { promisify } from 'node:util'
import { after, before, describe, it } from 'node:test'
import { handleRpc, RpcFailureError } from '@physarum/p2p'
import { CheckIn, CHECKIN_RETRY_MAX_MS, checkInRpc, HTTP_PROTOCOL } from '@physarum/allocator/client'
import { multiaddr } from '@multiformats/multiaddr'
import { eventually, freePort, silentLog, startNode, stopAll, TEST_PSK } from '../../registry-service/test/helpers.ts'
import { SERVICE_CONNECT_TIMEOUT_MS } from '../src/constants.ts'
import { startSidecar } from '../src/sidecar.ts'
import { pino } from 'pino'
import { startNamedServer } from './helpers.ts'
import type { PhysarumNode } from '@physarum/p2p'
import type { Multiaddr } from '@multiformats/multiaddr'
import type { ChildProcess } from 'node:child_process'
import type { AddressInfo, connect as netConnect, Server, Socket } from 'node:net'
import type { Logger } from 'pino'
import type { NamedServer } from './helpers.ts'
import type { Stream } from '@libp2p/interface'

const DISOWNED_AFTER_MS = 600
const PROXY_BIN = new URL('../bin/proxy.js', import.meta.url).pathname

describe('sidecar: its command line', { timeout: 60_000 }, () => {
  it('refuses a --client-port that is the service\'s port, naming both', async () => {
    const port = String(await freePort())
    // a sidecar that took it would run on: killed by the timeout, it fails the assertions
    const outcome = await promisify(execFile)(process.execPath, [PROXY_BIN, '--sidecar', '--service', 'x', '--service-port', port, '--client-port', port, '--no-psk', '--ephemeral'], { timeout: 10_000 })
      .then(() => ({ code: 0, stderr: '' }), (err: { code: number, stderr: string }) => ({ code: err.code, stderr: err.stderr }))
    assert.equal(outcome.code, 2, outcome.stderr)
    assert.match(outcome.stderr, new RegExp(`--client-port: ${port} is the service's port \\(--service-port\\)`))
  })
})

describe('sidecar: an allocator that does not know it', { timeout: 60_000 }, () => {
  let service: NamedServer
  let allocator: PhysarumNode
  let stranger: PhysarumNode

  before(async () => {
    service = await startNamedServer('disowned')
    // an allocator that knows no instance, as one whose state was lost answers
    allocator = await startNode()
    await handleRpc(allocator.libp2p, checkInRpc, async ({ instanceId }) => await Promise.reject(new RpcFailureError('NOT_FOUND', `No instance ${instanceId} here`)),
      { log: allocator.libp2p.logger.forComponent('test:checkin') })
    stranger = await startNode()
  })

  after(async () => {
    await stopAll([allocator, stranger])
    service?.server.close()
  })

  const sidecarOf = async (target: Multiaddr, log: Logger = silentLog): Promise<Awaited<ReturnType<typeof startSidecar>>> => await startSidecar({
    psk: TEST_PSK,
    listen: ['/ip4/127.0.0.1/tcp/0'],
    bootstrap: [],
    service: 'disowned-server',
    contentHash: 'hash-disowned',
    servicePort: service.port,
    allocator: target,
    instanceId: 'a1b2c3d4e5f6',
    statsIntervalMs: 100,
    disownedAfterMs: DISOWNED_AFTER_MS
  }, log)

  for (const [what, target] of [
    ['its allocator answers NOT_FOUND', () => allocator.multiaddrs()[0]!],
    // the allocator's address now answers with another identity (its key was lost)
    ['another peer answers at its allocator\'s address', () => multiaddr(`${stranger.multiaddrs()[0]!.decapsulateCode(421).toString()}/p2p/${allocator.peerId.toString()}`)]
  ] as const) {
    it(`says it is disowned once ${what} for a while, and says it once`, async () => {
      const errors: string[] = []
      const sidecar = await sidecarOf(target(), pino({ level: 'error' }, { write: (line: string) => { errors.push(line) } }))
      let timer: NodeJS.Timeout | undefined
      try {
        const startedAt = Date.now()
        const reason = await Promise.race([sidecar.disowned, new Promise<string>((_resolve, reject) => { timer = setTimeout(() => { reject(new Error('not disowned within 20 s')) }, 20_000) })])
        assert.ok(Date.now() - startedAt >= DISOWNED_AFTER_MS, 'not before its time')
        assert.match(reason, /the allocator has not known this instance for \d+ s/)
        // the stats ticks of the stop's grace (every 100 ms here) are refused too
        await new Promise(resolve => setTimeout(resolve, 1_000))
        assert.equal(errors.filter(line => line.includes('stopping')).length, 1, errors.join(''))
      } finally {
        clearTimeout(timer)
        await sidecar.stop(0)
      }
    })
  }

  it('waits for an allocator that is only down', async () => {
    // nothing listens there: every check-in is refused by the host, not by an allocator
    const sidecar = await sidecarOf(multiaddr(`/ip4/127.0.0.1/tcp/${await freePort()}/p2p/${allocator.peerId.toString()}`))
    try {
      const outcome = await Promise.race([sidecar.disowned, new Promise<string>(resolve => setTimeout(() => { resolve('still waiting') }, 4 * DISOWNED_AFTER_MS))])
      assert.equal(outcome, 'still waiting')
    } finally {
      await sidecar.stop(0)
    }
  })
})

describe('sidecar: a service that ends its side of a connection first', { timeout: 60_000 }, () => {
  it('still passes it the rest of what the client sends', async () => {
    // answers at once and ends its side, then reads the upload to its end
    const received: number[] = []
    const service = createServer({ allowHalfOpen: true }, socket => {
      let bytes = 0
      socket.on('error', () => {})
      socket.on('data', (chunk: Buffer) => { bytes += chunk.byteLength })
      socket.on('end', () => { received.push(bytes) })
      socket.end('early\n')
    })
    service.listen(0, '127.0.0.1')
    await once(service, 'listening')
    const client = await startNode()
    const sidecar = await startSidecar({
      psk: TEST_PSK, listen: ['/ip4/127.0.0.1/tcp/0'], bootstrap: [], service: 'half-server', contentHash: 'hash-half',
      servicePort: (service.address() as AddressInfo).port, instanceId: 'b1c2d3e4f5a6'
    }, silentLog)
    try {
      const stream = await client.libp2p.dialProtocol(sidecar.node.multiaddrs()[0]!, HTTP_PROTOCOL)
      let answer = ''
      for await (const chunk of stream) {
        answer += new TextDecoder().decode(chunk instanceof Uint8Array ? chunk : chunk.subarray())
        break
      }
      assert.equal(answer, 'early\n')
      // the upload goes on after the answer ended
      const upload = new Uint8Array(64 * 1024)
      for (let i = 0; i < 16; i++) {
        stream.send(upload)
      }
      await stream.close()
      await eventually('the service to read the upload to its end', () => received.length > 0 ? true : undefined, 5_000)
      assert.deepEqual(received, [16 * upload.byteLength])
    } finally {
      await sidecar.stop(0)
      await stopAll([client])
      service.close()
    }
  })
})

describe('sidecar: a service that refuses connections for a while', { timeout: 60_000 }, () => {
  it('has its streams wait for one poll of the port, and serves them all once it listens', async () => {
    const port = await freePort()
    // every connection the sidecar attempts to the service's port (node:net's own, seen by the ESM import too)
    const net = createRequire(import.meta.url)('node:net') as { connect: typeof netConnect }
    const realConnect = net.connect
    let attempts = 0
    net.connect = ((...args: Parameters<typeof realConnect>) => {
      if ((args[0] as { port?: number }).port === port) {
        attempts++
      }
      return realConnect(...args)
    }) as typeof realConnect
    syncBuiltinESMExports()
    const client = await startNode()
    const sidecar = await startSidecar({
      psk: TEST_PSK, listen: ['/ip4/127.0.0.1/tcp/0'], bootstrap: [], service: 'restarting-server', contentHash: 'hash-restarting',
      servicePort: port, instanceId: 'c1d2e3f4a5b6'
    }, silentLog)
    let service: Server | undefined
    try {
      const streams = await Promise.all(Array.from({ length: 50 }, async () => await client.libp2p.dialProtocol(sidecar.node.multiaddrs()[0]!, HTTP_PROTOCOL)))
      await eventually('every stream to wait for the service', () => sidecar.inFlight() === streams.length ? true : undefined, 5_000)
      const before = attempts
      await new Promise(resolve => setTimeout(resolve, 1_000))
      // one poll every 20 ms for all of them (and the check-in's own), not one each: 2500 a second
      const perSecond = attempts - before
      assert.ok(perSecond < 250, `${perSecond} connection attempts in a second`)

      service = createServer(socket => { socket.on('error', () => {}); socket.end('back\n') })
      service.listen(port, '127.0.0.1')
      const answers = await Promise.all(streams.map(async stream => {
        let text = ''
        for await (const chunk of stream) {
          text += new TextDecoder().decode(chunk instanceof Uint8Array ? chunk : chunk.subarray())
        }
        return text
      }))
      assert.deepEqual(new Set(answers), new Set(['back\n']))
    } finally {
      net.connect = realConnect
      syncBuiltinESMExports()
      await sidecar.stop(0)
      await stopAll([client])
      service?.close()
    }
  })
})

describe('sidecar: streams reset before they reach its handler', { timeout: 60_000 }, () => {
  it('counts none of them, and its stop waits for none', async () => {
    const service = await startNamedServer('early-reset')
    const client = await startNode()
    const sidecar = await startSidecar({
      psk: TEST_PSK, listen: ['/ip4/127.0.0.1/tcp/0'], bootstrap: [], service: 'early-reset-server', contentHash: 'hash-early-reset',
      servicePort: service.port, instanceId: 'd1e2f3a4b5c6'
    }, silentLog)
    // libp2p records a stream's protocol in the peer store before it calls the handler: held
    // there until the test lets go, once the client's resets have reached the sidecar
    const peerStore = sidecar.node.libp2p.peerStore
    const realMerge = peerStore.merge.bind(peerStore)
    const release = Promise.withResolvers<void>()
    let held = 0
    let merged = 0
    peerStore.merge = async (peer, data, options) => {
      if (data.protocols?.includes(HTTP_PROTOCOL) !== true) {
        return await realMerge(peer, data, options)
      }
      held++
      await release.promise
      const result = await realMerge(peer, data, options)
      merged++
      return result
    }
    const openHttpStreams = (): number => sidecar.node.libp2p.getConnections().flatMap(connection => connection.streams)
      .filter(stream => stream.protocol === HTTP_PROTOCOL && stream.status === 'open').length
    try {
      const streams = await Promise.all(Array.from({ length: 5 }, async () => await client.libp2p.dialProtocol(sidecar.node.multiaddrs()[0]!, HTTP_PROTOCOL)))
      await eventually('every stream to wait for the peer store', () => held === streams.length ? true : undefined, 10_000)
      for (const stream of streams) {
        stream.abort(new Error('the client gave up'))
      }
      await eventually('the resets to reach the sidecar', () => openHttpStreams() === 0 ? true : undefined, 10_000)
      release.resolve()
      await eventually('the handler to be called for every stream', () => merged === streams.length ? true : undefined, 10_000)
      // the handler runs in the microtasks after the peer store's update: all done by the next macrotask
      await new Promise(resolve => setImmediate(resolve))
      assert.equal(sidecar.inFlight(), 0)
      const startedAt = performance.now()
      await sidecar.stop(10_000)
      const stopMs = performance.now() - startedAt
      assert.ok(stopMs < 5_000, `the stop took ${Math.round(stopMs)} ms of its 10 s grace`)
    } finally {
      release.resolve()
      await sidecar.stop(0)
      await stopAll([client])
      service.server.close()
    }
  })
})

describe('sidecar: a service that hangs with its accept queue full', { timeout: 120_000 }, () => {
  // a service that listens with room for one connection in its accept queue (two on Linux), then
  // blocks its event loop for good: it accepts nothing, and a connect to it neither succeeds nor
  // fails (the kernel drops the SYN and sends it again for about two minutes)
  const HUNG_SERVICE = `
    const server = require('node:net').createServer()
    server.listen({ port: 0, host: '127.0.0.1', backlog: 1 }, () => {
      process.stdout.write(server.address().port + '\\n')
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0)
    })`
  let service: ChildProcess
  let port: number
  const filling: Socket[] = []
  let client: PhysarumNode
  // every connection the sidecars attempt to the service (node:net's own, seen by the ESM import too)
  const net = createRequire(import.meta.url)('node:net') as { connect: typeof netConnect }
  const realConnect = net.connect
  let attempts: Socket[] = []

  before(async () => {
    service = spawn(process.execPath, ['-e', HUNG_SERVICE], { stdio: ['ignore', 'pipe', 'inherit'] })
    const [line] = await once(createInterface({ input: service.stdout! }), 'line') as [string]
    port = Number(line)
    // the queue filled here, whatever its length: the first connect that hangs for 2 s says it is full
    for (let i = 0; ; i++) {
      assert.ok(i < 8, 'the service\'s accept queue never filled')
      const socket = connect({ host: '127.0.0.1', port })
      socket.on('error', () => {})
      const connected = await Promise.race([once(socket, 'connect').then(() => true), new Promise<false>(resolve => setTimeout(() => { resolve(false) }, 2_000))])
      filling.push(socket)
      if (!connected) {
        break
      }
    }
    net.connect = ((...args: Parameters<typeof realConnect>) => {
      const socket = realConnect(...args)
      if ((args[0] as { port?: number }).port === port) {
        attempts.push(socket)
      }
      return socket
    }) as typeof realConnect
    syncBuiltinESMExports()
    client = await startNode()
  })

  after(async () => {
    net.connect = realConnect
    syncBuiltinESMExports()
    await stopAll([client])
    for (const socket of filling) {
      socket.destroy()
    }
    service?.kill('SIGKILL')
  })

  const sidecarOf = async (log: Logger = silentLog): Promise<Awaited<ReturnType<typeof startSidecar>>> => {
    attempts = []
    return await startSidecar({
      psk: TEST_PSK, listen: ['/ip4/127.0.0.1/tcp/0'], bootstrap: [], service: 'hung-server', contentHash: 'hash-hung',
      servicePort: port, instanceId: 'e1f2a3b4c5d6'
    }, log)
  }
  const streamsTo = async (sidecar: Awaited<ReturnType<typeof startSidecar>>, count: number): Promise<Stream[]> =>
    await Promise.all(Array.from({ length: count }, async () => await client.libp2p.dialProtocol(sidecar.node.multiaddrs()[0]!, HTTP_PROTOCOL)))
  const pendingAttempts = (): number => attempts.filter(socket => !socket.destroyed).length

  it('notices at once the streams whose clients give up waiting for a connection', async () => {
    const sidecar = await sidecarOf()
    try {
      const streams = await streamsTo(sidecar, 10)
      await eventually('every stream to wait for a connection', () => sidecar.inFlight() === streams.length ? true : undefined, 10_000)
      for (const stream of streams) {
        stream.abort(new Error('the client gave up'))
      }
      // well within the connect timeout: the resets end the attempts, not the timeout
      const promptMs = SERVICE_CONNECT_TIMEOUT_MS / 2
      await eventually('the sidecar to count no stream in flight', () => sidecar.inFlight() === 0 ? true : undefined, promptMs)
      // but the sidecar's own, one at a time, to learn when the service listens
      await eventually('every connection attempt of the streams to end', () => pendingAttempts() <= 1 ? true : undefined, promptMs)
      const startedAt = performance.now()
      await sidecar.stop(5_000)
      const stopMs = performance.now() - startedAt
      assert.ok(stopMs < 2_500, `the stop took ${Math.round(stopMs)} ms of its 5 s grace`)
    } finally {
      await sidecar.stop(0)
    }
  })

  it('ends the connection attempts of the streams still waiting when it stops', async () => {
    const sidecar = await sidecarOf()
    try {
      const streams = await streamsTo(sidecar, 5)
      await eventually('every stream to wait for a connection', () => sidecar.inFlight() === streams.length ? true : undefined, 10_000)
      assert.ok(pendingAttempts() >= streams.length)
      await sidecar.stop(0)
      await eventually('the sidecar to count no stream in flight', () => sidecar.inFlight() === 0 ? true : undefined, 5_000)
      await eventually('every connection attempt to end', () => pendingAttempts() === 0 ? true : undefined, 5_000)
    } finally {
      await sidecar.stop(0)
    }
  })

  it(`fails a stream the service accepts no connection for within ${SERVICE_CONNECT_TIMEOUT_MS} ms, and says so`, async () => {
    const warnings: string[] = []
    const sidecar = await sidecarOf(pino({ level: 'warn' }, { write: (line: string) => { warnings.push(line) } }))
    try {
      const startedAt = performance.now()
      const [stream] = await streamsTo(sidecar, 1)
      await eventually('the sidecar to reset the stream', () => stream!.status === 'open' ? undefined : stream!.status, SERVICE_CONNECT_TIMEOUT_MS + 20_000, 100)
      const waitedMs = performance.now() - startedAt
      assert.equal(stream!.status, 'reset')
      assert.ok(waitedMs >= SERVICE_CONNECT_TIMEOUT_MS - 50, `reset after ${Math.round(waitedMs)} ms`)
      assert.equal(sidecar.inFlight(), 0)
      assert.ok(warnings.some(line => line.includes('the service accepts no connection') && line.includes(`within ${SERVICE_CONNECT_TIMEOUT_MS} ms`)), warnings.join(''))
    } finally {
      await sidecar.stop(0)
    }
  })
})

describe('sidecar: a service its allocator restarted', { timeout: 60_000 }, () => {
  it('checks in ready again once the service accepts connections, when its allocator asks', async () => {
    const listen = async (port = 0): Promise<Server> => {
      const server = createServer(socket => { socket.end() })
      server.listen(port, '127.0.0.1')
      await once(server, 'listening')
      return server
    }
    let service = await listen()
    const port = (service.address() as AddressInfo).port
    // an allocator that says the service was restarted while `awaitService`, until a ready comes
    const allocator = await startNode()
    const kinds: string[] = []
    let awaitService = false
    await handleRpc(allocator.libp2p, checkInRpc, async ({ kind }) => {
      kinds.push(kind === CheckIn.Kind.READY ? 'ready' : 'stats')
      if (kind === CheckIn.Kind.READY) {
        awaitService = false
      }
      return await Promise.resolve({ drain: false, awaitService })
    }, { log: allocator.libp2p.logger.forComponent('test:checkin') })
    const sidecar = await startSidecar({
      psk: TEST_PSK, listen: ['/ip4/127.0.0.1/tcp/0'], bootstrap: [], service: 'restarted-server', contentHash: 'hash-restarted',
      servicePort: port, allocator: allocator.multiaddrs()[0]!, instanceId: 'c1d2e3f4a5b6', statsIntervalMs: 100
    }, silentLog)
    try {
      await sidecar.ready
      // the service died, and was started again by the allocator, but does not listen yet
      service.close()
      await once(service, 'close')
      awaitService = true
      const since = kinds.length
      await eventually('stats answered with "await the service"', () => kinds.length >= since + 5 ? true : undefined, 10_000, 20)
      assert.deepEqual(kinds.slice(since).filter(kind => kind === 'ready'), [], 'ready while the service refused connections')
      service = await listen(port)
      await eventually('a ready once the service listens', () => kinds.slice(since).includes('ready') ? true : undefined, 10_000, 20)
    } finally {
      await sidecar.stop(0)
      await stopAll([allocator])
      service.close()
    }
  })

  it('says ready no more once it drains', async () => {
    const service = await startNamedServer('restarted-draining')
    const allocator = await startNode()
    const kinds: string[] = []
    let awaitService = false
    await handleRpc(allocator.libp2p, checkInRpc, async ({ kind }) => {
      kinds.push(kind === CheckIn.Kind.READY ? 'ready' : 'stats')
      return await Promise.resolve({ drain: false, awaitService })
    }, { log: allocator.libp2p.logger.forComponent('test:checkin') })
    const sidecar = await startSidecar({
      psk: TEST_PSK, listen: ['/ip4/127.0.0.1/tcp/0'], bootstrap: [], service: 'restarted-server', contentHash: 'hash-restarted-draining',
      servicePort: service.port, allocator: allocator.multiaddrs()[0]!, instanceId: 'a2b3c4d5e6f7', statsIntervalMs: 100
    }, silentLog)
    try {
      await sidecar.ready
      // a stop under way (its grace waiting for requests in flight) when the allocator restarted
      // the service, which accepts connections at once
      await sidecar.drain('stopping')
      awaitService = true
      const since = kinds.length
      await eventually('stats answered with "await the service"', () => kinds.length >= since + 5 ? true : undefined, 10_000, 20)
      assert.deepEqual(kinds.slice(since).filter(kind => kind === 'ready'), [], 'a draining sidecar said ready')
    } finally {
      await sidecar.stop(0)
      await stopAll([allocator])
      service.server.close()
    }
  })
})

describe('sidecar: a stop with nothing in flight', { timeout: 60_000 }, () => {
  it('tells its allocator that it drains before the node stops', async () => {
    const service = await startNamedServer('told')
    const allocator = await startNode()
    const draining: boolean[] = []
    await handleRpc(allocator.libp2p, checkInRpc, async (request) => {
      draining.push(request.draining)
      return await Promise.resolve({ drain: false, awaitService: false })
    }, { log: allocator.libp2p.logger.forComponent('test:checkin') })
    const sidecar = await startSidecar({
      psk: TEST_PSK, listen: ['/ip4/127.0.0.1/tcp/0'], bootstrap: [], service: 'told-server', contentHash: 'hash-told',
      // no stats tick during the test: only the stop's own check-in can say it drains
      servicePort: service.port, allocator: allocator.multiaddrs()[0]!, instanceId: 'f1a2b3c4d5e6', statsIntervalMs: 600_000
    }, silentLog)
    try {
      await sidecar.ready
      assert.equal(sidecar.inFlight(), 0)
      await sidecar.stop(5_000)
      assert.deepEqual(draining, [false, true], 'the Ready, then the check-in saying it drains')
    } finally {
      await sidecar.stop(0)
      await stopAll([allocator])
      service.server.close()
    }
  })
})

describe('sidecar: a stop under way', { timeout: 60_000 }, () => {
  let service: Server
  let allocator: PhysarumNode
  let client: PhysarumNode
  let readies = 0

  before(async () => {
    // a service that starts an answer without a length, and ends it never: the stream stays in flight
    service = createServer(socket => {
      // the sidecar resets the connections of the streams it resets
      socket.on('error', () => {})
      socket.write('HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nthe first part')
    })
    service.listen(0, '127.0.0.1')
    await once(service, 'listening')
    // an allocator that refuses every Ready as one that is busy does (not as one that disowns it)
    allocator = await startNode()
    await handleRpc(allocator.libp2p, checkInRpc, async ({ kind }) => {
      if (kind === CheckIn.Kind.READY) {
        readies++
      }
      return await Promise.reject(new RpcFailureError('UNAVAILABLE', 'busy'))
    }, { log: allocator.libp2p.logger.forComponent('test:checkin') })
    client = await startNode()
  })

  after(async () => {
    await stopAll([allocator, client])
    service?.close()
  })

  /** A sidecar not yet checked in, with one stream in flight, and a stop under way with a long grace. */
  const stopping = async (contentHash: string): Promise<{ sidecar: Awaited<ReturnType<typeof startSidecar>>, stream: Stream, stopped: Promise<void> }> => {
    const sidecar = await startSidecar({
      psk: TEST_PSK, listen: ['/ip4/127.0.0.1/tcp/0'], bootstrap: [], service: 'stopping-server', contentHash,
      servicePort: (service.address() as AddressInfo).port, allocator: allocator.multiaddrs()[0]!, instanceId: 'b1c2d3e4f5a6'
    }, silentLog)
    const stream = await client.libp2p.dialProtocol(sidecar.node.multiaddrs()[0]!, HTTP_PROTOCOL)
    stream.send(new TextEncoder().encode('GET / HTTP/1.1\r\nHost: x\r\n\r\n'))
    await eventually('the stream in flight', () => sidecar.inFlight() === 1 ? true : undefined, 10_000, 20)
    await eventually('a Ready refused', () => readies > 0 ? true : undefined, 10_000, 20)
    const stopped = sidecar.stop(30_000)
    return { sidecar, stream, stopped }
  }

  it('checks in ready no more, though its allocator never took its Ready', async () => {
    const { stream, stopped } = await stopping('hash-stopping-ready')
    try {
      const since = readies
      // past the longest wait between two tries
      await new Promise(resolve => setTimeout(resolve, 3 * CHECKIN_RETRY_MAX_MS))
      assert.equal(readies, since, 'a Ready during the stop')
    } finally {
      stream.abort(new Error('the test is over'))
      await stopped
    }
  })

  it('ends its grace at once when stopped again with none', async () => {
    const { sidecar, stream, stopped } = await stopping('hash-stopping-now')
    let timer: NodeJS.Timeout | undefined
    try {
      // well within the first stop's grace of 30 s
      const outcome = await Promise.race([
        sidecar.stop(0).then(() => 'stopped'),
        new Promise<string>(resolve => { timer = setTimeout(() => { resolve('still waiting') }, 10_000) })
      ])
      assert.equal(outcome, 'stopped')
    } finally {
      clearTimeout(timer)
      stream.abort(new Error('the test is over'))
      await stopped
    }
  })

  it('resets the streams still in flight once its grace is over, so their clients see them fail', async () => {
    const { sidecar, stream, stopped } = await stopping('hash-stopping-reset')
    const closed = new Promise<Error | undefined>(resolve => { stream.addEventListener('close', (evt) => { resolve(evt.error) }, { once: true }) })
    try {
      await sidecar.stop(0)
      const err = await closed
      // ended cleanly, the client would take the first part for the whole answer
      assert.ok(err != null, 'the stream in flight ended cleanly')
    } finally {
      stream.abort(new Error('the test is over'))
      await stopped
    }
  })
})
