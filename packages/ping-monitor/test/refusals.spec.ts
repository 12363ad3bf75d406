import assert from 'node:assert/strict'
import { Writable } from 'node:stream'
import { describe, it } from 'node:test'
import { multiaddr } from '@multiformats/multiaddr'
import { pino } from 'pino'
import { Registry } from 'prom-client'
import { REFUSAL_LOG_LINES } from '../src/constants.ts'
import { watchRefusals } from '../src/refusals.ts'
import { eventually, parseMetrics } from './helpers.ts'
import type { Libp2p } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'

interface Line { level: number, msg: string, remoteAddr?: string, leftOut?: number, addresses?: string, byReason?: Record<string, number> }

/**
 * The parts of libp2p's connection manager and upgrader that watchRefusals wraps, turning every
 * connection away for its host's rate.
 */
function refusingLibp2p (): { libp2p: Libp2p, connect: (remoteAddr: Multiaddr) => boolean } {
  const connectionManager = {
    acceptIncomingConnection: (_maConn: { remoteAddr: Multiaddr }) => false,
    getConnections: () => [],
    inboundConnectionRateLimiter: { get: () => ({ consumedPoints: 1_000 }) }
  }
  const libp2p = { components: { connectionManager, upgrader: { upgradeInbound: async () => {} } } }
  return { libp2p: libp2p as unknown as Libp2p, connect: (remoteAddr) => connectionManager.acceptIncomingConnection({ remoteAddr }) }
}

describe('refused connections (stubbed connection manager)', () => {
  it('logs a bounded number of lines per window, and one line counting the rest, whatever the number of addresses', async () => {
    const lines: Line[] = []
    const sink = new Writable({ write (chunk: Buffer, _encoding, done) { lines.push(...chunk.toString().split('\n').filter(Boolean).map(l => JSON.parse(l) as Line)); done() } })
    const registry = new Registry()
    const { libp2p, connect } = refusingLibp2p()
    const logIntervalMs = 1_000
    const unwatch = watchRefusals(libp2p, { log: pino({ level: 'info' }, sink), registry, hostName: 'mon', limits: { maxConnections: 100, inboundRate: 5, maxPending: 100, maxPendingPerIp: 10 }, logIntervalMs })
    try {
      // one connection from each of 2000 addresses: the limit per address never applies
      const started = performance.now()
      for (let i = 0; i < 2_000; i++) {
        assert.equal(connect(multiaddr(`/ip4/10.0.${i >> 8}.${i & 255}/tcp/40000`)), false)
      }
      assert.ok(performance.now() - started < logIntervalMs, 'the refusals took more than a window: make it longer')
      const summary = await eventually('the line counting the refusals left out', () => lines.find(l => l.leftOut != null), 5_000, 10)
      const refused = lines.filter(l => l.msg.startsWith('refused an inbound connection'))
      assert.equal(refused.length, REFUSAL_LOG_LINES)
      assert.deepEqual([summary.level, summary.leftOut, summary.addresses, summary.byReason], [40, 2_000 - REFUSAL_LOG_LINES, '1000 or more', { 'inbound-rate': 2_000 - REFUSAL_LOG_LINES }])
      assert.match(summary.msg, /physarum_connections_refused_total/)
      assert.equal(lines.length, REFUSAL_LOG_LINES + 1)
      const counted = parseMetrics(await registry.metrics()).find(s => s.name === 'physarum_connections_refused_total' && s.labels.reason === 'inbound-rate')
      assert.equal(counted?.value, 2_000)

      // the next window has lines again
      let next = 0
      await eventually('a line in the next window', () => {
        const addr = `/ip4/10.1.0.${++next}/tcp/40000`
        connect(multiaddr(addr))
        return lines.at(-1)?.remoteAddr === addr ? true : undefined
      }, 5_000, 10)
    } finally {
      unwatch()
    }
  })
})
