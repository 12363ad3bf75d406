import assert from 'node:assert/strict'
import { EventEmitter } from 'node:events'
import { describe, it } from 'node:test'
import { pino } from 'pino'
import { onShutdown } from '../src/index.ts'

describe('shutdown', () => {
  const log = pino({ level: 'silent' })

  it('runs every step once and in order on SIGTERM, past a failing one, then exits 143; a second signal exits at once', async () => {
    const ran: string[] = []
    const exits: number[] = []
    const signals = new EventEmitter()
    const stopped = Promise.withResolvers<void>()
    onShutdown([
      { name: 'stop taking work', run: () => { ran.push('a') } },
      { name: 'broken', run: () => { throw new Error('boom') } },
      { name: 'stop node', run: async () => { await Promise.resolve(); ran.push('c'); stopped.resolve() } }
    ], { log, exit: code => exits.push(code), signals })
    signals.emit('SIGTERM')
    await stopped.promise
    await new Promise(resolve => setImmediate(resolve))
    assert.deepEqual(ran, ['a', 'c'])
    assert.deepEqual(exits, [143])
    signals.emit('SIGINT')
    assert.deepEqual(exits, [143, 130])
    assert.deepEqual(ran, ['a', 'c'], 'the steps ran once')
  })

  it('exits 1 when a step hangs past the deadline', async () => {
    const exited = Promise.withResolvers<number>()
    const signals = new EventEmitter()
    onShutdown([{ name: 'hangs', run: async () => await new Promise(() => {}) }], { log, deadlineMs: 50, exit: exited.resolve, signals })
    signals.emit('SIGTERM')
    assert.equal(await exited.promise, 1)
  })
})
