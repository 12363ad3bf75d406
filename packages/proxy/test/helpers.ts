import { once } from 'node:events'
import { createServer as createHttpServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Server as HttpServer } from 'node:http'

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
