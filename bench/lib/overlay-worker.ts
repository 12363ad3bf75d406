import { parentPort, workerData } from 'node:worker_threads'
import { startServers } from './overlay-server.ts'
import type { ServerInit } from './overlay-server.ts'

/**
 * Worker entry of the overlay benchmark: starts the listeners, posts their addresses
 * ({ type: 'ready', addrs } or { type: 'error', message }), stops them on any message from the
 * parent and answers { type: 'stopped' }.
 */

const port = parentPort
if (port == null) {
  throw new Error('overlay-worker.ts runs as a worker thread of bench/overlay.ts')
}
try {
  const servers = await startServers(workerData as ServerInit)
  port.once('message', () => {
    void servers.stop().finally(() => {
      port.postMessage({ type: 'stopped' })
      port.close()
    })
  })
  port.postMessage({ type: 'ready', addrs: servers.addrs })
} catch (err) {
  port.postMessage({ type: 'error', message: (err as Error).stack ?? String(err) })
  port.close()
}
