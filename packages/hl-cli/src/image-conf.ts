import { lstat, readdir, realpath, stat } from 'node:fs/promises'
import { isAbsolute, join, relative, resolve, sep } from 'node:path'
import { privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import dockerignore from '@balena/dockerignore'
import { multiaddr } from '@multiformats/multiaddr'
import { PreSharedKey, readSmallFile } from '@physarum/p2p'
import { DEFAULT_FROM, DOCKERFILE_NAME } from './constants.ts'
import { ImageConfError } from './errors.ts'
import type { Stats } from 'node:fs'

/** What DockerConf.From and hl-cli add --from may hold: an image reference, nothing a Dockerfile line could break on. */
export const BASE_IMAGE = /^[A-Za-z0-9][A-Za-z0-9._:/@-]*$/

/**
 * An image-conf.json in the seed's (PhysarumSM's) format, as hl-cli reads it:
 *
 * ```
 * { "PerfConf": { "Perf": { "SoftReq": { "RTT": 100 }, "HardReq": { "RTT": 1000 } },
 *                 "Bootstraps": ["<multiaddr>"] },
 *   "DockerConf": { "From": "node:24-slim", "Copy": [["helloworldserver", "."]], "Run": [],
 *                   "Cmd": "./helloworldserver $SERVICE_PORT", "ProxyClientMode": true } }
 * ```
 *
 * RTT: a number of milliseconds, or a string with a unit ("100ms", "1.5s", "1m30s"). Required:
 * both RTTs and DockerConf.Cmd. Defaults: From `node:24-slim`, Copy/Run/Bootstraps empty,
 * ProxyClientMode false; as in the seed, null is a key not given, and so is a From of "". Every
 * other key is an error.
 */
export interface ImageConf {
  softRttMs: number
  hardRttMs: number
  /** PerfConf.Bootstraps: used when no -bootstrap is given. */
  bootstraps: string[]
  /** DockerConf.From, or undefined for the default. */
  from?: string
  /** Each DockerConf.Copy entry: the sources (relative to the service folder) and the destination. */
  copy: CopyEntry[]
  run: string[]
  cmd: string
  proxyClientMode: boolean
}

export interface CopyEntry {
  sources: string[]
  dest: string
}

type Json = null | boolean | number | string | Json[] | { [key: string]: Json }

/** The keys the seed's format has; a nested object is a schema, a string a type. */
interface Schema { [key: string]: Schema | 'rtt' | 'string' | 'string[]' | 'copy' | 'boolean' }
const SCHEMA: Schema = {
  PerfConf: {
    Perf: { SoftReq: { RTT: 'rtt' }, HardReq: { RTT: 'rtt' } },
    Bootstraps: 'string[]'
  },
  DockerConf: { From: 'string', Copy: 'copy', Run: 'string[]', Cmd: 'string', ProxyClientMode: 'boolean' }
}
const REQUIRED = ['PerfConf.Perf.SoftReq.RTT', 'PerfConf.Perf.HardReq.RTT', 'DockerConf.Cmd']

const UNITS: Record<string, number> = { ns: 1e-6, us: 1e-3, µs: 1e-3, μs: 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 }
const DURATION = /^(?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|μs|ms|s|m|h)/

/** "100ms", "1.5s", "1m30s" (Go's duration syntax) in milliseconds; undefined when not one. */
export function parseDuration (text: string): number | undefined {
  let rest = text.trim()
  if (rest === '') {
    return undefined
  }
  let total = 0
  while (rest !== '') {
    const match = DURATION.exec(rest)
    if (match == null) {
      return undefined
    }
    const unit = /[a-zµμ]+$/.exec(match[0])![0]
    total += Number(match[0].slice(0, -unit.length)) * UNITS[unit]!
    rest = rest.slice(match[0].length)
  }
  return total
}

function kind (value: Json): string {
  if (value === null) {
    return 'null'
  }
  if (Array.isArray(value)) {
    return 'an array'
  }
  return typeof value === 'object' ? 'an object' : `${typeof value} ${JSON.stringify(value)}`
}

/**
 * Parses the text of an image-conf.json. Throws ImageConfError naming `file` and the key path of
 * the first problem: bad JSON, an unknown key, a wrong type, a missing required key, soft > hard.
 * Does not look at the file system (see `loadImageConf`).
 */
export function parseImageConf (text: string, file: string): ImageConf {
  let json: Json
  try {
    json = JSON.parse(text) as Json
  } catch (err) {
    throw new ImageConfError(file, '', `not valid JSON (${(err as Error).message})`)
  }
  const found = new Map<string, Json>()
  walk(json, SCHEMA, '', file, found)
  for (const key of REQUIRED) {
    if (!found.has(key)) {
      throw new ImageConfError(file, key, key === 'DockerConf.Cmd'
        ? 'missing: the command that starts the service, e.g. "./helloworldserver $SERVICE_PORT"'
        : 'missing: the RTT requirement in milliseconds (a number) or with a unit ("100ms")')
    }
  }
  const softRttMs = rtt(found, 'PerfConf.Perf.SoftReq.RTT', file)
  const hardRttMs = rtt(found, 'PerfConf.Perf.HardReq.RTT', file)
  if (softRttMs > hardRttMs) {
    throw new ImageConfError(file, 'PerfConf.Perf.SoftReq.RTT', `the soft requirement (${softRttMs} ms) is more than the hard one (PerfConf.Perf.HardReq.RTT, ${hardRttMs} ms)`)
  }

  const bootstraps = (found.get('PerfConf.Bootstraps') ?? []) as string[]
  bootstraps.forEach((addr, i) => {
    let ok = false
    try {
      ok = multiaddr(addr).getComponents().some(c => c.name === 'p2p')
    } catch {
      // reported below
    }
    if (!ok) {
      throw new ImageConfError(file, `PerfConf.Bootstraps[${i}]`, `${JSON.stringify(addr)} is not a multiaddr with /p2p/<peer id>`)
    }
  })

  // "" is the seed's "not given" (its hl-cli took the default base image for it)
  const from = found.get('DockerConf.From') === '' ? undefined : found.get('DockerConf.From') as string | undefined
  if (from != null && !BASE_IMAGE.test(from)) {
    throw new ImageConfError(file, 'DockerConf.From', `${JSON.stringify(from)} is not an image reference (e.g. ${DEFAULT_FROM})`)
  }
  const cmd = found.get('DockerConf.Cmd') as string
  if (cmd.trim() === '') {
    throw new ImageConfError(file, 'DockerConf.Cmd', 'is empty: give the command that starts the service')
  }
  const run = (found.get('DockerConf.Run') ?? []) as string[]
  run.forEach((line, i) => {
    if (line.trim() === '') {
      throw new ImageConfError(file, `DockerConf.Run[${i}]`, 'is empty')
    }
  })
  const copy = ((found.get('DockerConf.Copy') ?? []) as string[][]).map((entry, i): CopyEntry => {
    entry.forEach((path, j) => {
      if (path === '' || path.includes('\n') || path.includes('\0')) {
        throw new ImageConfError(file, `DockerConf.Copy[${i}][${j}]`, `${JSON.stringify(path)} is not a path`)
      }
      // Docker expands $NAME and ${NAME} in COPY, even in its JSON form: the path would change
      if (path.includes('$')) {
        throw new ImageConfError(file, `DockerConf.Copy[${i}][${j}]`, `${JSON.stringify(path)}: a $ is taken by Docker for a variable; rename the file`)
      }
    })
    return { sources: entry.slice(0, -1), dest: entry.at(-1)! }
  })
  return {
    softRttMs,
    hardRttMs,
    bootstraps,
    ...(from == null ? {} : { from }),
    copy,
    run,
    cmd,
    proxyClientMode: (found.get('DockerConf.ProxyClientMode') ?? false) as boolean
  }
}

function rtt (found: Map<string, Json>, key: string, file: string): number {
  const value = found.get(key)!
  const ms = typeof value === 'number' ? value : parseDuration(value as string)
  if (ms == null) {
    throw new ImageConfError(file, key, `${JSON.stringify(value)} is not a duration: give milliseconds (a number) or a string with a unit (ns, us, ms, s, m, h), e.g. "100ms"`)
  }
  if (!Number.isFinite(ms) || ms <= 0) {
    throw new ImageConfError(file, key, `must be more than 0 ms, not ${JSON.stringify(value)}`)
  }
  if (ms > 3_600_000) {
    throw new ImageConfError(file, key, `${JSON.stringify(value)} is more than an hour`)
  }
  return ms
}

function walk (value: Json, schema: Schema, path: string, file: string, found: Map<string, Json>): void {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new ImageConfError(file, path, `must be an object, not ${kind(value)}`)
  }
  for (const [key, child] of Object.entries(value)) {
    const childPath = path === '' ? key : `${path}.${key}`
    const type = Object.hasOwn(schema, key) ? schema[key] : undefined
    if (type == null) {
      throw new ImageConfError(file, childPath, `unknown key; ${path === '' ? 'the top level' : path} has ${Object.keys(schema).join(', ')}`)
    }
    // the seed's Go decoder leaves a field at its zero value for null, and Go writes a nil slice
    // as null ("Run": null): not given. A required one is then told missing
    if (child === null) {
      continue
    }
    if (typeof type === 'object') {
      walk(child, type, childPath, file, found)
      continue
    }
    checkType(child, type, childPath, file)
    found.set(childPath, child)
  }
}

function checkType (value: Json, type: 'rtt' | 'string' | 'string[]' | 'copy' | 'boolean', path: string, file: string): void {
  const fail = (expected: string, at = path, got: Json = value): never => {
    throw new ImageConfError(file, at, `must be ${expected}, not ${kind(got)}`)
  }
  switch (type) {
    case 'rtt':
      if (typeof value !== 'number' && typeof value !== 'string') {
        fail('a number of milliseconds or a string with a unit ("100ms")')
      }
      return
    case 'string':
      if (typeof value !== 'string') {
        fail('a string')
      }
      return
    case 'boolean':
      if (typeof value !== 'boolean') {
        fail('true or false')
      }
      return
    case 'string[]':
      if (!Array.isArray(value)) {
        fail('an array of strings')
      }
      (value as Json[]).forEach((item, i) => {
        if (typeof item !== 'string') {
          fail('a string', `${path}[${i}]`, item)
        }
      })
      return
    case 'copy':
      if (!Array.isArray(value)) {
        fail('an array of [source, destination] pairs')
      }
      (value as Json[]).forEach((entry, i) => {
        if (!Array.isArray(entry) || entry.length < 2) {
          fail('a [source, destination] pair', `${path}[${i}]`, entry)
        }
        (entry as Json[]).forEach((item, j) => {
          if (typeof item !== 'string') {
            fail('a string', `${path}[${i}][${j}]`, item)
          }
        })
      })
  }
}

/** A file or folder of the build context. */
export interface ContextSource {
  /** Its name in the context: relative to the service folder, with forward slashes. */
  path: string
  absolute: string
  directory: boolean
}

/**
 * An image-conf.json is a few hundred bytes. Read whole, a wrong argument (a model, an image,
 * /dev/zero) would be held in memory, or read for ever, before JSON.parse could refuse it.
 */
export const MAX_IMAGE_CONF_BYTES = 1024 * 1024

/**
 * Reads and parses `file` (see `parseImageConf`); the file system only for `file` itself, up to
 * MAX_IMAGE_CONF_BYTES (a pipe, `<(jq ... image-conf.json)`, works).
 */
export async function readImageConf (file: string): Promise<ImageConf> {
  let bytes: Buffer
  try {
    bytes = await readSmallFile(file, MAX_IMAGE_CONF_BYTES, 'image-conf.json')
  } catch (err) {
    throw new ImageConfError(file, '', `cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`)
  }
  return parseImageConf(bytes.toString('utf8'), file)
}

/** A .dockerignore is a few lines; read whole, a wrong one (a link to a model) would be held in memory. */
const MAX_DOCKERIGNORE_BYTES = 1024 * 1024

/** What the service folder's `.dockerignore` leaves out of the build context, by Docker's rules. */
interface Exclusions {
  /** Whether `path` (relative to the service folder, forward slashes) is left out. */
  excludes(path: string): boolean
  /** Whether a `!` line may take back something in a folder left out: the folder is then walked. */
  reincludes: boolean
}

/**
 * The service folder's `.dockerignore` (at `root`), as Docker reads it: comments, exclusions, `!`
 * re-inclusions, `*`, `?` and `**`, the last matching line deciding, case-sensitive as on Linux.
 * None: nothing is left out.
 */
async function readExclusions (root: string, file: string): Promise<Exclusions> {
  const path = join(root, '.dockerignore')
  let text: string
  try {
    text = (await readSmallFile(path, MAX_DOCKERIGNORE_BYTES, '.dockerignore')).toString('utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      return { excludes: () => false, reincludes: false }
    }
    throw new ImageConfError(file, '', `${path} cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`)
  }
  const lines = text.split(/\r?\n/)
  // CommonJS, typed as an ES module: its factory is also its `default`. Case-insensitive by default
  const matcher = dockerignore.default({ ignorecase: false }).add(lines)
  return { excludes: (name) => matcher.ignores(name), reincludes: lines.some(line => /^\s*!/.test(line)) }
}

/**
 * Reads and parses `file`, then checks every Copy source: inside `dir` (after resolving symbolic
 * links), present and not left out by `dir`'s `.dockerignore`, and walks the folders copied,
 * whose links must also stay inside and lead somewhere, and not to a folder that holds them.
 * What the `.dockerignore` leaves out of a copied folder is neither checked nor in `files`.
 * Throws ImageConfError naming the file and the key path; builds nothing. `files`: the whole
 * build context, each entry once, folders first.
 */
export async function loadImageConf (file: string, dir: string): Promise<{ conf: ImageConf, sources: ContextSource[], files: ContextSource[] }> {
  const conf = await readImageConf(file)
  let root: string
  try {
    root = await realpath(dir)
    if (!(await stat(root)).isDirectory()) {
      throw new Error('not a folder')
    }
  } catch (err) {
    throw new ImageConfError(file, '', `the service folder ${dir} cannot be used (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`)
  }
  const exclusions = await readExclusions(root, file)
  const sources: ContextSource[] = []
  const files: ContextSource[] = []
  const added = new Set<string>()
  for (const [i, entry] of conf.copy.entries()) {
    for (const [j, source] of entry.sources.entries()) {
      const at = `DockerConf.Copy[${i}][${j}]`
      if (/[*?[]/.test(source)) {
        throw new ImageConfError(file, at, `${JSON.stringify(source)}: wildcards are not supported; name each file or a folder`)
      }
      if (isAbsolute(source)) {
        throw new ImageConfError(file, at, `${JSON.stringify(source)} is an absolute path: Copy sources are relative to the service folder ${dir}`)
      }
      const lexical = resolve(root, source)
      if (!inside(root, lexical)) {
        throw new ImageConfError(file, at, `${JSON.stringify(source)} is outside the service folder ${dir}`)
      }
      let real: string
      try {
        real = await realpath(lexical)
      } catch (err) {
        throw new ImageConfError(file, at, (err as NodeJS.ErrnoException).code === 'ENOENT'
          ? `${JSON.stringify(source)} does not exist in the service folder ${dir}`
          : unreadable(source, dir, err))
      }
      if (!inside(root, real)) {
        throw new ImageConfError(file, at, `${JSON.stringify(source)} leads outside the service folder ${dir} (a symbolic link to ${real})`)
      }
      const info = await stat(real)
      // read for the context, a FIFO waits for a writer (for ever), a device never ends
      if (!info.isFile() && !info.isDirectory()) {
        throw new ImageConfError(file, at, `${JSON.stringify(source)} is ${special(info)}, not a file or a folder: it cannot be copied into an image`)
      }
      const path = relative(root, lexical).split(sep).join('/')
      // Docker would not find it in the context; a folder may still hold what a `!` line takes back
      if (path !== '' && exclusions.excludes(path) && !(info.isDirectory() && exclusions.reincludes)) {
        throw new ImageConfError(file, at, `${JSON.stringify(source)} is left out of the build context by ${join(dir, '.dockerignore')}: copy something else, or take it back there with a ! line`)
      }
      const copied = { path: path === '' ? '.' : path, absolute: real, directory: info.isDirectory() }
      sources.push(copied)
      await walk(copied, new Set(), (problem) => new ImageConfError(file, at, problem))
    }
  }
  return { conf, sources, files }

  /** Adds `entry` and, for a folder, everything in it; `within`: the real paths of the folders it is in. */
  async function walk (entry: ContextSource, within: Set<string>, fail: (problem: string) => Error): Promise<void> {
    if (added.has(entry.path)) {
      return
    }
    added.add(entry.path)
    // a folder left out is walked only for what a `!` line takes back, and not in the context itself
    if (entry.path === '.' || !exclusions.excludes(entry.path)) {
      // the context holds hl-cli's Dockerfile by that name: this one, packed after it, would win
      if (entry.path === DOCKERFILE_NAME) {
        throw fail(`${DOCKERFILE_NAME} is the name hl-cli gives the Dockerfile it writes into the build context, and this one would be built instead: rename it, or leave it out with a line ${DOCKERFILE_NAME} in ${join(dir, '.dockerignore')}`)
      }
      files.push(entry)
    }
    if (!entry.directory) {
      // hl-cli keygen writes ./swarm.key, --state-dir may name a folder here: copied with the
      // service's files, the overlay's key or a peer's identity would be in an image that
      // everyone who may pull it can read (the identity: to join as that peer, an --admin one)
      const secret = await overlaySecret(entry.absolute).catch((err: unknown) => { throw fail(unreadable(entry.path, dir, err)) })
      if (secret != null) {
        throw fail(`${entry.path} is ${secret}: it would be in the image; move it out of ${dir}`)
      }
      return
    }
    const inner = new Set(within).add(entry.absolute)
    // read as bytes: a name that is not UTF-8 (a Latin-1 one from an old archive) comes back from
    // a string readdir with U+FFFD in it, a file that then does not exist
    const names = await readdir(entry.absolute, { encoding: 'buffer' }).catch((err: unknown) => { throw fail(unreadable(entry.path, dir, err)) })
    for (const raw of names.sort((a, b) => Buffer.compare(a, b))) {
      const child = raw.toString('utf8')
      const name = entry.path === '.' ? child : `${entry.path}/${child}`
      // left out: not read, not checked (a node_modules, a .git, a key kept beside the service)
      const excluded = exclusions.excludes(name)
      if (excluded && !exclusions.reincludes) {
        continue
      }
      if (!Buffer.from(child).equals(raw)) {
        const shown = [...raw].map(byte => byte < 0x80 ? String.fromCharCode(byte) : `\\x${byte.toString(16)}`).join('')
        throw fail(`${entry.path === '.' ? '' : `${entry.path}/`}${shown} has a name that is not UTF-8, which the build context cannot hold: rename it (convmv -f latin1 -t utf8) or move it out of ${dir}`)
      }
      let real = join(entry.absolute, child)
      // a folder that may be listed but not entered (r without x) lists names it cannot look at
      let info = await lstat(real).catch((err: unknown) => { throw fail(unreadable(name, dir, err)) })
      if (excluded && !info.isDirectory()) {
        continue
      }
      if (info.isSymbolicLink()) {
        real = await realpath(real).catch(() => { throw fail(`${name} is a broken symbolic link`) })
        if (!inside(root, real)) {
          throw fail(`${name} is a symbolic link out of the service folder ${dir} (to ${real})`)
        }
        info = await stat(real)
        if (info.isDirectory() && inner.has(real)) {
          throw fail(`${name} is a symbolic link to a folder that holds it (${real}): the copy would never end`)
        }
      }
      if (info.isDirectory() || info.isFile()) {
        await walk({ path: name, absolute: real, directory: info.isDirectory() }, inner, fail)
      }
    }
  }
}

/**
 * The problem of `name` (in the service folder `dir`) that this user may not read, and the ways
 * out: a raw EACCES names neither the Copy entry nor what to do.
 */
function unreadable (name: string, dir: string, err: unknown): string {
  const { code, message } = err as NodeJS.ErrnoException
  return `${name} cannot be read by this user (${code ?? message}): give this user read access to ${join(dir, name)} (chmod, chown) or run hl-cli as one who has it, or leave it out with a line ${name} in ${join(dir, '.dockerignore')}`
}

/** What a file that is neither a regular file nor a folder is, in words. */
function special (info: Stats): string {
  if (info.isFIFO()) {
    return 'a FIFO (named pipe)'
  }
  if (info.isSocket()) {
    return 'a socket'
  }
  return info.isCharacterDevice() ? 'a character device' : 'a block device'
}

/**
 * Larger files are not read to see whether they are a key: a swarm.key is 95 bytes, a libp2p
 * identity key 68 (Ed25519, what physarum makes) to some 2.4 KiB (RSA 4096).
 */
const MAX_KEY_BYTES = 4096

/** The overlay secret in the file at `path`, in words; undefined when it holds none. */
async function overlaySecret (path: string): Promise<string | undefined> {
  // larger: no key. One this user may not read is refused here, before anything is built
  const bytes = await readSmallFile(path, MAX_KEY_BYTES, 'key').catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'EACCES' || err.code === 'EPERM') {
      throw err
    }
    return undefined
  })
  if (bytes == null) {
    return undefined
  }
  try {
    PreSharedKey.fromSwarmKey(bytes.toString('utf8'))
    return 'an overlay key (a swarm.key)'
  } catch {
    // not a swarm.key
  }
  try {
    // a key as libp2p writes it, byte for byte: bytes that merely decode as one are no proof
    if (bytes.equals(privateKeyToProtobuf(privateKeyFromProtobuf(bytes)))) {
      return 'a peer\'s private key (an identity.key, as every physarum node and hl-cli keeps)'
    }
  } catch {
    // not a libp2p private key
  }
  return undefined
}

function inside (root: string, path: string): boolean {
  const rel = relative(root, path)
  return rel === '' || (rel !== '..' && !rel.startsWith(`..${sep}`) && !isAbsolute(rel))
}
