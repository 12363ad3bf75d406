import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { measureAll } from '../src/commands/status.ts'
import type { Overlay } from '../src/overlay.ts'
import type { PeerId } from '@libp2p/interface'

/** A peer id as far as measureAll looks at one. */
const peer = (id: string): PeerId => ({ toString: () => id }) as unknown as PeerId

/** An overlay whose pings answer from `answers` (per peer, in order; an Error is a failed ping). */
function fakeOverlay (answers: Record<string, Array<number | Error>>): { overlay: Overlay, calls: Record<string, number>, maxSampling: () => number } {
  const calls: Record<string, number> = {}
  let sampling = 0
  let maxSampling = 0
  const measureRtt = async (id: PeerId): Promise<number> => {
    const key = id.toString()
    const call = calls[key] = (calls[key] ?? 0) + 1
    // every ping after a peer's first is a sample taken once every peer is connected
    sampling += call > 1 ? 1 : 0
    maxSampling = Math.max(maxSampling, sampling)
    await new Promise(resolve => setTimeout(resolve, 5))
    sampling -= call > 1 ? 1 : 0
    const answer = answers[key]?.[call - 1] ?? new Error('no answer')
    if (answer instanceof Error) {
      throw answer
    }
    return answer
  }
  return { overlay: { node: { measureRtt } } as unknown as Overlay, calls, maxSampling: () => maxSampling }
}

describe('hl-cli status RTTs', () => {
  it('shows the lowest of a peer\'s pings, taken one peer at a time once all are connected', async () => {
    const { overlay, calls, maxSampling } = fakeOverlay({
      near: [2.4, 0.4, 0.2, 0.3],
      flaky: [1.5, new Error('timed out')],
      gone: [new Error('dial failed')],
      other: [0.9, 0.8, 0.7, 0.75]
    })
    const rtts = await measureAll(overlay, [peer('near'), peer('flaky'), peer('gone'), peer('near'), peer('other')])
    assert.deepEqual(Object.fromEntries(rtts), { near: 0.2, flaky: 1.5, other: 0.7 })
    // once each, a second listing of a peer included; a failed sample ends that peer's samples
    assert.deepEqual(calls, { near: 4, flaky: 2, gone: 1, other: 4 })
    assert.equal(maxSampling(), 1, 'the samples are taken one at a time')

    // peers already measured are not pinged again
    await measureAll(overlay, [peer('near'), peer('other')], rtts)
    assert.deepEqual(calls, { near: 4, flaky: 2, gone: 1, other: 4 })
  })
})
