import { X509Certificate } from 'node:crypto'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { BlockList, isIP } from 'node:net'
import { networkInterfaces } from 'node:os'
import { join } from 'node:path'
import { createSecureContext } from 'node:tls'
import { peerIdFromPrivateKey, peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { ConfigError, exitCodeOf, exitWithError, formatDuration, keyFileWarnings, launchDaemon, nodeAnnouncement, nodeOptions, nonEmpty, parseDuration, parsePort, runCli, resolveNodeConfig, withNodeOptions } from '@physarum/p2p'
import { hideBin } from 'yargs/helpers'
import {
  DEFAULT_ETCD_AUTO_COMPACTION_MS, DEFAULT_ETCD_CLIENT_PORT, DEFAULT_ETCD_PEER_PORT, DEFAULT_ETCD_TIMEOUT_MS, DEFAULT_METRICS_PORT, DEFAULT_P2P_PORT, KEY_PREFIX, NAME,
  REGISTRY_PROTOCOL, RPC_TIMEOUT_MS
} from './constants.ts'
import { startRegistryDaemon } from './daemon.ts'
import { MEMBER_NAME } from './service.ts'
import { etcdAuthFor } from './etcd-auth.ts'
import { etcdEnvName, ETCD_FLAGS } from './etcd-process.ts'
import { peerIdsFrom, trustedRegistries, withRegistryTrust } from './trust.ts'
import type { EtcdMode, RegistryDaemonConfig } from './daemon.ts'
import type { EtcdAuth } from './etcd-auth.ts'
import type { EtcdTls } from './store.ts'
import type { NodeArgs, NodeConfig } from '@physarum/p2p'
import type { RegistryTrustArgs } from './trust.ts'
import type { Argv } from 'yargs'

const DEFAULTS = { name: NAME, p2pPort: DEFAULT_P2P_PORT, metricsPort: DEFAULT_METRICS_PORT }
/** How long a stop may take (etcd gets 10 s of them) before the process exits anyway. */
const SHUTDOWN_DEADLINE_MS = 15_000

/** Printed on stdout once per listen address, besides the JSON logs. */
export const LISTENING_LINE = `${NAME} listening:`
/** Printed on stdout once the metrics server listens. */
export const METRICS_LINE = `${NAME} metrics:`
/** Printed on stdout with the etcd client URLs the registry uses. */
export const ETCD_LINE = `${NAME} etcd:`

interface RegistryArgs extends NodeArgs, RegistryTrustArgs {
  'new-etcd-cluster'?: boolean
  'join-etcd-cluster'?: boolean
  'etcd-endpoints'?: string
  'etcd-ip'?: string
  'etcd-client-port'?: string
  'etcd-peer-port'?: string
  'etcd-bin'?: string
  'etcd-data-dir'?: string
  'etcd-name'?: string
  'etcd-auto-compaction'?: string
  'etcd-timeout': string
  'etcd-user'?: string
  'etcd-password-file'?: string
  'etcd-ca'?: string
  'etcd-cert'?: string
  'etcd-key'?: string
  'join-via'?: string[]
  admin?: string[]
  'open-writes'?: boolean
  'show-etcd-password'?: boolean
}

export const command = '$0'
export const describe = 'Run a registry-service: the etcd-backed registry of physarum services, served on the overlay'

export function builder (argv: Argv): Argv<RegistryArgs> {
  return withRegistryTrust(withNodeOptions(argv, DEFAULTS))
    .option('new-etcd-cluster', { type: 'boolean', describe: 'Start a new one-member etcd cluster, run and supervised by this process (data in <state-dir>/etcd; env PHYSARUM_ETCD_CLUSTER=new)' })
    .option('join-etcd-cluster', { type: 'boolean', describe: 'Ask a running registry-service (found through the DHT, or --join-via) to add this host as an etcd member, then run that member. Once the data folder holds a member, later starts just run it (env PHYSARUM_ETCD_CLUSTER=join)' })
    .option('etcd-endpoints', { type: 'string', describe: 'Use an etcd cluster run by someone else: client URLs with their port (http://10.0.0.5:2379), comma separated (env PHYSARUM_ETCD_ENDPOINTS, with PHYSARUM_ETCD_CLUSTER=external or unset)' })
    .option('etcd-ip', { type: 'string', describe: 'IP address the managed etcd listens on and advertises to its peers and clients (with --new-etcd-cluster or --join-etcd-cluster; env PHYSARUM_ETCD_IP)' })
    .option('etcd-client-port', { type: 'string', describe: `The managed etcd's client port [default: ${DEFAULT_ETCD_CLIENT_PORT}]` })
    .option('etcd-peer-port', { type: 'string', describe: `The managed etcd's peer port [default: ${DEFAULT_ETCD_PEER_PORT}]` })
    .option('etcd-bin', { type: 'string', describe: 'The etcd binary [default: etcd from PATH]' })
    .option('etcd-data-dir', { type: 'string', describe: 'The managed etcd\'s data folder [default: <state-dir>/etcd]' })
    .option('etcd-name', { type: 'string', describe: 'The managed etcd member\'s name [default: etcd-<first 12 characters after 12D3KooW of the peer id>, kept in <state-dir>/etcd-name]' })
    .option('etcd-auto-compaction', { type: 'string', describe: `How long the managed etcd keeps the revisions a write replaced before it compacts them away (at least 1s; 0 never, and etcd refuses every write once its space quota is full) [default: ${formatDuration(DEFAULT_ETCD_AUTO_COMPACTION_MS)}]` })
    .option('etcd-timeout', { type: 'string', default: formatDuration(DEFAULT_ETCD_TIMEOUT_MS), describe: `Deadline of one etcd call (2s, 500ms; less than the ${formatDuration(RPC_TIMEOUT_MS)} a client waits): past it the request is answered UNAVAILABLE` })
    .option('etcd-user', { type: 'string', describe: 'With --etcd-endpoints: the etcd user to log in as, when the cluster\'s authentication is on (env PHYSARUM_ETCD_USER)' })
    .option('etcd-password-file', { type: 'string', describe: 'With --etcd-user: file holding that user\'s password (one line; keep it chmod 600). Never given in argv, where every user could read it (env PHYSARUM_ETCD_PASSWORD_FILE)' })
    .option('etcd-ca', { type: 'string', describe: 'With https:// --etcd-endpoints: PEM file of the CA that signed the etcd servers\' certificates [default: the system\'s CAs]' })
    .option('etcd-cert', { type: 'string', describe: 'With https:// --etcd-endpoints: PEM file of the client certificate, for an etcd with --client-cert-auth (with --etcd-key)' })
    .option('etcd-key', { type: 'string', describe: 'The private key of --etcd-cert (PEM file; keep it chmod 600)' })
    .option('join-via', { type: 'string', array: true, describe: 'With --join-etcd-cluster: multiaddr (with /p2p/<peer id>) of the registry-service to ask, instead of finding one through the DHT; with --registry-id, one of those (repeatable)' })
    .option('admin', { type: 'string', array: true, describe: 'Peer id allowed to Add and Delete records and to add etcd members (repeatable; env PHYSARUM_ADMINS, space or comma separated)' })
    .option('open-writes', { type: 'boolean', describe: 'Allow every overlay member to write and to add etcd members (logged as a warning)' })
    .option('show-etcd-password', { type: 'boolean', describe: 'Print the password of the managed etcd\'s root user, derived from the overlay\'s key (as given by the usual flags and environment), and exit: for etcdctl, and for setting it again after the key changed' })
    .group(['new-etcd-cluster', 'join-etcd-cluster', 'etcd-endpoints'], 'etcd (one of, or env PHYSARUM_ETCD_CLUSTER):')
    .group(['etcd-user', 'etcd-password-file', 'etcd-ca', 'etcd-cert', 'etcd-key'], 'External etcd (--etcd-endpoints):')
    // --etcd-timeout is left among the general options: it bounds the calls to an external etcd too
    .group(['etcd-ip', 'etcd-client-port', 'etcd-peer-port', 'etcd-bin', 'etcd-data-dir', 'etcd-name', 'etcd-auto-compaction', 'join-via'], 'Managed etcd:')
    .group(['admin', 'open-writes', 'show-etcd-password'], 'Authorization:')
    .example('PHYSARUM_PSK=... $0 --new-etcd-cluster --etcd-ip 10.0.0.1 -bootstrap /ip4/10.0.0.9/tcp/4001/p2p/12D3KooW... --admin 12D3KooW<hl-cli id>', 'Start the first registry with a new etcd cluster (etcd on 10.0.0.1:2379/2380)')
    .example('PHYSARUM_PSK=... $0 --join-etcd-cluster --etcd-ip 10.0.0.2 -bootstrap /ip4/10.0.0.9/tcp/4001/p2p/12D3KooW... --admin 12D3KooW<hl-cli id>', 'On a second host: join the etcd cluster through a running registry (which must list this one\'s peer id with --admin, or run with --open-writes)')
    .example('PHYSARUM_PSK=... $0 --etcd-endpoints http://10.0.0.5:2379,http://10.0.0.6:2379 -bootstrap ...', 'Serve records from an etcd cluster run by someone else')
    .example('PHYSARUM_PSK=... $0 --etcd-endpoints https://10.0.0.5:2379 --etcd-ca ca.pem --etcd-cert client.pem --etcd-key client-key.pem --etcd-user physarum --etcd-password-file /etc/physarum/etcd-password -bootstrap ...', 'The same, over TLS with a client certificate and a login')
    .epilogue([
      `Protocol ${REGISTRY_PROTOCOL} (protobuf, src/pb/registry.proto): Add (create or replace; optional expected revision for compare-and-swap), Get, GetMany (up to 100 Gets in one exchange), List (by prefix, paged), Delete, Join (add an etcd member), and MayWrite (whether the caller may write, asked before work that ends in a write). Records are JSON in etcd under ${KEY_PREFIX}<name>; a write that names the revision it read is an etcd transaction on it, and fails with CONFLICT instead of losing a concurrent writer's change; a write without one replaces the record, the last one winning. Reads are open to overlay members; Add, Delete and Join only to --admin peers unless --open-writes.`,
      '',
      'Where the records live: without --new-etcd-cluster, --join-etcd-cluster or --etcd-endpoints, env PHYSARUM_ETCD_CLUSTER says it (new, join or external: how the systemd unit is told), or PHYSARUM_ETCD_ENDPOINTS alone (external). PHYSARUM_ETCD_ENDPOINTS, PHYSARUM_ETCD_USER or PHYSARUM_ETCD_PASSWORD_FILE with new or join is refused rather than ignored.',
      '',
      'Three registries on three hosts: start the first with --new-etcd-cluster, then the second with --join-etcd-cluster and, once it is up, the third the same way. The first must allow the joiners: --admin <their peer id> (each prints its peer id at start, and a refused join names it) or --open-writes. Join one at a time: a two-member cluster needs both members up.',
      '',
      'The managed etcd is a child process: restarted when it dies (backoff 250 ms to 30 s), stopped at shutdown; its output goes to <data-dir>.log. It takes other settings from ETCD_* environment variables (e.g. ETCD_HEARTBEAT_INTERVAL, ETCD_ELECTION_TIMEOUT, ETCD_QUOTA_BACKEND_BYTES); one for a flag this process gives etcd (ETCD_NAME, ETCD_DATA_DIR, ETCD_LOGGER, ...) is refused, as etcd would refuse it.',
      '',
      `At start, stdout gets "${LISTENING_LINE} <multiaddr>" per listen address, "${METRICS_LINE} http://<host>:<port>/metrics" and "${ETCD_LINE} <client URLs>"; everything else is JSON log lines (pino).`,
      '',
      'HTTP on --metrics-listen: GET /metrics (physarum_registry_requests_total{operation,outcome}, physarum_registry_request_duration_seconds, physarum_registry_etcd_up, physarum_registry_records, process and libp2p metrics); GET /healthz (503 while etcd is unreachable).',
      '',
      'Exit codes: 2 for a usage error, 1 for a failure (a stop past its deadline too), 128+n after signal n: 143 after SIGTERM, the usual stop.'
    ].join('\n'))
    .strictOptions()
}

async function memberName (args: RegistryArgs, stateDir: string, peerId: string | undefined): Promise<string> {
  if (args['etcd-name'] != null) {
    if (!MEMBER_NAME.test(args['etcd-name'])) {
      throw new ConfigError(`--etcd-name: ${JSON.stringify(args['etcd-name'])} must be letters, digits and . _ -, at most 64`)
    }
    return args['etcd-name']
  }
  const file = join(stateDir, 'etcd-name')
  try {
    const kept = (await readFile(file, 'utf8')).trim()
    // a first start that ran out of disk space left the file empty: an etcd given that name
    // would be a member without one, which joins cannot name in their initial cluster
    if (MEMBER_NAME.test(kept)) {
      return kept
    }
  } catch {
    // the first start: the name is chosen and kept below
  }
  const name = `etcd-${(peerId ?? crypto.randomUUID()).replace(/^12D3KooW/, '').slice(0, 12)}`
  await mkdir(stateDir, { recursive: true })
  await writeFile(file, `${name}\n`)
  return name
}

type EtcdKind = EtcdMode['kind']
const MODE_FLAGS: Record<EtcdKind, string> = { new: '--new-etcd-cluster', join: '--join-etcd-cluster', external: '--etcd-endpoints' }

/**
 * Where the records live: the one flag given of --new-etcd-cluster, --join-etcd-cluster and
 * --etcd-endpoints, else PHYSARUM_ETCD_CLUSTER (new, join or external: how the systemd unit is
 * told, from the environment file), else PHYSARUM_ETCD_ENDPOINTS alone. `source` names what chose
 * it, for the errors; `endpoints` the client URLs of an external etcd and where they came from.
 */
function etcdKind (args: RegistryArgs, env: NodeJS.ProcessEnv): { kind: EtcdKind, source: string, endpoints?: { text: string, source: string } } {
  const flags = (['new', 'join', 'external'] as const).filter(kind => kind === 'external' ? (args['etcd-endpoints'] ?? '') !== '' : args[`${kind}-etcd-cluster`] === true)
  if (flags.length > 1) {
    throw new ConfigError(`Give only one of --new-etcd-cluster, --join-etcd-cluster and --etcd-endpoints (got ${flags.map(kind => MODE_FLAGS[kind]).join(', ')})`)
  }
  const cluster = nonEmpty(env.PHYSARUM_ETCD_CLUSTER)?.trim()
  const envEndpoints = nonEmpty(env.PHYSARUM_ETCD_ENDPOINTS)?.trim()
  let kind: EtcdKind
  let source: string
  if (flags.length === 1) {
    kind = flags[0]!
    source = MODE_FLAGS[kind]
  } else if (cluster != null) {
    if (cluster !== 'new' && cluster !== 'join' && cluster !== 'external') {
      throw new ConfigError(`PHYSARUM_ETCD_CLUSTER: ${JSON.stringify(cluster)} is not new, join or external`)
    }
    kind = cluster
    source = `PHYSARUM_ETCD_CLUSTER=${cluster}`
  } else if (envEndpoints != null) {
    kind = 'external'
    source = 'PHYSARUM_ETCD_ENDPOINTS'
  } else {
    throw new ConfigError('Say where the records live: --new-etcd-cluster, --join-etcd-cluster or --etcd-endpoints (or PHYSARUM_ETCD_CLUSTER=new, join or external)')
  }
  if (kind !== 'external') {
    // the operator meant one etcd or the other: not both, and not one picked silently
    if (envEndpoints != null) {
      throw new ConfigError(`PHYSARUM_ETCD_ENDPOINTS is set, but ${source} runs an etcd of this process's own: to use the etcd at PHYSARUM_ETCD_ENDPOINTS, set PHYSARUM_ETCD_CLUSTER=external (or give --etcd-endpoints) instead; to run this one, unset PHYSARUM_ETCD_ENDPOINTS`)
    }
    return { kind, source }
  }
  const endpoints = (args['etcd-endpoints'] ?? '') !== ''
    ? { text: args['etcd-endpoints']!, source: '--etcd-endpoints' }
    : envEndpoints == null ? undefined : { text: envEndpoints, source: 'PHYSARUM_ETCD_ENDPOINTS' }
  if (endpoints == null) {
    throw new ConfigError(`${source}: the records live in an etcd run by someone else: give its client URLs with --etcd-endpoints or PHYSARUM_ETCD_ENDPOINTS`)
  }
  return { kind, source, endpoints }
}

/** Everything the flags and environment say, validated; throws ConfigError naming the flag. */
async function resolveConfig (args: RegistryArgs, env: NodeJS.ProcessEnv): Promise<{ node: NodeConfig, warnings: string[], daemon: RegistryDaemonConfig }> {
  const { kind, source, endpoints: given } = etcdKind(args, env)
  // a flag the chosen kind does not use would be ignored: refused instead
  if (kind === 'external') {
    const managed = (['etcd-ip', 'etcd-client-port', 'etcd-peer-port', 'etcd-bin', 'etcd-data-dir', 'etcd-name', 'etcd-auto-compaction', 'join-via'] as const).find(flag => args[flag] != null)
    if (managed != null) {
      throw new ConfigError(`--${managed}: for the etcd this process runs (--new-etcd-cluster, --join-etcd-cluster), not with ${source}`)
    }
  } else {
    const external = (['etcd-user', 'etcd-password-file', 'etcd-ca', 'etcd-cert', 'etcd-key'] as const).find(flag => args[flag] != null)
    if (external != null) {
      throw new ConfigError(`--${external}: for an etcd given with --etcd-endpoints, not with ${source}: the etcd this process runs takes the login derived from the overlay's key`)
    }
    // the same login from the environment (an environment file shared by hosts of both kinds)
    // would be ignored as silently: refused too, as PHYSARUM_ETCD_ENDPOINTS is
    const login = (['PHYSARUM_ETCD_USER', 'PHYSARUM_ETCD_PASSWORD_FILE'] as const).find(name => nonEmpty(env[name]) != null)
    if (login != null) {
      throw new ConfigError(`${login} is set, but ${source} runs an etcd of this process's own, which takes the login derived from the overlay's key: unset ${login}, or set PHYSARUM_ETCD_CLUSTER=external (or give --etcd-endpoints) to log in to an etcd run by someone else`)
    }
  }
  if (kind === 'new' && args['join-via'] != null) {
    throw new ConfigError(`--join-via: with --join-etcd-cluster only; ${source} starts a cluster of its own`)
  }
  const admins = peerIdsFrom('--admin', args.admin, 'PHYSARUM_ADMINS', env)
  const timeout = parseDuration('--etcd-timeout', args['etcd-timeout'], 1)
  if (timeout >= RPC_TIMEOUT_MS) {
    // the caller would give up first: a timeout, which makes a write ambiguous, instead of the
    // UNAVAILABLE that sends it to another registry at once
    throw new ConfigError(`--etcd-timeout: ${JSON.stringify(args['etcd-timeout'])} is not shorter than the ${formatDuration(RPC_TIMEOUT_MS)} a registry client waits for an answer`)
  }
  const registryIds = trustedRegistries(args, env)
  const joinVia = args['join-via'] ?? []
  for (const addr of joinVia) {
    let peer: string | undefined
    try {
      const id = multiaddr(addr).getComponents().find(c => c.name === 'p2p')?.value
      peer = id == null ? undefined : peerIdFromString(id).toString()
    } catch {
      // not a multiaddr: refused below
    }
    if (peer == null) {
      throw new ConfigError(`--join-via: ${JSON.stringify(addr)} is not a multiaddr with /p2p/<peer id>`)
    }
    // the registries found through the DHT are only the trusted ones: a peer named here is asked
    // all the same, and would make this host a member of another registry's etcd cluster
    if (registryIds.length > 0 && !registryIds.includes(peer)) {
      throw new ConfigError(`--join-via: ${addr} is not one of the trusted registry-services (--registry-id, PHYSARUM_REGISTRY_IDS: ${registryIds.join(', ')}): give the address of one of them, or add its peer id there if it belongs to this registry cluster`)
    }
  }

  const node = await resolveNodeConfig(args, env, DEFAULTS)
  const warnings = [...node.warnings]
  let etcd: EtcdMode
  if (given != null) {
    // a trailing slash is taken off: etcd3 would hand it to gRPC as part of the port
    const endpoints = given.text.split(',').map(e => e.trim().replace(/\/$/, '')).filter(Boolean)
    for (const endpoint of endpoints) {
      if (!/^https?:\/\/[^/\s]+$/.test(endpoint)) {
        throw new ConfigError(`${given.source}: ${JSON.stringify(endpoint)} is not a client URL like http://10.0.0.5:2379`)
      }
      // gRPC dials a URL without one on 443, where no etcd listens: the registry would answer
      // UNAVAILABLE for good, its etcd "not reachable yet"
      const port = /:(\d{1,5})$/.exec(endpoint)?.[1]
      if (port == null || Number(port) < 1 || Number(port) > 65535) {
        throw new ConfigError(`${given.source}: ${JSON.stringify(endpoint)} has no port: give etcd's client port, like http://10.0.0.5:2379`)
      }
    }
    const secure = endpoints.filter(endpoint => endpoint.startsWith('https:'))
    if (secure.length > 0 && secure.length < endpoints.length) {
      // etcd3 connects to every host with the same credentials: TLS to all or to none
      throw new ConfigError(`${given.source}: ${endpoints.join(',')} mixes https:// and http:// URLs; give all of one kind`)
    }
    const access = await externalEtcdAccess(args, env, secure.length > 0)
    warnings.push(...access.warnings)
    etcd = { kind: 'external', endpoints, ...(access.auth == null ? {} : { auth: access.auth }), ...(access.tls == null ? {} : { tls: access.tls }) }
  } else {
    // PHYSARUM_ETCD_IP only here: the environment file gives it to a registry host of any kind
    const ip = args['etcd-ip'] ?? nonEmpty(env.PHYSARUM_ETCD_IP)?.trim()
    const ipSource = args['etcd-ip'] != null ? '--etcd-ip' : 'PHYSARUM_ETCD_IP'
    if (ip == null || isIP(ip) === 0 || ip === '0.0.0.0' || ip === '::') {
      const what = ip == null ? '--etcd-ip: missing' : `${ipSource}: ${JSON.stringify(ip)}`
      throw new ConfigError(`${what}: ${source} needs the IP address of this host that the other etcd members and registries reach (not 0.0.0.0), in --etcd-ip or PHYSARUM_ETCD_IP`)
    }
    // another host's address (an environment file copied from the first registry host) would
    // reach that host's etcd and be taken for something listening on this one's ports
    const addresses = Object.values(networkInterfaces()).flatMap(list => (list ?? []).map(a => a.address))
    if (!isOwnAddress(ip, addresses)) {
      throw new ConfigError(`${ipSource}: ${JSON.stringify(ip)} is not an address of this host (it has ${addresses.join(', ')}), where its etcd is to listen: give this host's own`)
    }
    // etcd would exit at once, its reason in its log only
    const shadowed = ETCD_FLAGS.find(flag => env[etcdEnvName(flag)] != null)
    if (shadowed != null) {
      const name = etcdEnvName(shadowed)
      throw new ConfigError(`${name} is set, but the registry-service gives its etcd --${shadowed} itself, and etcd refuses a setting given both ways: unset ${name}${shadowed.startsWith('auto-compaction') ? ' and give --etcd-auto-compaction instead' : ''}`)
    }
    const peerId = node.privateKey == null ? undefined : peerIdFromPrivateKeyString(node.privateKey)
    const managed = {
      bin: args['etcd-bin'] ?? 'etcd',
      name: await memberName(args, node.stateDir, peerId),
      dataDir: args['etcd-data-dir'] ?? join(node.stateDir, 'etcd'),
      ip,
      clientPort: parsePort('--etcd-client-port', args['etcd-client-port'] ?? String(DEFAULT_ETCD_CLIENT_PORT), 1),
      peerPort: parsePort('--etcd-peer-port', args['etcd-peer-port'] ?? String(DEFAULT_ETCD_PEER_PORT), 1),
      autoCompactionMs: autoCompaction(args),
      env
    }
    etcd = kind === 'new' ? { kind: 'new', etcd: managed } : { kind: 'join', etcd: managed, joinVia }
  }
  return {
    node,
    warnings,
    daemon: {
      ...nodeOptions(node),
      metricsListen: node.metricsListen,
      etcd,
      etcdTimeoutMs: timeout,
      admins,
      openWrites: args['open-writes'] === true,
      registryIds
    }
  }
}

/**
 * A file's content for `flag`; a ConfigError naming the flag and the path when it cannot be read
 * (never its content: it may be a password or a private key). A `secret` file that users other
 * than its owner may read adds a warning.
 */
async function readEtcdFile (flag: string, path: string, warnings: string[], secret = false): Promise<Buffer> {
  let content: Buffer
  try {
    content = await readFile(path)
  } catch (err) {
    throw new ConfigError(`${flag}: cannot read ${path}: ${(err as Error).message}`)
  }
  if (secret) {
    warnings.push(...await keyFileWarnings(flag, path))
  }
  return content
}

/**
 * The login and TLS files for an etcd given with --etcd-endpoints (`secure`: its endpoints are
 * https://), read and checked at start: a wrong path or a key that does not fit its certificate
 * is a usage error now, not a registry that answers UNAVAILABLE later.
 */
async function externalEtcdAccess (args: RegistryArgs, env: NodeJS.ProcessEnv, secure: boolean): Promise<{ auth?: EtcdAuth, tls?: EtcdTls, warnings: string[] }> {
  const warnings: string[] = []
  const user = args['etcd-user'] ?? nonEmpty(env.PHYSARUM_ETCD_USER) ?? ''
  const passwordFile = args['etcd-password-file'] ?? nonEmpty(env.PHYSARUM_ETCD_PASSWORD_FILE) ?? ''
  const userFlag = args['etcd-user'] != null ? '--etcd-user' : 'PHYSARUM_ETCD_USER'
  const passwordFlag = args['etcd-password-file'] != null ? '--etcd-password-file' : 'PHYSARUM_ETCD_PASSWORD_FILE'
  if (user !== '' && passwordFile === '') {
    throw new ConfigError(`${userFlag}: ${JSON.stringify(user)} needs --etcd-password-file <file> holding its password`)
  }
  if (user === '' && passwordFile !== '') {
    throw new ConfigError(`${passwordFlag}: ${passwordFile} needs --etcd-user, the etcd user whose password it holds`)
  }
  let auth: EtcdAuth | undefined
  if (user !== '') {
    // one line, as `echo` or an editor leaves it
    const password = (await readEtcdFile(passwordFlag, passwordFile, warnings, true)).toString('utf8').replace(/\r?\n$/, '')
    if (password === '') {
      throw new ConfigError(`${passwordFlag}: ${passwordFile} is empty`)
    }
    auth = { username: user, password }
  }

  const [caFile, certFile, keyFile] = [args['etcd-ca'], args['etcd-cert'], args['etcd-key']]
  if ((certFile == null) !== (keyFile == null)) {
    throw new ConfigError(certFile == null ? `--etcd-key: ${keyFile!} needs --etcd-cert, the client certificate it is the key of` : `--etcd-cert: ${certFile} needs --etcd-key, its private key`)
  }
  const given = caFile != null ? '--etcd-ca' : certFile != null ? '--etcd-cert' : undefined
  if (given == null) {
    return { ...(auth == null ? {} : { auth }), warnings }
  }
  if (!secure) {
    throw new ConfigError(`${given}: the etcd endpoints are http://, which take no TLS: give https:// URLs with --etcd-endpoints`)
  }
  const tls: EtcdTls = {
    ...(caFile == null ? {} : { ca: await readEtcdFile('--etcd-ca', caFile, warnings) }),
    ...(certFile == null ? {} : { cert: await readEtcdFile('--etcd-cert', certFile, warnings) }),
    ...(keyFile == null ? {} : { key: await readEtcdFile('--etcd-key', keyFile, warnings, true) })
  }
  // OpenSSL's reasons only: they quote nothing of the files
  if (tls.ca != null) {
    try {
      // TLS would skip what is not a certificate, and trust nothing
      new X509Certificate(tls.ca)
    } catch (err) {
      throw new ConfigError(`--etcd-ca: ${caFile!} is not a PEM certificate: ${(err as Error).message}`)
    }
  }
  try {
    createSecureContext(tls)
  } catch (err) {
    throw new ConfigError(`--etcd-cert, --etcd-key: ${certFile!} and ${keyFile!} are not a PEM certificate and its private key: ${(err as Error).message}`)
  }
  return { ...(auth == null ? {} : { auth }), tls, warnings }
}

/** --etcd-auto-compaction in ms (0: off). */
function autoCompaction (args: RegistryArgs): number {
  const text = args['etcd-auto-compaction'] ?? formatDuration(DEFAULT_ETCD_AUTO_COMPACTION_MS)
  const ms = parseDuration('--etcd-auto-compaction', text)
  if (ms !== 0 && ms < 1_000) {
    throw new ConfigError(`--etcd-auto-compaction: ${JSON.stringify(text)} is too short (at least 1s, or 0 for never)`)
  }
  return ms
}

/** Whether `ip` is one of `addresses` (this host's), or in the loopback range, all of which Linux binds. */
function isOwnAddress (ip: string, addresses: string[]): boolean {
  const own = new BlockList()
  own.addSubnet('127.0.0.0', 8, 'ipv4')
  for (const address of addresses) {
    own.addAddress(address, isIP(address) === 6 ? 'ipv6' : 'ipv4')
  }
  return own.check(ip, isIP(ip) === 6 ? 'ipv6' : 'ipv4')
}

function peerIdFromPrivateKeyString (key: NonNullable<NodeConfig['privateKey']>): string {
  return peerIdFromPrivateKey(key).toString()
}

/** Prints the managed etcd's root password for the key the flags and environment give. */
async function showEtcdPassword (args: RegistryArgs, env: NodeJS.ProcessEnv): Promise<void> {
  // ephemeral: this creates no identity
  const { psk } = await resolveNodeConfig({ ...args, ephemeral: true, identity: undefined }, env, DEFAULTS)
  if (psk == null) {
    throw new ConfigError('--show-etcd-password: an overlay without a key (--no-psk) gives its etcd no login')
  }
  process.stdout.write(`${etcdAuthFor(psk).password}\n`)
}

export async function handler (args: RegistryArgs): Promise<void> {
  if (args['show-etcd-password'] === true) {
    await showEtcdPassword(args, process.env).catch((err: Error) => { exitWithError(NAME, exitCodeOf(err), err.message) })
    return
  }
  await launchDaemon({
    name: NAME,
    resolve: async () => {
      const config = await resolveConfig(args, process.env)
      return { config, logLevel: config.node.logLevel, warnings: config.warnings }
    },
    start: async (config, log, options) => await startRegistryDaemon(config.daemon, log, options),
    shutdownDeadlineMs: SHUTDOWN_DEADLINE_MS,
    announce: (daemon, config) => {
      const node = nodeAnnouncement(daemon.node, daemon.metrics.address(), config.node)
      return {
        log: {
          ...node,
          etcd: config.daemon.etcd.kind,
          etcdEndpoints: daemon.store.endpoints,
          admins: config.daemon.admins,
          openWrites: config.daemon.openWrites
        },
        stdout: [...node.addrs.map(addr => `${LISTENING_LINE} ${addr}`), `${METRICS_LINE} ${node.metrics}`, `${ETCD_LINE} ${daemon.store.endpoints.join(',')}`]
      }
    }
  })
}

await runCli(NAME, { command, describe, builder, handler }, hideBin(process.argv))
