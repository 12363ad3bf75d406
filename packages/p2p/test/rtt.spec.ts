import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { RTT_SEED_SAMPLES, RTT_SEED_WINDOW_MS, RttTable } from '../src/index.ts'

describe('RTT table', () => {
  it('smooths from the least of the first samples, not from the first: a new connection\'s first pings wait behind its other traffic', () => {
    const table = new RttTable(0.2)
    // the figures of a loopback peer of 0.5 ms, measured right after it connected
    const early = [18, 33, 1.3, 0.6, 0.5]
    assert.equal(early.length, RTT_SEED_SAMPLES)
    const smoothed = early.map(ms => table.record('peer', ms).smoothedMs)
    assert.deepEqual(smoothed, [18, 18, 1.3, 0.6, 0.5])

    // then a moving average from there: one slow answer moves it by a fifth of the difference
    const entry = table.record('peer', 5.5)
    assert.equal(entry.smoothedMs, 0.5 + 0.2 * 5)
    assert.equal(entry.lastMs, 5.5)
    assert.equal(entry.samples, RTT_SEED_SAMPLES + 1)
  })

  it('seeds only from the first samples close in time: a peer measured rarely whose path grew slow shows it', () => {
    const table = new RttTable(0.2)
    // a client proxy pings an instance at each refresh of its instances, 30 s apart
    const start = 1_000_000
    table.record('peer', 20, start)
    const later = table.record('peer', 800, start + RTT_SEED_WINDOW_MS)
    assert.equal(later.smoothedMs, 20 + 0.2 * 780)
    assert.equal(table.record('peer', 800, start + 3 * RTT_SEED_WINDOW_MS).smoothedMs, later.smoothedMs + 0.2 * (800 - later.smoothedMs))
  })

  it('starts from the first sample after failures only', () => {
    const table = new RttTable(0.2)
    table.recordFailure('peer')
    const entry = table.record('peer', 3)
    assert.equal(entry.smoothedMs, 3)
    assert.equal(entry.samples, 1)
    assert.equal(entry.failures, 1)
    assert.equal(entry.consecutiveFailures, 0)
    assert.equal(table.record('peer', 4).smoothedMs, 3)
  })
})
