import { printJson, printText, runCommand } from '../output.ts'
import { openOverlay, withOverlayOptions } from '../overlay.ts'
import { recordsTable } from '../records.ts'
import type { OverlayArgs } from '../overlay.ts'
import type { ServiceRecord } from '@physarum/registry-service'
import type { Argv } from 'yargs'

interface ListArgs extends OverlayArgs { prefix?: string }

export const command = 'list'
export const describe = 'List the registered services (a table; --json for an array of records)'

export function builder (yargs: Argv): Argv<ListArgs> {
  return withOverlayOptions(yargs)
    .option('prefix', { type: 'string', describe: 'Only names starting with this' })
    .example('PHYSARUM_PSK=... $0 list -bootstrap /ip4/10.0.0.9/tcp/4001/p2p/12D3KooW...', 'Every service in the registry')
    .strictOptions()
}

export async function handler (args: ListArgs): Promise<void> {
  await runCommand(async () => {
    const overlay = await openOverlay(args, process.env)
    try {
      const records: ServiceRecord[] = []
      for await (const record of overlay.client.listAll({ ...(args.prefix == null ? {} : { prefix: args.prefix }), signal: AbortSignal.timeout(args.timeout) })) {
        records.push(record)
      }
      if (args.json === true) {
        printJson(records)
      } else {
        printText(records.length === 0 ? 'No services registered.\n' : recordsTable(records))
      }
    } finally {
      await overlay.close()
    }
  })
}
