import { open } from 'node:fs/promises'
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

export async function handler (args: KeygenArgs): Promise<void> {
  await runCommand(async () => {
    const key = PreSharedKey.generate()
    let file
    try {
      file = await open(args.file, args.force === true ? 'w' : 'wx', 0o600)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
        throw new UsageError(`${args.file} exists: give another file, or --force to replace it`)
      }
      throw new Error(`Cannot write ${args.file}: ${(err as Error).message}`, { cause: err })
    }
    try {
      await file.chmod(0o600)
      await file.writeFile(key.toSwarmKey())
    } finally {
      await file.close()
    }
    process.stdout.write(`Wrote a new swarm key to ${args.file}. Copy it to every host (mode 0600); a daemon reads it with --swarm-key <file>, a systemd unit as a credential (docs/operations.md, "The overlay's key").\n`)
  })
}
