import { randomBytes } from 'node:crypto'
import { link, mkdir, open, rm } from 'node:fs/promises'
import { dirname } from 'node:path'
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import { IdentityError } from './errors.ts'
import { readKeyFile } from './key-file.ts'
import type { PrivateKey } from '@libp2p/interface'

/**
 * Loads the node's Ed25519 identity from `path` (libp2p's protobuf key encoding), creating it
 * with mode 0600 when the file does not exist, so a node keeps its peer id across restarts.
 */
export async function loadOrCreateIdentity (path: string): Promise<PrivateKey> {
  return await readIdentity(path) ?? await createIdentity(path)
}

/** The key in `path`; undefined when there is no such file. */
async function readIdentity (path: string): Promise<PrivateKey | undefined> {
  let bytes: Uint8Array
  try {
    bytes = await readKeyFile(path)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new IdentityError(`Cannot read the identity key file ${path}: ${(err as Error).message}`)
    }
    return undefined
  }
  try {
    return privateKeyFromProtobuf(bytes)
  } catch (err) {
    throw new IdentityError(`The identity key file ${path} does not hold a libp2p private key (${(err as Error).message}); move it away to create a new identity`)
  }
}

async function createIdentity (path: string): Promise<PrivateKey> {
  const key = await generateKeyPair('Ed25519')
  // written whole under another name first: a start cut short leaves no empty or partial key under
  // the key's own name (at most a <name>.<hex>.partial file), and the link never replaces a key
  // another process put there in the meantime
  const partial = `${path}.${randomBytes(6).toString('hex')}.partial`
  try {
    await mkdir(dirname(path), { recursive: true, mode: 0o700 })
    const file = await open(partial, 'wx', 0o600)
    try {
      await file.writeFile(privateKeyToProtobuf(key))
      await file.sync()
    } finally {
      await file.close()
    }
    await link(partial, path)
    // the new name is kept on disk too: a power loss must not bring the next start a new peer id
    const folder = await open(dirname(path), 'r')
    try {
      await folder.sync()
    } finally {
      await folder.close()
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
      // another start linked its key first; read once, not again and again: a name that exists
      // and reads as missing is a symbolic link whose target is missing
      const raced = await readIdentity(path)
      if (raced == null) {
        throw new IdentityError(`The identity key file ${path} is a symbolic link to a file that does not exist: point it at the key, or remove it to create a new identity`)
      }
      return raced
    }
    throw new IdentityError(`Cannot create the identity key file ${path}: ${(err as Error).message}`)
  } finally {
    await rm(partial, { force: true })
  }
  return key
}
