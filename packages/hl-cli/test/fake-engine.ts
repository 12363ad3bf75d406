import { once } from 'node:events'
import { createServer } from 'node:http'
import type { IncomingMessage, Server, ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'

/** The digest the fake engine's pushes end with. */
export const FAKE_DIGEST = `sha256:${'d1'.repeat(32)}`

/** A request the fake engine was sent: `POST /build`, with its X-Registry-Auth decoded. */
export interface EngineRequest {
  method: string
  path: string
  auth?: Record<string, unknown>
}

/**
 * A Docker engine API on 127.0.0.1 (for DOCKER_HOST=tcp://...) that answers what `hl-cli add`
 * asks, ping, build, image inspect and push, with the messages a real engine streams, without building anything;
 * it records every request.
 */
export class FakeEngine {
  readonly requests: EngineRequest[] = []
  /** This one sends one layer's progress and then ends the connection mid-stream. */
  breaks?: 'build' | 'push'
  readonly #server: Server

  private constructor (server: Server) {
    this.#server = server
  }

  static async start (): Promise<FakeEngine> {
    const server = createServer()
    const engine = new FakeEngine(server)
    server.on('request', (req: IncomingMessage, res: ServerResponse) => { engine.#answer(req, res) })
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    return engine
  }

  /** For DOCKER_HOST. */
  get host (): string {
    return `tcp://127.0.0.1:${(this.#server.address() as AddressInfo).port}`
  }

  get port (): number {
    return (this.#server.address() as AddressInfo).port
  }

  /** The requests' `METHOD /path` without the API version, in order. */
  asked (): string[] {
    return this.requests.map(r => `${r.method} ${r.path}`)
  }

  async stop (): Promise<void> {
    this.#server.closeAllConnections()
    await new Promise<void>(resolve => { this.#server.close(() => { resolve() }) })
  }

  #answer (req: IncomingMessage, res: ServerResponse): void {
    const path = new URL(req.url ?? '/', 'http://engine').pathname.replace(/^\/v[0-9.]+/, '')
    const header = req.headers['x-registry-auth']
    const auth = typeof header === 'string' ? JSON.parse(Buffer.from(header, 'base64').toString()) as Record<string, unknown> : undefined
    this.requests.push({ method: req.method ?? '', path, ...(auth == null ? {} : { auth }) })
    // the build context arrives in the request's body: taken whole before the answer, as an engine does
    req.resume()
    req.on('end', () => {
      if (path === '/_ping') {
        res.end('OK')
      } else if (req.method === 'POST' && path === '/build') {
        this.#stream(res, this.breaks === 'build', [
          { status: 'Downloading', id: 'base-layer', progressDetail: { current: 512, total: 4096 } },
          { stream: 'Step 1/1 : FROM scratch\n' },
          { aux: { ID: `sha256:${'1d'.repeat(32)}` } },
          { stream: 'Successfully built 1d1d1d1d1d1d\n' }
        ])
      } else if (req.method === 'GET' && /^\/images\/.+\/json$/.test(path)) {
        // every image asked for is a local one, as built before
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ Id: `sha256:${'1d'.repeat(32)}` }))
      } else if (req.method === 'POST' && /^\/images\/.+\/push$/.test(path)) {
        this.#stream(res, this.breaks === 'push', [
          { status: 'Pushing', id: 'base-layer', progressDetail: { current: 512, total: 4096 } },
          { status: 'Pushed', id: 'base-layer' },
          { status: `1.0: digest: ${FAKE_DIGEST} size: 528` },
          { aux: { Tag: '1.0', Digest: FAKE_DIGEST, Size: 528 } }
        ])
      } else {
        res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ message: `the fake engine does not serve ${req.method} ${path}` }))
      }
    })
  }

  #stream (res: ServerResponse, broken: boolean, messages: object[]): void {
    res.writeHead(200, { 'content-type': 'application/json' })
    if (broken) {
      res.write(`${JSON.stringify(messages[0])}\r\n`, () => { res.destroy() })
      return
    }
    res.end(messages.map(m => `${JSON.stringify(m)}\r\n`).join(''))
  }
}
