import { createServer } from 'node:http'
import { collectDefaultMetrics, Registry } from 'prom-client'
import { ConfigError } from './errors.ts'
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'

/** The process's one metrics Registry, with Node's process metrics on it. */
export function createMetricsRegistry (): Registry {
  const registry = new Registry()
  collectDefaultMetrics({ register: registry })
  return registry
}

export interface HostPort {
  /** '' for every interface */
  host: string
  port: number
}

/**
 * Parses a listen address: `host:port`, `[v6]:port`, `:port` (every interface, the Go form the
 * seed's -prom-listen-addr took) or a bare port.
 */
export function parseHostPort (flag: string, value: string): HostPort {
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]*)):(\d+)$/.exec(value) ?? /^()()(\d+)$/.exec(value)
  const port = Number(match?.[3])
  if (match == null || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new ConfigError(`${flag}: ${JSON.stringify(value)} is not host:port, [ipv6]:port, :port or a port number (0-65535)`)
  }
  const host = match[1] ?? match[2] ?? ''
  return { host, port }
}

export interface HealthReport {
  ok: boolean
  [detail: string]: unknown
}

export type Route = (req: IncomingMessage, res: ServerResponse) => void | Promise<void>

export interface MetricsServerInit {
  listen: HostPort
  registry: Registry
  /** Answers /healthz: 200 when ok, 503 otherwise, the report as JSON either way. */
  health: () => HealthReport | Promise<HealthReport>
  /** More GET routes, by path. */
  routes?: Record<string, Route>
}

export interface MetricsServer {
  address(): HostPort
  close(): Promise<void>
}

/** Serves /metrics, /healthz and the given routes; fails with a clear error on a busy port. */
export async function startMetricsServer (init: MetricsServerInit): Promise<MetricsServer> {
  const routes: Record<string, Route> = {
    '/metrics': async (_req, res) => {
      const body = await init.registry.metrics()
      res.writeHead(200, { 'content-type': init.registry.contentType }).end(body)
    },
    '/healthz': async (_req, res) => {
      const report = await init.health()
      sendJson(res, report.ok ? 200 : 503, report)
    },
    ...init.routes
  }
  const server = createServer((req, res) => {
    let path: string
    try {
      path = new URL(req.url ?? '/', 'http://localhost').pathname
    } catch {
      // such as //x:99999, which anyone who reaches the port may send
      sendJson(res, 400, { error: 'The request target is not a path' })
      return
    }
    const route = routes[path]
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      sendJson(res, 405, { error: `${req.method ?? ''} is not allowed here; use GET` })
    } else if (route == null) {
      sendJson(res, 404, { error: `No such path: ${path}`, paths: Object.keys(routes) })
    } else {
      // a route that throws at once is answered 500 too, and never takes the daemon down
      Promise.resolve().then(async () => { await route(req, res) }).catch((err: Error) => {
        if (!res.headersSent) {
          sendJson(res, 500, { error: err.message })
        } else {
          res.destroy(err)
        }
      })
    }
  })
  const shown = init.listen.host.includes(':') ? `[${init.listen.host}]` : init.listen.host
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => {
      reject(new ConfigError(err.code === 'EADDRINUSE'
        ? `The metrics address ${shown}:${init.listen.port} is in use by another process`
        : `Cannot listen for metrics on ${shown}:${init.listen.port}: ${err.message}`))
    })
    // no host: every interface, IPv6 and IPv4 alike (Node binds :: where the host has IPv6)
    server.listen(init.listen.port, init.listen.host === '' ? undefined : init.listen.host, resolve)
  })
  const bound = server.address() as AddressInfo
  return {
    address: () => ({ host: bound.address, port: bound.port }),
    close: async () => {
      server.closeAllConnections()
      await new Promise<void>(resolve => server.close(() => { resolve() }))
    }
  }
}

export function sendJson (res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body))
}
