/** The allocator's errors. Tests check `name`; users see `message`. */

export class ImageError extends Error {
  static override name = 'ImageError'
  override name = 'ImageError'
  constructor (message = 'The image could not be pulled') { super(message) }
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
