import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdir, readdir, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { after, before, describe, it } from 'node:test'
import { tempDir } from '../../p2p/test/helpers.ts'
import { TEST_PASSPHRASE } from '../../registry-service/test/helpers.ts'

const PROXY_BIN = new URL('../bin/proxy.js', import.meta.url).pathname

/**
 * The client proxy as its unit runs it (docs/operations.md: every unit keeps its peer id in its
 * StateDirectory, and identity.key is what to back up), here with a home of the test's own.
 */
describe('client proxy identity', { timeout: 120_000 }, () => {
  let dir: { path: string, remove: () => Promise<void> }
  let home: string

  before(async () => {
    dir = await tempDir('physarum-proxy-identity')
    home = join(dir.path, 'home')
    await mkdir(home)
  })
  after(async () => { await dir.remove() })

  /** Starts the client proxy with `args`, and stops it once it has started: the peer id it logged. */
  async function peerIdOfOneStart (args: string[]): Promise<string> {
    const child = spawn(process.execPath, [PROXY_BIN, '0', '--listen', '/ip4/127.0.0.1/tcp/0', '--metrics-listen', '127.0.0.1:0', ...args], {
      env: { PATH: process.env.PATH, HOME: home, PHYSARUM_PSK: TEST_PASSPHRASE },
      stdio: ['ignore', 'pipe', 'inherit']
    })
    const exited = once(child, 'exit')
    try {
      for await (const line of createInterface({ input: child.stdout })) {
        const entry = JSON.parse(line) as { msg?: string, peerId?: string }
        if (entry.msg === 'proxy started' && entry.peerId != null) {
          return entry.peerId
        }
      }
      throw new Error(`the proxy exited (${String(child.exitCode)}) before it started`)
    } finally {
      child.kill('SIGTERM')
      await exited
    }
  }

  it('keeps its peer id across starts with one --state-dir, in identity.key (mode 0600)', async () => {
    const state = join(dir.path, 'state')
    const first = await peerIdOfOneStart(['--state-dir', state])
    assert.equal(await peerIdOfOneStart(['--state-dir', state]), first)
    assert.equal((await stat(join(state, 'identity.key'))).mode & 0o777, 0o600)
  })

  it('keeps it under ~/.local/state/physarum/proxy without --state-dir', async () => {
    const first = await peerIdOfOneStart([])
    assert.equal(await peerIdOfOneStart([]), first)
    await stat(join(home, '.local/state/physarum/proxy/identity.key'))
  })

  it('takes a new one at every start with --ephemeral, and writes no key', async () => {
    const state = join(dir.path, 'ephemeral')
    const first = await peerIdOfOneStart(['--ephemeral', '--state-dir', state])
    assert.notEqual(await peerIdOfOneStart(['--ephemeral', '--state-dir', state]), first)
    assert.deepEqual(await readdir(state).catch(() => []), [])
  })
})
