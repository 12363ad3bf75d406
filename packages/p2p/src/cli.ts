import { stat } from 'node:fs/promises'
import { homedir, networkInterfaces } from 'node:os'
import { join, resolve } from 'node:path'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { ConfigError } from './errors.ts'
import { loadOrCreateIdentity } from './identity.ts'
import { readKeyText } from './key-file.ts'
import { LOG_LEVELS } from './logging.ts'
import { parseHostPort } from './metrics.ts'
import { PreSharedKey } from './psk.ts'
import type { LogLevel } from './logging.ts'
import type { HostPort } from './metrics.ts'
import type { PrivateKey } from '@libp2p/interface'
import type { Argv } from 'yargs'

/** The options every physarum node takes, as yargs parses them. */
export interface NodeArgs {
  bootstrap?: string[]
  psk?: string
  'psk-file'?: string
  'swarm-key'?: string
  'no-psk'?: boolean
  listen?: string[]
  announce?: string[]
  identity?: string
  ephemeral?: boolean
  'state-dir'?: string
  'metrics-listen'?: string
  'log-level'?: string
}

export interface NodeDefaults {
  /** The daemon's name: its state folder and log name. */
  name: string
  /** TCP port for the overlay (0: any free port). */
  p2pPort: number
  metricsPort: number
  /** The log level without --log-level or PHYSARUM_LOG_LEVEL [default: info]. */
  logLevel?: LogLevel
  /** Without --listen, on /ip6/::/tcp/<p2pPort> too when the host has IPv6 (the bootstrap, which every host dials). */
  ipv6?: boolean
}

/**
 * A passphrase given as `--psk -x...` reads as a flag of its own, and the parser's "Unknown
 * argument" error would print it. The words to say instead, without it; undefined when argv has
 * no such thing.
 */
export function dashedPassphrase (argv: readonly string[]): string | undefined {
  const at = argv.findIndex((arg, i) => (arg === '--psk' || arg === '-psk') && argv[i + 1]?.startsWith('-') === true)
  return at < 0 ? undefined : `${argv[at]!}: the value after it starts with "-", which reads as a flag: give such a passphrase as --psk=<passphrase>, or better in PHYSARUM_PSK or a --psk-file`
}

/**
 * Refuses what yargs' strictOptions lets through:
 * - words that no option or parameter of a command takes: `registry-service --psk my secret
 *   phrase` ran with the key "my", and `proxy 4200 4201` ignored 4201. `commandWords`: how many
 *   words name the command (1 for hl-cli's `get`), before them. The words are named, unless --psk
 *   is on the command line: they may be the rest of a passphrase given without quotes, and are
 *   only counted.
 * - an option written without its value (`--concurrency --interval 2s`, `--state-dir $UNSET` with
 *   the variable unset): yargs gives it the option's default, or "" (for --state-dir the working
 *   folder), and the program ran on a value nobody chose.
 */
export function strictArguments<T> (yargs: Argv<T>, commandWords: number): Argv<T> {
  // yargs' types leave getOptions out
  const options = (yargs as unknown as { getOptions: () => { key: Record<string, unknown>, boolean: string[], count: string[] } }).getOptions()
  const switches = new Set([...options.boolean, ...options.count])
  // yargs' strictCommands, which hl-cli sets for its command names, would call them unknown
  // commands, and name them
  return yargs.requiresArg(Object.keys(options.key).filter(key => !switches.has(key))).strictCommands(false).check((parsed) => {
    const stray = parsed._.slice(commandWords).map(String)
    if (stray.length === 0) {
      return true
    }
    const many = stray.length > 1
    if ((parsed as { psk?: unknown }).psk != null) {
      throw new ConfigError(`${stray.length} ${many ? 'arguments' : 'argument'} that no option takes, not shown: with --psk on the command line ${many ? 'they' : 'it'} may be part of the passphrase. A passphrase with spaces needs quotes, and is better kept off the command line, in PHYSARUM_PSK or a --psk-file`)
    }
    throw new ConfigError(`${stray.map(word => JSON.stringify(word)).join(', ')}: ${many ? 'arguments' : 'an argument'} that no option takes`)
  })
}

/** The options withNodeOptions adds: what only a node joining the overlay uses. */
export const NODE_OPTION_NAMES = ['bootstrap', 'psk', 'psk-file', 'swarm-key', 'no-psk', 'listen', 'announce', 'identity', 'ephemeral', 'state-dir', 'metrics-listen', 'log-level'] as const

/**
 * Adds the shared node options to a yargs command. The seed's single-dash spellings work
 * (`-bootstrap`, `-psk`, `-p2p-listen-addr`, `-prom-listen-addr`) because short-option groups are
 * off; `--no-psk` is an option of its own, not the negation of `--psk`. A repeatable flag takes one
 * value each time it is given (not greedy): in `proxy -bootstrap <addr> 4200` the port is the
 * proxy's, not a second bootstrap. Other words stay as typed (`007` is not the number 7), for the
 * messages that quote them.
 */
export function withNodeOptions<T> (yargs: Argv<T>, defaults: NodeDefaults): Argv<T & NodeArgs> {
  return yargs
    .parserConfiguration({ 'short-option-groups': false, 'boolean-negation': false, 'greedy-arrays': false, 'parse-positional-numbers': false })
    .option('bootstrap', {
      type: 'string',
      array: true,
      describe: 'Multiaddr of a bootstrap peer, with /p2p/<peer id> (repeatable; env PHYSARUM_BOOTSTRAP or P2P_BOOTSTRAPS, space separated)'
    })
    .option('psk', {
      type: 'string',
      describe: 'The overlay\'s passphrase; key = SHA3-256 of it, as in PhysarumSM. Visible to every user in the process list: prefer env PHYSARUM_PSK (or P2P_PSK), --psk-file or --swarm-key'
    })
    .option('psk-file', { type: 'string', describe: 'File holding the overlay\'s passphrase (one line)' })
    .option('swarm-key', { type: 'string', describe: 'IPFS swarm.key file (/key/swarm/psk/1.0.0/, /base16/, 64 hex digits)' })
    .option('no-psk', { type: 'boolean', describe: 'Run without a pre-shared key: anyone who can reach the node can join' })
    .option('listen', {
      type: 'string',
      array: true,
      alias: 'p2p-listen-addr',
      describe: `Multiaddr to listen on for the overlay, IPv4 or IPv6 (repeatable) [default: /ip4/0.0.0.0/tcp/${defaults.p2pPort}${defaults.ipv6 === true ? `, and /ip6/::/tcp/${defaults.p2pPort} when the host has IPv6` : ''}]`
    })
    .option('announce', {
      type: 'string',
      array: true,
      describe: 'Multiaddr peers are told to dial instead of the listen addresses, e.g. a NAT\'s forwarded port (repeatable) [default: the listen addresses]'
    })
    .option('identity', { type: 'string', describe: 'Ed25519 identity key file, created (mode 0600) when missing [default: <state-dir>/identity.key]' })
    .option('ephemeral', { type: 'boolean', describe: 'Use a new identity on every start instead of the key file' })
    .option('state-dir', { type: 'string', describe: `Folder for this node's state (env PHYSARUM_STATE_DIR) [default: $XDG_STATE_HOME/physarum/${defaults.name}, ~/.local/state/physarum/${defaults.name} when XDG_STATE_HOME is unset]` })
    .option('metrics-listen', {
      type: 'string',
      alias: 'prom-listen-addr',
      describe: `Address for /metrics and /healthz: host:port, [v6]:port or :port [default: :${defaults.metricsPort}]`
    })
    .option('log-level', { type: 'string', choices: LOG_LEVELS, describe: `Log level (env PHYSARUM_LOG_LEVEL) [default: ${defaults.logLevel ?? 'info'}]` })
    .group([...NODE_OPTION_NAMES], 'Overlay options:')
}

export interface NodeConfig {
  psk: PreSharedKey | null
  /** Where the key came from, for the start-up log (never the key). */
  pskSource: 'passphrase' | 'psk-file' | 'swarm-key' | 'none'
  privateKey?: PrivateKey
  identityPath?: string
  listen: string[]
  /** What peers are told to dial instead of `listen` (empty: `listen`). */
  announce: string[]
  bootstrap: string[]
  metricsListen: HostPort
  logLevel: LogLevel
  stateDir: string
  /** Things the operator should hear about, to log once a logger exists. */
  warnings: string[]
}

/** What a daemon's node takes from the command line: the overlay's key, its identity, addresses. */
export interface DaemonNodeOptions {
  psk: PreSharedKey | null
  privateKey?: PrivateKey
  listen: string[]
  /** Addresses to announce instead of the listen addresses (see PhysarumNodeInit). */
  announce?: string[]
  bootstrap: string[]
}

/**
 * The node options of a resolved configuration or of a daemon's configuration, and nothing else:
 * what a daemon's configuration carries from its flags, and what it passes to createPhysarumNode.
 */
export function nodeOptions (from: DaemonNodeOptions): DaemonNodeOptions {
  return {
    psk: from.psk,
    ...(from.privateKey == null ? {} : { privateKey: from.privateKey }),
    listen: from.listen,
    ...(from.announce == null ? {} : { announce: from.announce }),
    bootstrap: from.bootstrap
  }
}

type Env = Record<string, string | undefined>

/** An environment variable's value, unless unset or only white space (an environment file's `NAME=`). */
export function nonEmpty (value: string | undefined): string | undefined {
  return value == null || value.trim() === '' ? undefined : value
}

/**
 * Checks the peers a flag names: each a multiaddr with /p2p/<peer id>, or with `peerIdAlone` a
 * bare peer id too (the peer store then knows where it is). Throws a ConfigError naming the flag
 * and the value, so a typo stops the daemon at start instead of failing its first request.
 */
export function checkPeerAddresses (flag: string, values: readonly string[], options: { peerIdAlone?: boolean, hint?: string } = {}): void {
  const hint = options.hint == null ? '' : `: ${options.hint}`
  const isPeerId = (text: string | undefined): boolean => {
    try {
      peerIdFromString(text ?? '')
      return true
    } catch {
      return false
    }
  }
  for (const value of values) {
    if (options.peerIdAlone === true && !value.startsWith('/')) {
      if (!isPeerId(value)) {
        throw new ConfigError(`${flag}: ${JSON.stringify(value)} is neither a multiaddr with /p2p/<peer id> nor a peer id${hint}`)
      }
      continue
    }
    let ma
    try {
      ma = multiaddr(value)
    } catch {
      throw new ConfigError(`${flag}: ${JSON.stringify(value)} is not a multiaddr${hint}`)
    }
    const peer = ma.getComponents().find(c => c.name === 'p2p')
    if (peer == null) {
      throw new ConfigError(`${flag}: ${value} has no /p2p/<peer id>${hint}`)
    }
    if (!isPeerId(peer.value)) {
      throw new ConfigError(`${flag}: ${value}: ${JSON.stringify(peer.value)} is not a peer id${hint}`)
    }
  }
}

/**
 * A warning when users other than its owner may read or change a secret file (any of 0o077 in its
 * mode): the overlay's key, this node's identity, a password or a private key. Nothing when the
 * file is its owner's alone, or cannot be looked at (it was read just before).
 */
export async function keyFileWarnings (flag: string, path: string): Promise<string[]> {
  const mode = await stat(path).then(stats => stats.mode & 0o777, () => 0)
  if ((mode & 0o077) === 0) {
    return []
  }
  return [`${flag}: ${path} has mode ${mode.toString(8).padStart(4, '0')}, so users other than its owner may read or change it: chmod 600 ${path}`]
}

/**
 * Builds a node's configuration: flags, then environment, then defaults. Errors name the flag and
 * the bad value. Reads the key files and creates the identity when missing.
 */
export async function resolveNodeConfig (args: NodeArgs, env: Env, defaults: NodeDefaults): Promise<NodeConfig> {
  const warnings: string[] = []

  const fromFlags = (args.bootstrap ?? []).length > 0
  const bootstrapEnv = nonEmpty(env.PHYSARUM_BOOTSTRAP) != null ? 'PHYSARUM_BOOTSTRAP' : 'P2P_BOOTSTRAPS'
  const bootstrap = fromFlags
    ? args.bootstrap!
    : (nonEmpty(env[bootstrapEnv]) ?? '').split(/\s+/).filter(Boolean)
  // an error names where the value came from: under systemd it is the environment file
  checkPeerAddresses(fromFlags ? '--bootstrap' : bootstrapEnv, bootstrap, { hint: 'copy the full address the bootstrap printed at start' })

  const listen = (args.listen ?? []).length > 0
    ? args.listen!
    : [`/ip4/0.0.0.0/tcp/${defaults.p2pPort}`, ...(defaults.ipv6 === true && hasIpv6() ? [`/ip6/::/tcp/${defaults.p2pPort}`] : [])]
  for (const addr of listen) {
    let names: string[]
    try {
      names = multiaddr(addr).getComponents().map(c => c.name)
    } catch {
      throw new ConfigError(`--listen: ${JSON.stringify(addr)} is not a multiaddr (e.g. /ip4/0.0.0.0/tcp/4001)`)
    }
    // the overlay's only transport: libp2p would otherwise leave the address out with a bare
    // "no transport" note
    if (names.length !== 2 || !['ip4', 'ip6'].includes(names[0]!) || names[1] !== 'tcp') {
      throw new ConfigError(`--listen: ${addr} is not an IP and TCP port: the overlay runs over TCP (e.g. /ip4/0.0.0.0/tcp/4001, /ip6/::/tcp/4001)`)
    }
  }

  const announce = args.announce ?? []
  for (const addr of announce) {
    let ma
    try {
      ma = multiaddr(addr)
    } catch {
      throw new ConfigError(`--announce: ${JSON.stringify(addr)} is not a multiaddr (e.g. /ip4/203.0.113.7/tcp/4001)`)
    }
    if (ma.getComponents().some(c => c.name === 'p2p')) {
      throw new ConfigError(`--announce: ${addr} names a peer id; give the address alone, the node adds its own /p2p/<peer id>`)
    }
  }

  const sources = [
    args.psk != null ? 'psk' : undefined,
    args['psk-file'] != null ? 'psk-file' : undefined,
    args['swarm-key'] != null ? 'swarm-key' : undefined,
    args['no-psk'] === true ? 'no-psk' : undefined
  ].filter(Boolean)
  if (sources.length > 1) {
    throw new ConfigError(`Give only one of --psk, --psk-file, --swarm-key and --no-psk (got ${sources.map(s => `--${s}`).join(', ')})`)
  }
  let psk: PreSharedKey | null
  let pskSource: NodeConfig['pskSource']
  if (args['swarm-key'] != null) {
    psk = await PreSharedKey.fromSwarmKeyFile(args['swarm-key'])
    pskSource = 'swarm-key'
    warnings.push(...await keyFileWarnings('--swarm-key', args['swarm-key']))
  } else if (args['psk-file'] != null) {
    let text: string
    try {
      text = await readKeyText(args['psk-file'])
    } catch (err) {
      throw new ConfigError(`--psk-file: cannot read ${args['psk-file']}: ${(err as Error).message}`)
    }
    const passphrase = text.replace(/\r?\n$/, '')
    // either would give a key no other node has, and connections that never finish
    if (passphrase.startsWith('/key/swarm/psk/')) {
      throw new ConfigError(`--psk-file: ${args['psk-file']} is a swarm.key: give it with --swarm-key`)
    }
    if (/[\r\n]/.test(passphrase)) {
      throw new ConfigError(`--psk-file: ${args['psk-file']} holds more than one line: the passphrase is the file's one line`)
    }
    // a secret that was never written into it (a failed mount or copy, a touch): the passphrase's
    // own error would not say which file
    if (passphrase.length === 0) {
      throw new ConfigError(`--psk-file: ${args['psk-file']} is empty: the passphrase is the file's one line`)
    }
    psk = PreSharedKey.fromPassphrase(passphrase)
    pskSource = 'psk-file'
    warnings.push(...await keyFileWarnings('--psk-file', args['psk-file']))
  } else if (args['no-psk'] === true) {
    psk = null
    pskSource = 'none'
    warnings.push('Running without a pre-shared key (--no-psk): any peer that reaches this node can join the overlay')
  } else {
    const passphrase = args.psk ?? nonEmpty(env.PHYSARUM_PSK) ?? nonEmpty(env.P2P_PSK)
    if (passphrase == null) {
      throw new ConfigError('No pre-shared key: set PHYSARUM_PSK, or give --psk-file, --swarm-key or --psk; --no-psk runs an open overlay')
    }
    psk = PreSharedKey.fromPassphrase(passphrase)
    pskSource = 'passphrase'
    if (args.psk != null) {
      warnings.push('The passphrase was given with --psk, so every user of this host can read it in the process list; prefer PHYSARUM_PSK, --psk-file or --swarm-key')
    }
  }

  // absolute: the allocator mounts folders of it into containers, and the Docker API takes a
  // relative source for the name of a volume
  const stateDir = resolve(args['state-dir'] ?? nonEmpty(env.PHYSARUM_STATE_DIR) ?? join(nonEmpty(env.XDG_STATE_HOME) ?? join(homedir(), '.local', 'state'), 'physarum', defaults.name))
  if (args.ephemeral === true && args.identity != null) {
    throw new ConfigError('Give either --identity or --ephemeral, not both')
  }
  const identityPath = args.ephemeral === true ? undefined : args.identity ?? join(stateDir, 'identity.key')
  const privateKey = identityPath == null ? undefined : await loadOrCreateIdentity(identityPath)
  if (identityPath != null) {
    warnings.push(...await keyFileWarnings(args.identity == null ? 'the identity key' : '--identity', identityPath))
  }

  const metricsListen = parseHostPort('--metrics-listen', args['metrics-listen'] ?? `:${defaults.metricsPort}`)

  const logLevel = (args['log-level'] ?? nonEmpty(env.PHYSARUM_LOG_LEVEL) ?? defaults.logLevel ?? 'info') as LogLevel
  if (!(LOG_LEVELS as readonly string[]).includes(logLevel)) {
    throw new ConfigError(`PHYSARUM_LOG_LEVEL: ${JSON.stringify(logLevel)} is not one of ${LOG_LEVELS.join(', ')}`)
  }

  return {
    psk,
    pskSource,
    ...(privateKey == null ? {} : { privateKey }),
    ...(identityPath == null ? {} : { identityPath }),
    listen,
    announce,
    bootstrap,
    metricsListen,
    logLevel,
    stateDir,
    warnings
  }
}

function hasIpv6 (): boolean {
  return Object.values(networkInterfaces()).some(addrs => addrs?.some(a => a.family === 'IPv6') ?? false)
}
