import { ALLOC_MAX_MESSAGE_BYTES, ALLOC_PROTOCOL, ALLOC_RPC_TIMEOUT_MS, CHECKIN_MAX_MESSAGE_BYTES, CHECKIN_PROTOCOL, CHECKIN_RPC_TIMEOUT_MS } from './constants.ts'
import { AllocateRequest, AllocateResponse, Failure as AllocFailure } from './pb/alloc.js'
import { CheckIn, CheckInResponse, Failure as CheckInFailure } from './pb/checkin.js'
import type { RpcSpec } from '@physarum/p2p'

/** `/physarum/alloc/1.0.0`: Allocate{service} -> Allocated or Failure. */
export const allocRpc: RpcSpec<AllocateRequest, AllocateResponse> = {
  protocol: ALLOC_PROTOCOL,
  request: AllocateRequest,
  response: AllocateResponse,
  maxMessageBytes: ALLOC_MAX_MESSAGE_BYTES,
  timeoutMs: ALLOC_RPC_TIMEOUT_MS,
  failure: (code, message) => ({ failure: { code: AllocFailure.Code[code], message } }),
  failureOf: (response) => response.failure == null ? undefined : { code: String(response.failure.code), message: response.failure.message }
}

/** `/physarum/checkin/1.0.0`: a sidecar's Ready or Stats -> whether it should drain. */
export const checkInRpc: RpcSpec<CheckIn, CheckInResponse> = {
  protocol: CHECKIN_PROTOCOL,
  request: CheckIn,
  response: CheckInResponse,
  maxMessageBytes: CHECKIN_MAX_MESSAGE_BYTES,
  timeoutMs: CHECKIN_RPC_TIMEOUT_MS,
  failure: (code, message) => ({ drain: false, failure: { code: CheckInFailure.Code[code], message } }),
  failureOf: (response) => response.failure == null ? undefined : { code: String(response.failure.code), message: response.failure.message }
}

export { AllocateRequest, AllocateResponse, CheckIn, CheckInResponse }
export type { Allocated, Phases } from './pb/alloc.js'
