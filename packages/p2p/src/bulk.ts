/**
 * Process settings for the proxy and its sidecar, which pass bulk data through many short-lived
 * buffers. Both are read only when a process starts. Passing 1 GB, a client proxy with Node's
 * defaults reached 220 to 250 MB of RSS (glibc gave each thread that freed buffers an arena of
 * its own and kept them; V8 grew 16 MB semi-spaces); with one malloc arena and 2 MB semi-spaces it
 * stayed near 155 MB, its size at rest plus a few MB, at the same speed (docs/decisions.md).
 * This module imports nothing, so a CLI can apply it before it loads libp2p.
 */

export const BULK_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=2']
export const BULK_NODE_ENV: Readonly<Record<string, string>> = { MALLOC_ARENA_MAX: '1' }

/**
 * Replaces this process (same pid, same arguments) with one started with the bulk settings,
 * unless it already has them or the operator set them otherwise (an explicit MALLOC_ARENA_MAX or
 * semi-space flag is kept). Returns when nothing needs to change.
 */
export function execWithBulkSettings (): void {
  const flags = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)]
  const missingFlags = BULK_NODE_FLAGS.filter(flag => !flags.some(given => given.startsWith(flag.split('=')[0]!)))
  const missingEnv = Object.entries(BULK_NODE_ENV).filter(([name]) => process.env[name] == null)
  if ((missingFlags.length === 0 && missingEnv.length === 0) || typeof process.execve !== 'function') {
    return
  }
  process.execve(process.execPath, [process.execPath, ...missingFlags, ...process.execArgv, ...process.argv.slice(1)], {
    ...process.env,
    ...Object.fromEntries(missingEnv)
  })
}
