import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { withNodeOptions } from '@physarum/p2p'
import { UsageError } from '../errors.ts'
import { NODE_DEFAULTS, resolveCliNodeConfig } from '../overlay.ts'
import { printJson, runCommand } from '../output.ts'
import type { NodeArgs } from '@physarum/p2p'
import type { Argv } from 'yargs'

interface IdArgs extends NodeArgs { json?: boolean }

export const command = 'id'
export const describe = 'Print this hl-cli\'s peer id (what registry-service --admin takes), creating its identity when missing'

export function builder (yargs: Argv): Argv<IdArgs> {
  return withNodeOptions(yargs, NODE_DEFAULTS)
    .hide('metrics-listen')
    .option('json', { type: 'boolean', describe: 'Print {"peerId", "identity"} as JSON' })
    .example('$0 id', 'Print the peer id kept in ~/.local/state/physarum/hl-cli/identity.key')
    .example('registry-service ... --admin "$($0 id)"', 'Allow this hl-cli to add and delete records')
    .strictOptions()
}

export async function handler (args: IdArgs): Promise<void> {
  await runCommand(async () => {
    // the identity needs no key: the PSK options are not read here
    const config = await resolveCliNodeConfig({ ...args, psk: undefined, 'psk-file': undefined, 'swarm-key': undefined, 'no-psk': true }, { ...process.env, PHYSARUM_PSK: undefined, P2P_PSK: undefined })
    if (config.privateKey == null) {
      throw new UsageError('--ephemeral: an ephemeral identity has no lasting peer id to print')
    }
    const peerId = peerIdFromPrivateKey(config.privateKey).toString()
    if (args.json === true) {
      printJson({ peerId, identity: config.identityPath })
    } else {
      process.stdout.write(`${peerId}\n`)
    }
  })
}
