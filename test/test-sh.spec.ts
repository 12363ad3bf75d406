import assert from 'node:assert/strict'
import { readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, it } from 'node:test'

const ROOT = new URL('../', import.meta.url).pathname

/**
 * Programs every Debian system has (its Essential packages: bash, coreutils, util-linux, mount,
 * libc-bin), which test.sh need not install.
 */
const ESSENTIAL = new Set(['bash', 'sh', 'true', 'mkdir', 'mkfifo', 'mount', 'umount', 'nsenter', 'setpriv', 'unshare', 'getconf'])
/** Programs a test runs only when they are there, saying so otherwise. */
const OPTIONAL = new Set(['systemd-analyze'])

/** The .ts files under `dir`, at any depth. */
async function sources (dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => [])
  return entries.filter(entry => entry.isFile() && entry.name.endsWith('.ts') && !entry.parentPath.includes('node_modules'))
    .map(entry => join(entry.parentPath, entry.name))
}

/**
 * scripts/test.sh is the CI command, from a fresh clone on a Debian host: what the tests start
 * must be installed by it, or a test fails on that host with a spawn ENOENT that says nothing of
 * a missing package.
 */
describe('scripts/test.sh', () => {
  it('installs the Debian package of every program a test runs', async () => {
    const script = await readFile(join(ROOT, 'scripts/test.sh'), 'utf8')
    const call = /^ensure_debian_packages ((?:.*\\\n)*.*)$/m.exec(script)?.[1] ?? ''
    const ensured = new Set([...call.matchAll(/([\w.-]+):[\w.+-]+/g)].map(match => match[1]!))
    assert.ok(ensured.has('etcd'), call)

    const files = [...await sources(join(ROOT, 'test'))]
    for (const pkg of await readdir(join(ROOT, 'packages'))) {
      files.push(...await sources(join(ROOT, 'packages', pkg, 'test')))
    }
    const missing = new Set<string>()
    for (const file of files) {
      const text = await readFile(file, 'utf8')
      // a program's name in quotes as the first argument of execFile, spawn, promisify(execFile)(...) or the tests' run
      for (const [, program] of text.matchAll(/\b(?:execFile|execFileSync|spawn|spawnSync|run|\))\(\s*'([\w.-]+)'\s*,/g)) {
        if (!ensured.has(program!) && !ESSENTIAL.has(program!) && !OPTIONAL.has(program!)) {
          missing.add(`${program} (${file.slice(ROOT.length)})`)
        }
      }
    }
    assert.deepEqual([...missing].sort(), [])
  })
})
