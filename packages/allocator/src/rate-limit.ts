import { RATE_BACKOFF_MAX_MS, RATE_BACKOFF_MIN_MS } from './constants.ts'

export interface RateLimitInit {
  /** Tokens added per second. */
  perSecond: number
  /** Most tokens a peer holds: how many requests it may make at once. */
  burst: number
  backoffMinMs?: number
  backoffMaxMs?: number
  /** Most peers remembered (the oldest are forgotten first). */
  maxPeers?: number
}

interface PeerState {
  tokens: number
  at: number
  backoffMs: number
  blockedUntil: number
}

/**
 * A token bucket per peer; a peer that empties its bucket is refused for a backoff. Requests
 * while it lasts are refused with what is left of it, without lengthening it: a peer that waits
 * it out gets in. A peer that empties its bucket again gets twice the last backoff (from
 * `backoffMinMs` up to `backoffMaxMs`), reset once it has kept to the rate long enough to refill
 * half its bucket (a bucket of one: all of it).
 */
export class RateLimiter {
  readonly #init: Required<RateLimitInit>
  readonly #peers = new Map<string, PeerState>()

  constructor (init: RateLimitInit) {
    this.#init = { backoffMinMs: RATE_BACKOFF_MIN_MS, backoffMaxMs: RATE_BACKOFF_MAX_MS, maxPeers: 10_000, ...init }
  }

  /**
   * Takes a token for `peer`: undefined when allowed, else the ms after which to come back. `now`
   * is monotonic (performance.now()): the host's clock stepped back would make the time since a
   * peer's last request negative, and its bucket refill only once the clock caught up again.
   */
  take (peer: string, now = performance.now()): number | undefined {
    const { perSecond, burst, backoffMinMs, backoffMaxMs, maxPeers } = this.#init
    let state = this.#peers.get(peer)
    if (state == null) {
      state = { tokens: burst, at: now, backoffMs: 0, blockedUntil: 0 }
      if (this.#peers.size >= maxPeers) {
        this.#peers.delete(this.#peers.keys().next().value!)
      }
    } else {
      this.#peers.delete(peer)
    }
    this.#peers.set(peer, state)
    state.tokens = Math.min(burst, state.tokens + (now - state.at) / 1000 * perSecond)
    state.at = now
    if (now < state.blockedUntil) {
      return state.blockedUntil - now
    }
    if (state.tokens >= 1) {
      state.tokens -= 1
      // a bucket of one never has half left after a take: it is calm once it was full again
      if (state.tokens >= Math.min(burst / 2, burst - 1)) {
        state.backoffMs = 0
      }
      return undefined
    }
    state.backoffMs = state.backoffMs === 0 ? backoffMinMs : Math.min(backoffMaxMs, state.backoffMs * 2)
    state.blockedUntil = now + state.backoffMs
    return state.backoffMs
  }
}
