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
 * The peer ids a repeatable flag names (each value space or comma separated), else those of the
 * environment variable `envName`, in the base58 form a peer's id is compared in (a CID form given
 * is matched too); each checked, `hint` added to the error of one that is not a peer id. A value
 * that names none (`--admin ""`, as an operator's unset variable gives it) is a ConfigError naming
 * the flag: the variable's list, or none, would be taken in its place, and who may write or be
 * trusted would change without a word.
 */
export function peerIdsFrom (flag: string, values: string[] | undefined, envName: string, env: Record<string, string | undefined>, hint = ''): string[] {
  const split = (text: string): string[] => text.split(/[\s,]+/).filter(Boolean)
  const given = (values ?? []).map(split)
  if (given.some(ids => ids.length === 0)) {
    throw new ConfigError(`${flag}: an empty value names no peer id: give one, or leave ${flag} out to take ${envName}`)
  }
  const source = given.length > 0 ? flag : envName
  return (given.length > 0 ? given.flat() : split(env[envName] ?? '')).map(id => {
    try {
      return peerIdFromString(id).toString()
    } catch {
      throw new ConfigError(`${source}: ${JSON.stringify(id)} is not a peer id${hint}`)
    }
  })
}

/** The trusted registry-services' peer ids: the flags, else PHYSARUM_REGISTRY_IDS; each checked. */
export function trustedRegistries (args: RegistryTrustArgs, env: Record<string, string | undefined>): string[] {
  return peerIdsFrom('--registry-id', args['registry-id'], 'PHYSARUM_REGISTRY_IDS', env, ' (each registry-service prints its own at start)')
}
