/**
 * @packageDocumentation
 *
 * The shared P2P library of physarum. Every daemon is a libp2p node of one private overlay:
 * `createPhysarumNode` builds it (TCP, Noise, Yamux, the PSK protector, identify, ping and a
 * kad-dht on /physarum/kad/1.0.0), keeps it connected to its bootstraps, provides and finds
 * discovery topics, and measures round-trip times. `handleRpc`/`callRpc` carry protobuf
 * requests and responses, one exchange after another on kept streams. The rest is what every
 * daemon's main needs: shared CLI options, a metrics server, logging and shutdown.
 */

export { createPhysarumNode, agentVersion, checkHostName, hostNameFromAgent, PHYSARUM_VERSION } from './node.ts'
export type { PhysarumNode, PhysarumNodeInit, PhysarumServices, ConnectionLimits } from './node.ts'
export { PreSharedKey, PSK_LENGTH } from './psk.ts'
export { pskProtector, Keystream, NONCE_LENGTH } from './protector.ts'
export type { PskProtectorInit } from './protector.ts'
export { loadOrCreateIdentity } from './identity.ts'
export { Bootstrapper, withOtherKeyHint } from './bootstrap.ts'
export type { BootstrapStatus } from './bootstrap.ts'
export { Discovery, topicCid } from './discovery.ts'
export { RttTable } from './rtt.ts'
export type { RttEntry } from './rtt.ts'
export { RttMeter } from './rtt-meter.ts'
export { handleRpc, callRpc } from './rpc.ts'
export { deadline } from './deadline.ts'
export type { Deadline } from './deadline.ts'
export type { RpcSpec, RpcHandler, RpcContext, MessageCodec, HandleRpcOptions } from './rpc.ts'
export { readSmallFile } from './key-file.ts'
export { checkPeerAddresses, dashedPassphrase, keyFileWarnings, NODE_OPTION_NAMES, nodeOptions, nonEmpty, strictArguments, withNodeOptions, resolveNodeConfig } from './cli.ts'
export { parseDuration, parseNumber, parsePort, formatDuration, MAX_TIMER_MS } from './flags.ts'
export type { DaemonNodeOptions, NodeArgs, NodeConfig, NodeDefaults } from './cli.ts'
export { createMetricsRegistry, startMetricsServer, parseHostPort, sendJson } from './metrics.ts'
export type { MetricsServer, MetricsServerInit, HealthReport, HostPort, Route } from './metrics.ts'
export { createLogger, LOG_LEVELS } from './logging.ts'
export type { Logger, LogLevel } from './logging.ts'
export { onShutdown } from './shutdown.ts'
export type { ShutdownStep, ShutdownOptions } from './shutdown.ts'
export * from './constants.ts'
export * from './errors.ts'
export { sendBounded, writeBufferBelow } from './streams.ts'
export type { BoundedSendOptions } from './streams.ts'
export { launchDaemon, runCli, exitWithError, exitCodeOf, metricsUrl, nodeAnnouncement } from './daemon-cli.ts'
export type { DaemonLaunch } from './daemon-cli.ts'
