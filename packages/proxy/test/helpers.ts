import { once } from 'node:events'
import { createServer as createHttpServer } from 'node:http'
import { connect, createServer } from 'node:net'
import type { AddressInfo, Server, Socket } from 'node:net'
import type { Server as HttpServer } from 'node:http'

export interface DelayRelay {
  port: number
  close(): Promise<void>
}

export interface DelayRelayInit {
  target: { host?: string, port: number }
  delayMs: number
  /** Where the relay listens (default 127.0.0.1, a free port). */
  listen?: { host?: string, port?: number }
}

/**
 * Distance on one machine (this kernel has no netem): a TCP relay that forwards to `target` and
 * holds every chunk `delayMs` in each direction, order kept, so a round trip through it takes
 * 2 x delayMs more.
 */
export async function startDelayRelay (init: DelayRelayInit): Promise<DelayRelay> {
  const sockets = new Set<Socket>()
  const delayed = (from: Socket, to: Socket): void => {
    from.on('data', (chunk: Buffer) => { setTimeout(() => { to.write(chunk) }, init.delayMs) })
    from.on('end', () => { setTimeout(() => { to.end() }, init.delayMs) })
  }
  const server: Server = createServer((client) => {
    const target = connect({ host: init.target.host ?? '127.0.0.1', port: init.target.port })
    for (const socket of [client, target]) {
      sockets.add(socket)
      socket.on('close', () => { sockets.delete(socket) })
      socket.on('error', () => { client.destroy(); target.destroy() })
    }
    delayed(client, target)
    delayed(target, client)
  })
  server.listen(init.listen?.port ?? 0, init.listen?.host ?? '127.0.0.1')
  await Promise.race([once(server, 'listening'), once(server, 'error').then(([err]) => { throw err })])
  return {
    port: (server.address() as AddressInfo).port,
    close: async () => {
      for (const socket of sockets) {
        socket.destroy()
      }
      await new Promise<void>(resolve => { server.close(() => { resolve() }) })
    }
  }
}

export interface NamedServer {
  port: number
  server: HttpServer
}

/** An HTTP service on 127.0.0.1 that answers every request with its name. */
export async function startNamedServer (name: string): Promise<NamedServer> {
  const server = createHttpServer((_req, res) => { res.end(`${name}\n`) })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return { port: (server.address() as AddressInfo).port, server }
}
