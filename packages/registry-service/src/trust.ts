import { peerIdFromString } from '@libp2p/peer-id'
import { ConfigError } from '@physarum/p2p'
import type { Argv } from 'yargs'

export interface RegistryTrustArgs {
  'registry-id'?: string[]
}

/** `--registry-id`, for every command whose registry client finds registry-services through the DHT. */
export function withRegistryTrust<T> (argv: Argv<T>): Argv<T & RegistryTrustArgs> {
  return argv.option('registry-id', {
    type: 'string',
    array: true,
    describe: 'Peer id of a registry-service trusted with the records (repeatable; env PHYSARUM_REGISTRY_IDS, space separated): one found through the DHT with another id is not asked [default: any member of the overlay]'
  })
}

/**
 * Throws a ConfigError naming `flag` when one of its values names no peer id (`--admin ""`, as an
 * operator's unset variable gives it): `envName`'s list, or none, would be taken in its place,
 * and who may write or be trusted would change without a word.
 */
export function refuseEmptyValue (flag: string, values: string[] | undefined, envName: string): void {
  if ((values ?? []).some(value => value.split(/[\s,]+/).every(id => id === ''))) {
    throw new ConfigError(`${flag}: an empty value names no peer id: give one, or leave ${flag} out to take ${envName}`)
  }
}

/** The trusted registry-services' peer ids: the flags, else PHYSARUM_REGISTRY_IDS; each checked. */
export function trustedRegistries (args: RegistryTrustArgs, env: Record<string, string | undefined>): string[] {
  refuseEmptyValue('--registry-id', args['registry-id'], 'PHYSARUM_REGISTRY_IDS')
  const fromFlags = (args['registry-id'] ?? []).flatMap(value => value.split(/[\s,]+/)).filter(Boolean)
  const source = fromFlags.length > 0 ? '--registry-id' : 'PHYSARUM_REGISTRY_IDS'
  const ids = fromFlags.length > 0 ? fromFlags : (env.PHYSARUM_REGISTRY_IDS ?? '').split(/[\s,]+/).filter(Boolean)
  return ids.map(id => {
    try {
      return peerIdFromString(id).toString()
    } catch {
      throw new ConfigError(`${source}: ${JSON.stringify(id)} is not a peer id (each registry-service prints its own at start)`)
    }
  })
}
