/** Names and defaults of hl-cli. */

export const NAME = 'hl-cli'
/** The base image when DockerConf.From is not given. */
export const DEFAULT_FROM = 'node:24-slim'
/** Where the Copy destinations are relative to, inside the image. */
export const WORKDIR = '/app'
/** The generated Dockerfile's name in the build context (so a service may ship its own Dockerfile). */
export const DOCKERFILE_NAME = '.physarum.Dockerfile'
/**
 * Labels hl-cli puts on the images it builds. Not `io.physarum.service` and the like: those are the
 * allocator's container labels, and an image's labels become its containers' labels.
 */
export const IMAGE_LABEL_PREFIX = 'io.physarum.image.'
export const DEFAULT_TIMEOUT_MS = 15_000
export const DEFAULT_RTT_TIMEOUT_MS = 2_000
/** `status`: round trips per peer once every peer is connected; the lowest is shown. */
export const RTT_SAMPLES = 3
