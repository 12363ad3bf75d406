import { ALLOC_MAX_MESSAGE_BYTES, ALLOC_PROTOCOL, ALLOC_RPC_TIMEOUT_MS, ALLOC_STATUS_PROTOCOL, CHECKIN_MAX_MESSAGE_BYTES, CHECKIN_PROTOCOL, CHECKIN_RPC_TIMEOUT_MS } from './constants.ts'
import { AllocateRequest, AllocateResponse, Failure as AllocFailure } from './pb/alloc.js'
import { CheckIn, CheckInResponse, Failure as CheckInFailure } from './pb/checkin.js'
import { Failure as StatusFailure, StatusRequest, StatusResponse } from './pb/status.js'
import type { RpcSpec } from '@physarum/p2p'

/** `/physarum/alloc/1.0.0`: Allocate{service} -> Allocated or Failure. */
export const allocRpc: RpcSpec<AllocateRequest, AllocateResponse> = {
  protocol: ALLOC_PROTOCOL,
  request: AllocateRequest,
  response: AllocateResponse,
  maxMessageBytes: ALLOC_MAX_MESSAGE_BYTES,
  timeoutMs: ALLOC_RPC_TIMEOUT_MS,
  maxStreams: 64,
  failure: (code, message) => ({ failure: { code: AllocFailure.Code[code], message } }),
  failureOf: (response) => response.failure == null ? undefined : { code: String(response.failure.code), message: response.failure.message }
}

/** `/physarum/checkin/1.0.0`: a sidecar's Ready or Stats -> whether it should drain, or check in Ready again once its restarted service listens. */
export const checkInRpc: RpcSpec<CheckIn, CheckInResponse> = {
  protocol: CHECKIN_PROTOCOL,
  request: CheckIn,
  response: CheckInResponse,
  maxMessageBytes: CHECKIN_MAX_MESSAGE_BYTES,
  timeoutMs: CHECKIN_RPC_TIMEOUT_MS,
  maxStreams: 8,
  failure: (code, message) => ({ drain: false, awaitService: false, failure: { code: CheckInFailure.Code[code], message } }),
  failureOf: (response) => response.failure == null ? undefined : { code: String(response.failure.code), message: response.failure.message }
}

/** `/physarum/alloc-status/1.0.0`: the allocator's capacity in use and its limits. */
export const statusRpc: RpcSpec<StatusRequest, StatusResponse> = {
  protocol: ALLOC_STATUS_PROTOCOL,
  request: StatusRequest,
  response: StatusResponse,
  maxMessageBytes: ALLOC_MAX_MESSAGE_BYTES,
  timeoutMs: 10_000,
  maxStreams: 8,
  failure: (code, message) => ({ failure: { code: StatusFailure.Code[code], message } }),
  failureOf: (response) => response.failure == null ? undefined : { code: String(response.failure.code), message: response.failure.message }
}

export { AllocateRequest, AllocateResponse, CheckIn, CheckInResponse }
export type { Capacity } from './pb/status.js'
export type { Allocated, Phases } from './pb/alloc.js'
