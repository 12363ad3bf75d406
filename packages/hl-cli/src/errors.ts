/**
 * hl-cli's errors. Tests check `name`; users see `message`. `UsageError` and `ImageConfError` end
 * the command with exit code 2 (the input is wrong, nothing was tried), `InterruptedError` with
 * 130, the others with 1.
 */

/** A flag or argument is wrong. */
export class UsageError extends Error {
  static override name = 'UsageError'
  override name = 'UsageError'
  constructor (message = 'Invalid usage') { super(message) }
}

/** An image-conf.json is not in the seed's format, or names files that cannot be used. */
export class ImageConfError extends Error {
  static override name = 'ImageConfError'
  override name = 'ImageConfError'
  /** The file the problem is in. */
  readonly file: string
  /** Where in the file, e.g. `PerfConf.Perf.SoftReq.RTT` or `DockerConf.Copy[0][0]`; '' for the whole file. */
  readonly keyPath: string
  constructor (file: string, keyPath: string, problem: string) {
    super(`${file}: ${keyPath === '' ? '' : `${keyPath}: `}${problem}`)
    this.file = file
    this.keyPath = keyPath
  }
}

/** Docker could not build the image. */
export class BuildError extends Error {
  static override name = 'BuildError'
  override name = 'BuildError'
  constructor (message = 'The image build failed') { super(message) }
}

/** The image could not be pushed to (or found in) its image registry. */
export class PushError extends Error {
  static override name = 'PushError'
  override name = 'PushError'
  constructor (message = 'The image push failed') { super(message) }
}

/** The Docker engine could not be reached. */
export class DockerUnavailableError extends Error {
  static override name = 'DockerUnavailableError'
  override name = 'DockerUnavailableError'
  constructor (message = 'The Docker engine cannot be reached') { super(message) }
}

/** A name given to get or delete is not in the registry. */
export class NotFoundError extends Error {
  static override name = 'NotFoundError'
  override name = 'NotFoundError'
  constructor (message = 'No such service') { super(message) }
}

/**
 * Ctrl-C at a prompt: the terminal in raw mode sends it as a key, not as SIGINT. Exit code 130
 * (128 + SIGINT), what a shell expects of a command the user interrupted.
 */
export class InterruptedError extends Error {
  static override name = 'InterruptedError'
  override name = 'InterruptedError'
  constructor (message = 'Interrupted') { super(message) }
}
