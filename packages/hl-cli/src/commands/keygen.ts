import { randomBytes } from 'node:crypto'
import { link, open, realpath, rename, rm, stat, writeFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { getSystemErrorMessage } from 'node:util'
import { PreSharedKey } from '@physarum/p2p'
import { UsageError } from '../errors.ts'
import { runCommand } from '../output.ts'
import type { Argv } from 'yargs'

interface KeygenArgs { file: string, force?: boolean }

export const command = 'keygen [file]'
export const describe = 'Write a new random overlay key in the IPFS swarm.key format (mode 0600)'

export function builder (yargs: Argv): Argv<KeygenArgs> {
  return yargs
    .positional('file', { type: 'string', default: 'swarm.key', describe: 'Where to write the key' })
    .option('force', { type: 'boolean', describe: 'Replace the file if it exists' })
    .example('$0 keygen /etc/physarum/swarm.key', 'Then copy it to every host; a systemd unit reads it as a credential (docs/operations.md, "The overlay\'s key")')
    .strictOptions()
}

/**
 * What --force replaces: the file at `file`, or the one a symbolic link there leads to (the link
 * stays a link); undefined when there is none.
 */
async function existing (file: string): Promise<{ path: string, regular: boolean } | undefined> {
  try {
    // stat, not realpath alone: /dev/stdout leads to /proc/self/fd/1, a pipe without a path
    return (await stat(file)).isFile() ? { path: await realpath(file), regular: true } : { path: file, regular: false }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      return undefined
    }
    throw new Error(`Cannot write ${file}: ${(err as Error).message}`, { cause: err })
  }
}

export async function handler (args: KeygenArgs): Promise<void> {
  await runCommand(async () => {
    const key = PreSharedKey.generate()
    const target = args.force === true ? await existing(args.file) : undefined
    // a FIFO or a device (/dev/stdout) is written into, and only the key goes there: renamed over,
    // it would be gone from its folder
    if (target?.regular === false) {
      await writeFile(target.path, key.toSwarmKey())
      return
    }
    const path = target?.path ?? args.file
    // written whole under another name first: a write that fails (a full disk) leaves no empty or
    // partial key under the key's name, and --force keeps the old key until the new one is whole
    const partial = join(dirname(path), `.${randomBytes(6).toString('hex')}.swarm.key.partial`)
    try {
      const file = await open(partial, 'wx', 0o600)
      try {
        await file.writeFile(key.toSwarmKey())
        await file.sync()
      } finally {
        await file.close()
      }
      // a link never replaces a file that exists, not even one made in the meantime
      await (args.force === true ? rename(partial, path) : link(partial, path))
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
        throw new UsageError(`${args.file} exists: give another file, or --force to replace it`)
      }
      const { code, errno } = err as NodeJS.ErrnoException
      // the system's words without the path: it would be the new file's, not the one named
      throw new Error(`Cannot write ${args.file}: ${errno == null ? (err as Error).message : `${code}: ${getSystemErrorMessage(errno)}`}`, { cause: err })
    } finally {
      await rm(partial, { force: true })
    }
    process.stdout.write(`Wrote a new swarm key to ${args.file}. Copy it to every host (mode 0600); a daemon reads it with --swarm-key <file>, a systemd unit as a credential (docs/operations.md, "The overlay's key").\n`)
  })
}
