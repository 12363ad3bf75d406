import type { ConnectionEncrypter, SecuredConnection } from '@libp2p/interface'
import type { Uint8ArrayList } from 'uint8arraylist'

/** A Noise transport message's length prefix: 2 bytes, big-endian (the Noise spec). */
const PREFIX_BYTES = 2
/**
 * What the length reads as while fewer than 2 bytes are buffered: the largest a prefix can say,
 * so the decoder waits for more bytes, as it does for any frame not yet complete.
 */
const INCOMPLETE = 0xffff

/** The fields of @chainsafe/libp2p-noise's encrypted stream the patch reaches (not in its types). */
interface NoiseStreamInternals {
  decoder?: { lengthDecoder?: (data: Uint8ArrayList) => number }
}

/** Reads a Noise length prefix without throwing when it has not fully arrived. */
export function noiseFrameLength (data: Uint8ArrayList): number {
  if (data.byteLength < PREFIX_BYTES) {
    return INCOMPLETE
  }
  return (data.get(0) << 8) | data.get(1)
}

/**
 * @libp2p/utils' length-prefixed decoder asks for the next frame's length until its length
 * decoder throws, and Noise's throws a RangeError when fewer than 2 bytes are buffered: after
 * every message received, since a message usually ends its read. Building that error (with its
 * stack trace) cost 8% of a ping monitor's CPU with 200 peers (docs/decisions.md). This wraps
 * Noise so that each encrypted connection's decoder reads its length prefix with
 * `noiseFrameLength` instead: the same frames, no exception. Where a Noise version keeps its
 * decoder elsewhere, the connection is left as it is.
 */
export function withCheapFrameLengths<Components> (factory: (components: Components) => ConnectionEncrypter): (components: Components) => ConnectionEncrypter {
  return (components) => {
    const encrypter = factory(components)
    const secureInbound = encrypter.secureInbound.bind(encrypter)
    const secureOutbound = encrypter.secureOutbound.bind(encrypter)
    encrypter.secureInbound = async (...args) => patched(await secureInbound(...args))
    encrypter.secureOutbound = async (...args) => patched(await secureOutbound(...args))
    return encrypter
  }
}

function patched<T extends SecuredConnection> (secured: T): T {
  const decoder = (secured.connection as NoiseStreamInternals).decoder
  if (typeof decoder?.lengthDecoder === 'function') {
    decoder.lengthDecoder = noiseFrameLength
  }
  return secured
}
