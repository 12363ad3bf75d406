/** The allocator's errors. Tests check `name`; users see `message`. */

export class ImageError extends Error {
  static override name = 'ImageError'
  override name = 'ImageError'
  constructor (message = 'The image could not be pulled') { super(message) }
}

/**
 * The Docker client's config gives no usable credentials: the file cannot be read or is not JSON,
 * an `auth` is not user:password, or a credential helper failed. Never quotes the file.
 */
export class DockerConfigError extends Error {
  static override name = 'DockerConfigError'
  override name = 'DockerConfigError'
  constructor (message = 'The Docker client\'s config gives no usable credentials') { super(message) }
}

export class DockerError extends Error {
  static override name = 'DockerError'
  override name = 'DockerError'
  constructor (message = 'The Docker engine failed') { super(message) }
}

export class SidecarImageError extends Error {
  static override name = 'SidecarImageError'
  override name = 'SidecarImageError'
  constructor (message = 'The sidecar image could not be built') { super(message) }
}
