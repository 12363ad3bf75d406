/** Defaults and names of the ping monitor. */

export const NAME = 'ping-monitor'
/** The overlay's well-known bootstrap port. */
export const DEFAULT_P2P_PORT = 4001
export const DEFAULT_METRICS_PORT = 9100

export const DEFAULT_INTERVAL_MS = 1_000
export const DEFAULT_PING_TIMEOUT_MS = 5_000
export const DEFAULT_CONCURRENCY = 32
export const DEFAULT_FORGET_AFTER_MS = 10 * 60_000
/**
 * The pings of a round go one after another; while they are behind an even spread over this share
 * of the interval (at most DEFAULT_MAX_SPACING_MS apart), more start in parallel (see PingMonitor).
 */
export const PING_SPREAD = 0.8
/** The longest wait between two pings to a peer that does not answer. */
export const MAX_BACKOFF_MS = 30_000
/**
 * The share of --concurrency that pings to peers whose last ping failed may hold (at least one
 * slot). Each gives its slot up once unanswered for an --interval, as every ping does: at
 * --concurrency 1 to 3 that one slot is all of them.
 */
export const RETRY_SHARE = 0.25
export const DEFAULT_MAX_SPACING_MS = 50

/**
 * A bootstrap is dialed by every node of the overlay, and many of them may share a host (or a NAT
 * address): libp2p's defaults (300 connections, 5 inbound connections per second per host, 10
 * being upgraded at once) would turn peers away without a clear error.
 */
export const DEFAULT_MAX_CONNECTIONS = 1_000
export const DEFAULT_INBOUND_RATE = 100
export const DEFAULT_MAX_PENDING_CONNECTIONS = 100
/**
 * Of those being upgraded, how many may come from one address: a host that opens connections and
 * sends nothing holds each for the PSK handshake's timeout, and must not hold them all. A
 * handshake takes milliseconds, so peers behind one address rarely need more at once.
 */
export const DEFAULT_MAX_PENDING_PER_IP = 10

/** The value of target_host for a peer that announced no host name (not a physarum node). */
export const UNKNOWN_HOST = 'unknown'

/**
 * Buckets of physarum_ping_rtt_distribution_seconds: loopback (0.1 ms) to the default
 * --ping-timeout (5 s), after which no answer counts; only a longer --ping-timeout puts answers in
 * +Inf.
 */
export const RTT_BUCKETS_SECONDS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5]

/** At most one "connection refused" log line per remote host and reason in this time. */
export const REFUSAL_LOG_INTERVAL_MS = 10_000
/**
 * And at most this many in all in that time, then one line counting the rest: a source with many
 * addresses (an IPv6 prefix, a botnet) gets past the per-host limit with each new address.
 */
export const REFUSAL_LOG_LINES = 20
