import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { pino } from 'pino'
import { onShutdown } from '../src/index.ts'

describe('shutdown', () => {
  const log = pino({ level: 'silent' })

  it('runs every step once and in order, past a failing one, then exits 0', async () => {
    const ran: string[] = []
    const exits: number[] = []
    const shutdown = onShutdown([
      { name: 'stop taking work', run: () => { ran.push('a') } },
      { name: 'broken', run: () => { throw new Error('boom') } },
      { name: 'stop node', run: async () => { await Promise.resolve(); ran.push('c') } }
    ], { log, exit: code => exits.push(code) })
    await Promise.all([shutdown('test'), shutdown('again')])
    assert.deepEqual(ran, ['a', 'c'])
    assert.deepEqual(exits, [0])
  })

  it('exits anyway when a step hangs past the deadline', async () => {
    const exited = Promise.withResolvers<number>()
    const shutdown = onShutdown([{ name: 'hangs', run: async () => await new Promise(() => {}) }], { log, deadlineMs: 50, exit: exited.resolve })
    void shutdown('test')
    assert.equal(await exited.promise, 1)
  })
})
