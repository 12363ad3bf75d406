import { createServer } from 'node:net'
import { Worker } from 'node:worker_threads'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { tcp } from '@libp2p/tcp'
import { createPhysarumNode, handleRpc, PreSharedKey, pskProtector } from '@physarum/p2p'
import { createLibp2p } from 'libp2p'
import { benchRpcSpec } from './rpc-codec.ts'
import { ECHO_PROTOCOL, serveEcho, serveSink, serveSocketEcho, serveSocketSink, SINK_PROTOCOL } from './streams.ts'
import type { Libp2p } from '@libp2p/interface'
import type { Server, Socket } from 'node:net'

/**
 * The listening half of every pair of the overlay benchmark (and of bench/proxy's transport
 * floor). It runs in a worker thread (its own event loop, as on a second host) or, with
 * bench/overlay's --same-thread, in the benchmark's own thread.
 */

export type PairName = 'tcp' | 'plain' | 'psk' | 'factory'
export const PAIR_NAMES: readonly PairName[] = ['tcp', 'plain', 'psk', 'factory']

export interface ServerInit {
  pairs: PairName[]
  passphrase: string
}

/** Where each listener is: TCP ports for the raw pair, multiaddrs with /p2p/ for the others. */
export interface ServerAddrs {
  tcpSink?: number
  tcpEcho?: number
  plain?: string
  psk?: string
  factory?: string
}

export interface Servers {
  addrs: ServerAddrs
  stop(): Promise<void>
}

const LISTEN = '/ip4/127.0.0.1/tcp/0'
// the benchmark opens one stream per round and per request, one at a time: the defaults suffice,
// but a slow close must not make a round fail on the stream limit
const HANDLER_LIMITS = { maxInboundStreams: 256, maxOutboundStreams: 256 }

interface TcpListener {
  server: Server
  sockets: Set<Socket>
}

async function listenTcp (onSocket: (socket: Socket) => void): Promise<TcpListener> {
  const sockets = new Set<Socket>()
  const server = createServer({ allowHalfOpen: true, noDelay: true }, (socket) => {
    sockets.add(socket)
    socket.once('close', () => { sockets.delete(socket) })
    onSocket(socket)
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => { resolve() })
  })
  return { server, sockets }
}

function portOf ({ server }: TcpListener): number {
  const address = server.address()
  if (address == null || typeof address === 'string') {
    throw new Error('the TCP server has no port')
  }
  return address.port
}

async function closeTcp ({ server, sockets }: TcpListener): Promise<void> {
  for (const socket of sockets) {
    socket.destroy()
  }
  await new Promise<void>(resolve => { server.close(() => { resolve() }) })
}

/** A libp2p node made of TCP, Noise and Yamux only, with or without the project's PSK protector. */
export async function createPlainNode (psk: PreSharedKey | null, listen: string[]): Promise<Libp2p> {
  return await createLibp2p({
    addresses: { listen },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    ...(psk == null ? {} : { connectionProtector: pskProtector({ psk }) })
  })
}

async function serveLibp2p (node: Libp2p): Promise<void> {
  await node.handle(SINK_PROTOCOL, (stream) => { serveSink(stream) }, HANDLER_LIMITS)
  await node.handle(ECHO_PROTOCOL, (stream) => { serveEcho(stream) }, HANDLER_LIMITS)
}

function firstAddr (node: Libp2p): string {
  const addr = node.getMultiaddrs()[0]
  if (addr == null) {
    throw new Error('the node listens nowhere')
  }
  return addr.toString()
}

export async function startServers (init: ServerInit): Promise<Servers> {
  const psk = PreSharedKey.fromPassphrase(init.passphrase)
  const addrs: ServerAddrs = {}
  const stops: Array<() => Promise<void>> = []
  const stop = async (): Promise<void> => {
    await Promise.allSettled(stops.map(async s => { await s() }))
  }
  try {
    if (init.pairs.includes('tcp')) {
      const sink = await listenTcp(serveSocketSink)
      stops.push(async () => { await closeTcp(sink) })
      const echo = await listenTcp(serveSocketEcho)
      stops.push(async () => { await closeTcp(echo) })
      addrs.tcpSink = portOf(sink)
      addrs.tcpEcho = portOf(echo)
    }
    for (const name of ['plain', 'psk'] as const) {
      if (init.pairs.includes(name)) {
        const node = await createPlainNode(name === 'psk' ? psk : null, [LISTEN])
        stops.push(async () => { await node.stop() })
        await serveLibp2p(node)
        addrs[name] = firstAddr(node)
      }
    }
    if (init.pairs.includes('factory')) {
      const node = await createPhysarumNode({ psk, listen: [LISTEN], dhtMode: 'server', bootstrap: [], hostName: 'bench', role: 'bench-listener' })
      await node.start()
      stops.push(async () => { await node.stop() })
      await serveLibp2p(node.libp2p)
      await handleRpc(node.libp2p, benchRpcSpec, async (request) => await Promise.resolve({ payload: request.payload }), {
        log: node.libp2p.logger.forComponent('bench:rpc'),
        ...HANDLER_LIMITS
      })
      addrs.factory = firstAddr(node.libp2p)
    }
  } catch (err) {
    await stop()
    throw err
  }
  return { addrs, stop }
}

/**
 * startServers in a worker thread of its own (lib/overlay-worker.ts): its own event loop, as on a
 * second host, so the dialling half and the listening half do not share one thread.
 */
export async function startServersInWorker (init: ServerInit): Promise<Servers> {
  const worker = new Worker(new URL('./overlay-worker.ts', import.meta.url), { workerData: init })
  const ready = await new Promise<ServerAddrs>((resolve, reject) => {
    worker.once('error', reject)
    worker.once('exit', (code) => { reject(new Error(`the listener worker exited with code ${code}`)) })
    worker.once('message', (msg: { type: string, addrs?: ServerAddrs, message?: string }) => {
      if (msg.type === 'ready' && msg.addrs != null) {
        resolve(msg.addrs)
      } else {
        reject(new Error(`the listener worker failed: ${msg.message ?? JSON.stringify(msg)}`))
      }
    })
  })
  worker.removeAllListeners()
  worker.on('error', (err: Error) => { process.stderr.write(`listener worker error: ${err.message}\n`) })
  return {
    addrs: ready,
    async stop () {
      const stopped = new Promise<void>(resolve => {
        worker.once('message', () => { resolve() })
        worker.once('exit', () => { resolve() })
        setTimeout(resolve, 5000).unref()
      })
      worker.postMessage('stop')
      await stopped
      await worker.terminate()
    }
  }
}
