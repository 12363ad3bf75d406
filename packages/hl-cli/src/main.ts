import { dashedPassphrase, PHYSARUM_VERSION, strictArguments } from '@physarum/p2p'
import yargs from 'yargs'
import { hideBin } from 'yargs/helpers'
import * as add from './commands/add.ts'
import * as del from './commands/delete.ts'
import * as get from './commands/get.ts'
import * as id from './commands/id.ts'
import * as keygen from './commands/keygen.ts'
import * as list from './commands/list.ts'
import * as status from './commands/status.ts'
import { NAME } from './constants.ts'
import type { Argv, CommandModule } from 'yargs'

/** Each command, refusing words that none of its parameters takes after the command's name. */
const COMMANDS = [add, list, get, del, status, id, keygen].map(module => ({
  ...module,
  builder: (argv: Argv) => strictArguments(module.builder(argv) as Argv, 1)
})) as CommandModule[]

function usage (message: string): never {
  process.stderr.write(`${NAME}: ${message}\nRun ${NAME} --help (or ${NAME} <command> --help) for the options.\n`)
  process.exit(2)
}

export async function main (argv: string[]): Promise<void> {
  const dashed = dashedPassphrase(argv)
  if (dashed != null) {
    usage(dashed)
  }
  await yargs(argv)
    .scriptName(NAME)
    .usage(`$0 <command>\n\nBuild, push and register physarum services; inspect the overlay.`)
    .command(COMMANDS)
    .demandCommand(1, 'Give a command')
    .strictCommands()
    .version(PHYSARUM_VERSION)
    .help()
    .alias('help', 'h')
    .wrap(Math.min(120, process.stdout.columns ?? 100))
    .epilogue('The overlay\'s key: env PHYSARUM_PSK (or --psk-file, --swarm-key). Bootstrap: -bootstrap or env PHYSARUM_BOOTSTRAP. Exit codes: 0 success, 1 failure, 2 usage.')
    .fail((message, err) => {
      if (message == null && err != null) {
        process.stderr.write(`${NAME}: ${err.message}\n`)
        process.exit(1)
      }
      usage(message ?? err?.message ?? 'bad usage')
    })
    .parseAsync()
}

await main(hideBin(process.argv))
// a command is done: libp2p, dockerode and pino may keep handles open a while longer
process.exit(process.exitCode ?? 0)
