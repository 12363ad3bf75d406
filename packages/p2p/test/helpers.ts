import { once } from 'node:events'
import { chmod, chown, mkdtemp, rm } from 'node:fs/promises'
import { connect, createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createPhysarumNode, PreSharedKey } from '../src/index.ts'
import type { PhysarumNode, PhysarumNodeInit } from '../src/index.ts'
import type { AddressInfo, Server, Socket } from 'node:net'

export const TEST_PSK = PreSharedKey.fromPassphrase('physarum-test-network')

/** Starts a node on 127.0.0.1 with a free port; the caller stops it (see `stopAll`). */
export async function startNode (init: Partial<PhysarumNodeInit> = {}): Promise<PhysarumNode> {
  const node = await createPhysarumNode({
    psk: TEST_PSK,
    listen: ['/ip4/127.0.0.1/tcp/0'],
    dhtMode: 'server',
    hostName: 'test-host',
    bootstrapTimeoutMs: 5_000,
    connectionLimits: { inboundConnectionThreshold: 1_000, maxIncomingPendingConnections: 100 },
    ...init
  })
  await node.start()
  return node
}

export async function stopAll (nodes: Array<PhysarumNode | undefined>): Promise<void> {
  await Promise.all(nodes.map(async node => { await node?.stop() }))
}

/** Polls `check` until it returns a value other than undefined, or fails after `timeoutMs`. */
export async function eventually<T> (what: string, check: () => Promise<T | undefined> | T | undefined, timeoutMs = 10_000, intervalMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs
  let lastError: unknown
  while (Date.now() < deadline) {
    try {
      const value = await check()
      if (value !== undefined) {
        return value
      }
    } catch (err) {
      lastError = err
    }
    await new Promise(resolve => setTimeout(resolve, intervalMs))
  }
  throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}${lastError instanceof Error ? `: ${lastError.message}` : ''}`)
}

/** A TCP port free on 127.0.0.1 right now. */
export async function freePort (): Promise<number> {
  const server = createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as { port: number }
  await new Promise(resolve => server.close(resolve))
  return port
}

/** A new folder under the system's temporary folder, and the function that removes it. */
export async function tempDir (prefix: string): Promise<{ path: string, remove: () => Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), `${prefix}-`))
  return { path, remove: async () => { await rm(path, { recursive: true, force: true }) } }
}

export interface DelayRelay {
  port: number
  /** From now on nothing passes either way, and the sockets stay open: a peer gone silent. */
  hold(): void
  close(): Promise<void>
}

export interface DelayRelayInit {
  target: { host?: string, port: number }
  delayMs: number
  /** Where the relay listens (default 127.0.0.1, a free port). */
  listen?: { host?: string, port?: number }
  /**
   * How long each new connection waits before the relay connects it on (its bytes are held
   * meanwhile): a host whose dials are slow to complete, though its round trips are short.
   */
  acceptDelayMs?: number
}

/**
 * Distance on one machine (this kernel has no netem): a TCP relay that forwards to `target` and
 * holds every chunk `delayMs` in each direction, order kept, so a round trip through it takes
 * 2 x delayMs more. The delay is counted on the monotonic clock: a timer alone counts whole
 * milliseconds of the event loop's clock, so `setTimeout(delayMs)` lets a chunk go up to 1 ms
 * early, depending on when in its millisecond it came (the ping monitor's accuracy test saw
 * that as a bias of its own timing).
 */
export async function startDelayRelay (init: DelayRelayInit): Promise<DelayRelay> {
  const sockets = new Set<Socket>()
  let held = false
  const delayed = (from: Socket, to: Socket): void => {
    /** Chunks not yet due, oldest first; null is the end of the stream. */
    const queue: Array<{ chunk: Buffer | null, due: number }> = []
    let waiting = false
    const wait = (): void => {
      waiting = true
      const ms = queue[0]!.due - performance.now()
      // a timer for all but the last 2 ms (it may fire 1 ms early), then turn by turn
      if (ms > 2) {
        setTimeout(flush, ms - 2)
      } else {
        setImmediate(flush)
      }
    }
    const flush = (): void => {
      const now = performance.now()
      while (queue.length > 0 && queue[0]!.due <= now) {
        const { chunk } = queue.shift()!
        if (chunk == null) {
          to.end()
        } else {
          to.write(chunk)
        }
      }
      waiting = false
      if (queue.length > 0) {
        wait()
      }
    }
    const hold = (chunk: Buffer | null): void => {
      if (!held) {
        queue.push({ chunk, due: performance.now() + init.delayMs })
        if (!waiting) {
          wait()
        }
      }
    }
    from.on('data', (chunk: Buffer) => { hold(chunk) })
    from.on('end', () => { hold(null) })
  }
  const relay = (client: Socket): void => {
    const target = connect({ host: init.target.host ?? '127.0.0.1', port: init.target.port })
    for (const socket of [client, target]) {
      // small messages such as pings go on at once, not held for the previous one's ACK
      socket.setNoDelay(true)
      sockets.add(socket)
      socket.on('close', () => { sockets.delete(socket) })
      socket.on('error', () => { client.destroy(); target.destroy() })
    }
    delayed(client, target)
    delayed(target, client)
  }
  const server: Server = createServer((client) => {
    if (init.acceptDelayMs == null) {
      relay(client)
      return
    }
    // not flowing until relayed: its bytes wait in the socket
    sockets.add(client)
    client.on('close', () => { sockets.delete(client) })
    client.on('error', () => { client.destroy() })
    setTimeout(() => {
      if (!client.destroyed) {
        relay(client)
      }
    }, init.acceptDelayMs)
  })
  server.listen(init.listen?.port ?? 0, init.listen?.host ?? '127.0.0.1')
  await Promise.race([once(server, 'listening'), once(server, 'error').then(([err]) => { throw err })])
  return {
    port: (server.address() as AddressInfo).port,
    hold: () => { held = true },
    close: async () => {
      for (const socket of sockets) {
        socket.destroy()
      }
      await new Promise<void>(resolve => { server.close(() => { resolve() }) })
    }
  }
}

/**
 * Root passes file modes by its capabilities: the command that starts a program without them, for
 * a test of a file it may not read (empty for another user, whom file modes stop).
 */
export const WITHOUT_ROOT_FILE_ACCESS: string[] = process.getuid?.() === 0 ? ['setpriv', '--bounding-set=-dac_override,-dac_read_search'] : []

/**
 * A Unix socket listening at `path` that the processes a test starts may not open, as
 * /var/run/docker.sock is for a user outside the docker group: another user's with mode 0600.
 * `prefix`: WITHOUT_ROOT_FILE_ACCESS. The caller closes the socket.
 */
export async function refusingSocket (path: string): Promise<{ prefix: string[], close: () => void }> {
  const server = createServer()
  server.listen(path)
  await once(server, 'listening')
  const asRoot = process.getuid?.() === 0
  if (asRoot) {
    await chown(path, 65534, 65534)
  }
  await chmod(path, asRoot ? 0o600 : 0)
  return { prefix: WITHOUT_ROOT_FILE_ACCESS, close: () => { server.close() } }
}
