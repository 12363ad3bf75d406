/**
 * @packageDocumentation
 *
 * The allocator of physarum: on every host that may run services, it turns an Allocate request
 * (`/physarum/alloc/1.0.0`, a service name) into a running instance: the service's container and
 * a sidecar container (the proxy package's sidecar mode) in one network namespace, pulled by
 * digest from the image the registry names. It waits for the sidecar's check-in
 * (`/physarum/checkin/1.0.0`) and answers with the sidecar's peer id and addresses; then it
 * restarts what crashes, drains what idles, and adopts its instances after its own restart.
 *
 * - `Allocator`: the protocol handlers and the lifecycle, over components (node, Docker runtime,
 *   registry client, logger, metrics Registry).
 * - `startAllocatorDaemon`: a whole daemon, as the CLI runs it.
 * - `@physarum/allocator/client`: what other packages use (protocol specs, `allocate`).
 * - `@physarum/allocator/docker-config`: registry credentials as the Docker client finds them,
 *   for pulls here and hl-cli's pushes.
 */

export { Allocator, GaveUpError } from './allocator.ts'
export type { AllocatorComponents, AllocatorInit, AllocationAnswer, InstanceInfo, RestartPolicy } from './allocator.ts'
export { startAllocatorDaemon } from './daemon.ts'
export type { AllocatorDaemon, AllocatorDaemonConfig } from './daemon.ts'
export { DockerRuntime, dockerOptions, registryHost } from './docker.ts'
export type { ContainerEvent } from './docker.ts'
export { dockerConfigAuth, registryServerAddress } from './docker-config.ts'
export type { DockerConfigAuthOptions, DockerConfigSource, RegistryAuth } from './docker-config.ts'
export { bundleSidecar, ensureSidecarImage, DEFAULT_SIDECAR_ENTRY, SIDECAR_TAG } from './sidecar-image.ts'
export type { SidecarImage, SidecarImageInit } from './sidecar-image.ts'
export { RateLimiter } from './rate-limit.ts'
export type { RateLimitInit } from './rate-limit.ts'
export { allocRpc, checkInRpc } from './protocol.ts'
export { allocate } from './client.ts'
export type { Allocation, ColdStartPhases } from './client.ts'
export * from './constants.ts'
export * from './errors.ts'
