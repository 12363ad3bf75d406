/** Names, protocol ids and defaults of the registry service. */

import { PROTOCOL_PREFIX } from '@physarum/p2p'

export const NAME = 'registry-service'
export const PROTOCOL_NAME = 'registry'
export const PROTOCOL_VERSION = '1.0.0'
export const REGISTRY_PROTOCOL = `/${PROTOCOL_PREFIX}/${PROTOCOL_NAME}/${PROTOCOL_VERSION}`

/** Where records live in etcd: one key per service name, the value JSON. */
export const KEY_PREFIX = '/physarum/v1/services/'

export const DEFAULT_P2P_PORT = 0
export const DEFAULT_METRICS_PORT = 9102
export const DEFAULT_ETCD_CLIENT_PORT = 2379
export const DEFAULT_ETCD_PEER_PORT = 2380
export const DEFAULT_ETCD_CLUSTER_TOKEN = 'physarum-registry'

/** Largest request or response on the wire: a full List page fits. */
export const MAX_MESSAGE_BYTES = 256 * 1024
/** Deadline of one exchange on the wire, etcd included. */
export const RPC_TIMEOUT_MS = 5_000
/** Deadline of one etcd call: past it the request is answered UNAVAILABLE. */
export const DEFAULT_ETCD_TIMEOUT_MS = 1_500
/** Exchanges one caller may have in flight with a registry at once; its client queues the rest. */
export const MAX_INBOUND_STREAMS = 64

export const DEFAULT_PAGE_SIZE = 50
export const MAX_PAGE_SIZE = 100
/** Most names one GetMany asks for: their records fit in a message however large they are. */
export const MAX_GET_MANY = 100

/** Bounds of a record. */
export const MAX_NAME_LENGTH = 128
export const MAX_CONTENT_HASH_LENGTH = 128
export const MAX_IMAGE_LENGTH = 512
export const MAX_RTT_MS = 3_600_000
export const MAX_CPU = 1024
/** The least CPU (cores) and memory (MiB) a limit may be, other than 0 for none: Docker's own floors. */
export const MIN_CPU = 0.01
export const MIN_MEMORY_MB = 6
export const MAX_MEMORY_MB = 1024 * 1024

/** Client defaults. */
export const DEFAULT_CACHE_TTL_MS = 10_000
export const DEFAULT_DISCOVERY_TIMEOUT_MS = 5_000
export const DEFAULT_MAX_CANDIDATES = 8
export const DEFAULT_PEER_REFRESH_MS = 60_000
/**
 * How old a cached record the daemons (proxy, allocator) still use while no registry answers: a
 * registry outage does not stop the traffic to services already known (RegistryClientOptions).
 */
export const DAEMON_STALE_IF_ERROR_MS = 3_600_000
/**
 * A registry that refused a GetMany (one from before it existed) is asked single Gets for this
 * long, then a GetMany again: by then it may have been upgraded.
 */
export const GET_MANY_RETRY_MS = 600_000
/** A registry that failed is tried last for this long. */
export const DEFAULT_PEER_REST_MS = 30_000
export const DEFAULT_RTT_TIMEOUT_MS = 2_000

/** etcd supervision. */
export const ETCD_RESTART_MIN_MS = 250
export const ETCD_RESTART_MAX_MS = 30_000
/** An etcd that ran this long before dying is restarted at the shortest backoff again. */
export const ETCD_STABLE_MS = 30_000
export const ETCD_START_TIMEOUT_MS = 60_000
/** Deadline of each call that turns etcd's authentication on or checks it. */
export const ETCD_AUTH_TIMEOUT_MS = 5_000
export const ETCD_STOP_TIMEOUT_MS = 10_000
/**
 * How long the managed etcd keeps the revisions a write replaced (its periodic auto-compaction):
 * without compaction every write keeps one, until etcd reaches its space quota and refuses all
 * writes. An hour outlives any List's pages, which read one revision.
 */
export const DEFAULT_ETCD_AUTO_COMPACTION_MS = 3_600_000
/**
 * etcd 3.4 neither rotates its log nor reaches the journal from a file: past this size its log
 * file is copied to <log>.1 (the one before dropped) and emptied, as logrotate's copytruncate does.
 */
export const ETCD_LOG_MAX_BYTES = 10 * 1024 * 1024
/** How often the size of etcd's log file is checked. */
export const ETCD_LOG_CHECK_MS = 60_000
/** How long the ports of a killed leftover etcd may take to close (its threads outlive its main one). */
export const ETCD_LEFTOVER_RELEASE_MS = 5_000
export const DEFAULT_JOIN_TIMEOUT_MS = 120_000
