import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import { describe, it } from 'node:test'
import { deadline } from '../src/index.ts'

describe('deadline', () => {
  it('aborts after its time, never once cleared, and with its parent', async () => {
    const late = deadline(20)
    assert.equal(late.signal.aborted, false)
    await sleep(60)
    assert.equal(late.signal.aborted, true)

    const done = deadline(20)
    done.clear()
    await sleep(60)
    assert.equal(done.signal.aborted, false, 'a cleared deadline stays quiet')

    const parent = new AbortController()
    const child = deadline(10_000, parent.signal)
    parent.abort()
    assert.equal(child.signal.aborted, true)
    child.clear()
    assert.equal(deadline(10_000, parent.signal).signal.aborted, true, 'an aborted parent aborts it at once')
  })
})
