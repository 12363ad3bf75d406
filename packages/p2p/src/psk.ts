import { sha3_256 } from '@noble/hashes/sha3.js'
import { InvalidPskError } from './errors.ts'
import { readKeyText } from './key-file.ts'

/** Length in bytes of an XSalsa20 key, and so of every physarum PSK. */
export const PSK_LENGTH = 32
const SWARM_KEY_HEADER = '/key/swarm/psk/1.0.0/'
const BASE16_CODEC = '/base16/'

/**
 * A pre-shared key. The key bytes are kept in a private field and `toJSON`/`inspect` print a
 * placeholder, so a key that ends up in a log line or an error shows as `[PSK]`, never as bytes.
 */
export class PreSharedKey {
  readonly #key: Uint8Array

  constructor (key: Uint8Array) {
    if (key.byteLength !== PSK_LENGTH) {
      throw new InvalidPskError(`A pre-shared key has ${PSK_LENGTH} bytes, this one has ${key.byteLength}`)
    }
    this.#key = Uint8Array.from(key)
  }

  /** The raw 32 key bytes, for the connection protector. */
  bytes (): Uint8Array {
    return this.#key
  }

  /** The key in the IPFS swarm.key format. */
  toSwarmKey (): string {
    return `${SWARM_KEY_HEADER}\n${BASE16_CODEC}\n${Buffer.from(this.#key).toString('hex')}\n`
  }

  equals (other: PreSharedKey): boolean {
    const theirs = other.bytes()
    return this.#key.every((byte, i) => byte === theirs[i])
  }

  toJSON (): string {
    return '[PSK]'
  }

  toString (): string {
    return '[PSK]'
  }

  [Symbol.for('nodejs.util.inspect.custom')] (): string {
    return '[PSK]'
  }

  /**
   * The key PhysarumSM derives from a passphrase: SHA3-256 of its UTF-8 bytes, so one passphrase
   * names the same network in both.
   */
  static fromPassphrase (passphrase: string): PreSharedKey {
    if (passphrase.length === 0) {
      throw new InvalidPskError('The PSK passphrase is empty: give a non-empty passphrase, or use --swarm-key')
    }
    return new PreSharedKey(sha3_256(new TextEncoder().encode(passphrase)))
  }

  /** Parses the IPFS swarm.key format: the header line, `/base16/`, then 64 hex digits. */
  static fromSwarmKey (text: string, source = 'the swarm key'): PreSharedKey {
    const lines = text.split(/\r?\n/).map(line => line.trim()).filter(line => line.length > 0)
    if (lines[0] !== SWARM_KEY_HEADER) {
      throw new InvalidPskError(`${source} is not a swarm key: its first line must be ${SWARM_KEY_HEADER}`)
    }
    if (lines[1] !== BASE16_CODEC) {
      // the line is named only when it is an encoding: a file without one has the key there
      const codec = lines[1] != null && /^\/[a-z0-9]{1,16}\/$/.test(lines[1]) ? lines[1] : undefined
      throw new InvalidPskError(codec == null
        ? `${source} has no ${BASE16_CODEC} line after its first line`
        : `${source} uses encoding ${codec}: only ${BASE16_CODEC} is supported`)
    }
    const hex = lines[2] ?? ''
    if (!/^[0-9a-fA-F]{64}$/.test(hex) || lines.length > 3) {
      throw new InvalidPskError(`${source} must hold exactly 64 hexadecimal digits after ${BASE16_CODEC}`)
    }
    return new PreSharedKey(Uint8Array.from(Buffer.from(hex, 'hex')))
  }

  static async fromSwarmKeyFile (path: string): Promise<PreSharedKey> {
    let text: string
    try {
      text = await readKeyText(path)
    } catch (err) {
      throw new InvalidPskError(`Cannot read the swarm key file ${path}: ${(err as Error).message}`)
    }
    return PreSharedKey.fromSwarmKey(text, `The swarm key file ${path}`)
  }

  static generate (): PreSharedKey {
    return new PreSharedKey(crypto.getRandomValues(new Uint8Array(PSK_LENGTH)))
  }
}
