/**
 * The p2p library's errors. Tests check `name`; users see `message`.
 */

export class InvalidPskError extends Error {
  static override name = 'InvalidPskError'
  override name = 'InvalidPskError'
  constructor (message = 'The pre-shared key is invalid') { super(message) }
}

export class MissingPskError extends Error {
  static override name = 'MissingPskError'
  override name = 'MissingPskError'
  constructor (message = 'No pre-shared key: give --psk <passphrase> or --swarm-key <file>, or --no-psk to run an open overlay') { super(message) }
}

export class IdentityError extends Error {
  static override name = 'IdentityError'
  override name = 'IdentityError'
  constructor (message = 'The identity key file cannot be used') { super(message) }
}

export class BootstrapUnreachableError extends Error {
  static override name = 'BootstrapUnreachableError'
  override name = 'BootstrapUnreachableError'
  constructor (message = 'No bootstrap peer could be reached') { super(message) }
}

export class ConfigError extends Error {
  static override name = 'ConfigError'
  override name = 'ConfigError'
  constructor (message = 'Invalid configuration') { super(message) }
}

export class KeystreamExhaustedError extends Error {
  static override name = 'KeystreamExhaustedError'
  override name = 'KeystreamExhaustedError'
  constructor (message = 'The connection carried 256 GiB in one direction, the most one XSalsa20 nonce covers here; it is closed and will be dialed again') { super(message) }
}

/** The peer sent no PSK nonce in time: it is not a physarum node, or it is one in trouble. */
export class PskHandshakeTimeoutError extends Error {
  static override name = 'PskHandshakeTimeoutError'
  override name = 'PskHandshakeTimeoutError'
}

/** A round-trip measurement could not be made on the connection to a peer. */
export class PingError extends Error {
  static override name = 'PingError'
  override name = 'PingError'
  constructor (message = 'The peer could not be pinged') { super(message) }
}

/**
 * Codes a request/response protocol may answer with. Every protocol's protobuf `Failure.Code` enum
 * uses these names, so a failure crosses the wire as a code and a message, never a stack.
 */
export const FAILURE_CODES = ['INTERNAL', 'NOT_FOUND', 'CAPACITY', 'IMAGE', 'TIMEOUT', 'UNAUTHORIZED', 'RATE_LIMITED', 'BAD_REQUEST', 'CONFLICT', 'UNAVAILABLE'] as const
export type FailureCode = typeof FAILURE_CODES[number]

/** A failure answered by the remote peer, or to be answered to it when a handler throws it. */
export class RpcFailureError extends Error {
  static override name = 'RpcFailureError'
  override name = 'RpcFailureError'
  readonly code: FailureCode
  constructor (code: FailureCode, message: string) {
    super(message)
    this.code = code
  }

  /** The failure a peer answered: a code this version does not know is INTERNAL. */
  static fromWire (code: string, message: string): RpcFailureError {
    return new RpcFailureError((FAILURE_CODES as readonly string[]).includes(code) ? code as FailureCode : 'INTERNAL', message)
  }
}

/** The remote peer broke the protocol: no answer, a malformed one, or a reset. */
export class RpcProtocolError extends Error {
  static override name = 'RpcProtocolError'
  override name = 'RpcProtocolError'
  constructor (message = 'The remote peer did not answer according to the protocol', options?: ErrorOptions) { super(message, options) }
}

export class RpcTimeoutError extends Error {
  static override name = 'RpcTimeoutError'
  override name = 'RpcTimeoutError'
  constructor (message = 'The request timed out') { super(message) }
}
