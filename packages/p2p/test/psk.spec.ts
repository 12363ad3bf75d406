import assert from 'node:assert/strict'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, it } from 'node:test'
import { inspect } from 'node:util'
import { randomBytes } from 'node:crypto'
import { setImmediate as nextTurn } from 'node:timers/promises'
import { multiaddrConnectionPair } from '@libp2p/utils'
import { xsalsa20 } from '@noble/ciphers/salsa.js'
import { Uint8ArrayList } from 'uint8arraylist'
import { Keystream, PreSharedKey, pskProtector } from '../src/index.ts'
import { startNode, stopAll } from './helpers.ts'
import type { PhysarumNode } from '../src/index.ts'
import type { MessageStream, MultiaddrConnection } from '@libp2p/interface'

// computed independently with Python: hashlib.sha3_256(passphrase.encode()).hexdigest()
const VECTORS = [
  ['physarum-test-network', '1870d60400e8582cafbb85e0c48e30b51d72f6f2fcc4423627d8642c534a1e74'],
  ['correct horse battery staple', 'af9ac3dac56b02f1ea017e7657a9bb7e1778274e31509f134f023e41a5953866'],
  ['ünïcödé', 'b712120bf76afdaf5b52b0a5621effbca85331ff1df8b839621e1e97a19e801b']
] as const

const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex')

describe('pre-shared keys', () => {
  const dir = mkdtemp(join(tmpdir(), 'physarum-psk-'))
  after(async () => { await rm(await dir, { recursive: true, force: true }) })

  it('derives the key from a passphrase as PhysarumSM does (SHA3-256 of its UTF-8 bytes)', () => {
    for (const [passphrase, expected] of VECTORS) {
      assert.equal(hex(PreSharedKey.fromPassphrase(passphrase).bytes()), expected)
    }
  })

  it('refuses an empty passphrase', () => {
    assert.throws(() => PreSharedKey.fromPassphrase(''), { name: 'InvalidPskError', message: /empty/ })
  })

  it('round-trips the swarm.key format', () => {
    const key = PreSharedKey.generate()
    const text = key.toSwarmKey()
    assert.match(text, /^\/key\/swarm\/psk\/1\.0\.0\/\n\/base16\/\n[0-9a-f]{64}\n$/)
    assert.ok(PreSharedKey.fromSwarmKey(text).equals(key))
    assert.ok(PreSharedKey.fromSwarmKey(text.replaceAll('\n', '\r\n')).equals(key), 'CRLF line ends')
  })

  it('says what is wrong with a malformed swarm key', () => {
    const good = PreSharedKey.generate().toSwarmKey().split('\n')
    const cases: Array<[string, RegExp]> = [
      ['', /first line/],
      [['/key/swarm/psk/2.0.0/', ...good.slice(1)].join('\n'), /first line/],
      [[good[0], '/base64/', good[2]].join('\n'), /only \/base16\//],
      [[good[0], good[1], good[2]!.slice(2)].join('\n'), /64 hexadecimal/],
      [[good[0], good[1], 'zz' + good[2]!.slice(2)].join('\n'), /64 hexadecimal/],
      [[good[0], good[1], good[2], 'extra'].join('\n'), /64 hexadecimal/]
    ]
    for (const [text, message] of cases) {
      assert.throws(() => PreSharedKey.fromSwarmKey(text), { name: 'InvalidPskError', message }, JSON.stringify(text))
    }
    // without its encoding line, the key itself is the second line: never in the message
    assert.throws(() => PreSharedKey.fromSwarmKey([good[0], good[2]].join('\n')), (err: Error) => {
      assert.match(err.message, /has no \/base16\/ line/)
      assert.ok(!err.message.includes(good[2]!), err.message)
      return true
    })
  })

  it('reads swarm key files and names the file in errors', async () => {
    const key = PreSharedKey.generate()
    const path = join(await dir, 'swarm.key')
    await writeFile(path, key.toSwarmKey())
    assert.ok((await PreSharedKey.fromSwarmKeyFile(path)).equals(key))
    await assert.rejects(PreSharedKey.fromSwarmKeyFile(join(await dir, 'missing.key')), { name: 'InvalidPskError', message: /missing\.key/ })
    await writeFile(path, 'not a key')
    await assert.rejects(PreSharedKey.fromSwarmKeyFile(path), { name: 'InvalidPskError', message: /swarm\.key/ })
  })

  it('never shows the key bytes when printed or serialized', () => {
    const key = PreSharedKey.fromPassphrase('physarum-test-network')
    const secret = hex(key.bytes())
    for (const shown of [String(key), JSON.stringify({ key }), inspect(key), `${key.toString()}`]) {
      assert.ok(!shown.includes(secret) && !shown.includes(secret.slice(0, 16)), shown)
      assert.match(shown, /\[PSK\]/)
    }
  })
})

describe('XSalsa20 keystream', () => {
  it('matches one-shot XSalsa20 whatever the chunk sizes', () => {
    const key = crypto.getRandomValues(new Uint8Array(32))
    const nonce = crypto.getRandomValues(new Uint8Array(24))
    const data = Uint8Array.from(randomBytes(300_000))
    const expected = xsalsa20(key, nonce, data)
    for (const sizes of [[1], [63], [64], [65], [7, 64, 129, 1], [65536], [1000, 1, 1, 5000]]) {
      const stream = new Keystream(key, nonce)
      const out = new Uint8Array(data.byteLength)
      let offset = 0
      let i = 0
      while (offset < data.byteLength) {
        const size = Math.min(sizes[i++ % sizes.length]!, data.byteLength - offset)
        out.set(stream.xor(data.subarray(offset, offset + size)).subarray(), offset)
        offset += size
      }
      assert.equal(hex(out), hex(expected), `chunk sizes ${sizes.join(',')}`)
    }
  })

  it('XORs a message of several chunks into one buffer, as if it were one chunk', () => {
    const key = crypto.getRandomValues(new Uint8Array(32))
    const nonce = crypto.getRandomValues(new Uint8Array(24))
    const data = Uint8Array.from(randomBytes(5_000))
    const expected = xsalsa20(key, nonce, data)
    const stream = new Keystream(key, nonce)
    // a 2-byte length prefix and a frame, as Noise hands them over, from inside a block
    const first = stream.xor(data.subarray(0, 30))
    const message = stream.xor(new Uint8ArrayList(data.subarray(30, 32), data.subarray(32, 92), data.subarray(92, 4_000)))
    const last = stream.xor(new Uint8ArrayList(data.subarray(4_000)))
    assert.ok(message instanceof Uint8Array)
    assert.equal(message.byteLength, 3_970)
    assert.equal(hex(Buffer.concat([first, message, last])), hex(expected))
  })

  it('decrypts what it encrypts with the same key and nonce', () => {
    const key = crypto.getRandomValues(new Uint8Array(32))
    const nonce = crypto.getRandomValues(new Uint8Array(24))
    const text = new TextEncoder().encode('hello over the private overlay')
    const sealed = new Keystream(key, nonce).xor(text).subarray()
    assert.notEqual(hex(sealed), hex(text))
    assert.equal(new TextDecoder().decode(new Keystream(key, nonce).xor(sealed).subarray()), 'hello over the private overlay')
  })
})

describe('PSK-protected connection', () => {
  /** Two connected ends, both protected, and the byte counts of the writes the outbound one made. */
  const protectedPair = async (): Promise<{ outbound: MessageStream, inbound: MessageStream, writes: number[] }> => {
    const [rawOut, rawIn] = multiaddrConnectionPair()
    const psk = PreSharedKey.generate()
    const [outbound, inbound] = await Promise.all([
      pskProtector({ psk })().protect(rawOut),
      pskProtector({ psk })().protect(rawIn)
    ])
    const writes: number[] = []
    const send = rawOut.send.bind(rawOut)
    rawOut.send = (data) => {
      writes.push(data.byteLength)
      return send(data)
    }
    return { outbound, inbound, writes }
  }

  const received = (stream: MessageStream): Uint8ArrayList => {
    const bytes = new Uint8ArrayList()
    stream.addEventListener('message', (evt) => { bytes.append(evt.data) })
    return bytes
  }

  it('writes the first message of a turn at once and the rest of the turn in one write, in order', async () => {
    const { outbound, inbound, writes } = await protectedPair()
    const bytes = received(inbound)
    const messages = [randomBytes(12), randomBytes(300), randomBytes(5)]
    for (const message of messages) {
      assert.equal(outbound.send(message), true)
    }
    assert.deepEqual(writes, [12], 'the first message goes at once, the others wait for the turn to end')
    await nextTurn()
    assert.deepEqual(writes, [12, 305])
    await nextTurn()
    const later = randomBytes(40)
    outbound.send(later)
    assert.deepEqual(writes, [12, 305, 40], 'the first message of a later turn goes at once')
    await nextTurn()
    await nextTurn()
    assert.equal(hex(bytes.subarray()), hex(Buffer.concat([...messages, later])))
  })

  it('writes the queue at once when it reaches 64 KiB', async () => {
    const { outbound, inbound, writes } = await protectedPair()
    const bytes = received(inbound)
    const first = randomBytes(10)
    const small = randomBytes(100)
    const large = randomBytes(64 * 1024)
    outbound.send(first)
    outbound.send(small)
    outbound.send(large)
    assert.deepEqual(writes, [10, 100 + 64 * 1024])
    await nextTurn()
    await nextTurn()
    assert.equal(hex(bytes.subarray()), hex(Buffer.concat([first, small, large])))
  })

  it('writes what is queued before it closes', async () => {
    const { outbound, inbound, writes } = await protectedPair()
    const bytes = received(inbound)
    const ended = new Promise(resolve => { inbound.addEventListener('close', resolve) })
    const messages = [randomBytes(64), randomBytes(32)]
    for (const message of messages) {
      outbound.send(message)
    }
    await (outbound as MultiaddrConnection).close()
    await ended
    assert.deepEqual(writes, [64, 32])
    assert.equal(hex(bytes.subarray()), hex(Buffer.concat(messages)))
  })

  it('drops what is queued when it is aborted', async () => {
    const { outbound, writes } = await protectedPair()
    outbound.send(randomBytes(64))
    outbound.send(randomBytes(32))
    outbound.abort(new Error('test abort'))
    await nextTurn()
    await nextTurn()
    assert.deepEqual(writes, [64])
  })
})

describe('PSK connections that libp2p closes', () => {
  let server: PhysarumNode | undefined
  let client: PhysarumNode | undefined
  after(async () => { await stopAll([client, server]) })

  it('send what their streams sent in the turn the connection closed, and their ends', async () => {
    server = await startNode()
    client = await startNode({ bootstrap: [server.multiaddrs()[0]!.toString()] })
    // libp2p closes a connection's muxer and then the transport's own connection, under the
    // protector: messages the protector queued in that turn must still reach the socket
    const protocol = '/physarum-test/last-words/1.0.0'
    const parts = [randomBytes(100), randomBytes(200), randomBytes(300)]
    await server.libp2p.handle(protocol, async (stream, connection) => {
      // once the caller has sent a byte, so that it is done negotiating the protocol
      await new Promise(resolve => { stream.addEventListener('message', resolve, { once: true }) })
      for (const part of parts) {
        stream.send(part)
      }
      await connection.close()
    })
    const stream = await client.libp2p.dialProtocol(server.peerId, protocol)
    const bytes = new Uint8ArrayList()
    const signal = AbortSignal.timeout(5_000)
    const ended = new Promise<Error | undefined>(resolve => { stream.addEventListener('close', (evt) => { resolve(evt.error) }) })
    stream.addEventListener('message', (evt) => { bytes.append(evt.data) })
    // the stream's end as the server's muxer closed it, not the socket's
    let finished = false
    stream.addEventListener('remoteCloseWrite', () => { finished = true })
    stream.send(Uint8Array.of(1))
    await Promise.race([ended, new Promise((_resolve, reject) => { signal.addEventListener('abort', () => { reject(new Error('the stream did not end')) }) })])
    assert.equal(hex(bytes.subarray()), hex(Buffer.concat(parts)))
    assert.ok(finished, 'the stream ended with the socket, not with its own end')
  })
})
