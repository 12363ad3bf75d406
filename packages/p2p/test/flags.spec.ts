import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { formatDuration, MAX_TIMER_MS, parseDuration, parseNumber, parsePort } from '../src/index.ts'

describe('duration flags', () => {
  it('reads numbers with units', () => {
    assert.equal(parseDuration('--interval', '500ms'), 500)
    assert.equal(parseDuration('--interval', '.5s'), 500)
    assert.equal(parseDuration('--interval', '10s'), 10_000)
    assert.equal(parseDuration('--forget-after', '10m'), 600_000)
    assert.equal(parseDuration('--forget-after', '1h'), 3_600_000)
    assert.equal(parseDuration('--forget-after', '1m30s'), 90_000)
    assert.equal(parseDuration('--ping-timeout', ' 1.5s '), 1_500)
    assert.equal(parseDuration('--drain-delay', '0'), 0)
  })

  it('refuses a bare number other than 0, which could be seconds or milliseconds', () => {
    for (const bare of ['30', '1500', '0.5', '.5']) {
      assert.throws(() => parseDuration('--upstream-timeout', bare), {
        name: 'ConfigError',
        message: `--upstream-timeout: "${bare}" has no unit: write ${bare}s or ${bare}ms (units: ms, s, m, h)`
      })
    }
  })

  it('names the flag and the value it cannot read', () => {
    for (const bad of ['', 'abc', '10x', '5 s', 'ms', '-1', '1s2', '10m ago']) {
      assert.throws(() => parseDuration('--interval', bad), (err: Error) => {
        assert.equal(err.name, 'ConfigError')
        assert.ok(err.message.startsWith('--interval: '), err.message)
        assert.ok(err.message.includes(JSON.stringify(bad)), err.message)
        return true
      }, `accepted ${JSON.stringify(bad)}`)
    }
  })

  it('refuses zero where a positive duration is needed', () => {
    assert.throws(() => parseDuration('--interval', '0', 1), { name: 'ConfigError', message: /^--interval: "0" is too short/ })
    assert.equal(parseDuration('--interval', '1ms', 1), 1)
    assert.throws(() => parseDuration('--stats-interval', '5ms', 10), { name: 'ConfigError', message: /^--stats-interval: "5ms" is too short \(at least 10ms\)/ })
  })

  it('refuses a duration Node\'s timers cannot wait for (they would fire at once)', () => {
    assert.equal(parseDuration('--idle-timeout', '24h'), 86_400_000)
    assert.equal(parseDuration('--idle-timeout', `${MAX_TIMER_MS}ms`), MAX_TIMER_MS)
    assert.throws(() => parseDuration('--ready-timeout', '700h'), { name: 'ConfigError', message: /^--ready-timeout: "700h" is too long \(at most 2147483647ms/ })
  })

  it('writes defaults in the largest unit that divides them', () => {
    assert.deepEqual([1_000, 600_000, 3_600_000, 250, 90_000, 0].map(formatDuration), ['1s', '10m', '1h', '250ms', '90s', '0s'])
  })

  it('reads numbers of at least the minimum, whole ones where asked', () => {
    assert.equal(parseNumber('--cpu-budget', '1.5', 0), 1.5)
    assert.throws(() => parseNumber('--cpu-budget', '-1', 0), { name: 'ConfigError', message: /^--cpu-budget: / })
    assert.equal(parseNumber('--concurrency', '8', 1, true), 8)
    assert.equal(parseNumber('--concurrency', ' 16 ', 1, true), 16)
    for (const bad of ['0', '-3', '1.5', 'many', '', '0x10', '0b11', '1e3', '16 8', 'Infinity']) {
      assert.throws(() => parseNumber('--concurrency', bad, 1, true), { name: 'ConfigError', message: /^--concurrency: / })
    }
  })

  it('reads ports written in decimal digits only', () => {
    assert.equal(parsePort('<port>', '4200', 0), 4200)
    assert.equal(parsePort('<port>', ' 0 ', 0), 0)
    for (const bad of ['0x1068', '4.2e3', '4200.0', '-1', '65536', '', 'http']) {
      assert.throws(() => parsePort('<port>', bad, 0), (err: Error) => err.name === 'ConfigError' && err.message.startsWith(`<port>: ${JSON.stringify(bad)} is not a port`), bad)
    }
    assert.throws(() => parsePort('--service-port', '0', 1), { name: 'ConfigError', message: /^--service-port: "0" is not a port \(1-65535\)/ })
  })
})
