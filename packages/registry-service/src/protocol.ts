import { MAX_INBOUND_STREAMS, MAX_MESSAGE_BYTES, REGISTRY_PROTOCOL, RPC_TIMEOUT_MS } from './constants.ts'
import { Failure, Request, Response } from './pb/registry.js'
import type { ServiceRecord as WireRecord } from './pb/registry.js'
import type { ServiceRecord } from './record.ts'
import type { RpcSpec } from '@physarum/p2p'
import type { Uint8ArrayList } from 'uint8arraylist'

/** Protobuf wire types: varint, 64-bit, length-delimited, 32-bit. */
type WireType = 0 | 1 | 2 | 5

interface FieldSchema {
  name: string
  wire: WireType
  message?: MessageSchema
}
type MessageSchema = Record<number, FieldSchema>

const RECORD: MessageSchema = {
  1: { name: 'name', wire: 2 },
  2: { name: 'content_hash', wire: 2 },
  3: { name: 'image', wire: 2 },
  4: { name: 'soft_rtt_ms', wire: 1 },
  5: { name: 'hard_rtt_ms', wire: 1 },
  6: { name: 'cpu', wire: 1 },
  7: { name: 'memory_mb', wire: 0 },
  8: { name: 'proxy_client_mode', wire: 0 },
  9: { name: 'created_at', wire: 2 },
  10: { name: 'updated_at', wire: 2 },
  11: { name: 'revision', wire: 0 }
}

/** The Request message as registry.proto has it: what `checkKnownFields` accepts. */
const REQUEST: MessageSchema = {
  1: { name: 'add', wire: 2, message: { 1: { name: 'record', wire: 2, message: RECORD }, 2: { name: 'expected_revision', wire: 0 } } },
  2: { name: 'get', wire: 2, message: { 1: { name: 'name', wire: 2 } } },
  3: { name: 'list', wire: 2, message: { 1: { name: 'prefix', wire: 2 }, 2: { name: 'page_size', wire: 0 }, 3: { name: 'page_token', wire: 2 } } },
  4: { name: 'delete', wire: 2, message: { 1: { name: 'name', wire: 2 }, 2: { name: 'expected_revision', wire: 0 } } },
  5: { name: 'join', wire: 2, message: { 1: { name: 'member_name', wire: 2 }, 2: { name: 'peer_urls', wire: 2 } } },
  6: { name: 'get_many', wire: 2, message: { 1: { name: 'names', wire: 2 } } },
  7: { name: 'may_write', wire: 2, message: {} }
}

function readVarint (bytes: Uint8Array, at: { pos: number }): number {
  let value = 0
  for (let shift = 0; shift < 64; shift += 7) {
    if (at.pos >= bytes.length) {
      throw new Error('truncated varint')
    }
    const byte = bytes[at.pos++]!
    if (shift < 49) {
      value += (byte & 0x7f) * 2 ** shift
    }
    if ((byte & 0x80) === 0) {
      return value
    }
  }
  throw new Error('varint longer than 10 bytes')
}

/**
 * Refuses a message with a field registry.proto does not have (protobuf decoders skip them
 * silently: a peer on another version of the protocol would lose data without knowing), naming
 * the field's number and where it was.
 */
export function checkKnownFields (bytes: Uint8Array, schema: MessageSchema = REQUEST, path = 'Request'): void {
  const at = { pos: 0 }
  while (at.pos < bytes.length) {
    const tag = readVarint(bytes, at)
    const number = Math.floor(tag / 8)
    const wire = tag % 8
    const field = schema[number]
    if (field == null) {
      throw new Error(`unknown field ${number} in ${path}`)
    }
    if (field.wire !== wire) {
      throw new Error(`${path}.${field.name} has wire type ${wire}, expected ${field.wire}`)
    }
    if (wire === 0) {
      readVarint(bytes, at)
    } else if (wire === 1 || wire === 5) {
      at.pos += wire === 1 ? 8 : 4
    } else {
      const length = readVarint(bytes, at)
      const end = at.pos + length
      if (end > bytes.length) {
        throw new Error(`${path}.${field.name} is truncated`)
      }
      if (field.message != null) {
        checkKnownFields(bytes.subarray(at.pos, end), field.message, `${path}.${field.name}`)
      }
      at.pos = end
    }
    if (at.pos > bytes.length) {
      throw new Error(`${path}.${field.name} is truncated`)
    }
  }
}

/** The Request codec, refusing unknown fields before decoding. */
const StrictRequest = {
  encode: (request: Request): Uint8Array => Request.encode(request),
  decode: (bytes: Uint8Array | Uint8ArrayList): Request => {
    const flat = bytes instanceof Uint8Array ? bytes : bytes.subarray()
    checkKnownFields(flat)
    return Request.decode(flat)
  }
}

/** `/physarum/registry/1.0.0`: a Request, then its Response (streams carry one exchange after another). */
export const registryRpc: RpcSpec<Request, Response> = {
  protocol: REGISTRY_PROTOCOL,
  request: StrictRequest,
  response: Response,
  maxMessageBytes: MAX_MESSAGE_BYTES,
  timeoutMs: RPC_TIMEOUT_MS,
  maxStreams: MAX_INBOUND_STREAMS,
  failure: (code, message) => ({ failure: { code: Failure.Code[code], message } }),
  failureOf: (response) => response.failure == null ? undefined : { code: String(response.failure.code), message: response.failure.message }
}

export { Request, Response, Failure }

/** A stored record as the wire carries it. */
export function recordToWire (record: ServiceRecord): WireRecord {
  return { ...record, revision: BigInt(record.revision) }
}

/** A record from the wire, as the JS API has it (not yet validated). */
export function recordFromWire (record: WireRecord): ServiceRecord {
  return {
    name: record.name,
    contentHash: record.contentHash,
    image: record.image,
    softRttMs: record.softRttMs,
    hardRttMs: record.hardRttMs,
    cpu: record.cpu,
    memoryMb: record.memoryMb,
    proxyClientMode: record.proxyClientMode,
    createdAt: record.createdAt,
    updatedAt: record.updatedAt,
    revision: record.revision.toString()
  }
}
