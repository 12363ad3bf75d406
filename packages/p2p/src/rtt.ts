import { DEFAULT_RTT_SMOOTHING, RTT_SEED_SAMPLES, RTT_SEED_WINDOW_MS } from './constants.ts'

export interface RttEntry {
  /** The last measured round-trip time, in milliseconds. */
  lastMs: number
  /**
   * The smoothed round-trip time, in milliseconds: the least of the first RTT_SEED_SAMPLES
   * samples (those within RTT_SEED_WINDOW_MS of the first), then their exponentially weighted
   * moving average.
   */
  smoothedMs: number
  /** When the last successful measurement finished (ms since the epoch). */
  lastSeen: number
  /** When the first successful measurement finished (ms since the epoch; 0 before it). */
  firstSeen: number
  samples: number
  /** Failures in a row since the last success. */
  consecutiveFailures: number
  failures: number
}

/**
 * Round-trip times per peer: the last sample, an EWMA (alpha = weight of a new sample) and the
 * time it was last seen, so callers can rank peers and forget those gone quiet.
 *
 * The EWMA starts from the least of an entry's first RTT_SEED_SAMPLES samples within
 * RTT_SEED_WINDOW_MS, not from the first one: those are a new connection's first pings, which wait
 * behind its identify and DHT streams. Seeded by the first, the average of a 0.5 ms loopback peer was still 10.7 ms after 3
 * samples, and the client proxy, which compares it with its soft RTT, asked for another instance
 * it did not need. Queueing only ever adds to a round trip, so the least sample is the closest
 * to the path's own.
 */
export class RttTable {
  readonly #alpha: number
  readonly #entries = new Map<string, RttEntry>()

  constructor (alpha = DEFAULT_RTT_SMOOTHING) {
    if (!(alpha > 0 && alpha <= 1)) {
      throw new RangeError(`The RTT smoothing factor must be in (0, 1], got ${alpha}`)
    }
    this.#alpha = alpha
  }

  record (peer: string, rttMs: number, now = Date.now()): RttEntry {
    const previous = this.#entries.get(peer)
    const entry: RttEntry = previous == null
      ? { lastMs: rttMs, smoothedMs: rttMs, lastSeen: now, firstSeen: now, samples: 1, consecutiveFailures: 0, failures: 0 }
      : {
          ...previous,
          lastMs: rttMs,
          smoothedMs: this.#smooth(previous, rttMs, now),
          lastSeen: now,
          firstSeen: previous.samples === 0 ? now : previous.firstSeen,
          samples: previous.samples + 1,
          consecutiveFailures: 0
        }
    this.#entries.set(peer, entry)
    return entry
  }

  /** The smoothed RTT of `previous` with one more sample, `rttMs`, taken at `now`. */
  #smooth (previous: RttEntry, rttMs: number, now: number): number {
    if (previous.samples === 0) {
      // an entry of failures only: its smoothedMs is NaN
      return rttMs
    }
    if (previous.samples < RTT_SEED_SAMPLES && now - previous.firstSeen < RTT_SEED_WINDOW_MS) {
      return Math.min(previous.smoothedMs, rttMs)
    }
    return previous.smoothedMs + this.#alpha * (rttMs - previous.smoothedMs)
  }

  recordFailure (peer: string): RttEntry {
    const previous = this.#entries.get(peer) ?? { lastMs: NaN, smoothedMs: NaN, lastSeen: 0, firstSeen: 0, samples: 0, consecutiveFailures: 0, failures: 0 }
    const entry = { ...previous, consecutiveFailures: previous.consecutiveFailures + 1, failures: previous.failures + 1 }
    this.#entries.set(peer, entry)
    return entry
  }

  get (peer: string): RttEntry | undefined {
    return this.#entries.get(peer)
  }

  entries (): Array<[string, RttEntry]> {
    return [...this.#entries]
  }

  delete (peer: string): boolean {
    return this.#entries.delete(peer)
  }

  /** Removes peers not seen since `before` (ms since the epoch) and returns their ids. */
  forgetUnseenSince (before: number): string[] {
    const forgotten: string[] = []
    for (const [peer, entry] of this.#entries) {
      if (entry.lastSeen < before) {
        this.#entries.delete(peer)
        forgotten.push(peer)
      }
    }
    return forgotten
  }
}
