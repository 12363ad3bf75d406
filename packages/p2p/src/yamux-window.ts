import { StreamState, YamuxStream } from '@chainsafe/libp2p-yamux/stream'

/** The fields of a Yamux stream the window update depends on (private in its types). */
interface WindowState {
  state: StreamState
  recvWindow: number
  recvWindowCapacity: number
}

type WindowUpdater = (this: WindowState) => void

const LAZY = Symbol.for('physarum.yamux.lazy-window-updates')

/**
 * js-yamux answers every data frame it receives with a window update: one more Yamux frame,
 * Noise message, PSK pass and socket write for each message of a request and its response, where
 * socket writes already lead the profiles of the proxy and the RPCs (docs/decisions.md). Like
 * go-yamux and rust-yamux, an established stream here grants more window only once the sender has
 * used half of it; the sender always keeps at least half, so it never waits for the update.
 * Applied once per process, to the stream class every Yamux connection uses.
 */
export function useLazyWindowUpdates (): void {
  const proto = YamuxStream.prototype as unknown as { sendWindowUpdate: WindowUpdater, [LAZY]?: true }
  if (proto[LAZY] === true) {
    return
  }
  const eager = proto.sendWindowUpdate
  proto.sendWindowUpdate = function (this: WindowState) {
    if (this.state === StreamState.Established && this.recvWindowCapacity > this.recvWindow / 2) {
      return
    }
    eager.call(this)
  }
  proto[LAZY] = true
}
