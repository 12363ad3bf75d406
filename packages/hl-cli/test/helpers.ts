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

/** Keys typed once stdout shows `after` (a prompt), stdin left open until then. */
export interface CliAnswer {
  after: string
  keys: string
}

/**
 * Runs the real CLI to its end: `node bin/hl-cli.js ...args`, with this environment minus any
 * physarum settings, plus `env` (the PSK only ever through PHYSARUM_PSK). Killed after `timeoutMs`.
 * With `program`, runs that with `args` instead (script(1), to give the CLI a terminal); `answer`
 * then types at its prompt.
 */
export async function runCli (args: string[], env: Record<string, string> = {}, options: { stdin?: string, answer?: CliAnswer, timeoutMs?: number, program?: string } = {}): Promise<CliResult> {
  const child = spawn(options.program ?? process.execPath, options.program == null ? [BIN, ...args] : args, {
    env: { ...cleanEnv(), ...env },
    stdio: [options.stdin == null && options.answer == null ? 'ignore' : 'pipe', 'pipe', 'pipe']
  })
  let stdout = ''
  let stderr = ''
  let answer = options.answer
  child.stdout!.on('data', (chunk: Buffer) => {
    stdout += chunk.toString()
    if (answer != null && stdout.includes(answer.after)) {
      child.stdin!.write(answer.keys)
      answer = undefined
    }
  })
  child.stderr!.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
  if (options.answer == null) {
    child.stdin?.end(options.stdin)
  }
  const timer = setTimeout(() => { child.kill('SIGKILL') }, options.timeoutMs ?? 120_000)
  try {
    const [code] = await once(child, 'close') as [number | null]
    return { code, stdout, stderr }
  } finally {
    clearTimeout(timer)
  }
}
