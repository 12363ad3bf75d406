import assert from 'node:assert/strict'
import { once } from 'node:events'
import { readFile, stat, writeFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { after, describe, it } from 'node:test'
import { SMALL_HEAP_SETTINGS } from '@physarum/p2p/node-settings'
import { startNode, stopAll } from '../../p2p/test/helpers.ts'
import { eventually, freePort, getJson, runCli, spawnMonitor, tempDir, TEST_PASSPHRASE } from './helpers.ts'
import type { PeerReport } from '../src/index.ts'
import type { Server } from 'node:net'

const LOCAL: Record<string, string | true> = { '--listen': '/ip4/127.0.0.1/tcp/0', '--metrics-listen': '127.0.0.1:0', '--ephemeral': true }

/** Loopback defaults, with the case's own flags in place of them. */
function localArgs (args: string[]): string[] {
  const defaults = Object.entries(LOCAL).filter(([flag]) => !args.includes(flag))
  return [...defaults.flatMap(([flag, value]) => value === true ? [flag] : [flag, value]), ...args]
}
const WITH_PSK = { PHYSARUM_PSK: TEST_PASSPHRASE }

/** A user-facing message: one short text, no stack trace. */
function assertNoStack (stderr: string): void {
  assert.doesNotMatch(stderr, /^\s+at /m, `a stack trace on stderr:\n${stderr}`)
}

describe('ping-monitor CLI', { concurrency: 4 }, () => {
  const cleanups: Array<() => Promise<void>> = []
  after(async () => { for (const cleanup of cleanups) await cleanup() })

  it('--help explains the flags, the printed address line and the exit codes', async () => {
    const { code, stdout } = await runCli(['--help'])
    assert.equal(code, 0)
    for (const text of ['--interval', '--ping-timeout', '--concurrency', '--forget-after', '--hostname', '--max-connections',
      '--inbound-rate', '--max-pending-per-ip', '--bootstrap', '--listen', 'p2p-listen-addr', '--metrics-listen', 'prom-listen-addr', '--identity',
      '--state-dir', 'ping-monitor listening: <multiaddr>', '/peers', 'physarum_ping_rtt_seconds', 'Exit codes', '500ms']) {
      assert.ok(stdout.includes(text), `--help does not mention ${text}`)
    }
    // both defaults of --listen, as the monitor listens on IPv6 too when the host has it
    assert.match(stdout, /--listen, --p2p-listen-addr[^[]*\[default: \/ip4\/0\.0\.0\.0\/tcp\/4001,\s+and\s+\/ip6\/::\/tcp\/4001\s+when\s+the\s+host\s+has\s+IPv6\]/)
    // a bare number is refused (see the usage errors below): the help may not offer one
    assert.match(stdout, /Durations take a unit/)
    assert.doesNotMatch(stdout, /seconds \(1, 0\.5\)|are seconds/)
  })

  const usageErrors: Array<[string, string[], Record<string, string>, RegExp]> = [
    ['a duration it cannot read', ['--interval', 'soon'], WITH_PSK, /--interval: "soon" is not a duration/],
    ['a duration without a unit', ['--interval', '1'], WITH_PSK, /--interval: "1" has no unit: write 1s or 1ms/],
    ['a zero duration', ['--forget-after', '0'], WITH_PSK, /--forget-after: "0" is too short/],
    ['a bad count', ['--concurrency', 'lots'], WITH_PSK, /--concurrency: "lots"/],
    ['a bad connection limit', ['--inbound-rate', '0'], WITH_PSK, /--inbound-rate: "0"/],
    // not the flag's default, which no one gave
    ['a flag without its value, before another flag', ['--concurrency', '--interval', '2s'], WITH_PSK, /Not enough arguments following: concurrency/],
    ['a flag without its value, last', ['--forget-after'], WITH_PSK, /Not enough arguments following: forget-after/],
    ['a listen address that is no multiaddr', ['--listen', '127.0.0.1:4001'], WITH_PSK, /--listen: "127\.0\.0\.1:4001" is not a multiaddr/],
    ['a bootstrap address without a peer id', ['--bootstrap', '/ip4/127.0.0.1/tcp/4001'], WITH_PSK, /--bootstrap: .*has no \/p2p\/<peer id>/],
    ['a metrics address it cannot read', ['--metrics-listen', 'localhost'], WITH_PSK, /--metrics-listen: "localhost"/],
    ['an unknown flag', ['--intervall', '2s'], WITH_PSK, /Unknown argument: intervall/],
    ['a word no option takes', ['--interval', '2s', 'extra'], WITH_PSK, /^ping-monitor: "extra": an argument that no option takes$/m],
    // without the words: they may be the rest of the passphrase
    ['a passphrase in words without quotes', ['--psk', 's3cret', 'extra'], {}, /^ping-monitor: 1 argument that no option takes, not shown(?![\s\S]*extra)/],
    ['no pre-shared key', [], {}, /No pre-shared key: set PHYSARUM_PSK/],
    // without the values: one of them may be the key
    ['a passphrase that starts with "-"', ['--psk', '-Xk9s3cr3t'], {}, /^ping-monitor: --psk: the value after it starts with "-".*--psk=<passphrase>(?![\s\S]*Xk9s3cr3t)/],
    ['a flag of one value given twice', ['--psk', 'first-secret', '--psk', 'second-secret', '--hostname', 'a', '--hostname', 'b'], {}, /^ping-monitor: --psk, --hostname: given more than once; it takes one value\n(?![\s\S]*secret)/]
  ]
  for (const [what, args, env, message] of usageErrors) {
    it(`exits 2 naming the problem for ${what}`, async () => {
      const { code, stderr } = await runCli(localArgs(args), env)
      assert.equal(code, 2, stderr)
      assert.match(stderr, message)
      assertNoStack(stderr)
    })
  }

  it('exits 1 with a clear message for an identity key file it cannot use', async () => {
    const dir = await tempDir('physarum-pm-cli')
    cleanups.push(dir.remove)
    const garbage = join(dir.path, 'garbage.key')
    await writeFile(garbage, 'not a key')
    const bad = await runCli(['--listen', '/ip4/127.0.0.1/tcp/0', '--metrics-listen', '127.0.0.1:0', '--identity', garbage], WITH_PSK)
    assert.equal(bad.code, 1, bad.stderr)
    assert.match(bad.stderr, new RegExp(`identity key file ${garbage} does not hold a libp2p private key`))
    assertNoStack(bad.stderr)
    const unreadable = await runCli(['--listen', '/ip4/127.0.0.1/tcp/0', '--metrics-listen', '127.0.0.1:0', '--identity', dir.path], WITH_PSK)
    assert.equal(unreadable.code, 1, unreadable.stderr)
    assert.match(unreadable.stderr, new RegExp(`Cannot read the identity key file ${dir.path}`))
    assertNoStack(unreadable.stderr)
  })

  it('exits 1 naming the address when the overlay or metrics port is busy', async () => {
    const busy: Server = createServer()
    busy.listen(await freePort(), '127.0.0.1')
    await once(busy, 'listening')
    cleanups.push(async () => { await new Promise(resolve => busy.close(resolve)) })
    const port = (busy.address() as { port: number }).port

    const p2p = await runCli(['--ephemeral', '--listen', `/ip4/127.0.0.1/tcp/${port}`, '--metrics-listen', '127.0.0.1:0'], WITH_PSK)
    assert.equal(p2p.code, 1, p2p.stderr)
    assert.match(p2p.stderr, new RegExp(`--listen: /ip4/127\\.0\\.0\\.1/tcp/${port} is in use by another process`))
    assertNoStack(p2p.stderr)

    const metrics = await runCli(['--ephemeral', '--listen', '/ip4/127.0.0.1/tcp/0', '--metrics-listen', `127.0.0.1:${port}`], WITH_PSK)
    assert.equal(metrics.code, 1, metrics.stderr)
    assert.match(metrics.stderr, new RegExp(`metrics address 127\\.0\\.0\\.1:${port} is in use`))
    assertNoStack(metrics.stderr)
  })

  it('listens on IPv4 and IPv6 at once, and measures peers that join over either', async () => {
    const monitor = await spawnMonitor(['--listen', '/ip6/::1/tcp/0', '--interval', '200ms'])
    cleanups.push(async () => { await monitor.stop('SIGKILL') })
    const v4 = monitor.addrs.find(a => a.startsWith('/ip4/127.0.0.1/tcp/'))
    const v6 = monitor.addrs.find(a => a.startsWith('/ip6/::1/tcp/'))
    assert.ok(v4 != null && v6 != null, `printed ${monitor.addrs.join(', ')}`)
    const peers = [
      await startNode({ hostName: 'over-v4', bootstrap: [v4] }),
      await startNode({ hostName: 'over-v6', listen: ['/ip6/::1/tcp/0'], bootstrap: [v6] })
    ]
    cleanups.push(async () => { await stopAll(peers) })
    // a peer's host name is known once identify has run, which may be after its first ping
    const reports = await eventually('both peers measured and named', async () => {
      const { peers: reports } = await getJson<{ peers: PeerReport[] }>(monitor.metricsUrl.replace('/metrics', '/peers'))
      return peers.every(p => reports.some(r => r.peerId === p.peerId.toString() && r.lastRttMs != null && r.host !== 'unknown')) ? reports : undefined
    })
    const overV6 = reports.find(r => r.peerId === peers[1]!.peerId.toString())
    assert.equal(overV6?.host, 'over-v6', JSON.stringify(reports))
    assert.ok(overV6.connectedVia.some(a => a.startsWith('/ip6/::1/')), JSON.stringify(overV6))
  })

  it('keeps its identity in a key file across restarts, stops gracefully on SIGTERM, never shows the key', async () => {
    const dir = await tempDir('physarum-pm-state')
    cleanups.push(dir.remove)
    const first = await spawnMonitor(['--state-dir', dir.path, '--hostname', 'mon-cli'])
    cleanups.push(async () => { await first.stop('SIGKILL') })
    assert.match(first.addrs[0]!, /^\/ip4\/127\.0\.0\.1\/tcp\/\d+\/p2p\/12D3KooW\w+$/)
    const health = await (await fetch(first.metricsUrl.replace('/metrics', '/healthz'))).json() as { ok: boolean, peerId: string }
    assert.deepEqual([health.ok, health.peerId], [true, first.peerId])
    const exit = await first.stop('SIGTERM')
    assert.deepEqual(exit, { code: 143, signal: null })
    assert.match(first.output(), /"msg":"stopped"/)
    assert.equal((await stat(join(dir.path, 'identity.key'))).mode & 0o777, 0o600)

    const second = await spawnMonitor(['--state-dir', dir.path, '--hostname', 'mon-cli'])
    cleanups.push(async () => { await second.stop('SIGKILL') })
    assert.equal(second.peerId, first.peerId)
    await second.stop()
    for (const output of [first.output(), second.output()]) {
      assert.ok(!output.includes(TEST_PASSPHRASE), 'the passphrase is in the output')
    }
  })

  it('stops on SIGTERM once nothing reads its stdout any more (a pipe whose reader left, journald restarted)', async () => {
    const monitor = await spawnMonitor(['--interval', '100ms'])
    cleanups.push(async () => { await monitor.stop('SIGKILL') })
    // the reader goes: every later line meets EPIPE
    monitor.child.stdout?.destroy()
    const began = performance.now()
    monitor.child.kill('SIGTERM')
    const [code] = await Promise.race([once(monitor.child, 'exit'), new Promise<[string]>(resolve => setTimeout(() => { resolve(['still running']) }, 8_000))])
    assert.equal(code, 143)
    assert.ok(performance.now() - began < 8_000)
  })

  it('runs with its memory settings from the start, in the same process, an operator\'s own kept', async () => {
    const monitor = await spawnMonitor([], { MALLOC_ARENA_MAX: '4' })
    cleanups.push(async () => { await monitor.stop('SIGKILL') })
    const pid = monitor.child.pid!
    const argv = (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0')
    for (const flag of SMALL_HEAP_SETTINGS.flags) {
      assert.ok(argv.includes(flag), `${flag} missing from ${argv.join(' ')}`)
    }
    const environ = (await readFile(`/proc/${pid}/environ`, 'utf8')).split('\0')
    assert.ok(environ.includes('MALLOC_ARENA_MAX=4'), 'the operator\'s MALLOC_ARENA_MAX was replaced')
  })
})
