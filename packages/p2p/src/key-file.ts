import { open } from 'node:fs/promises'

/** The most bytes a key file may hold: an identity, a swarm.key and a passphrase are far smaller. */
export const MAX_KEY_FILE_BYTES = 64 * 1024

/**
 * The bytes of a key file (an identity, a swarm.key, a passphrase), read up to
 * MAX_KEY_FILE_BYTES: a path naming a device (/dev/zero) or a FIFO that never ends would
 * otherwise be read, into memory, without end. A FIFO that ends (a shell's `<(...)`) is read whole.
 */
export async function readKeyFile (path: string): Promise<Buffer> {
  const file = await open(path, 'r')
  try {
    const buffer = Buffer.alloc(MAX_KEY_FILE_BYTES + 1)
    let length = 0
    while (length < buffer.length) {
      const { bytesRead } = await file.read(buffer, length, buffer.length - length, null)
      if (bytesRead === 0) {
        break
      }
      length += bytesRead
    }
    if (length > MAX_KEY_FILE_BYTES) {
      throw new Error(`it holds more than ${MAX_KEY_FILE_BYTES} bytes, so it is no key file`)
    }
    return buffer.subarray(0, length)
  } finally {
    await file.close()
  }
}

/**
 * A key file's text, without the byte-order mark some editors write first: kept, it would be
 * hashed into a key no other node has, and every connection would fail its handshake.
 */
export async function readKeyText (path: string): Promise<string> {
  return (await readKeyFile(path)).toString('utf8').replace(/^\uFEFF/, '')
}
