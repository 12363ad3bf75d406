/**
 * Registry credentials as the Docker client finds them: the one reader of its config file, for
 * the allocator's pulls and hl-cli's pushes, so that an image one can push the other can pull.
 */

import { execFile } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import { homedir } from 'node:os'
import { join } from 'node:path'
import { nonEmpty } from '@physarum/p2p'
import { childEnv, PHYSARUM_ENV } from '@physarum/registry-service'
import { CREDENTIAL_HELPER_TIMEOUT_MS } from './constants.ts'
import { DockerConfigError } from './errors.ts'

export { DockerConfigError } from './errors.ts'

/** Credentials for one image registry, as the Docker engine takes them (X-Registry-Auth). */
export interface RegistryAuth {
  username?: string
  password?: string
  identitytoken?: string
  serveraddress: string
}

/** Which part of the Docker client's config gave the credentials. */
export type DockerConfigSource = 'docker-config' | 'credential-helper'

export interface DockerConfigAuthOptions {
  /** DOCKER_CONFIG and HOME find the file; a credential helper runs with it, without physarum's settings. */
  env: Record<string, string | undefined>
  /** Ends a credential helper that is still running. */
  signal?: AbortSignal
}

interface DockerConfig {
  auths?: Record<string, { auth?: string, username?: string, password?: string, identitytoken?: string }>
  credsStore?: string
  credHelpers?: Record<string, string>
}

/** The names an image reference gives Docker Hub. */
const HUB_HOSTS = ['docker.io', 'index.docker.io', 'registry-1.docker.io']
/** Docker Hub's key in config.json, as `docker login` writes it, and the server its credential helper is asked for. */
const HUB_SERVER = 'https://index.docker.io/v1/'

/** The server address the Docker client uses for `host`: Docker Hub's v1 index URL, else the host. */
export function registryServerAddress (host: string): string {
  return HUB_HOSTS.includes(host) ? HUB_SERVER : host
}

/** `127.0.0.1:5000` of `https://127.0.0.1:5000/v2/`. */
function keyHost (key: string): string {
  return key.replace(/^[a-z]+:\/\//i, '').replace(/\/.*$/, '')
}

/** The entry for `host`: its exact key first, then any key naming the same host (with a scheme or a path). */
function entryFor<T> (entries: Record<string, T> | undefined, host: string): T | undefined {
  if (entries == null || typeof entries !== 'object') {
    return undefined
  }
  const server = registryServerAddress(host)
  if (Object.hasOwn(entries, server)) {
    return entries[server]
  }
  const hosts = HUB_HOSTS.includes(host) ? HUB_HOSTS : [host]
  return Object.entries(entries).find(([key]) => hosts.includes(keyHost(key)))?.[1]
}

/**
 * The credentials the Docker client would use for `host`, from $DOCKER_CONFIG/config.json, else
 * ~/.docker/config.json (an empty DOCKER_CONFIG is unset, as the Docker client takes it):
 * `credHelpers`, else `credsStore` (running `docker-credential-<helper> get`), then `auths` (base64
 * user:password, user and password, or an identity token). Undefined when the file does not exist
 * or has none for `host`. DockerConfigError when the file cannot be read or is not valid JSON, when
 * an `auth` is not user:password, or when a credential helper fails; its message never quotes the
 * file or the helper's answer: they hold secrets.
 */
export async function dockerConfigAuth (host: string, options: DockerConfigAuthOptions): Promise<{ auth: RegistryAuth, source: DockerConfigSource } | undefined> {
  const { env } = options
  const configPath = join(nonEmpty(env.DOCKER_CONFIG) ?? join(nonEmpty(env.HOME) ?? homedir(), '.docker'), 'config.json')
  let config: DockerConfig
  try {
    config = JSON.parse(await readFile(configPath, 'utf8')) as DockerConfig
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      return undefined
    }
    // V8's words for bad JSON quote the text around the error: the credentials in the file
    const why = err instanceof SyntaxError ? 'it is not valid JSON' : (err as Error).message
    throw new DockerConfigError(`The Docker config file ${configPath} cannot be read: ${why}`)
  }
  if (config == null || typeof config !== 'object' || Array.isArray(config)) {
    throw new DockerConfigError(`The Docker config file ${configPath} cannot be read: it is not a JSON object`)
  }
  const serveraddress = registryServerAddress(host)
  const helper = entryFor(config.credHelpers, host) ?? config.credsStore
  if (typeof helper === 'string' && helper !== '') {
    const fromHelper = await credentialHelper(helper, serveraddress, options)
    if (fromHelper != null) {
      return { auth: { ...fromHelper, serveraddress }, source: 'credential-helper' }
    }
  }
  const entry = entryFor(config.auths, host)
  if (entry == null) {
    return undefined
  }
  if (typeof entry.identitytoken === 'string' && entry.identitytoken !== '') {
    return { auth: { identitytoken: entry.identitytoken, serveraddress }, source: 'docker-config' }
  }
  if (typeof entry.auth === 'string' && entry.auth !== '') {
    const decoded = Buffer.from(entry.auth, 'base64').toString('utf8')
    const colon = decoded.indexOf(':')
    if (colon < 0) {
      throw new DockerConfigError(`${configPath}: auths.${host}.auth is not base64 of user:password`)
    }
    return { auth: { username: decoded.slice(0, colon), password: decoded.slice(colon + 1), serveraddress }, source: 'docker-config' }
  }
  if (typeof entry.username === 'string' && typeof entry.password === 'string') {
    return { auth: { username: entry.username, password: entry.password, serveraddress }, source: 'docker-config' }
  }
  return undefined
}

/**
 * Asks `docker-credential-<helper>` for `server`'s credentials; undefined when it has none. The
 * helper, someone else's program, gets the environment without physarum's settings: not the
 * overlay's key.
 */
async function credentialHelper (helper: string, server: string, options: DockerConfigAuthOptions): Promise<{ username?: string, password?: string, identitytoken?: string } | undefined> {
  const program = `docker-credential-${helper}`
  const env = childEnv(options.env, name => !PHYSARUM_ENV.test(name))
  const output = await new Promise<string | undefined>((resolve, reject) => {
    const child = execFile(program, ['get'], { timeout: CREDENTIAL_HELPER_TIMEOUT_MS, env, ...(options.signal == null ? {} : { signal: options.signal }) }, (err, stdout) => {
      if (err == null) {
        resolve(stdout)
      } else if (/credentials not found/i.test(stdout) || /credentials not found/i.test(String((err as { stderr?: string }).stderr ?? ''))) {
        resolve(undefined)
      } else {
        reject(new DockerConfigError(`The Docker credential helper ${program} failed for ${server}: ${err.message}`))
      }
    })
    // a helper that exits without reading its input makes the write fail (EPIPE): its exit
    // status, above, tells what went wrong
    child.stdin?.on('error', () => {})
    child.stdin?.end(server)
  })
  if (output == null) {
    return undefined
  }
  let answer: { Username?: string, Secret?: string } | null
  try {
    answer = JSON.parse(output) as { Username?: string, Secret?: string } | null
  } catch {
    answer = null
  }
  if (answer == null || typeof answer !== 'object') {
    // never quoted: the output holds the secret
    throw new DockerConfigError(`The Docker credential helper ${program} answered something other than JSON credentials for ${server}`)
  }
  const { Username, Secret } = answer
  // a helper answers the user name "<token>" for an identity token
  return Username === '<token>' ? { identitytoken: Secret ?? '' } : { username: Username ?? '', password: Secret ?? '' }
}
