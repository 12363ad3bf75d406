/**
 * @packageDocumentation
 *
 * hl-cli puts services on a physarum overlay and shows what the overlay looks like:
 *
 * - `add <image-conf.json> <dir> <image-name> <service-name>`: reads the seed's image-conf.json,
 *   builds the image with the Docker engine from only the files it names, pushes it to the image
 *   registry in its name (`127.0.0.1:5000/hello:1.0` works, port and all), and registers the service
 *   by image digest with registry-service over the overlay.
 * - `list`, `get`, `delete`: the registry's records. `status`: peers, registries, allocators and
 *   instances, each with its RTT from here. `id`: this CLI's peer id (registry-service --admin).
 *   `keygen`: a new swarm.key.
 *
 * The modules below are what the commands are made of, exported for tests and other tools.
 */

export { parseImageConf, readImageConf, loadImageConf, parseDuration } from './image-conf.ts'
export type { ImageConf, CopyEntry, ContextSource } from './image-conf.ts'
export { generateDockerfile } from './dockerfile.ts'
export type { DockerfileInit } from './dockerfile.ts'
export { createBuildContext, buildImage } from './build.ts'
export type { BuildOptions } from './build.ts'
export { pushImage, remoteDigest, resolveRegistryAuth } from './push.ts'
export type { RegistryAuth, AuthSources, AuthSource } from './push.ts'
export { parseImageRef, imageByDigest } from './image-ref.ts'
export type { ImageRef } from './image-ref.ts'
export { createProgress, formatBytes } from './progress.ts'
export type { Progress, ProgressInit } from './progress.ts'
export type { AddSummary } from './commands/add.ts'
export type { StatusReport } from './commands/status.ts'
export * from './constants.ts'
export * from './errors.ts'
