import type { Readable } from 'node:stream'
import Docker from 'dockerode'
import { raceSignal } from 'race-signal'
import { ConfigError, formatDuration } from '@physarum/p2p'
import { dockerConfigAuth } from './docker-config.ts'
import { DockerError, ImageError } from './errors.ts'
import { DOCKER_CALL_TIMEOUT_MS, JSON_FILE_LOG_ROTATION, STREAM_STALL_MS } from './constants.ts'
import type { ContainerCreateOptions, ContainerInfo } from 'dockerode'

/** dockerode options for `--docker-host` (unix:///path, tcp://host:port, or a socket path). */
export function dockerOptions (host: string | undefined): Docker.DockerOptions {
  if (host == null || host === '') {
    return { socketPath: '/var/run/docker.sock' }
  }
  if (host.startsWith('unix://')) {
    return { socketPath: host.slice('unix://'.length) }
  }
  if (host.startsWith('/')) {
    return { socketPath: host }
  }
  const match = /^(tcp|http|https):\/\/([^:/]+|\[[^\]]+\]):(\d+)\/?$/.exec(host)
  if (match == null) {
    throw new ConfigError(`--docker-host: ${JSON.stringify(host)} is not unix:///path/docker.sock or tcp://host:port`)
  }
  const port = Number(match[3])
  if (port < 1 || port > 65535) {
    throw new ConfigError(`--docker-host: ${JSON.stringify(host)} has no port from 1 to 65535`)
  }
  return { protocol: match[1] === 'https' ? 'https' : 'http', host: match[2]!.replace(/^\[|\]$/g, ''), port }
}

interface StatusError extends Error {
  statusCode?: number
  json?: { message?: string }
  code?: string
  syscall?: string
}

function statusOf (err: unknown): number | undefined {
  return (err as StatusError).statusCode
}

function messageOf (err: unknown): string {
  const e = err as StatusError
  if (e instanceof Error && (e.name === 'TimeoutError' || e.name === 'AbortError')) {
    return `the engine did not answer in time (${e.message})`
  }
  if (e.code === 'EACCES' && e.syscall === 'connect') {
    return `${e.message}: this user may not use the engine's socket; run the allocator as root or in the socket's group (docker: usermod -aG docker <user>; its unit has SupplementaryGroups=docker)`
  }
  return (e.json?.message ?? e.message ?? String(err)).trim()
}

/** The image's registry host: the first path component of `host[:port]/repo@sha256:...`. */
export function registryHost (image: string): string {
  return image.split('/')[0]!
}

export interface ContainerEvent {
  id: string
  action: string
  labels: Record<string, string>
  exitCode?: number
}

export interface WatchHandlers {
  onEvent: (event: ContainerEvent) => void
  onError: (err: Error) => void
  /** The events stream is open again after it broke. */
  onReopen: () => void
}

/** The Docker engine as the allocator uses it: images by digest, labelled containers, events. */
export class DockerRuntime {
  readonly docker: Docker
  readonly #callTimeoutMs: number
  readonly #env: Record<string, string | undefined>

  /**
   * `callTimeoutMs`: the deadline of each call (default DOCKER_CALL_TIMEOUT_MS); `env`: where a
   * pull finds the Docker client's config (DOCKER_CONFIG, HOME) and what its credential helper
   * runs with, without physarum's settings (default process.env).
   */
  constructor (host?: string, options: { callTimeoutMs?: number, env?: Record<string, string | undefined> } = {}) {
    this.docker = new Docker(dockerOptions(host))
    this.#callTimeoutMs = options.callTimeoutMs ?? DOCKER_CALL_TIMEOUT_MS
    this.#env = options.env ?? process.env
  }

  /**
   * The deadline of one call to the engine: a wedged dockerd (or a half-open tcp:// connection)
   * must fail the call, not hold a cold start, and every Allocate waiting on it, for good.
   */
  #deadline (extraMs = 0): AbortSignal {
    return AbortSignal.timeout(this.#callTimeoutMs + extraMs)
  }

  async ping (signal: AbortSignal = this.#deadline()): Promise<void> {
    // dockerode's ping takes { abortSignal } as its other calls do; its types leave the options out
    const ping = this.docker.ping.bind(this.docker) as (options: { abortSignal?: AbortSignal }) => Promise<unknown>
    try {
      await ping({ abortSignal: signal })
    } catch (err) {
      throw new DockerError(`The Docker engine does not answer: ${messageOf(err)}`)
    }
  }

  async hasImage (ref: string): Promise<boolean> {
    try {
      // dockerode's image inspect takes no abort signal: the wait for it is cut instead
      await raceSignal(this.docker.getImage(ref).inspect(), this.#deadline())
      return true
    } catch (err) {
      if (statusOf(err) === 404) {
        return false
      }
      throw new DockerError(`Inspecting the image ${ref} failed: ${messageOf(err)}`)
    }
  }

  async imageLabels (ref: string): Promise<Record<string, string> | undefined> {
    try {
      const info = await raceSignal(this.docker.getImage(ref).inspect(), this.#deadline())
      return info.Config?.Labels ?? {}
    } catch (err) {
      if (statusOf(err) === 404) {
        return undefined
      }
      throw new DockerError(`Inspecting the image ${ref} failed: ${messageOf(err)}`)
    }
  }

  /**
   * Pulls `ref` (by digest) with the credentials of the Docker client's config (dockerConfigAuth);
   * ImageError when that config cannot be used (an anonymous pull would only fail later, as
   * unauthorized), when the registry does not have the image or refuses, when the engine reports
   * no progress for `stallMs` (a registry that stopped sending would otherwise hold the pull, and
   * every allocation waiting on it, for good), or when it has not finished within `timeoutMs`
   * (--pull-timeout: a registry that keeps sending a trickle never stalls).
   */
  async pull (ref: string, options: { signal?: AbortSignal, stallMs?: number, timeoutMs: number }): Promise<void> {
    const deadline = AbortSignal.timeout(options.timeoutMs)
    const ended = options.signal == null ? deadline : AbortSignal.any([options.signal, deadline])
    try {
      const auth = (await dockerConfigAuth(registryHost(ref), { env: this.#env, signal: ended }))?.auth
      await this.streamed(async (signal) => await this.docker.pull(ref, { ...(auth == null ? {} : { authconfig: auth }), abortSignal: signal }), {
        signal: ended,
        ...(options.stallMs == null ? {} : { stallMs: options.stallMs })
      })
    } catch (err) {
      const reason = deadline.aborted ? `not finished within ${formatDuration(options.timeoutMs)} (--pull-timeout): too slow a registry, or too large an image` : (err as Error).message
      throw new ImageError(`Pulling ${ref} failed: ${reason}`)
    }
    if (!await this.hasImage(ref)) {
      throw new ImageError(`Pulling ${ref} finished but the engine does not have it`)
    }
  }

  /**
   * Runs a streamed call (a pull, a build) to its end: `start` sends the request with the signal
   * given. It fails with the error an event of the stream reported, when `options.signal` aborts,
   * or when the engine sends nothing for `stallMs` (STREAM_STALL_MS), counted from the request: the
   * engine answers a pull only once it has the registry's manifest.
   */
  async streamed (start: (signal: AbortSignal) => Promise<NodeJS.ReadableStream>, options: { signal?: AbortSignal, stallMs?: number } = {}): Promise<void> {
    const stallMs = options.stallMs ?? STREAM_STALL_MS
    const stalled = new AbortController()
    let timer: NodeJS.Timeout | undefined
    const progressed = (): void => {
      clearTimeout(timer)
      timer = setTimeout(() => { stalled.abort(new Error(`no progress for ${stallMs} ms: the engine or the registry stopped sending`)) }, stallMs)
    }
    const signal = options.signal == null ? stalled.signal : AbortSignal.any([options.signal, stalled.signal])
    progressed()
    try {
      // dockerode's types say NodeJS.ReadableStream; it is the HTTP response, a Readable
      const stream = await start(signal) as Readable
      await new Promise<void>((resolve, reject) => {
        let failure: string | undefined
        const onAbort = (): void => { stream.destroy(signal.reason as Error) }
        signal.addEventListener('abort', onAbort, { once: true })
        this.docker.modem.followProgress(stream, (err: Error | null) => {
          signal.removeEventListener('abort', onAbort)
          if (err != null || failure != null) {
            reject(new Error(failure ?? messageOf(err)))
          } else {
            resolve()
          }
        }, (event: { error?: string, errorDetail?: { message?: string } }) => {
          progressed()
          if (event.error != null) {
            failure = event.errorDetail?.message ?? event.error
          }
        })
      })
    } catch (err) {
      throw new Error(stalled.signal.aborted ? (stalled.signal.reason as Error).message : messageOf(err), { cause: err })
    } finally {
      clearTimeout(timer)
    }
  }

  /** The engine's default log driver is json-file: asked once, again after a failed ask. */
  #jsonFileLogs?: Promise<boolean>

  /**
   * Creates a container; where the engine's default log driver is json-file, one that rotates
   * (JSON_FILE_LOG_ROTATION) unless `options` name a driver.
   */
  async create (options: ContainerCreateOptions): Promise<string> {
    let rotate = false
    if (options.HostConfig?.LogConfig == null) {
      if (this.#jsonFileLogs == null) {
        // dockerode's info takes { abortSignal } as its other calls do; its types leave the options out
        const info = this.docker.info.bind(this.docker) as (options: { abortSignal?: AbortSignal }) => Promise<{ LoggingDriver?: string }>
        this.#jsonFileLogs = info({ abortSignal: this.#deadline() }).then(answer => answer.LoggingDriver === 'json-file')
      }
      // not known: the engine's default, and the next create asks again
      rotate = await this.#jsonFileLogs.catch(() => { this.#jsonFileLogs = undefined; return false })
    }
    try {
      const hostConfig = rotate ? { ...options.HostConfig, LogConfig: { Type: 'json-file', Config: JSON_FILE_LOG_ROTATION } } : options.HostConfig
      const container = await this.docker.createContainer({ ...options, ...(hostConfig == null ? {} : { HostConfig: hostConfig }), abortSignal: this.#deadline() })
      return container.id
    } catch (err) {
      throw new DockerError(`Creating the container ${options.name ?? ''} failed: ${messageOf(err)}`)
    }
  }

  async start (id: string): Promise<void> {
    try {
      await this.docker.getContainer(id).start({ abortSignal: this.#deadline() })
    } catch (err) {
      if (statusOf(err) === 304) {
        return
      }
      throw new DockerError(`Starting the container ${id.slice(0, 12)} failed: ${messageOf(err)}`)
    }
  }

  /** Stops (SIGTERM, then SIGKILL after `timeoutS`); a container already stopped or gone is fine. */
  async stop (id: string, timeoutS: number): Promise<void> {
    try {
      await this.docker.getContainer(id).stop({ t: timeoutS, abortSignal: this.#deadline(timeoutS * 1000) })
    } catch (err) {
      if (statusOf(err) === 304 || statusOf(err) === 404) {
        return
      }
      throw new DockerError(`Stopping the container ${id.slice(0, 12)} failed: ${messageOf(err)}`)
    }
  }

  /** Stops (SIGTERM, then SIGKILL after `timeoutS`) and starts a container again. */
  async restart (id: string, timeoutS: number): Promise<void> {
    try {
      await this.docker.getContainer(id).restart({ t: timeoutS, abortSignal: this.#deadline(2 * timeoutS * 1000) })
    } catch (err) {
      throw new DockerError(`Restarting the container ${id.slice(0, 12)} failed: ${messageOf(err)}`)
    }
  }

  /** Removes a container whatever its state; one already gone is fine. */
  async remove (id: string): Promise<void> {
    try {
      await this.docker.getContainer(id).remove({ force: true, v: true, abortSignal: this.#deadline() })
    } catch (err) {
      if (statusOf(err) === 404 || (statusOf(err) === 409 && /already in progress/.test(messageOf(err)))) {
        return
      }
      throw new DockerError(`Removing the container ${id.slice(0, 12)} failed: ${messageOf(err)}`)
    }
  }

  async running (id: string): Promise<boolean> {
    try {
      const info = await this.docker.getContainer(id).inspect({ abortSignal: this.#deadline() })
      return info.State.Running
    } catch (err) {
      if (statusOf(err) === 404) {
        return false
      }
      throw new DockerError(`Inspecting the container ${id.slice(0, 12)} failed: ${messageOf(err)}`)
    }
  }

  /** Every container (running or not) carrying `label=value`. */
  async list (label: string, value: string): Promise<ContainerInfo[]> {
    try {
      return await this.docker.listContainers({ all: true, filters: { label: [`${label}=${value}`] }, abortSignal: this.#deadline() })
    } catch (err) {
      throw new DockerError(`Listing containers failed: ${messageOf(err)}`)
    }
  }

  /**
   * Calls `onEvent` for every container event of containers carrying `label=value` until the
   * signal aborts. The stream is opened again when it breaks (the engine restarted, the socket
   * closed), and `onReopen` is called then: what happened while it was down was sent to nobody.
   * With `since`, the first stream opened begins with the events from then on (from the whole
   * second before, as the engine counts them): what happened before the watch began is not missed.
   */
  watch (label: string, value: string, handlers: WatchHandlers, signal: AbortSignal, since?: Date): void {
    const { onEvent, onError, onReopen } = handlers
    const open = async (): Promise<void> => {
      let opened = false
      while (!signal.aborted) {
        try {
          const stream = await this.docker.getEvents({
            filters: { type: ['container'], label: [`${label}=${value}`], event: ['die', 'start', 'destroy'] },
            ...(opened || since == null ? {} : { since: Math.floor(since.getTime() / 1000) }),
            abortSignal: signal
          })
          if (opened) {
            onReopen()
          }
          opened = true
          await new Promise<void>((resolve) => {
            // the listener goes with its stream: a stream the engine ends is not kept alive by it
            const onAbort = (): void => { (stream as unknown as { destroy?: () => void }).destroy?.(); ended() }
            const ended = (): void => { signal.removeEventListener('abort', onAbort); resolve() }
            let buffer = ''
            stream.on('data', (chunk: Buffer) => {
              buffer += chunk.toString('utf8')
              let newline
              while ((newline = buffer.indexOf('\n')) >= 0) {
                const line = buffer.slice(0, newline).trim()
                buffer = buffer.slice(newline + 1)
                if (line === '') {
                  continue
                }
                try {
                  const raw = JSON.parse(line) as { id?: string, Action?: string, Actor?: { ID?: string, Attributes?: Record<string, string> } }
                  const attributes = raw.Actor?.Attributes ?? {}
                  const exitCode = attributes.exitCode == null ? undefined : Number(attributes.exitCode)
                  onEvent({ id: raw.Actor?.ID ?? raw.id ?? '', action: raw.Action ?? '', labels: attributes, ...(exitCode == null ? {} : { exitCode }) })
                } catch (err) {
                  onError(err as Error)
                }
              }
            })
            stream.on('error', ended)
            stream.on('end', ended)
            stream.on('close', ended)
            signal.addEventListener('abort', onAbort, { once: true })
          })
        } catch (err) {
          if (!signal.aborted) {
            onError(new DockerError(`Watching Docker events failed: ${messageOf(err)}`))
          }
        }
        if (!signal.aborted) {
          await new Promise(resolve => setTimeout(resolve, 500))
        }
      }
    }
    void open()
  }
}
