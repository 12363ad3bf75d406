/**
 * The environment of a child process: the variables of `env` whose names `keep` accepts. Programs
 * run for a daemon or hl-cli (etcd, a Docker credential helper) never need the overlay's key or
 * the other secrets physarum reads from the environment, and should not hold them.
 */
export function childEnv (env: Record<string, string | undefined>, keep: (name: string) => boolean): Record<string, string> {
  return Object.fromEntries(Object.entries(env).filter((entry): entry is [string, string] => entry[1] != null && keep(entry[0])))
}

/** physarum's own settings and secrets (PHYSARUM_PSK, PHYSARUM_REGISTRY_PASSWORD, the seed's P2P_PSK). */
export const PHYSARUM_ENV = /^(PHYSARUM_|P2P_)/
