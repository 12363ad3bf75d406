import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { join } from 'node:path'
import { cleanEnv, eventually, freePort, TEST_PASSPHRASE } from '../../registry-service/test/helpers.ts'

export { eventually, freePort, TEST_PASSPHRASE }

export const ROOT = new URL('../../../', import.meta.url).pathname
export const BIN = new URL('../bin/hl-cli.js', import.meta.url).pathname
export const DEMOS = join(ROOT, 'demos')

export interface CliResult {
  code: number | null
  stdout: string
  stderr: string
}

/**
 * Runs the real CLI to its end: `node bin/hl-cli.js ...args`, with this environment minus any
 * physarum settings, plus `env` (the PSK only ever through PHYSARUM_PSK). Killed after `timeoutMs`.
 * With `program`, runs that with `args` instead (script(1), to give the CLI a terminal).
 */
export async function runCli (args: string[], env: Record<string, string> = {}, options: { stdin?: string, timeoutMs?: number, program?: string } = {}): Promise<CliResult> {
  const child = spawn(options.program ?? process.execPath, options.program == null ? [BIN, ...args] : args, {
    env: { ...cleanEnv(), ...env },
    stdio: [options.stdin == null ? 'ignore' : 'pipe', 'pipe', 'pipe']
  })
  let stdout = ''
  let stderr = ''
  child.stdout!.on('data', (chunk: Buffer) => { stdout += chunk.toString() })
  child.stderr!.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
  child.stdin?.end(options.stdin)
  const timer = setTimeout(() => { child.kill('SIGKILL') }, options.timeoutMs ?? 120_000)
  try {
    const [code] = await once(child, 'close') as [number | null]
    return { code, stdout, stderr }
  } finally {
    clearTimeout(timer)
  }
}
