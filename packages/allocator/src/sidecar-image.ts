import { createHash } from 'node:crypto'
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { build } from 'esbuild'
import { pack } from 'tar-stream'
import { PHYSARUM_VERSION } from '@physarum/p2p'
import { BULK_SETTINGS } from '@physarum/p2p/node-settings'
import { LABELS, SIDECAR_REPOSITORY } from './constants.ts'
import { SidecarImageError } from './errors.ts'
import type { DockerRuntime } from './docker.ts'

/** The proxy package's CLI in this workspace: the sidecar is its `--sidecar` mode. */
export const DEFAULT_SIDECAR_ENTRY = fileURLToPath(new URL('../../proxy/src/main.ts', import.meta.url))
export const SIDECAR_TAG = `${SIDECAR_REPOSITORY}:${PHYSARUM_VERSION}`
const BUNDLE_PATH = '/opt/physarum/sidecar.mjs'

export interface SidecarImageInit {
  /** The image built FROM (--node-image). */
  nodeImage: string
  /** The proxy CLI's entry (TypeScript or JavaScript), bundled into one file. */
  entry?: string
  tag?: string
  /** Ends the build. */
  signal?: AbortSignal
}

export interface SidecarImage {
  tag: string
  /** sha256 of the bundle, the image's settings and the base image's name: an image with another is rebuilt. */
  bundleHash: string
  built: boolean
}

/**
 * Bundles the proxy CLI into one ES module (importing libp2p from node_modules costs about
 * 285 ms at each start, a bundle about 30 ms); pino-pretty stays out (a container has no TTY).
 */
export async function bundleSidecar (entry = DEFAULT_SIDECAR_ENTRY): Promise<Uint8Array> {
  if (!existsSync(entry)) {
    throw new SidecarImageError(`The sidecar entry ${entry} does not exist: give --sidecar-entry (the proxy package's src/main.ts) or --sidecar-image`)
  }
  try {
    const result = await build({
      entryPoints: [entry],
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node22',
      write: false,
      outfile: 'sidecar.mjs',
      external: ['pino-pretty'],
      // CommonJS dependencies call require(): give the bundle one
      banner: { js: 'import { createRequire as __physarumRequire } from \'node:module\'; const require = __physarumRequire(import.meta.url);' },
      logLevel: 'silent',
      legalComments: 'none',
      minifyWhitespace: true,
      minifySyntax: true
    })
    return result.outputFiles[0]!.contents
  } catch (err) {
    throw new SidecarImageError(`Bundling the sidecar from ${entry} failed: ${(err as Error).message}`)
  }
}

/** Builds `physarum/sidecar:<version>` FROM the node image unless an image with this bundle, these settings and this base exists. */
export async function ensureSidecarImage (runtime: DockerRuntime, init: SidecarImageInit): Promise<SidecarImage> {
  const tag = init.tag ?? SIDECAR_TAG
  const bundle = await bundleSidecar(init.entry)
  // the memory settings of a process that passes bulk data (@physarum/p2p/node-settings), from its start
  const recipe = [
    ...Object.entries(BULK_SETTINGS.env).map(([name, value]) => `ENV ${name}=${value}`),
    `ENTRYPOINT ${JSON.stringify(['node', ...BULK_SETTINGS.flags, BUNDLE_PATH, '--sidecar'])}`
  ]
  // the base named too: an image built FROM the last --node-image would be kept after the flag changed
  const bundleHash = createHash('sha256').update(bundle).update(recipe.join('\n')).update(`\nFROM ${init.nodeImage}`).digest('hex')
  const labels = await runtime.imageLabels(tag)
  if (labels?.[LABELS.bundle] === bundleHash) {
    return { tag, bundleHash, built: false }
  }
  if (!await runtime.hasImage(init.nodeImage)) {
    throw new SidecarImageError(`The Node base image ${init.nodeImage} is missing: pull it, or build a local one with scripts/build-node-image.sh and give --node-image`)
  }
  const dockerfile = [
    `FROM ${init.nodeImage}`,
    `COPY sidecar.mjs ${BUNDLE_PATH}`,
    `LABEL ${LABELS.bundle}="${bundleHash}" io.physarum.version="${PHYSARUM_VERSION}"`,
    ...recipe,
    ''
  ].join('\n')
  const tar = pack()
  tar.entry({ name: 'Dockerfile' }, dockerfile)
  tar.entry({ name: 'sidecar.mjs' }, Buffer.from(bundle.buffer, bundle.byteOffset, bundle.byteLength))
  tar.finalize()
  try {
    await runtime.streamed(async (signal) => await runtime.docker.buildImage(tar as unknown as NodeJS.ReadableStream, { t: tag, rm: true, forcerm: true, pull: false, abortSignal: signal }),
      init.signal == null ? {} : { signal: init.signal })
  } catch (err) {
    throw new SidecarImageError(`Building ${tag} failed: ${(err as Error).message}`)
  }
  return { tag, bundleHash, built: true }
}
