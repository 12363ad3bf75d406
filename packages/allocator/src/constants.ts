/** Names, protocol ids, labels and defaults of the allocator. */

import { PROTOCOL_PREFIX } from '@physarum/p2p'

export const NAME = 'allocator'
export const ALLOC_PROTOCOL = `/${PROTOCOL_PREFIX}/alloc/1.0.0`
export const ALLOC_STATUS_PROTOCOL = `/${PROTOCOL_PREFIX}/alloc-status/1.0.0`
export const CHECKIN_PROTOCOL = `/${PROTOCOL_PREFIX}/checkin/1.0.0`
/** The data plane a sidecar serves: HTTP/1.1 bytes on a libp2p stream. */
export const HTTP_PROTOCOL = `/${PROTOCOL_PREFIX}/http/1.0.0`

/**
 * A fixed port: each sidecar is told the allocator's address when it starts, and the instances an
 * allocator adopts after a restart (--keep-instances) check in there again.
 */
export const DEFAULT_P2P_PORT = 4002
export const DEFAULT_METRICS_PORT = 9101

/** Docker labels: every container the allocator starts carries them, and it touches no other. */
export const LABEL_PREFIX = 'io.physarum.'
export const LABELS = {
  allocator: `${LABEL_PREFIX}allocator`,
  service: `${LABEL_PREFIX}service`,
  instance: `${LABEL_PREFIX}instance`,
  role: `${LABEL_PREFIX}role`,
  sidecarPeer: `${LABEL_PREFIX}sidecar-peer`,
  servicePort: `${LABEL_PREFIX}service-port`,
  clientPort: `${LABEL_PREFIX}client-port`,
  sidecarHostPort: `${LABEL_PREFIX}sidecar-host-port`,
  cpu: `${LABEL_PREFIX}cpu`,
  memoryMb: `${LABEL_PREFIX}memory-mb`,
  contentHash: `${LABEL_PREFIX}content-hash`,
  statsIntervalMs: `${LABEL_PREFIX}stats-interval-ms`,
  bundle: `${LABEL_PREFIX}sidecar-bundle`
} as const

export const ALLOC_MAX_MESSAGE_BYTES = 16 * 1024
/** A cold start answers within the ready timeout plus a pull: the caller's deadline must cover both. */
export const ALLOC_RPC_TIMEOUT_MS = 120_000
/**
 * The longest --ready-timeout: the rest of ALLOC_RPC_TIMEOUT_MS is for the pull and the containers'
 * create and start. A cold start that waits longer for its sidecar is cut by the caller's deadline
 * first, and the caller learns nothing of why (no TIMEOUT, no exit code).
 */
export const MAX_READY_TIMEOUT_MS = ALLOC_RPC_TIMEOUT_MS - 30_000
/** Most instances an Allocate may ask not to be answered with (its `avoid_peers`). */
export const MAX_AVOID_PEERS = 16
export const CHECKIN_MAX_MESSAGE_BYTES = 16 * 1024
export const CHECKIN_RPC_TIMEOUT_MS = 5_000

export const DEFAULT_NODE_IMAGE = 'node:24-slim'
/** How long a Docker credential helper (`docker-credential-<name> get`) may take to answer. */
export const CREDENTIAL_HELPER_TIMEOUT_MS = 30_000
export const SIDECAR_REPOSITORY = 'physarum/sidecar'
export const DEFAULT_MAX_INSTANCES = 32
export const DEFAULT_READY_TIMEOUT_MS = 30_000
export const DEFAULT_IDLE_TIMEOUT_MS = 60_000
export const DEFAULT_DRAIN_DELAY_MS = 5_000
/**
 * How long past its drain delay a drained instance waits for the requests its sidecar still reports
 * in flight: ones a client proxy sent before it heard of the drain (the idle verdict may be a stats
 * interval old, and a proxy that had the instance keeps it). At removal the sidecar has 9 s more.
 */
export const DRAIN_IN_FLIGHT_MAX_MS = 30_000
export const DEFAULT_STATS_INTERVAL_MS = 1_000
/**
 * How soon a sidecar retries a Ready check-in its allocator did not take: doubling from the first
 * to the second (an allocator away for long, or one that does not know the instance, is not asked,
 * and logged, five times a second). An allocator back from a restart waits at least twice the
 * second for the sidecars of a previous run (ADOPT_TIMEOUT_MIN_MS), so each gets a try in time.
 */
export const CHECKIN_RETRY_MS = 200
export const CHECKIN_RETRY_MAX_MS = 2_000
/** How long at least an allocator back from a restart waits for a sidecar of its previous run to check in. */
export const ADOPT_TIMEOUT_MIN_MS = Math.max(5_000, 2 * CHECKIN_RETRY_MAX_MS)
/** A sidecar that misses this many stats intervals in a row (and at least SILENT_SIDECAR_MIN_MS) is taken for wedged. */
export const SILENT_SIDECAR_INTERVALS = 10
export const SILENT_SIDECAR_MIN_MS = 30_000
/** The allocator's own sweep this late means the allocator did not run (not its sidecars): their stats are counted from then. */
export const PAUSE_FORGIVEN_MS = 1_000
export const DEFAULT_RESTART_BACKOFF_MIN_MS = 1_000
export const DEFAULT_RESTART_BACKOFF_MAX_MS = 60_000
export const DEFAULT_MAX_RESTARTS = 5
export const DEFAULT_RESTART_WINDOW_MS = 10 * 60_000
/** Allocate requests per second one peer may make, and how many at once (token bucket). */
export const DEFAULT_RATE_PER_SECOND = 5
export const DEFAULT_RATE_BURST = 30
export const RATE_BACKOFF_MIN_MS = 1_000
export const RATE_BACKOFF_MAX_MS = 60_000
/** How long /healthz and physarum_alloc_docker_up wait for the Docker engine to answer a ping. */
export const HEALTH_DOCKER_TIMEOUT_MS = 2_000
/** How long a container may take to stop before it is killed, in seconds (docker stop -t). */
export const STOP_TIMEOUT_S = 10
/** A removal of containers that the engine failed is tried again this much later. */
export const REMOVE_RETRY_MS = 30_000
/**
 * How often the allocator's containers are checked against its instances besides the events:
 * containers of no instance it knows (a create the engine carried out after its call had timed
 * out) are removed, and a container that stopped unseen is handled as if it had died.
 */
export const RECONCILE_INTERVAL_MS = 60_000
/** Ports asked of the kernel for one of an instance's before the cold start gives up. */
export const PORT_PICK_TRIES = 20
/** Deadline of one call to the Docker engine (a stop or restart also has its own grace time). */
export const DOCKER_CALL_TIMEOUT_MS = 30_000
/**
 * Log rotation of the containers an allocator creates, where the engine's default driver is
 * json-file (Docker's default), which never rotates: a chatty service that is never idle would
 * fill the disk. Other drivers are left as the operator set them.
 */
export const JSON_FILE_LOG_ROTATION = { 'max-size': '10m', 'max-file': '3' }
/** Processes and threads a service container may run (a fork bomb stops there, a JVM fits). */
export const SERVICE_PIDS_LIMIT = 4_096
/** Processes and threads of a sidecar (Node uses about a dozen). */
export const SIDECAR_PIDS_LIMIT = 256
/**
 * The capabilities of Docker's default set a service container goes without. On the host's
 * network (the default) they would reach past the container: NET_RAW reads and forges the host's
 * traffic (the etcd login crosses it in the clear), NET_BIND_SERVICE takes the host's ports below
 * 1024. A service listens on its SERVICE_PORT, a high port, and needs neither.
 */
export const SERVICE_CAP_DROP = ['NET_RAW', 'NET_BIND_SERVICE']
/** No process of a container gains privileges through setuid or file capabilities. */
export const NO_NEW_PRIVILEGES = 'no-new-privileges:true'
/**
 * An image pull or build whose engine reports no progress for this long is given up (a pull with
 * IMAGE: the next Allocate pulls again).
 */
export const STREAM_STALL_MS = 60_000
/**
 * The longest an image pull may take (--pull-timeout): one that keeps trickling in never stalls,
 * and would hold its cold start, and every Allocate of the service sharing it, as long as it runs.
 * Longer than a caller's Allocate deadline: a large image's pull may still finish for the callers
 * that come after the first, and share its cold start.
 */
export const DEFAULT_PULL_TIMEOUT_MS = 10 * 60_000
/** Where the sidecar finds its mounted files inside its container. */
export const SIDECAR_SECRETS_DIR = '/run/physarum'
/**
 * With --network-mode bridge, the port a sidecar listens on in its own network namespace (the
 * service shares that namespace); it is published on a free port of the host.
 */
export const SIDECAR_BRIDGE_PORT = 4001
