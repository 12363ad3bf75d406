/**
 * What other packages use of the allocator: the protocol specs (the sidecar checks in with
 * `checkInRpc`), `allocate`, the call a client proxy makes, and `allocatorCapacity` for status.
 */

import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { callRpc, RpcProtocolError } from '@physarum/p2p'
import { allocRpc, statusRpc } from './protocol.ts'
import type { Capacity } from './protocol.ts'
import type { AbortOptions, Libp2p, PeerId } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'

export { allocRpc, checkInRpc, statusRpc, CheckIn, CheckInResponse, AllocateRequest, AllocateResponse } from './protocol.ts'
export type { Capacity } from './protocol.ts'
export { ALLOC_PROTOCOL, ALLOC_STATUS_PROTOCOL, CHECKIN_PROTOCOL, CHECKIN_RETRY_MAX_MS, CHECKIN_RETRY_MS, HTTP_PROTOCOL, DEFAULT_STATS_INTERVAL_MS, MAX_AVOID_PEERS, SIDECAR_SECRETS_DIR } from './constants.ts'

/** Milliseconds per step of a cold start. */
export interface ColdStartPhases {
  pullMs: number
  createMs: number
  startMs: number
  readyMs: number
  totalMs: number
}

export interface Allocation {
  /** The instance's sidecar. */
  peerId: PeerId
  multiaddrs: Multiaddr[]
  instanceId: string
  phases: ColdStartPhases
  /** An instance that was already running answered. */
  reused: boolean
  /** The version the instance runs (its record's content hash; empty from an allocator that does not say). */
  contentHash: string
}

export interface AllocateOptions extends AbortOptions {
  /** Peer ids of the sidecars of instances found failing: the allocator answers with none of them (at most MAX_AVOID_PEERS). */
  avoid?: string[]
  /** The version wanted: the content hash of the caller's record (an allocator whose copy names another reads it again). */
  contentHash?: string
}

/**
 * Asks the allocator `peer` for an instance of `service`. Throws `RpcFailureError` with the
 * allocator's code (NOT_FOUND, CAPACITY, IMAGE, TIMEOUT, RATE_LIMITED, BAD_REQUEST, INTERNAL),
 * `RpcTimeoutError` or `RpcProtocolError` otherwise.
 */
export async function allocate (node: Pick<Libp2p, 'dialProtocol'>, peer: PeerId | Multiaddr, service: string, options: AllocateOptions = {}): Promise<Allocation> {
  const response = await callRpc(node, peer, allocRpc, { service, avoidPeers: options.avoid ?? [], contentHash: options.contentHash ?? '' }, options)
  const allocated = response.allocated
  if (allocated == null) {
    throw new Error(`The allocator ${peer.toString()} answered without an allocation`)
  }
  const phases = allocated.phases
  return {
    peerId: peerIdFromString(allocated.peerId),
    multiaddrs: allocated.multiaddrs.map(addr => multiaddr(addr)),
    instanceId: allocated.instanceId,
    reused: allocated.reused,
    contentHash: allocated.contentHash,
    phases: {
      pullMs: phases?.pullMs ?? 0,
      createMs: phases?.createMs ?? 0,
      startMs: phases?.startMs ?? 0,
      readyMs: phases?.readyMs ?? 0,
      totalMs: phases?.totalMs ?? 0
    }
  }
}

/** An allocator's capacity in use and its limits (0: no limit). */
export async function allocatorCapacity (node: Pick<Libp2p, 'dialProtocol'>, peer: PeerId | Multiaddr, options: AbortOptions = {}): Promise<Capacity> {
  const response = await callRpc(node, peer, statusRpc, {}, options)
  if (response.capacity == null) {
    throw new RpcProtocolError('The allocator answered its status without its capacity')
  }
  return response.capacity
}
