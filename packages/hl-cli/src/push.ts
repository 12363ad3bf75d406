import { dockerConfigAuth, DockerConfigError, registryServerAddress } from '@physarum/allocator/docker-config'
import { PushError, UsageError } from './errors.ts'
import type { ImageRef } from './image-ref.ts'
import type { Progress } from './progress.ts'
import type { DockerConfigSource, RegistryAuth } from '@physarum/allocator/docker-config'
import type Docker from 'dockerode'

export type { RegistryAuth } from '@physarum/allocator/docker-config'

export interface AuthSources {
  /** `--registry-user`. */
  user?: string
  /**
   * Reads the password from stdin (`--registry-password-stdin`); called only once the user name
   * is known, so that nobody types a password for a command that is then refused.
   */
  readPassword?: () => Promise<string>
  /** PHYSARUM_REGISTRY_USER, PHYSARUM_REGISTRY_PASSWORD, DOCKER_CONFIG, HOME; a credential helper runs with it, without physarum's settings. */
  env: Record<string, string | undefined>
}

/** Where the credentials came from, for the output (never the credentials). */
export type AuthSource = 'flags' | 'env' | DockerConfigSource | 'none'

/**
 * The credentials for `host`: `--registry-user` with the password from stdin (or
 * PHYSARUM_REGISTRY_PASSWORD), else PHYSARUM_REGISTRY_USER and PHYSARUM_REGISTRY_PASSWORD, else
 * the Docker config file as the allocator reads it for its pulls (dockerConfigAuth:
 * $DOCKER_CONFIG/config.json or ~/.docker/config.json, credHelpers, credsStore, then auths), else
 * none (anonymous push). Never prompts. UsageError when the Docker config file cannot be used.
 */
export async function resolveRegistryAuth (host: string, sources: AuthSources): Promise<{ auth: RegistryAuth, source: AuthSource }> {
  const serveraddress = registryServerAddress(host)
  const envUser = sources.env.PHYSARUM_REGISTRY_USER
  const envPassword = sources.env.PHYSARUM_REGISTRY_PASSWORD
  if (sources.readPassword != null || sources.user != null) {
    const user = sources.user ?? envUser
    if (user == null || user === '') {
      throw new UsageError('--registry-password-stdin: give the user name with --registry-user (or PHYSARUM_REGISTRY_USER)')
    }
    const password = sources.readPassword == null ? envPassword : await sources.readPassword()
    if (password == null) {
      throw new UsageError('--registry-user: give the password on stdin with --registry-password-stdin (or set PHYSARUM_REGISTRY_PASSWORD)')
    }
    if (password === '') {
      throw new UsageError(`${sources.readPassword == null ? 'PHYSARUM_REGISTRY_PASSWORD' : '--registry-password-stdin'}: the password is empty`)
    }
    return { auth: { username: user, password, serveraddress }, source: 'flags' }
  }
  if (envUser != null && envUser !== '') {
    // an empty one as the flags' path refuses it: sent, it would fail only after the build
    if (envPassword == null || envPassword === '') {
      throw new UsageError(`PHYSARUM_REGISTRY_USER is set but PHYSARUM_REGISTRY_PASSWORD is ${envPassword == null ? 'not' : 'empty'}`)
    }
    return { auth: { username: envUser, password: envPassword, serveraddress }, source: 'env' }
  }
  if (envPassword != null && envPassword !== '') {
    throw new UsageError('PHYSARUM_REGISTRY_PASSWORD is set but no user: set PHYSARUM_REGISTRY_USER or give --registry-user')
  }

  try {
    return await dockerConfigAuth(host, { env: sources.env }) ?? { auth: { serveraddress }, source: 'none' }
  } catch (err) {
    // the file or its helper is the user's to fix: nothing was tried yet
    throw err instanceof DockerConfigError ? new UsageError(err.message) : err
  }
}

interface PushMessage {
  status?: string
  id?: string
  progressDetail?: { current?: number, total?: number }
  aux?: { Tag?: string, Digest?: string, Size?: number }
  error?: string
  errorDetail?: { message?: string }
}

const DIGEST = /^sha256:[0-9a-f]{64}$/

function explain (message: string, ref: ImageRef, source: AuthSource): string {
  if (/unauthorized|authentication required|denied|no basic auth credentials|credentials/i.test(message)) {
    return `${message} (credentials: ${source === 'none' ? 'none found' : source}; give --registry-user and --registry-password-stdin, set PHYSARUM_REGISTRY_USER and PHYSARUM_REGISTRY_PASSWORD, or docker login ${ref.host})`
  }
  if (/connection refused|no such host|i\/o timeout|dial tcp|server gave HTTP response to HTTPS client/i.test(message)) {
    return `${message} (is the image registry ${ref.host} running and reachable from the Docker engine?)`
  }
  return message
}

/**
 * Pushes the local image `ref.local` to its registry and returns the manifest digest the registry
 * gave it. Layer states and bytes go to `progress`.
 */
export async function pushImage (docker: Docker, ref: ImageRef, auth: { auth: RegistryAuth, source: AuthSource }, progress: Progress, signal?: AbortSignal): Promise<string> {
  let stream: NodeJS.ReadableStream
  try {
    stream = await docker.getImage(ref.localRepository).push({ tag: ref.tag, authconfig: auth.auth, ...(signal == null ? {} : { abortSignal: signal }) })
  } catch (err) {
    throw new PushError(`Cannot push ${ref.local}: ${explain((err as Error).message, ref, auth.source)}`)
  }
  let digest: string | undefined
  let failure: string | undefined
  await new Promise<void>((resolve, reject) => {
    docker.modem.followProgress(stream, (err: Error | null) => { if (err != null) { reject(err) } else { resolve() } }, (message: PushMessage) => {
      if (message.error != null || message.errorDetail?.message != null) {
        failure = message.errorDetail?.message ?? message.error
        return
      }
      if (message.aux?.Digest != null && DIGEST.test(message.aux.Digest)) {
        digest = message.aux.Digest
      }
      if (message.status == null) {
        return
      }
      const inline = /digest: (sha256:[0-9a-f]{64})/.exec(message.status)
      if (inline != null) {
        digest ??= inline[1]
      }
      if (message.id != null && inline == null && !message.status.startsWith('The push refers to')) {
        progress.transfer(message.id, message.status, message.progressDetail?.current, message.progressDetail?.total)
      } else {
        progress.line(`  ${message.status}`)
      }
    })
  }).catch((err: Error) => { throw new PushError(`The push of ${ref.local} stopped: ${explain(err.message, ref, auth.source)}`) })
    // a stream that broke too: on a terminal its error would go on the end of the status line
    .finally(() => { progress.done() })
  if (failure != null) {
    throw new PushError(`The push of ${ref.local} failed: ${explain(failure, ref, auth.source)}`)
  }
  if (digest == null) {
    throw new PushError(`The push of ${ref.local} ended without a manifest digest from ${ref.host}`)
  }
  return digest
}

/**
 * The manifest digest of `ref` in its registry, asked through the Docker engine (the engine's
 * TLS and insecure-registry settings apply), for `--use-existing-image` when the image is not local.
 */
export async function remoteDigest (docker: Docker, ref: ImageRef, auth: { auth: RegistryAuth, source: AuthSource }): Promise<string> {
  try {
    const info = await docker.getImage(ref.local).distribution({ authconfig: auth.auth })
    const digest = info.Descriptor?.digest
    if (digest == null || !DIGEST.test(digest)) {
      throw new Error(`the registry answered no sha256 digest (${String(digest)})`)
    }
    return digest
  } catch (err) {
    throw new PushError(`${ref.local} is neither a local image nor found in ${ref.host}: ${explain((err as Error).message, ref, auth.source)}`)
  }
}
