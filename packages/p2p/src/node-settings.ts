/**
 * Memory settings a daemon's process needs from its start: V8 and glibc read them only then, so
 * a daemon's bin applies them before it loads anything else (docs/decisions.md). This module
 * imports nothing, so a bin can apply them before it loads libp2p.
 */

export interface NodeSettings {
  /** Node and V8 command-line flags. */
  flags: readonly string[]
  /** Environment variables. */
  env: Readonly<Record<string, string>>
}

/**
 * The proxy and its sidecar, which pass bulk data through many short-lived buffers. Passing 1 GB,
 * a client proxy with Node's defaults reached 220 to 250 MB of RSS (glibc gave each thread that
 * freed buffers an arena of its own and kept them; V8 grew 16 MB semi-spaces); with one malloc
 * arena and 2 MB semi-spaces it stayed near 155 MB, its size at rest plus a few MB, at the same
 * speed.
 */
export const BULK_SETTINGS: NodeSettings = { flags: ['--max-semi-space-size=2'], env: { MALLOC_ARENA_MAX: '1' } }

/**
 * The ping monitor, which holds a connection to every peer and little else: with Node's defaults
 * a monitor of 200 peers had 55 MB of live objects in 310 to 350 MB of RSS (V8 grew its young
 * generation to 128 MB and let the old one reach several times its live data). With 8 MB
 * semi-spaces, one malloc arena and the old generation collected once it grew by a fifth, 150 to
 * 160 MB, at the same CPU within the noise. Not for the proxy: the more frequent full collections
 * added to its latency.
 */
export const SMALL_HEAP_SETTINGS: NodeSettings = {
  flags: ['--max-semi-space-size=8', '--heap-growing-percent=20'],
  env: { MALLOC_ARENA_MAX: '1' }
}

/**
 * Replaces this process (same pid, same arguments) with one started with `settings`, unless it
 * already has them or the operator set them otherwise (an explicit environment variable or flag
 * of the same name is kept). Returns when nothing needs to change.
 */
export function execWithSettings (settings: NodeSettings): void {
  const flags = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)]
  const missingFlags = settings.flags.filter(flag => !flags.some(given => given.startsWith(flag.split('=')[0]!)))
  const missingEnv = Object.entries(settings.env).filter(([name]) => process.env[name] == null)
  if ((missingFlags.length === 0 && missingEnv.length === 0) || typeof process.execve !== 'function') {
    return
  }
  process.execve(process.execPath, [process.execPath, ...missingFlags, ...process.execArgv, ...process.argv.slice(1)], {
    ...process.env,
    ...Object.fromEntries(missingEnv)
  })
}
