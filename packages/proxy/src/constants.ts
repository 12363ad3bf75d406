/** Names and defaults of the proxy and its sidecar mode. */

export const NAME = 'proxy'
export const DEFAULT_P2P_PORT = 0
export const DEFAULT_METRICS_PORT = 9103
/** How often a sidecar polls its service's port until it accepts a connection. */
export const SERVICE_POLL_INTERVAL_MS = 20
/**
 * How long a stream waits for the service to accept a connection when it refuses one: the service
 * is restarting (its allocator starts it again after 1 s, then 2 s...) or the allocator handed the
 * instance out just as it came back. Nothing has reached the service, so the request is not lost.
 */
export const SERVICE_REFUSED_WAIT_MS = 5_000
/**
 * How long one connection attempt to the service may take. On loopback a connect is accepted or
 * refused at once, unless the service's accept queue is full (it hangs, or has not yet taken a
 * burst): the kernel then drops the SYN and sends it again after 1, 3 and 7 s, for about two
 * minutes in all. A busy service gets those three retries; a hung one fails the stream after them
 * (the client proxy takes it as the instance failing) rather than hold the stream, its count in
 * flight (the allocator reaps no instance with requests in flight) and a socket for two minutes.
 */
export const SERVICE_CONNECT_TIMEOUT_MS = 10_000
/**
 * How long a sidecar's allocator may refuse its check-ins as not its own (NOT_FOUND, UNAUTHORIZED),
 * or another peer answer at its address (the allocator came back with a new identity), every
 * check-in in a row, before the sidecar stops: no allocator would ever reap it, and it would serve
 * and provide its topic for good. An allocator that is only down (connections refused) is waited for.
 */
export const DISOWNED_AFTER_MS = 60_000
/** Most HTTP streams a sidecar serves per connection at once, and a client opens (with room for streams still closing). */
export const MAX_HTTP_STREAMS = 512
/** On SIGTERM, how long a draining sidecar waits for requests in flight (Docker kills at 10 s). */
export const DRAIN_GRACE_MS = 9_000

/** Client mode: requests that may wait for one service's cold start at once (more: 503). */
export const DEFAULT_MAX_PENDING = 1_000
/** Client mode: how long a request waits for a cold start (then 504). */
export const DEFAULT_COLD_START_TIMEOUT_MS = 30_000
/** Client mode: deadline of one findProviders round for instances or allocators. */
export const DEFAULT_DISCOVERY_TIMEOUT_MS = 1_000
/**
 * Client mode: how long a client may take to send a request's head, from its first byte or from
 * the connection's start (then 408 and the connection closes). Node's limit for that derives from
 * its whole-request limit, which the proxy turns off (bodies stream for as long as they take), and
 * would then be none: a client that stopped mid-head would hold its connection and socket for good.
 */
export const REQUEST_HEAD_TIMEOUT_MS = 60_000
/** Client mode: how long an instance may take to start its response (then 504). */
export const DEFAULT_UPSTREAM_TIMEOUT_MS = 30_000
/**
 * Client mode: the most allocators one lookup measures (then tries, nearest first): all that the
 * discovery deadline finds, up to this. Measuring only the first few the DHT gives, in the order
 * they provided, passed the nearest by in a larger overlay. Pings are small; the dials to hosts
 * not yet connected are the cost, paid once per cold start or closer allocation.
 */
export const MAX_ALLOCATORS_MEASURED = 32
/** Client mode: how often the instances of a service in use are looked up again (new ones, RTTs). */
export const INSTANCE_REFRESH_MS = 30_000
/** Client mode: at most one background allocation per service this often, while the nearest instance is beyond soft. */
export const CLOSER_ALLOCATION_INTERVAL_MS = 60_000
/** Client mode: how long an idle keep-alive stream to an instance is kept (Node's servers close theirs at 5 s). */
export const STREAM_IDLE_TIMEOUT_MS = 4_000
/** Client mode: requests in flight per instance; more wait in the proxy for a stream to free. */
export const MAX_STREAMS_PER_INSTANCE = 256
/**
 * Client mode: requests that may wait for a stream to one instance; more get 503 with Retry-After
 * (its streams held by long responses, a queue without end would hold every client that came).
 */
export const MAX_QUEUED_PER_INSTANCE = 256
/** Client mode: upgraded connections (WebSockets) to one instance at once; more get 503 (the streams left are the request pool's). */
export const MAX_UPGRADES_PER_INSTANCE = 192
/**
 * Client mode: the most bytes of an instance's response head, an upgrade's answer too (undici's
 * default, 16 KiB, is less than a few large cookies); a larger one is answered 502.
 */
export const MAX_RESPONSE_HEAD_BYTES = 64 * 1024
/**
 * Client mode: the most header lines of a request; Node's parser refuses more (431), as it does a
 * head past maxHeaderSize, and drops none. Node's server takes 1000 unless told (its parsers'
 * default, 2000, counts names and values; a server's maxHeadersCount, documented as 2000 by
 * default but unset, counts lines): set, so that the limit is the proxy's own and its 431 names it.
 */
export const MAX_REQUEST_HEADERS = 1_000
/** Client mode: the bytes a client's upgraded connection may send before the instance's 101 that are read; past them, it waits. */
export const MAX_EARLY_UPGRADE_BYTES = 64 * 1024
/** Client mode: methods sent again on another instance when the first failed before answering (RFC 9110 9.2.2). */
export const IDEMPOTENT_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE'])
/** Client mode: attempts of one request at most: instances that could not be reached (nothing was sent), kept streams closed as they were taken, and one instance that broke it. */
export const MAX_UNREACHED_ATTEMPTS = 4
/** Client mode: the pause before a request's third attempt (the second goes at once), doubled before each next one. */
export const RETRY_DELAY_MS = 250
/** Client mode: how long an instance that failed is not chosen again. */
export const INSTANCE_REST_MS = 30_000
/** Client mode: an instance that sent no response head for this long while requests wait on it gets a ping. */
export const STALL_PROBE_AFTER_MS = 1_000
/** Client mode: the RTT table forgets peers not measured for this long (instances come and go); checked every minute. */
export const RTT_FORGET_AFTER_MS = 10 * 60_000
/**
 * Client mode: how long that ping may take (or four of the instance's RTTs, if longer) before the
 * instance is not chosen for a while: it may be gone silently. A busy 2-core host answered pings
 * behind a bulk transfer in up to half a second, and later still with no CPU to spare.
 */
export const STALL_PING_TIMEOUT_MS = 5_000
/**
 * Client mode: a cold lookup that found no instance within the hard RTT waits at most this many
 * hard RTTs more (and at most STALL_PING_TIMEOUT_MS) for one whose new connection was still opening: TCP's, the PSK's, Noise's and the
 * protocol negotiation's round trips put a dial at about five RTTs, beyond the hard RTT for any
 * instance farther than a fifth of it. A provider whose host is silent costs this much.
 */
export const LATE_DIAL_WAIT_RTTS = 4
/**
 * Client mode: requests in a row an instance sent no response head for within the upstream
 * timeout, with no response between them, before it is not chosen for a while: its service hangs
 * (its sidecar still answers pings). One alone may be a slow request.
 */
export const TIMEOUTS_BEFORE_REST = 3
/** Client mode: the Retry-After (s) of a 503. */
export const RETRY_AFTER_S = 1
/**
 * Client mode: after a cold start found no allocator or every allocator refused, the same 503 is
 * answered at once for this long (ms) before the next lookup and Allocate, doubled after each
 * failure in a row up to COLD_START_FAILURE_MAX_HOLD_MS, so clients that retry at once (or after
 * Retry-After) do not sweep every allocator each time. A new version of the record ends the hold.
 */
export const COLD_START_FAILURE_HOLD_MS = 1_000
export const COLD_START_FAILURE_MAX_HOLD_MS = 10_000
/** Client mode: the response header of the requests that waited for a cold start (its ms). */
export const COLD_START_HEADER = 'x-physarum-cold-start-ms'
/**
 * Headers that concern one connection, never forwarded (RFC 9110 7.6.1), besides those
 * `Connection` names. `Trailer` is not one of them: it announces the trailers, which pass.
 */
export const HOP_BY_HOP_HEADERS: ReadonlySet<string> = new Set([
  'connection', 'keep-alive', 'proxy-connection', 'proxy-authenticate', 'proxy-authorization', 'te', 'transfer-encoding', 'upgrade'
])
