/**
 * @packageDocumentation
 *
 * The proxy of physarum. Sidecar mode (`proxy --sidecar`, started by the allocator next to each
 * service instance) is here: `startSidecar` joins the overlay, checks in with its allocator and
 * pipes `/physarum/http/1.0.0` streams to the service. `StreamDuplex` turns a libp2p stream into
 * a Node Duplex with bounded buffering both ways (undici's HTTP client runs over it). Client mode
 * (`proxy <port>`): `startClientProxy` serves `/<service>/<path>` on a local port, strips the
 * `/<service>` prefix (the sidecar does not) and forwards to the nearest instance within the
 * record's RTTs (asking for a closer one in the background beyond soft), sharing one allocation
 * among the requests that wait for a cold start, over keep-alive streams (`streamPool`), with
 * retries when an instance fails before answering; `startClientDaemon` adds the node, the
 * registry client and /metrics. A sidecar serves the client mode to its own service too
 * (ProxyClientMode, `--client-port`).
 */

export { startSidecar } from './sidecar.ts'
export type { Sidecar, SidecarConfig } from './sidecar.ts'
export { StreamDuplex, DEFAULT_MAX_BUFFERED_BYTES, STREAM_READ_BUFFER_BYTES } from './duplex.ts'
export { streamPool, StreamOpenError } from './pool.ts'
export type { StreamPoolInit } from './pool.ts'
export type { StreamDuplexOptions } from './duplex.ts'
export * from './constants.ts'
export { startClientProxy, splitPath } from './client.ts'
export type { ClientProxy, ClientProxyComponents, ClientProxyInit, ClientProxyNode, Instance } from './client.ts'
export { startClientDaemon } from './client-daemon.ts'
export type { ClientDaemon, ClientDaemonConfig } from './client-daemon.ts'
