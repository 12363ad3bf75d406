import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { describe, it } from 'node:test'

const ROOT = new URL('../', import.meta.url).pathname

/**
 * The README's first command, as a new user runs it: scripts/demo.sh brings up every daemon with
 * its CLI (the seed's steps 1 to 7 with our commands: bootstrap, allocator, registry-service with
 * its own etcd, Prometheus scraping, hl-cli add of demos/helloworld, the proxy), curls
 * 127.0.0.1:4200/hello-world-server, and removes everything when it ends.
 */
describe('the quickstart (scripts/demo.sh)', { timeout: 600_000 }, () => {
  // as root, like the other tests that start a private dockerd (demo.sh says so when it is not)
  it('answers "Hello, world" through the proxy from a container on the allocator\'s engine, then leaves nothing behind', async () => {
    const child = spawn('bash', [join(ROOT, 'scripts/demo.sh'), '--duration', '1'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] })
    let output = ''
    child.stdout.on('data', (part: Buffer) => { output += part.toString('utf8') })
    child.stderr.on('data', (part: Buffer) => { output += part.toString('utf8') })
    const code = await new Promise<number | null>(resolve => { child.on('exit', resolve) })
    assert.equal(code, 0, output)
    assert.equal(output.match(/^Hello, world$/gm)?.length, 2, output)
    assert.match(output, /cold start: \d+ ms/)
    assert.match(output, /Prometheus \(9090: all four up\)/)
    assert.match(output, /hello-world-server \(soft 100 ms, hard 1000 ms\): 1 instance\(s\)/)
    assert.match(output, /physarum-hello-world-server-\w+-service {2}Up/)
    assert.match(output, /physarum-hello-world-server-\w+-sidecar {2}Up/)
    const work = /logs in (\/tmp\/physarum-demo\.\w+)\//.exec(output)?.[1]
    assert.ok(work != null, output)
    assert.equal(existsSync(work), false, `${work} is left behind`)
  })
})
