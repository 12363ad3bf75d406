import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { describe, it } from 'node:test'

const ROOT = new URL('../', import.meta.url).pathname

/** Runs scripts/demo.sh with `args`: its exit code and all it printed. */
async function demo (args: string[]): Promise<{ code: number | null, output: string }> {
  const child = spawn('bash', [join(ROOT, 'scripts/demo.sh'), ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  child.stdout.on('data', (part: Buffer) => { output += part.toString('utf8') })
  child.stderr.on('data', (part: Buffer) => { output += part.toString('utf8') })
  const code = await new Promise<number | null>(resolve => { child.on('exit', resolve) })
  return { code, output }
}

/**
 * The README's first command, as a new user runs it: scripts/demo.sh brings up every daemon with
 * its CLI (the seed's steps 1 to 7 with our commands: bootstrap, allocator, registry-service with
 * its own etcd, Prometheus scraping, hl-cli add of demos/helloworld, the proxy) and curls
 * 127.0.0.1:4200/hello-world-server; here in the background, so the user's own request follows,
 * then `scripts/demo.sh stop` removes everything.
 */
describe('the quickstart (scripts/demo.sh)', { timeout: 600_000 }, () => {
  // as root, like the other tests that start a private dockerd (demo.sh says so when it is not)
  it('answers "Hello, world" through the proxy from a container on the allocator\'s engine; its stop command leaves nothing behind', async () => {
    const { code, output } = await demo(['--background'])
    try {
      assert.equal(code, 0, output)
      assert.equal(output.match(/^Hello, world$/gm)?.length, 2, output)
      assert.match(output, /cold start: \d+ ms/)
      assert.match(output, /Prometheus \(9090: all four up\)/)
      assert.match(output, /hello-world-server \(soft 100 ms, hard 1000 ms\): 1 instance\(s\)/)
      assert.match(output, /physarum-hello-world-server-\w+-service {2}Up/)
      assert.match(output, /physarum-hello-world-server-\w+-sidecar {2}Up/)
      assert.match(output, /^\[physarum\] stop: scripts\/demo.sh stop/m)
      // still running after the command returned: the user's own request
      const response = await fetch('http://127.0.0.1:4200/hello-world-server')
      assert.equal(response.status, 200)
      assert.equal(await response.text(), 'Hello, world\n')
      const again = await demo(['--background'])
      assert.equal(again.code, 1)
      assert.match(again.output, /a demo is already running \(pid \d+\): scripts\/demo.sh stop ends it/)
    } finally {
      const stopped = await demo(['stop'])
      assert.equal(stopped.code, 0, stopped.output)
      assert.match(stopped.output, /stopped; nothing of it is left/)
    }
    const work = /logs in (\/tmp\/physarum-demo\.\w+)\//.exec(output)?.[1]
    assert.ok(work != null, output)
    for (const left of [work, '/run/physarum-demo.pid', '/run/physarum-demo.out']) {
      assert.equal(existsSync(left), false, `${left} is left behind`)
    }
    await assert.rejects(fetch('http://127.0.0.1:4200/hello-world-server'), 'the proxy is gone')
    assert.match((await demo(['stop'])).output, /no demo is running/)
  })
})
