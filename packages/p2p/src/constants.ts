/** Protocol ids, topics and defaults shared by every physarum node. */

export const PROTOCOL_PREFIX = 'physarum'
export const KAD_PROTOCOL = `/${PROTOCOL_PREFIX}/kad/1.0.0`

/** Discovery topics: every allocator, every registry-service, every instance of a service. */
export const ALLOCATOR_TOPIC = 'physarum:allocator'
export const REGISTRY_TOPIC = 'physarum:registry'
export function serviceTopic (contentHash: string): string {
  return `physarum:service:${contentHash}`
}

export const DEFAULT_REPROVIDE_INTERVAL_MS = 10 * 60_000
/**
 * How long provider records stay valid on the peers that store them: the DHT drops an expired one
 * at its next sweep, a quarter of this later at most, so a provider that stopped is found for up
 * to 37.5 min (the client proxy skips one that says it stopped serving, see identify push).
 */
export const DEFAULT_PROVIDE_VALIDITY_S = 30 * 60
export const DEFAULT_BOOTSTRAP_TIMEOUT_MS = 15_000
/** How often the peer store's expired records are dropped (a record expires after 6 h). */
export const PEER_STORE_SWEEP_INTERVAL_MS = 60 * 60_000
export const BOOTSTRAP_BACKOFF_MIN_MS = 250
export const BOOTSTRAP_BACKOFF_MAX_MS = 30_000
/** A bootstrap connection that lasted this long starts its redials from the shortest wait. */
export const BOOTSTRAP_STABLE_MS = 10_000
export const DEFAULT_RPC_MAX_MESSAGE_BYTES = 64 * 1024
export const DEFAULT_RPC_TIMEOUT_MS = 10_000
/** Streams of one protocol a peer serves one caller at once, unless the protocol says otherwise. */
export const DEFAULT_RPC_MAX_STREAMS = 32
/** How long a caller keeps an unused stream: well under what the serving side waits. */
export const RPC_STREAM_CLIENT_IDLE_MS = 10_000
/** How long a serving side waits for the next request on a stream before it closes it. */
export const RPC_STREAM_SERVER_IDLE_MS = 60_000
export const DEFAULT_RTT_SMOOTHING = 0.2
/**
 * How many first samples of a peer's RTT entry set its smoothed RTT to their minimum before the
 * moving average takes over: the first pings of a new connection wait behind its identify and DHT
 * traffic (a loopback peer of 0.5 ms answered them in 18 to 33 ms).
 */
export const RTT_SEED_SAMPLES = 5
/**
 * The seed takes only the samples within this long of the first: a peer measured rarely (a client proxy pings
 * an instance at each refresh, 30 s apart) would otherwise keep the least of minutes of samples,
 * and a path that grew slow meanwhile would still show its old figure.
 */
export const RTT_SEED_WINDOW_MS = 10_000
/**
 * How often each connection must show it is alive: a Yamux ping unless it answered one in the
 * last half of that time (libp2p's connection monitor, off, opened a ping stream every 10 s).
 */
export const LIVENESS_INTERVAL_MS = 30_000
/**
 * How long a node gathers changes of its own protocols and addresses before it pushes them to its
 * peers (identify push; libp2p's default is 1 s): a stopping sidecar's client proxies stop sending
 * it requests this soon after it drops its HTTP protocol.
 */
export const IDENTIFY_PUSH_DEBOUNCE_MS = 100
/** How long a liveness ping may go unanswered before its connection is aborted. */
export const LIVENESS_TIMEOUT_MS = 30_000
/**
 * Streams a peer may open on a new connection before libp2p listens for them; one more and the
 * whole connection is aborted. Yamux's default of 10 broke a proxy's burst of requests at a fresh
 * instance (docs/decisions.md); this equals yamux's limit of inbound streams.
 */
export const MAX_EARLY_STREAMS = 1_000
/**
 * How long the PSK protector waits for the other side's nonce: one one-way trip, milliseconds on a
 * LAN. Anyone who reaches the port, key or not, holds one of libp2p's pending-upgrade slots
 * for this long with a connection that sends nothing (docs/decisions.md).
 */
export const PSK_HANDSHAKE_TIMEOUT_MS = 3_000
/**
 * How long an inbound connection may take from accept to a muxed connection (PSK, Noise, Yamux;
 * libp2p's default is 10 s). A nonce passes the protector whatever the key, so this, not the
 * protector's deadline, bounds a connection that sends a nonce and then nothing.
 */
export const INBOUND_UPGRADE_TIMEOUT_MS = 5_000
/**
 * Inbound connections being upgraded at once (libp2p's default is 10). A host may open 5 a second
 * (libp2p's rate per address), each held at most INBOUND_UPGRADE_TIMEOUT_MS: one address that
 * never finishes its handshakes holds about 25, and no longer every slot.
 */
export const MAX_INCOMING_PENDING_CONNECTIONS = 100
