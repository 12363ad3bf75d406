import { validateName } from '@physarum/registry-service'
import { printJson, runCommand } from '../output.ts'
import { explainRegistryError, openOverlay, unansweredWrite, withOverlayOptions } from '../overlay.ts'
import { notFound } from '../records.ts'
import type { OverlayArgs } from '../overlay.ts'
import type { Argv } from 'yargs'

interface DeleteArgs extends OverlayArgs { name: string }

export const command = 'delete <name>'
export const describe = 'Remove a service from the registry (running instances drain on their own); exit 1 when there is no such service'

export function builder (yargs: Argv): Argv<DeleteArgs> {
  return withOverlayOptions(yargs)
    .positional('name', { type: 'string', demandOption: true, describe: 'The service name' })
    .strictOptions()
}

export async function handler (args: DeleteArgs): Promise<void> {
  await runCommand(async () => {
    // a name no record can have is a usage error, told before the overlay is joined (or cannot be)
    validateName(args.name, '<name>')
    const overlay = await openOverlay(args, process.env)
    try {
      const revision = await overlay.client.delete(args.name, { signal: AbortSignal.timeout(args.timeout) }).catch((err: unknown) => {
        const unanswered = unansweredWrite(err, args.timeout)
        if (unanswered != null) {
          throw new Error(`Deleting ${args.name} ended with ${unanswered}: it may have been deleted or not. See with hl-cli get ${args.name}; hl-cli delete again tells`)
        }
        throw explainRegistryError(notFound(err, args.name), overlay.node.peerId)
      })
      if (args.json === true) {
        printJson({ deleted: args.name, revision })
      } else {
        process.stdout.write(`Deleted ${args.name}\n`)
      }
    } finally {
      await overlay.close()
    }
  })
}
