/**
 * The registry's own errors. Failures that cross the wire are `RpcFailureError` (from
 * @physarum/p2p) with a code; these are the local ones. Tests check `name`; users see `message`.
 */

/** A record, or a request's argument, is not acceptable; `field` names what is wrong. */
export class InvalidRecordError extends Error {
  static override name = 'InvalidRecordError'
  override name = 'InvalidRecordError'
  readonly field: string
  constructor (field: string, message: string) {
    super(`${field}: ${message}`)
    this.field = field
  }
}

/** No registry-service could be found in the overlay, or none answered. */
export class NoRegistryError extends Error {
  static override name = 'NoRegistryError'
  override name = 'NoRegistryError'
  constructor (message = 'No registry-service was found in the overlay') { super(message) }
}

/** The etcd process could not be started or did not become healthy. */
export class EtcdStartError extends Error {
  static override name = 'EtcdStartError'
  override name = 'EtcdStartError'
  constructor (message = 'etcd did not start') { super(message) }
}

/** Joining an etcd cluster through a running registry-service failed. */
export class JoinError extends Error {
  static override name = 'JoinError'
  override name = 'JoinError'
  constructor (message = 'Could not join the etcd cluster') { super(message) }
}
