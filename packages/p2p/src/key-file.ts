import { open } from 'node:fs/promises'

/** The most bytes a key file may hold: an identity, a swarm.key and a passphrase are far smaller. */
export const MAX_KEY_FILE_BYTES = 64 * 1024

/**
 * The bytes of a small file an operator names (a key, a config), read up to `maxBytes`: a path
 * naming a device (/dev/zero), a FIFO that never ends or a large file by mistake would otherwise
 * be read into memory whole, or without end. A FIFO that ends (a shell's `<(...)`) is read whole.
 * Past `maxBytes` it throws, saying the file is no `what`.
 */
export async function readSmallFile (path: string, maxBytes: number, what: string): Promise<Buffer> {
  const file = await open(path, 'r')
  try {
    const buffer = Buffer.alloc(maxBytes + 1)
    let length = 0
    while (length < buffer.length) {
      const { bytesRead } = await file.read(buffer, length, buffer.length - length, null)
      if (bytesRead === 0) {
        break
      }
      length += bytesRead
    }
    if (length > maxBytes) {
      throw new Error(`it holds more than ${maxBytes} bytes, so it is no ${what}`)
    }
    return buffer.subarray(0, length)
  } finally {
    await file.close()
  }
}

/** The bytes of a key file (an identity, a swarm.key, a passphrase). */
export async function readKeyFile (path: string): Promise<Buffer> {
  return await readSmallFile(path, MAX_KEY_FILE_BYTES, 'key file')
}

/**
 * A key file's text, without the byte-order mark some editors write first: kept, it would be
 * hashed into a key no other node has, and every connection would fail its handshake.
 */
export async function readKeyText (path: string): Promise<string> {
  return (await readKeyFile(path)).toString('utf8').replace(/^\uFEFF/, '')
}
