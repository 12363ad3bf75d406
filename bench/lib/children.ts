import { spawn } from 'node:child_process'
import { createInterface } from 'node:readline'
import type { ChildProcess } from 'node:child_process'

/**
 * Child processes a benchmark started, and what else it must undo (folders, engines, processes it
 * does not track), so that none outlives it: whatever way it ends (normal end, failure, watchdog,
 * Ctrl-C or SIGTERM), each child still running is signalled by its pid and each cleanup runs once.
 * A SIGKILL of the benchmark itself cannot be caught: children that watch their IPC channel
 * (`process.on('disconnect')`) still go, others (daemons) would stay.
 */

const running = new Map<ChildProcess, string>()
const cleanups: Array<{ name: string, run: () => Promise<void> }> = []
let cleaning: Promise<void> | undefined
let installed = false
/** How long one cleanup may take before the next one runs. */
const CLEANUP_EACH_MS = 15_000

/** Registers `child` (called `name` in messages) until it exits. */
export function track (child: ChildProcess, name: string): ChildProcess {
  installCleanup()
  if (child.exitCode == null && child.signalCode == null) {
    running.set(child, name)
    child.once('exit', () => { running.delete(child) })
  }
  return child
}

/** Whether the child has exited. */
export function exited (child: ChildProcess): boolean {
  return child.exitCode != null || child.signalCode != null
}

/** Resolves once the child has exited, or with false after `timeoutMs`. */
export async function waitForExit (child: ChildProcess, timeoutMs: number): Promise<boolean> {
  if (exited(child)) {
    return true
  }
  return await new Promise<boolean>(resolve => {
    const timer = setTimeout(() => {
      child.off('exit', onExit)
      resolve(false)
    }, timeoutMs)
    const onExit = (): void => {
      clearTimeout(timer)
      resolve(true)
    }
    child.once('exit', onExit)
  })
}

/** SIGTERM, then SIGKILL if the child is still there after `graceMs`. */
export async function stopChild (child: ChildProcess, graceMs: number): Promise<void> {
  if (exited(child)) {
    return
  }
  child.kill('SIGTERM')
  if (!await waitForExit(child, graceMs)) {
    child.kill('SIGKILL')
    await waitForExit(child, 2_000)
  }
}

/** Sends `signal` to every tracked child still running. */
export function killAll (signal: NodeJS.Signals): void {
  for (const child of running.keys()) {
    try {
      child.kill(signal)
    } catch {
      // gone meanwhile
    }
  }
}

/** Registers `run` (called `name` in messages), to undo when the benchmark ends: see stopAll. */
export function onCleanup (name: string, run: () => Promise<void>): void {
  installCleanup()
  cleanups.push({ name, run })
}

/**
 * Stops every tracked child (SIGTERM, SIGKILL after `graceMs`), then runs the cleanups once,
 * newest first, each bounded by CLEANUP_EACH_MS.
 */
export async function stopAll (graceMs: number): Promise<void> {
  await Promise.all([...running.keys()].map(async child => { await stopChild(child, graceMs) }))
  cleaning ??= (async () => {
    for (const { name, run } of cleanups.reverse()) {
      let timer: NodeJS.Timeout | undefined
      try {
        await Promise.race([run(), new Promise<void>((_resolve, reject) => {
          timer = setTimeout(() => { reject(new Error(`took over ${CLEANUP_EACH_MS / 1000} s`)) }, CLEANUP_EACH_MS)
        })])
      } catch (err) {
        process.stderr.write(`cleanup of ${name} failed: ${(err as Error).message}\n`)
      } finally {
        clearTimeout(timer)
      }
    }
  })()
  await cleaning
}

function installCleanup (): void {
  if (installed) {
    return
  }
  installed = true
  // last resort, synchronous: whatever is still running when this process exits is killed
  process.on('exit', () => { killAll('SIGKILL') })
  for (const [signal, number] of [['SIGINT', 2], ['SIGTERM', 15]] as const) {
    process.once(signal, () => {
      process.stderr.write(`${signal}: stopping ${running.size} child process(es) and cleaning up\n`)
      const force = setTimeout(() => { process.exit(128 + number) }, 60_000)
      force.unref()
      void stopAll(3_000).finally(() => { process.exit(128 + number) })
    })
  }
}

/** A daemon a benchmark started: the first stdout line matching its `ready`, and its pid. */
export interface StartedDaemon {
  ready: RegExpExecArray
  pid: number
}

/**
 * Starts a physarum daemon's bin (a path relative to the repository root) with `env` added to
 * this process's, tracked; resolves once a stdout line matches `ready`. Its stdout keeps being
 * read (a full pipe would stall it); its stderr is this process's.
 */
export async function startDaemon (name: string, bin: string, args: string[], env: Record<string, string>, ready: RegExp, timeoutMs = 30_000): Promise<StartedDaemon> {
  const child = track(spawn(process.execPath, [new URL(`../../${bin}`, import.meta.url).pathname, ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'inherit']
  }), name)
  return await new Promise((resolve, reject) => {
    const timer = setTimeout(() => { reject(new Error(`${name} printed no line matching ${String(ready)} within ${timeoutMs} ms`)) }, timeoutMs)
    let matched = false
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const match = matched ? null : ready.exec(line)
      if (match != null) {
        matched = true
        clearTimeout(timer)
        resolve({ ready: match, pid: child.pid! })
      }
    })
    child.once('exit', code => {
      clearTimeout(timer)
      reject(new Error(`${name} exited with ${code ?? 'a signal'}`))
    })
  })
}
