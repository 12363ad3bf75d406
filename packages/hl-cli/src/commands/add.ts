import { resolve } from 'node:path'
import { NODE_OPTION_NAMES, parseNumber } from '@physarum/p2p'
import { InvalidRecordError, MAX_CPU, MAX_MEMORY_MB, MIN_CPU, MIN_MEMORY_MB, validateName, validateRecord } from '@physarum/registry-service'
import Docker from 'dockerode'
import { buildImage, createBuildContext } from '../build.ts'
import { DEFAULT_FROM, DEFAULT_TIMEOUT_MS } from '../constants.ts'
import { generateDockerfile } from '../dockerfile.ts'
import { DockerUnavailableError, UsageError } from '../errors.ts'
import { BASE_IMAGE, loadImageConf, readImageConf } from '../image-conf.ts'
import { imageByDigest, parseImageRef } from '../image-ref.ts'
import { printJson, runCommand } from '../output.ts'
import { explainRegistryError, openOverlay, unansweredWrite, withOverlayOptions } from '../overlay.ts'
import { createProgress } from '../progress.ts'
import { pushImage, remoteDigest, resolveRegistryAuth } from '../push.ts'
import { readSecret } from '../secret.ts'
import type { Overlay, OverlayArgs } from '../overlay.ts'
import type { ServiceRecordInput } from '@physarum/registry-service'
import type { Argv } from 'yargs'

interface AddArgs extends OverlayArgs {
  'image-conf': string
  dir: string
  'image-name': string
  'service-name': string
  'no-add'?: boolean
  'use-existing-image'?: boolean
  'content-id'?: string
  from?: string
  'build-network'?: string
  cpu?: string
  'memory-mb'?: string
  'registry-user'?: string
  'registry-password-stdin'?: boolean
  quiet?: boolean
}

/** `add --json`: what was built, pushed and registered. */
export interface AddSummary {
  name: string
  /** `host[:port]/repository@sha256:<digest>`. */
  image: string
  digest: string
  contentHash: string
  /** The local image id, when built here. */
  imageId?: string
  registered: boolean
  /** The registry-service tried first (lowest RTT) when registered. */
  registryPeer?: string
  revision?: string
}

export const command = 'add <image-conf> <dir> <image-name> <service-name>'
export const describe = 'Build a service image from a folder, push it to an image registry, and register the service'

export function builder (yargs: Argv): Argv<AddArgs> {
  return withOverlayOptions(yargs)
    .positional('image-conf', { type: 'string', demandOption: true, describe: 'The service\'s image-conf.json (the seed\'s format)' })
    .positional('dir', { type: 'string', demandOption: true, describe: 'The folder the Copy sources are in' })
    .positional('image-name', { type: 'string', demandOption: true, describe: 'Image to build and push: [host[:port]/]repository[:tag], e.g. 127.0.0.1:5000/hello:1.0' })
    .positional('service-name', { type: 'string', demandOption: true, describe: 'The name the service is registered and requested under, e.g. hello-world-server' })
    .option('no-add', { type: 'boolean', describe: 'Build and push only; do not register or join the overlay (--cpu, --memory-mb and --content-id, which only the record has, and the overlay options are refused with it)' })
    .option('use-existing-image', { type: 'boolean', describe: 'Skip the build: push the local image of that name, or use the one already in its registry (<dir> and the Copy sources are not read)' })
    .option('content-id', { type: 'string', describe: 'The content hash to register instead of the one computed from the image digest' })
    .option('from', { type: 'string', describe: `Base image instead of DockerConf.From [default: DockerConf.From, else ${DEFAULT_FROM}]` })
    .option('build-network', { type: 'string', describe: 'Network for the Run steps (docker build --network), e.g. host on an engine without a bridge' })
    .option('cpu', { type: 'string', defaultDescription: '0', describe: `CPU cores for one instance: 0 (no limit) or ${MIN_CPU} to ${MAX_CPU}` })
    .option('memory-mb', { type: 'string', defaultDescription: '0', describe: `Memory for one instance in MiB: 0 (no limit) or ${MIN_MEMORY_MB} to ${MAX_MEMORY_MB}` })
    .option('registry-user', { type: 'string', describe: 'Image registry user (env PHYSARUM_REGISTRY_USER) [default: from the Docker config file]' })
    .option('registry-password-stdin', { type: 'boolean', describe: 'Read the image registry password from stdin: to its end from a pipe or file (printf %s "$PW" | hl-cli add ...), one line typed on a terminal (env PHYSARUM_REGISTRY_PASSWORD)' })
    .option('quiet', { type: 'boolean', describe: 'No progress on stderr' })
    .group(['no-add', 'use-existing-image', 'content-id', 'from', 'build-network', 'cpu', 'memory-mb'], 'Build and register:')
    .group(['registry-user', 'registry-password-stdin'], 'Image registry:')
    .example('PHYSARUM_PSK=... $0 add demos/helloworld/image-conf.json demos/helloworld 127.0.0.1:5000/hello:1.0 hello-world-server -bootstrap /ip4/10.0.0.9/tcp/4001/p2p/12D3KooW...', 'Build, push and register the hello world demo')
    .example('$0 add image-conf.json . registry.example.com/team/calc:1.1 calc-server:1.1 --no-add', 'Build and push only')
    .epilogue([
      'The image: FROM DockerConf.From (or --from), WORKDIR /app, each Copy (sources relative to <dir>; only those files go to the engine, less what <dir>/.dockerignore leaves out, by Docker\'s rules: exclusions, ! re-inclusions, * ? and **; a Copy source left out is refused), each Run, and the Cmd run by /bin/sh -c so $SERVICE_PORT expands when the container starts. Labels: org.opencontainers.image.* and io.physarum.image.*.',
      '',
      'The record: the image by digest (host[:port]/repository@sha256:...), the RTTs of PerfConf.Perf, --cpu, --memory-mb, DockerConf.ProxyClientMode, and the content hash: the hex SHA-256 of the image manifest as pushed (the digest without "sha256:"), so it changes exactly when the image does; --content-id overrides it.',
      '',
      'Image registry credentials: --registry-user with --registry-password-stdin (or PHYSARUM_REGISTRY_PASSWORD), else PHYSARUM_REGISTRY_USER and PHYSARUM_REGISTRY_PASSWORD (the password alone, or an empty one, is refused), else the Docker config file ($DOCKER_CONFIG/config.json or ~/.docker/config.json, credential helpers included), else none. hl-cli never prompts unless stdin is a terminal and --registry-password-stdin is given. The Docker engine is DOCKER_HOST (default /var/run/docker.sock).',
      '',
      'Order: the config, flags and record are checked, then the Docker engine is asked whether it runs, then the overlay is joined, a registry-service found and asked whether this hl-cli may write (unless --no-add), then the image is built and pushed, and only then is the record written: a failure at any step leaves no record behind. Progress goes to stderr (plain lines when it is not a terminal); the summary (or --json) to stdout.',
      '',
      'Exit codes: 0 done, 1 failure, 2 usage or a bad image-conf.json, 130 Ctrl-C at the password prompt.'
    ].join('\n'))
    .strictOptions()
}

function parseResource (flag: string, text: string, min: number, max: number, integer: boolean): number {
  const value = parseNumber(flag, text, 0, integer)
  // below the minimum every engine refuses to start the container, after the image was pulled
  if (value !== 0 && (value < min || value > max)) {
    throw new UsageError(`${flag}: ${JSON.stringify(text)} is not 0 (no limit) or ${integer ? 'a whole number' : 'a number'} from ${min} to ${max}`)
  }
  return value
}

/** The options of withOverlayOptions that only joining the overlay uses (not --json); and --timeout. */
const OVERLAY_FLAGS = [...NODE_OPTION_NAMES, 'registry-id', 'registry'] as const

/** The flag or argument each field of the record comes from; the image-conf.json's were checked with it. */
const RECORD_SOURCES: Record<string, string> = { name: '<service-name>', contentHash: '--content-id', image: '<image-name>', cpu: '--cpu', memoryMb: '--memory-mb' }

/** Checks the record as the registry will: a record it refuses is refused before the build and the push. */
function checkRecord (record: ServiceRecordInput): void {
  try {
    validateRecord(record)
  } catch (err) {
    if (err instanceof InvalidRecordError) {
      throw new UsageError(`${RECORD_SOURCES[err.field] ?? err.field}: the record's ${err.message}`)
    }
    throw err
  }
}

export async function handler (args: AddArgs): Promise<void> {
  await runCommand(async () => {
    const adding = args['no-add'] !== true
    // everything about the input first: nothing is built or pushed for a mistake in it
    const ref = parseImageRef(args['image-name'])
    const service = validateName(args['service-name'], '<service-name>')
    // what only the record holds: with --no-add it would be dropped without a word
    for (const flag of ['cpu', 'memory-mb', 'content-id'] as const) {
      if (!adding && args[flag] != null) {
        throw new UsageError(`--${flag}: only the registry's record has it, and --no-add writes none; leave one of them out`)
      }
    }
    // what only joining the overlay uses: --no-add joins none. --timeout has a default, which
    // the parser gives in its place: one given at that value would change nothing anyway
    const overlayFlags = [...OVERLAY_FLAGS.filter(flag => args[flag] != null), ...(args.timeout === DEFAULT_TIMEOUT_MS ? [] : ['timeout'])]
    if (!adding && overlayFlags.length > 0) {
      throw new UsageError(`--${overlayFlags[0]!}: only joining the overlay uses it, and --no-add joins none; leave one of them out`)
    }
    const cpu = parseResource('--cpu', args.cpu ?? '0', MIN_CPU, MAX_CPU, false)
    const memoryMb = parseResource('--memory-mb', args['memory-mb'] ?? '0', MIN_MEMORY_MB, MAX_MEMORY_MB, true)
    if (args['content-id'] != null && !/^[A-Za-z0-9][A-Za-z0-9._:+=-]{0,127}$/.test(args['content-id'])) {
      throw new UsageError(`--content-id: ${JSON.stringify(args['content-id'])} may hold only letters, digits and . _ : + = - (at most 128)`)
    }
    // an image that is not built has no base and no build network: taking them silently would
    // register the old image as if they had been used
    for (const flag of ['from', 'build-network'] as const) {
      if (args['use-existing-image'] === true && args[flag] != null) {
        throw new UsageError(`--${flag}: nothing is built with --use-existing-image; leave one of them out`)
      }
    }
    if (args.from != null && !BASE_IMAGE.test(args.from)) {
      throw new UsageError(`--from: ${JSON.stringify(args.from)} is not an image reference (e.g. ${DEFAULT_FROM})`)
    }
    const confFile = resolve(args['image-conf'])
    const dir = resolve(args.dir)
    // an image that is not built needs none of the files: it may be registered from another host
    const { conf, sources, files } = args['use-existing-image'] === true
      ? { conf: await readImageConf(args['image-conf']), sources: [], files: [] }
      : await loadImageConf(args['image-conf'], dir)
    const recordFor = (digest: string): ServiceRecordInput => ({
      name: service,
      contentHash: args['content-id'] ?? digest.slice('sha256:'.length),
      image: imageByDigest(ref, digest),
      softRttMs: conf.softRttMs,
      hardRttMs: conf.hardRttMs,
      cpu,
      memoryMb,
      proxyClientMode: conf.proxyClientMode
    })
    if (adding) {
      // with a stand-in digest: the pushed image's has the same form
      checkRecord(recordFor(`sha256:${'0'.repeat(64)}`))
    }
    const auth = await resolveRegistryAuth(ref.host, {
      ...(args['registry-user'] == null ? {} : { user: args['registry-user'] }),
      ...(args['registry-password-stdin'] === true ? { readPassword: async () => await readSecret(`Password for ${ref.host}: `) } : {}),
      env: process.env
    })
    // before the overlay: an engine that is down is told at once, not after the registry's answer
    const docker = new Docker()
    try {
      await docker.ping()
    } catch (err) {
      const { code, message } = err as NodeJS.ErrnoException
      // a running engine whose socket this user may not open: not a stopped dockerd
      throw new DockerUnavailableError(code === 'EACCES'
        ? `This user may not use the Docker engine's socket (${message}): run hl-cli as root or as a member of the socket's group (docker: usermod -aG docker <user>, then log in again)`
        : `The Docker engine cannot be reached (${message}); is dockerd running, and DOCKER_HOST right?`)
    }
    const progress = createProgress({ out: process.stderr, quiet: args.quiet === true })

    let overlay: Overlay | undefined
    try {
      let registryPeer: string | undefined
      if (adding) {
        progress.line('Joining the overlay')
        overlay = await openOverlay(args, process.env, conf.bootstraps)
        // the search has deadlines of its own (--timeout for the DHT, 2 s for each RTT); one that
        // answers no ping is still ranked, last, and the write's --timeout tells what became of it
        const ranked = await overlay.client.registries()
        registryPeer = ranked[0]?.peerId.toString()
        progress.line(`Registry-service: ${registryPeer ?? '?'}${ranked[0]?.rttMs == null ? '' : ` (${ranked[0].rttMs.toFixed(1)} ms)`}`)
        // the write comes after the build and the push: a refusal then would waste both. A
        // registry from before this question cannot tell, and the write says it as before
        await overlay.client.mayWrite({ signal: AbortSignal.timeout(args.timeout) }).catch((err: unknown) => {
          throw explainRegistryError(err, overlay?.node.peerId)
        })
      }

      let imageId: string | undefined
      let digest: string
      if (args['use-existing-image'] === true) {
        const local = await docker.getImage(ref.local).inspect().catch(() => undefined)
        if (local == null) {
          progress.line(`Using ${ref.local} from ${ref.host}`)
          digest = await remoteDigest(docker, ref, auth)
        } else {
          imageId = local.Id
          progress.line(`Pushing the existing ${ref.local} to ${ref.host}`)
          digest = await pushImage(docker, ref, auth, progress)
        }
      } else {
        const dockerfile = generateDockerfile(conf, { service, version: ref.tag, ...(args.from == null ? {} : { from: args.from }) })
        progress.line(`Building ${ref.local} from ${confFile} (${sources.length} Copy source(s))`)
        const context = createBuildContext(files, dockerfile)
        imageId = await buildImage(docker, context, { tag: ref.local, ...(args['build-network'] == null ? {} : { network: args['build-network'] }) }, progress)
        progress.line(`Pushing ${ref.local} to ${ref.host}`)
        digest = await pushImage(docker, ref, auth, progress)
      }
      const record = recordFor(digest)
      const { image, contentHash } = record

      const summary: AddSummary = { name: service, image, digest, contentHash, ...(imageId == null ? {} : { imageId }), registered: false }
      if (overlay != null) {
        progress.line(`Registering ${service}`)
        const stored = await overlay.client.add(record, { signal: AbortSignal.timeout(args.timeout) }).catch((err: unknown) => {
          const unanswered = unansweredWrite(err, args.timeout)
          if (unanswered != null) {
            throw new Error(`${image} is pushed, but registering ${service} ended with ${unanswered}: the record may have been written or not. See with hl-cli get ${service}; hl-cli add again registers it (the push finds the image there)`)
          }
          throw explainRegistryError(err, overlay?.node.peerId)
        })
        summary.registered = true
        summary.revision = stored.revision
        if (registryPeer != null) {
          summary.registryPeer = registryPeer
        }
      }
      if (args.json === true) {
        printJson(summary)
      } else {
        process.stdout.write([
          `name:          ${summary.name}`,
          `image:         ${summary.image}`,
          `content hash:  ${summary.contentHash}`,
          summary.registered ? `registry peer: ${summary.registryPeer ?? '?'}` : 'registered:    no (--no-add)'
        ].join('\n') + '\n')
      }
    } finally {
      await overlay?.close()
    }
  })
}
