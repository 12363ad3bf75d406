import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { describe, it } from 'node:test'
import { noise } from '@chainsafe/libp2p-noise'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { multiaddrConnectionPair } from '@libp2p/utils'
import { Uint8ArrayList } from 'uint8arraylist'
import { noiseFrameLength, withCheapFrameLengths } from '../src/noise-frames.ts'
import type { ComponentLogger, Logger, MessageStream, StreamMessageEvent } from '@libp2p/interface'

const quiet = Object.assign(() => {}, { error: () => {}, trace: () => {}, enabled: false, newScope: () => quiet }) as unknown as Logger
const logger: ComponentLogger = { forComponent: () => quiet }

async function encrypter (): Promise<ReturnType<ReturnType<typeof withCheapFrameLengths>>> {
  const privateKey = await generateKeyPair('Ed25519')
  return withCheapFrameLengths(noise())({
    privateKey,
    peerId: peerIdFromPrivateKey(privateKey),
    logger,
    upgrader: { getStreamMuxers: () => new Map() } as never
  })
}

function received (stream: MessageStream): Uint8ArrayList {
  const all = new Uint8ArrayList()
  stream.addEventListener('message', (evt: StreamMessageEvent) => { all.append(evt.data) })
  return all
}

describe('Noise frame lengths', () => {
  it('reads a 2-byte big-endian length, and waits while fewer than 2 bytes are buffered', () => {
    assert.equal(noiseFrameLength(new Uint8ArrayList()), 0xffff)
    assert.equal(noiseFrameLength(new Uint8ArrayList(Uint8Array.of(0x01))), 0xffff)
    assert.equal(noiseFrameLength(new Uint8ArrayList(Uint8Array.of(0x01), Uint8Array.of(0x02, 0x99))), 0x0102)
    assert.equal(noiseFrameLength(new Uint8ArrayList(Uint8Array.of(0xff, 0xf0))), 0xfff0)
  })

  it('gives every encrypted connection the non-throwing decoder, and messages still pass', async () => {
    const [outboundConn, inboundConn] = multiaddrConnectionPair()
    const [initiator, responder] = await Promise.all([encrypter(), encrypter()])
    const [outbound, inbound] = await Promise.all([
      initiator.secureOutbound(outboundConn, { skipStreamMuxerNegotiation: true }),
      responder.secureInbound(inboundConn, { skipStreamMuxerNegotiation: true })
    ])
    for (const secured of [outbound, inbound]) {
      // the patch must reach Noise's decoder: a Noise version that moves it fails here
      assert.equal((secured.connection as unknown as { decoder: { lengthDecoder: unknown } }).decoder.lengthDecoder, noiseFrameLength)
    }
    const got = received(inbound.connection)
    const sent = new Uint8ArrayList()
    // 100 000 bytes take two Noise messages, sent in one write
    for (const size of [1, 32, 1000, 100_000, 3]) {
      const message = new Uint8Array(randomBytes(size))
      sent.append(message)
      outbound.connection.send(message)
    }
    const deadline = Date.now() + 5_000
    while (got.byteLength < sent.byteLength && Date.now() < deadline) {
      await new Promise(resolve => setTimeout(resolve, 10))
    }
    assert.deepEqual(got.subarray(), sent.subarray())
  })
})
