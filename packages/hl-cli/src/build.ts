import { createReadStream } from 'node:fs'
import { lstat } from 'node:fs/promises'
import { Readable, Transform } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { pack } from 'tar-stream'
import { DOCKERFILE_NAME } from './constants.ts'
import { BuildError } from './errors.ts'
import { formatBytes } from './progress.ts'
import type { ContextSource } from './image-conf.ts'
import type { Progress } from './progress.ts'
import type Docker from 'dockerode'

/** A fixed time for every entry: the context of the same files is the same bytes. */
const EPOCH = new Date(0)

/**
 * The build context: the generated Dockerfile and only the files the Copy entries name (folders
 * with everything in them the service folder's .dockerignore keeps), as loadImageConf found and
 * checked them. Files are streamed into it one after another as the engine takes the context,
 * so a large one (a model) is never in memory whole. A file that cannot be read fails the stream
 * with a BuildError naming it.
 */
export function createBuildContext (files: ContextSource[], dockerfile: string): Readable {
  const tar = pack()
  const write = async (): Promise<void> => {
    tar.entry({ name: DOCKERFILE_NAME, mode: 0o644, mtime: EPOCH }, dockerfile)
    for (const entry of files) {
      if (entry.path === '.') {
        continue
      }
      try {
        const info = await lstat(entry.absolute)
        if (entry.directory) {
          tar.entry({ name: entry.path, type: 'directory', mode: info.mode & 0o7777, mtime: EPOCH })
        } else {
          await pipeline(createReadStream(entry.absolute), tar.entry({ name: entry.path, mode: info.mode & 0o7777, mtime: EPOCH, size: info.size }))
        }
      } catch (err) {
        throw new BuildError(`Reading ${entry.path} for the build context failed: ${(err as Error).message}`)
      }
    }
    tar.finalize()
  }
  write().catch((err: Error) => { tar.destroy(err) })
  // a Node stream: the Docker client pipes it into its request
  return Readable.from(tar)
}

interface BuildMessage {
  stream?: string
  status?: string
  id?: string
  progressDetail?: { current?: number, total?: number }
  aux?: { ID?: string }
  error?: string
  errorDetail?: { message?: string }
}

export interface BuildOptions {
  /** The local name, `host[:port]/repository:tag`. */
  tag: string
  labels?: Record<string, string>
  /** The network of RUN steps (Docker's `--network`), e.g. `host` where the engine has no bridge. */
  network?: string
  signal?: AbortSignal
}

/** How often the bytes of the build context sent so far are told while the engine takes it. */
const CONTEXT_REPORT_MS = 2_000

/**
 * `context` as it goes to the engine, its bytes told to `progress`: every CONTEXT_REPORT_MS and
 * at its end. The engine says nothing until it has the whole context, which for a large file (a
 * model) takes a while.
 */
function countedContext (context: NodeJS.ReadableStream, progress: Progress): Transform {
  let sent = 0
  let told = Date.now()
  const counter = new Transform({
    transform (chunk: Buffer, _encoding, done) {
      sent += chunk.byteLength
      if (Date.now() - told >= CONTEXT_REPORT_MS) {
        told = Date.now()
        progress.line(`  Sending the build context: ${formatBytes(sent)}`)
      }
      done(null, chunk)
    },
    flush (done) {
      progress.line(`  Sent the build context: ${formatBytes(sent)}`)
      done()
    }
  })
  // a file that cannot be read ends the context with its BuildError, passed on to the engine's request
  pipeline(context, counter).catch(() => {})
  return counter
}

/** Builds the image from `context` and returns its id (`sha256:...`). Build output goes to `progress`. */
export async function buildImage (docker: Docker, context: NodeJS.ReadableStream, options: BuildOptions, progress: Progress): Promise<string> {
  let stream: NodeJS.ReadableStream
  try {
    stream = await docker.buildImage(countedContext(context, progress), {
      t: options.tag,
      dockerfile: DOCKERFILE_NAME,
      rm: true,
      forcerm: true,
      ...(options.network == null ? {} : { networkmode: options.network }),
      ...(options.labels == null ? {} : { labels: options.labels }),
      ...(options.signal == null ? {} : { abortSignal: options.signal })
    })
  } catch (err) {
    // the context's own failure (a file that cannot be read) is not the engine's
    throw err instanceof BuildError ? err : new BuildError(`The Docker engine refused the build: ${(err as Error).message}`)
  }
  let imageId: string | undefined
  let failure: string | undefined
  await new Promise<void>((resolve, reject) => {
    docker.modem.followProgress(stream, (err: Error | null) => { if (err != null) { reject(err) } else { resolve() } }, (message: BuildMessage) => {
      if (message.error != null || message.errorDetail?.message != null) {
        failure = message.errorDetail?.message ?? message.error
        return
      }
      if (message.aux?.ID != null) {
        imageId = message.aux.ID
      }
      if (message.stream != null) {
        for (const line of message.stream.split('\n')) {
          if (line.trim() !== '') {
            progress.line(`  ${line.trimEnd()}`)
          }
        }
      } else if (message.status != null) {
        // pulling the base image
        if (message.id != null) {
          progress.transfer(message.id, message.status, message.progressDetail?.current, message.progressDetail?.total)
        } else {
          progress.line(`  ${message.status}`)
        }
      }
    })
  }).catch((err: Error) => { throw new BuildError(`The build stopped: ${err.message}`) })
    // a stream that broke too: on a terminal its error would go on the end of the status line
    .finally(() => { progress.done() })
  if (failure != null) {
    throw new BuildError(`The build failed: ${failure}`)
  }
  if (imageId == null) {
    // older engines say "Successfully built <id>" only; ask for the tag
    imageId = (await docker.getImage(options.tag).inspect()).Id
  }
  return imageId
}
