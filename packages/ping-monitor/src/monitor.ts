import { deadline, hostNameFromAgent } from '@physarum/p2p'
import { Counter, Gauge, Histogram } from 'prom-client'
import { MAX_BACKOFF_MS, PING_SPREAD as SPREAD, RETRY_SHARE, RTT_BUCKETS_SECONDS, UNKNOWN_HOST } from './constants.ts'
import type { MonitoredNode, PeerReport, PingMonitorComponents, PingMonitorHealth, PingMonitorInit } from './index.ts'
import type { Logger, RttEntry } from '@physarum/p2p'
import type { IdentifyResult, PeerId, Startable } from '@libp2p/interface'

interface TrackedPeer {
  readonly id: PeerId
  readonly key: string
  /** target_host of this peer's series; UNKNOWN_HOST until identify told us. */
  host: string
  /**
   * The peer store was read for the announced host name (at the first answer: the peer may have
   * been identified before it was tracked), or identify told it. Not read again: identify says
   * when it changes, on each new connection and each push.
   */
  hostKnown: boolean
  /**
   * The id of the connection it was last seen on. When that one closed and another is open, the
   * peer is back (restarted, or its network healed): its backoff, which was about the closed
   * connection, starts over.
   */
  connection: string
  /** Last time the peer answered a ping or was connected (performance.now() time). */
  lastSeen: number
  /** Queued or in flight: never two pings to one peer at once. */
  busy: boolean
  /** Failed pings in a row; each doubles the wait before the next try, up to MAX_BACKOFF_MS. */
  failures: number
  /**
   * When the pings started failing (performance.now() time), until one is answered: one log line when
   * a peer starts failing and one when it answers again, whatever came between (a reconnect
   * resets `failures`, not this).
   */
  failingSince?: number
  /** No ping before this time (performance.now() time). */
  notBefore: number
}

/**
 * Why a ping failed, the `reason` of physarum_ping_failures_total: `ping` when it went unanswered on
 * a connection that was open as it started and still is (a peer gone silent, a network cut: worth
 * an alert), `dial` when the peer had no open connection and the meter dialled it (a peer that
 * left, as every hl-cli run and drained sidecar does, or one whose process died). A ping whose
 * connection closed under it is neither: the peer closed it, as one that leaves does, and the next
 * round, which dials it, tells whether it left.
 */
type FailureReason = 'ping' | 'dial'
const FAILURE_REASONS: FailureReason[] = ['ping', 'dial']

const decoder = new TextDecoder()

/** A performance.now() time as the wall clock dates it now (ISO 8601), for what is reported. */
function wallClock (monotonic: number): string {
  return new Date(Date.now() - (performance.now() - monotonic)).toISOString()
}

/**
 * Pings every connected peer (and every peer that left less than `forgetAfterMs` ago) once per
 * interval, at most `concurrency` at a time, each with a timeout, and keeps the RTT metrics of
 * each. A peer that does not answer is tried less and less often (after 1, 2, 4, ... intervals,
 * at most MAX_BACKOFF_MS), after the peers that answer and in a share of the slots only, so that
 * peers gone silent never hold up the measurements of the others. A peer neither connected nor
 * answering for `forgetAfterMs` is forgotten: its series are removed, so the label sets stay
 * bounded by the overlay's recent members.
 */
export class PingMonitor implements Startable {
  readonly #node: MonitoredNode
  readonly #log: Logger
  readonly #init: Required<PingMonitorInit>
  readonly #peers = new Map<string, TrackedPeer>()
  /** Pings to peers that answered their last ping (or have had none yet), in order. */
  readonly #queue: TrackedPeer[] = []
  /** Pings to peers whose last ping failed: they start after #queue's, on at most #retrySlots slots. */
  readonly #retries: TrackedPeer[] = []
  readonly #retrySlots: number
  /** Retries among #holding. */
  #retrying = 0
  /**
   * Pings in flight that hold a slot, by start (performance.now() time), oldest first, retries marked.
   * One unanswered for an interval gives its slot up, though it waits for its timeout: its peer is
   * probably gone, and peers that went silent together must not hold every slot the others need.
   * A retry too: at --concurrency 1 its share is the one slot, which it must not hold until the
   * timeout. Checked each round, and by #overdue while pings wait for a slot.
   */
  readonly #holding = new Map<TrackedPeer, { since: number, retry: boolean }>()
  #overdue?: NodeJS.Timeout
  /** The ping of #queue started last: the next starts at once when it was answered (or overdue). */
  #last?: TrackedPeer
  /** Every ping in flight, with slot or without. */
  #inFlight = 0
  #timer?: NodeJS.Timeout
  /** Pacing: when the next ping may start, and the gap between starts in this round. */
  #nextStartAt = 0
  #spacingMs = 0
  #pacer?: NodeJS.Timeout
  #controller = new AbortController()
  #rounds = 0
  /**
   * When the pings of a round had last all started, for /healthz. Like every time the monitor
   * schedules by, a performance.now() time: a step of the host's clock (date -s, NTP correcting
   * one that ran ahead) must neither stop the retries and forgetting nor hide a stalled monitor.
   * The wall clock only dates what is reported.
   */
  #caughtUpAt?: number

  readonly #distribution: Histogram<'host'>
  readonly #failures: Counter<'host' | 'target_peer' | 'reason'>

  constructor (components: PingMonitorComponents, init: PingMonitorInit) {
    this.#node = components.node
    this.#log = components.logger
    this.#init = { ...init }
    this.#retrySlots = Math.ceil(init.concurrency * RETRY_SHARE)
    const registers = [components.registry]
    const host = init.hostName
    // A peer's series are filled in at each scrape from the RTT table and the tracked peers, so
    // they cannot disagree with /peers and need no removing when a peer goes or is renamed
    const peers = this.#peers
    const table = this.#node.rtt
    // `answering`: only while the peer's last ping was answered, so a graph of a host that went
    // down shows a gap, not its last good RTT for --forget-after
    const perPeer = (metric: { name: string, help: string }, value: (entry: RttEntry) => number, answering: boolean): Gauge =>
      new Gauge({
        ...metric,
        labelNames: ['host', 'target_peer', 'target_host'],
        registers,
        collect () {
          this.reset()
          for (const peer of peers.values()) {
            const entry = table.get(peer.key)
            if (entry != null && entry.samples > 0 && (!answering || entry.consecutiveFailures === 0)) {
              this.set({ host, target_peer: peer.key, target_host: peer.host }, value(entry))
            }
          }
        }
      })
    perPeer({ name: 'physarum_ping_rtt_seconds', help: 'Round-trip time of the last ping to the peer (none while its pings fail)' }, entry => entry.lastMs / 1_000, true)
    perPeer({ name: 'physarum_ping_rtt_ewma_seconds', help: 'Smoothed round-trip time to the peer: an exponentially weighted moving average that starts from the least of its first samples, not the first one, which a new connection delays (none while its pings fail)' }, entry => entry.smoothedMs / 1_000, true)
    perPeer({ name: 'physarum_ping_last_success_timestamp_seconds', help: 'When the peer last answered a ping (Unix time)' }, entry => Math.floor(entry.lastSeen / 1_000), false)
    this.#distribution = new Histogram({
      name: 'physarum_ping_rtt_distribution_seconds',
      help: 'Round-trip times of every ping to every peer',
      labelNames: ['host'],
      buckets: RTT_BUCKETS_SECONDS,
      registers
    })
    this.#failures = new Counter({
      name: 'physarum_ping_failures_total',
      help: 'Pings to the peer that failed: reason="ping" on an open connection (unanswered within --ping-timeout, the connection still open), reason="dial" with no connection, which could not be opened (a peer that left; one that closes its connection during a ping counts here once the next ping\'s dial fails)',
      labelNames: ['host', 'target_peer', 'reason'],
      registers
    })
    const node = this.#node
    new Gauge({
      name: 'physarum_connected_peers',
      help: 'Peers with an open connection to this node',
      labelNames: ['host'],
      registers,
      collect () { this.set({ host }, node.libp2p.getPeers().length) }
    }).set({ host }, 0)
    new Gauge({
      name: 'physarum_ping_tracked_peers',
      help: 'Peers being pinged: the connected ones and those gone for less than --forget-after',
      labelNames: ['host'],
      registers,
      collect () { this.set({ host }, peers.size) }
    }).set({ host }, 0)
  }

  readonly [Symbol.toStringTag] = '@physarum/ping-monitor'

  start (): void {
    this.#controller = new AbortController()
    this.#node.libp2p.addEventListener('peer:identify', this.#onIdentify)
    this.#timer = setInterval(() => { this.tick() }, this.#init.intervalMs)
    // the node's sockets keep a daemon alive; this timer alone must not
    this.#timer.unref()
    this.tick()
  }

  stop (): void {
    this.#node.libp2p.removeEventListener('peer:identify', this.#onIdentify)
    clearInterval(this.#timer)
    clearTimeout(this.#pacer)
    this.#pacer = undefined
    clearTimeout(this.#overdue)
    this.#overdue = undefined
    this.#controller.abort(new Error('The ping monitor stopped'))
    for (const peer of [...this.#queue.splice(0), ...this.#retries.splice(0)]) {
      peer.busy = false
    }
  }

  /** Pings queued or in flight. */
  get pending (): number {
    return this.#queue.length + this.#retries.length + this.#inFlight
  }

  /** How many times `tick` ran: a round of pings was started (for /healthz and tests). */
  get rounds (): number {
    return this.#rounds
  }

  /**
   * For /healthz: not ok once no round had all its pings started for 3 intervals and a ping timeout
   * (a round may wait that long for slots held by pings that time out): the monitor stopped, or
   * cannot keep up with its peers.
   */
  health (now = performance.now()): PingMonitorHealth {
    return {
      ok: this.#caughtUpAt != null && now - this.#caughtUpAt <= 3 * this.#init.intervalMs + this.#init.pingTimeoutMs,
      rounds: this.#rounds,
      pending: this.pending,
      caughtUpAt: this.#caughtUpAt != null ? wallClock(this.#caughtUpAt) : null
    }
  }

  /**
   * One round: track every connected peer, forget those unseen for too long, and queue a ping to
   * every tracked peer that has none queued or in flight. Runs every interval; tests may call it.
   */
  tick (now = performance.now()): void {
    this.#rounds++
    const back: TrackedPeer[] = []
    // a connection's peer id keeps its string form; getPeers() builds new ids, each encoded again
    for (const { id: connection, remotePeer: id } of this.#node.libp2p.getConnections()) {
      const key = id.toString()
      let peer = this.#peers.get(key)
      if (peer == null) {
        peer = { id, key, host: UNKNOWN_HOST, hostKnown: false, connection, lastSeen: now, busy: false, failures: 0, notBefore: 0 }
        this.#peers.set(key, peer)
        // a counter that exists from the start makes rate() and increase() right from the first failure
        for (const reason of FAILURE_REASONS) {
          this.#failures.inc({ host: this.#init.hostName, target_peer: key, reason }, 0)
        }
        this.#log.info({ peer: key }, 'tracking peer')
      } else if (peer.connection !== connection) {
        const known = peer.connection
        // a peer may have two connections at once (both dialled): only a closed one makes it new
        if (!this.#node.libp2p.getConnections(id).some(c => c.id === known)) {
          peer.connection = connection
          peer.failures = 0
          peer.notBefore = 0
          back.push(peer)
        }
      }
      peer.lastSeen = Math.max(peer.lastSeen, now)
    }
    this.#releaseOverdue(now)
    const forgetBefore = now - this.#init.forgetAfterMs
    for (const peer of [...this.#peers.values()]) {
      if (peer.lastSeen < forgetBefore) {
        this.#forget(peer)
      } else if (!peer.busy && now >= peer.notBefore) {
        peer.busy = true
        if (peer.failures > 0) {
          this.#retries.push(peer)
        } else {
          this.#queue.push(peer)
        }
      }
    }
    // a peer that is back goes first, so that its series return at once (unless its ping is under way)
    for (const peer of back) {
      if (this.#unqueue(peer)) {
        this.#queue.unshift(peer)
      }
    }
    if (this.#queue.length === 0) {
      this.#caughtUpAt = performance.now()
    }
    this.#nextStartAt = performance.now()
    this.#spacingMs = Math.min(this.#init.maxSpacingMs, SPREAD * this.#init.intervalMs / Math.max(1, this.#queue.length))
    this.#pump()
  }

  /** Every tracked peer, for GET /peers. */
  async peers (): Promise<PeerReport[]> {
    return await Promise.all([...this.#peers.values()].map(async peer => {
      const entry = this.#node.rtt.get(peer.key)
      let addresses: string[] = []
      try {
        addresses = (await this.#node.libp2p.peerStore.get(peer.id)).addresses.map(a => a.multiaddr.toString())
      } catch {
        // not in the peer store (any more): no addresses known
      }
      const connections = this.#node.libp2p.getConnections(peer.id)
      const hasSample = entry != null && entry.samples > 0
      return {
        peerId: peer.key,
        host: peer.host,
        addresses,
        connectedVia: connections.map(c => c.remoteAddr.toString()),
        connected: connections.length > 0,
        lastRttMs: hasSample ? entry.lastMs : null,
        smoothedRttMs: hasSample ? entry.smoothedMs : null,
        samples: entry?.samples ?? 0,
        failures: entry?.failures ?? 0,
        consecutiveFailures: entry?.consecutiveFailures ?? 0,
        lastSeen: wallClock(peer.lastSeen),
        lastAnswer: hasSample ? new Date(entry.lastSeen).toISOString() : null
      }
    }))
  }

  /**
   * Starts queued pings, at most `concurrency` holding a slot. A ping of #queue starts at once
   * when the one started before it was answered, so while answers come quickly a round's pings go
   * one after another: no answer waits behind the work of another ping (encryption, framing, which
   * on a LAN or loopback is as much as the RTT itself), and the wake-up for an answer also sends
   * the next ping, its code and data still in the caches (docs/decisions.md has the figures).
   * While that one is unanswered (a far or silent peer), the next waits for an even spread of the
   * round over the interval: one every `#spacingMs`, in parallel up to the free slots. Retries
   * start once #queue is empty, on at most #retrySlots slots. While pings wait for a slot, #overdue
   * frees the oldest once it is unanswered for an interval.
   */
  #pump (): void {
    while (this.#holding.size < this.#init.concurrency) {
      if (this.#queue.length > 0) {
        const now = performance.now()
        if (this.#last != null && this.#holding.has(this.#last) && now < this.#nextStartAt) {
          this.#pacer ??= setTimeout(() => {
            this.#pacer = undefined
            this.#pump()
          }, this.#nextStartAt - now)
          return
        }
        // keep the average pace when a timer fires late, but never start two at once to catch up
        this.#nextStartAt = Math.max(this.#nextStartAt, now - this.#spacingMs / 2) + this.#spacingMs
        const peer = this.#queue.shift()!
        if (this.#queue.length === 0) {
          this.#caughtUpAt = now
        }
        this.#last = peer
        this.#start(peer, false)
      } else if (this.#retries.length > 0 && this.#retrying < this.#retrySlots) {
        this.#start(this.#retries.shift()!, true)
      } else {
        break
      }
    }
    if ((this.#queue.length > 0 || this.#retries.length > 0) && this.#holding.size > 0) {
      const [oldest] = this.#holding.values()
      this.#overdue ??= setTimeout(() => {
        this.#overdue = undefined
        this.#releaseOverdue(performance.now())
        this.#pump()
      }, Math.max(0, oldest!.since + this.#init.intervalMs - performance.now()))
    }
  }

  /** Pings unanswered for an interval give their slots up (see #holding). */
  #releaseOverdue (now: number): void {
    for (const [peer, { since }] of this.#holding) {
      if (now - since < this.#init.intervalMs) {
        return
      }
      this.#release(peer)
    }
  }

  #release (peer: TrackedPeer): void {
    const slot = this.#holding.get(peer)
    if (slot != null) {
      this.#holding.delete(peer)
      if (slot.retry) {
        this.#retrying--
      }
    }
  }

  /** Pings `peer` on a slot, given back when the ping settles (or is overdue). */
  #start (peer: TrackedPeer, retry: boolean): void {
    this.#holding.set(peer, { since: performance.now(), retry })
    if (retry) {
      this.#retrying++
    }
    this.#inFlight++
    void this.#ping(peer).finally(() => {
      this.#inFlight--
      this.#release(peer)
      peer.busy = false
      this.#pump()
    })
  }

  async #ping (peer: TrackedPeer): Promise<void> {
    if (this.#controller.signal.aborted) {
      return
    }
    const { signal, clear } = deadline(this.#init.pingTimeoutMs, this.#controller.signal)
    // the meter pings on one of these, or dials when there is none
    const open = this.#node.libp2p.getConnections(peer.id).filter(c => c.status === 'open')
    let ms: number
    try {
      ms = await this.#node.measureRtt(peer.id, { signal })
    } catch (err) {
      if (this.#peers.get(peer.key) !== peer) {
        this.#forgotDuringPing(peer)
        return
      }
      if (this.#controller.signal.aborted) {
        return
      }
      const cause = signal.aborted ? `no answer within ${this.#init.pingTimeoutMs} ms` : (err as Error).message
      // decided now, not as the ping started: a peer that stops cleanly closes its connection under
      // the ping, and must not count as one that stopped answering on it
      const reason: FailureReason | undefined = open.length === 0 ? 'dial' : open.some(c => c.status === 'open') ? 'ping' : undefined
      if (reason == null) {
        this.#log.debug({ peer: peer.key, targetHost: peer.host, err: cause }, 'the connection closed during the ping: the next round tells whether the peer left')
        return
      }
      this.#failures.inc({ host: this.#init.hostName, target_peer: peer.key, reason })
      if (peer.failingSince == null) {
        peer.failingSince = performance.now()
        if (reason === 'ping') {
          this.#log.warn({ peer: peer.key, targetHost: peer.host, err: cause }, 'peer stopped answering pings on its open connection')
        } else {
          this.#log.info({ peer: peer.key, targetHost: peer.host, err: cause }, 'peer unreachable: no connection, and the dial failed (it left, or its process died)')
        }
      }
      peer.failures++
      // peers that failed together (a rack gone) must not retry together: each wait is cut by up
      // to half at random. The tick that queues the retry comes up to an interval after notBefore
      const wait = Math.min(MAX_BACKOFF_MS, this.#init.intervalMs * 2 ** (peer.failures - 1)) * (1 - Math.random() / 2)
      peer.notBefore = performance.now() + wait - this.#init.intervalMs
      this.#log.debug({ peer: peer.key, targetHost: peer.host, reason, err: cause }, 'ping failed')
      return
    } finally {
      clear()
    }
    if (this.#peers.get(peer.key) !== peer) {
      this.#forgotDuringPing(peer)
      return
    }
    peer.lastSeen = Math.max(peer.lastSeen, performance.now())
    peer.failures = 0
    peer.notBefore = 0
    if (peer.failingSince != null) {
      this.#log.info({ peer: peer.key, targetHost: peer.host, failingMs: Math.round(performance.now() - peer.failingSince) }, 'peer answers again')
      peer.failingSince = undefined
    }
    // reading the peer store after every ping cost 7% of the monitor's CPU with 200 peers
    if (!peer.hostKnown) {
      await this.#readHost(peer)
    }
    this.#distribution.observe({ host: this.#init.hostName }, ms / 1_000)
  }

  /** Reads the host name the peer announced from the peer store. */
  async #readHost (peer: TrackedPeer): Promise<void> {
    let host: string | undefined
    try {
      const agent = (await this.#node.libp2p.peerStore.get(peer.id)).metadata.get('AgentVersion')
      host = hostNameFromAgent(agent == null ? undefined : decoder.decode(agent))
    } catch {
      // not in the peer store: identify will tell
    }
    // an identify event that came during the read is newer than what was read
    if (!peer.hostKnown) {
      peer.hostKnown = true
      this.#setHost(peer, host ?? UNKNOWN_HOST)
    }
  }

  /** A tracked peer (re)identified, on a new connection or by a push: it may announce another name. */
  readonly #onIdentify = ({ detail }: CustomEvent<IdentifyResult>): void => {
    const peer = this.#peers.get(detail.peerId.toString())
    if (peer != null && detail.agentVersion != null) {
      peer.hostKnown = true
      this.#setHost(peer, hostNameFromAgent(detail.agentVersion) ?? UNKNOWN_HOST)
    }
  }

  /** A changed name moves the peer's series to the new label. */
  #setHost (peer: TrackedPeer, host: string): void {
    if (host !== peer.host) {
      this.#log.info({ peer: peer.key, targetHost: host, was: peer.host }, 'peer announced its host name')
      peer.host = host
    }
  }

  /**
   * A ping of a peer forgotten meanwhile wrote to the node's RTT table after #forget cleared it:
   * its entry goes again, unless the peer is tracked anew (it came back).
   */
  #forgotDuringPing (peer: TrackedPeer): void {
    if (!this.#peers.has(peer.key)) {
      this.#node.rtt.delete(peer.key)
    }
  }

  #forget (peer: TrackedPeer): void {
    this.#peers.delete(peer.key)
    for (const reason of FAILURE_REASONS) {
      this.#failures.remove({ host: this.#init.hostName, target_peer: peer.key, reason })
    }
    this.#node.rtt.delete(peer.key)
    this.#unqueue(peer)
    this.#log.info({ peer: peer.key, targetHost: peer.host, unseenMs: Math.round(performance.now() - peer.lastSeen) }, 'forgot peer: neither connected nor answering for --forget-after')
  }

  /** Takes the peer's ping out of its queue; false when none was queued. */
  #unqueue (peer: TrackedPeer): boolean {
    for (const queue of [this.#queue, this.#retries]) {
      const queued = queue.indexOf(peer)
      if (queued >= 0) {
        queue.splice(queued, 1)
        return true
      }
    }
    return false
  }
}
