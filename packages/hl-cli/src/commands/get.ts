import { validateName } from '@physarum/registry-service'
import { printJson, printText, runCommand } from '../output.ts'
import { openOverlay, withOverlayOptions } from '../overlay.ts'
import { notFound, recordDetails } from '../records.ts'
import type { OverlayArgs } from '../overlay.ts'
import type { Argv } from 'yargs'

interface GetArgs extends OverlayArgs { name: string }

export const command = 'get <name>'
export const describe = 'Show one service\'s record; exit 1 when there is no such service'

export function builder (yargs: Argv): Argv<GetArgs> {
  return withOverlayOptions(yargs)
    .positional('name', { type: 'string', demandOption: true, describe: 'The service name' })
    .example('$0 get hello-world-server --json', 'The record as JSON')
    .strictOptions()
}

export async function handler (args: GetArgs): Promise<void> {
  await runCommand(async () => {
    // a name no record can have is a usage error, told before the overlay is joined (or cannot be)
    validateName(args.name, '<name>')
    const overlay = await openOverlay(args, process.env)
    try {
      const record = await overlay.client.get(args.name, { fresh: true, signal: AbortSignal.timeout(args.timeout) }).catch((err: unknown) => { throw notFound(err, args.name) })
      if (args.json === true) {
        printJson(record)
      } else {
        printText(recordDetails(record))
      }
    } finally {
      await overlay.close()
    }
  })
}
