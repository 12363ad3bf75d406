import type { FailureCode, MessageCodec, RpcSpec } from '@physarum/p2p'
import type { Uint8ArrayList } from 'uint8arraylist'

/**
 * A hand-written protobuf codec for the benchmark's request/response message:
 *
 *   message BenchMessage { bytes payload = 1; string code = 2; string message = 3; }
 *
 * `code` and `message` are set only on a failure response.
 */
export interface BenchMessage {
  payload: Uint8Array
  code?: string
  message?: string
}

const utf8 = new TextEncoder()
const fromUtf8 = new TextDecoder()

function varintLength (n: number): number {
  let length = 1
  while (n >= 0x80) {
    n = Math.floor(n / 128)
    length++
  }
  return length
}

function writeVarint (out: Uint8Array, offset: number, n: number): number {
  while (n >= 0x80) {
    out[offset++] = (n & 0x7f) | 0x80
    n = Math.floor(n / 128)
  }
  out[offset++] = n
  return offset
}

function readVarint (buf: Uint8Array, offset: number): [value: number, offset: number] {
  let value = 0
  let scale = 1
  for (let i = 0; i < 5; i++) {
    if (offset >= buf.byteLength) {
      throw new Error('truncated varint')
    }
    const byte = buf[offset++]!
    value += (byte & 0x7f) * scale
    if (byte < 0x80) {
      return [value, offset]
    }
    scale *= 128
  }
  throw new Error('varint too long')
}

export const benchMessageCodec: MessageCodec<BenchMessage> = {
  encode (message) {
    const fields: Array<[number, Uint8Array]> = [[1, message.payload]]
    if (message.code != null) {
      fields.push([2, utf8.encode(message.code)])
    }
    if (message.message != null) {
      fields.push([3, utf8.encode(message.message)])
    }
    const length = fields.reduce((sum, [, bytes]) => sum + 1 + varintLength(bytes.byteLength) + bytes.byteLength, 0)
    const out = new Uint8Array(length)
    let offset = 0
    for (const [field, bytes] of fields) {
      out[offset++] = (field << 3) | 2
      offset = writeVarint(out, offset, bytes.byteLength)
      out.set(bytes, offset)
      offset += bytes.byteLength
    }
    return out
  },
  decode (bytes: Uint8Array | Uint8ArrayList) {
    const buf = bytes instanceof Uint8Array ? bytes : bytes.subarray()
    const message: BenchMessage = { payload: new Uint8Array(0) }
    let offset = 0
    while (offset < buf.byteLength) {
      let tag: number
      let length: number;
      [tag, offset] = readVarint(buf, offset)
      if ((tag & 7) !== 2) {
        throw new Error(`unexpected wire type ${tag & 7}`)
      }
      [length, offset] = readVarint(buf, offset)
      if (offset + length > buf.byteLength) {
        throw new Error('truncated field')
      }
      const value = buf.subarray(offset, offset + length)
      offset += length
      switch (tag >>> 3) {
        case 1: message.payload = value; break
        case 2: message.code = fromUtf8.decode(value); break
        case 3: message.message = fromUtf8.decode(value); break
        default: break
      }
    }
    return message
  }
}

export const RPC_PROTOCOL = '/bench/rpc/1.0.0'

export const benchRpcSpec: RpcSpec<BenchMessage, BenchMessage> = {
  protocol: RPC_PROTOCOL,
  request: benchMessageCodec,
  response: benchMessageCodec,
  failure (code: FailureCode, message: string) {
    return { payload: new Uint8Array(0), code, message }
  },
  failureOf (response) {
    return response.code == null ? undefined : { code: response.code, message: response.message ?? '' }
  }
}
