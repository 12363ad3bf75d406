import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { StreamState, YamuxStream } from '@chainsafe/libp2p-yamux/stream'
import { Uint8ArrayList } from 'uint8arraylist'
import { useLazyWindowUpdates } from '../src/yamux-window.ts'
import type { FrameHeader } from '@chainsafe/libp2p-yamux'
import type { Logger } from '@libp2p/interface'

const WINDOW = 256 * 1024
/** Yamux frame types (the spec's numbers): data and window update. */
const DATA = 0
const WINDOW_UPDATE = 1

const quiet = Object.assign(() => {}, { error: () => {}, trace: () => {}, enabled: false, newScope: () => quiet }) as unknown as Logger

/** An established stream whose frames to the remote are recorded. */
function stream (): { stream: YamuxStream, updates: FrameHeader[] } {
  const updates: FrameHeader[] = []
  const stream = new YamuxStream({
    id: '1',
    streamId: 1,
    direction: 'inbound',
    log: quiet,
    state: StreamState.Established,
    initialStreamWindowSize: WINDOW,
    maxStreamWindowSize: WINDOW,
    getRTT: () => -1,
    sendFrame: (header) => {
      if (Number(header.type) === WINDOW_UPDATE) {
        updates.push(header)
      }
      return true
    }
  })
  return { stream, updates }
}

function receive (target: YamuxStream, bytes: number): void {
  // the Uint8ArrayList of yamux's own version
  const data = new Uint8ArrayList(new Uint8Array(bytes)) as unknown as NonNullable<Parameters<YamuxStream['handleData']>[0]['data']>
  target.handleData({ header: { type: DATA, flag: 0, streamID: 1, length: bytes }, data })
}

describe('Yamux window updates', () => {
  it('grants more window once half of it is used, not after every data frame', () => {
    useLazyWindowUpdates()
    useLazyWindowUpdates() // applied once, however often it is called
    const { stream: s, updates } = stream()
    for (let i = 0; i < 127; i++) {
      receive(s, 1024)
    }
    assert.equal(updates.length, 0, '127 KiB of 256 KiB received: the sender still has more than half')
    receive(s, 2048)
    assert.equal(updates.length, 1)
    assert.equal(updates[0]!.length, 129 * 1024, 'the update gives back everything received')
    receive(s, 1024)
    assert.equal(updates.length, 1)
  })
})
