import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { promisify } from 'node:util'
import { RateLimiter } from '../src/rate-limit.ts'
import { refusingSocket } from '../../p2p/test/helpers.ts'
import { tempDir } from './helpers.ts'

const run = promisify(execFile)
const ALLOCATOR = new URL('../bin/allocator.js', import.meta.url).pathname
const PROXY = new URL('../../proxy/bin/proxy.js', import.meta.url).pathname

// the HOME of the CLIs run here: what they write under it (the identity key an allocator makes
// before it refuses --keep-instances) goes with it, never into a folder other runs share
let home: { path: string, remove: () => Promise<void> }
before(async () => { home = await tempDir('physarum-cli-home') })
after(async () => { await home.remove() })

async function cli (bin: string, args: string[]): Promise<{ code: number, stdout: string, stderr: string }> {
  try {
    // a daemon that took bad input for good would run on: killed, it fails the assertions; an
    // allocator would find no engine meanwhile, not the host's
    const env = { PATH: process.env.PATH ?? '', HOME: home.path, DOCKER_HOST: 'unix:///nonexistent/docker.sock' }
    const { stdout, stderr } = await run(process.execPath, [bin, ...args], { env, timeout: 30_000 })
    return { code: 0, stdout, stderr }
  } catch (err) {
    const e = err as { code: number, stdout: string, stderr: string }
    return { code: e.code, stdout: e.stdout, stderr: e.stderr }
  }
}

describe('allocator and sidecar CLIs', () => {
  it('print their options with --help', async () => {
    const allocator = await cli(ALLOCATOR, ['--help'])
    assert.equal(allocator.code, 0)
    for (const flag of ['--idle-timeout', '--ready-timeout', '--pull-timeout', '--max-instances', '--node-image', '--docker-host', '--keep-instances', '--announce', '--sidecar-announce']) {
      assert.ok(allocator.stdout.includes(flag), flag)
    }
    assert.match(allocator.stdout, /\[default: \/ip4\/0\.0\.0\.0\/tcp\/4002\]/)
    // a bare number is refused (see the duration errors below): the help may not offer one
    assert.match(allocator.stdout, /Durations take a unit/)
    assert.match(allocator.stdout.replace(/\s+/g, ' '), /--ready-timeout .* at most 90s, the rest of the callers' 2m Allocate deadline/)
    assert.match(allocator.stdout.replace(/\s+/g, ' '), /--pull-timeout How long an image pull may take.* \[string\] \[default: "10m"\]/)
    assert.doesNotMatch(allocator.stdout, /seconds \(1, 0\.5\)|are seconds/)
    const proxy = await cli(PROXY, ['--help'])
    assert.equal(proxy.code, 0)
    assert.match(proxy.stdout, /--sidecar/)
    // --registry-id is for both modes: a sidecar passes it to its --client-port client proxy
    const clientMode = proxy.stdout.slice(proxy.stdout.indexOf('\nClient mode:\n'), proxy.stdout.indexOf('\nSidecar mode:\n'))
    assert.match(clientMode, /--registry /)
    assert.doesNotMatch(clientMode, /--registry-id/)
    assert.match(proxy.stdout.replace(/\s+/g, ' '), /--registry-id Peer id of a registry-service .* Both modes: a sidecar passes it to its --client-port client proxy/)
    // every status the client proxy answers with itself
    for (const status of ['400', '404', '408', '421', '502', '503', '504']) {
      assert.match(proxy.stdout, new RegExp(`\\b${status}\\s`), `proxy --help names ${status}`)
    }
  })

  it('exit 2 naming the flag for a usage error', async () => {
    const bad = await cli(ALLOCATOR, ['--idle-timeout', 'soon', '--no-psk'])
    assert.equal(bad.code, 2)
    assert.match(bad.stderr, /--idle-timeout: "soon" is not a duration/)
    const privileged = await cli(ALLOCATOR, ['--sidecar-listen', '/ip4/0.0.0.0/tcp/443', '--max-instances', '1', '--no-psk'])
    assert.equal(privileged.code, 2)
    assert.match(privileged.stderr, /--sidecar-listen: \/ip4\/0.0.0.0\/tcp\/443 has a port below 1024/)
    const fixed = await cli(ALLOCATOR, ['--sidecar-listen', '/ip4/0.0.0.0/tcp/4300', '--no-psk'])
    assert.equal(fixed.code, 2)
    assert.match(fixed.stderr, /--sidecar-listen: \/ip4\/0.0.0.0\/tcp\/4300 has a fixed port, .* --max-instances 1/)
    const unforwarded = await cli(ALLOCATOR, ['--sidecar-announce', '/ip4/203.0.113.7/tcp/4300', '--no-psk'])
    assert.equal(unforwarded.code, 2)
    assert.match(unforwarded.stderr, /--sidecar-announce: needs a --sidecar-listen with a fixed port/)
    const bridged = await cli(ALLOCATOR, ['--network-mode', 'bridge', '--sidecar-listen', '/ip4/0.0.0.0/tcp/4300', '--max-instances', '1', '--no-psk'])
    assert.equal(bridged.code, 2)
    assert.match(bridged.stderr, /--network-mode bridge publishes each sidecar .*: --sidecar-listen and --sidecar-announce are for host networking/)
    const loopback = await cli(ALLOCATOR, ['--network-mode', 'bridge', '--listen', '/ip4/127.0.0.1/tcp/0', '--no-psk'])
    assert.equal(loopback.code, 2)
    assert.match(loopback.stderr, /--network-mode bridge: the sidecars cannot reach the allocator on loopback/)
    const announce = await cli(ALLOCATOR, ['--announce', '/ip4/203.0.113.7/tcp/4001/p2p/12D3KooWGRUVh5JLWYmmzTZ3wE8p2Bch4JPWgGa2s2DCWVxo4pEx', '--no-psk'])
    assert.equal(announce.code, 2)
    assert.match(announce.stderr, /--announce: .* names a peer id/)
    const registry = await cli(ALLOCATOR, ['--registry', '/ip4/127.0.0.1/tcp/4001', '--no-psk'])
    assert.equal(registry.code, 2)
    assert.match(registry.stderr, /--registry: \/ip4\/127.0.0.1\/tcp\/4001 has no \/p2p\/<peer id>/)
    const proxyRegistry = await cli(PROXY, ['4200', '--registry', 'registry-host:4001', '--no-psk'])
    assert.equal(proxyRegistry.code, 2)
    assert.match(proxyRegistry.stderr, /--registry: "registry-host:4001" is not a multiaddr/)
    // a repeatable flag takes one value: the port after -bootstrap is the proxy's (the error is
    // the next check's, past the port)
    const afterBootstrap = await cli(PROXY, ['-bootstrap', '/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWCZUdVGQYe5NexGkPxnhpPmr3dKyduQY3udYLeyZWqpGn', '4200', '--upstream-timeout', 'soon', '--no-psk'])
    assert.equal(afterBootstrap.code, 2)
    assert.match(afterBootstrap.stderr, /^proxy: --upstream-timeout: "soon" is not a duration/m)
    // one port: a second is refused, as is any word no option takes
    for (const [bin, args, message] of [
      [PROXY, ['4200', '4201'], /^proxy: "4201": an argument that no option takes$/m],
      [PROXY, ['--sidecar', '--service', 'x', '--service-port', '8080', '4201', '4202'], /^proxy: "4202": an argument that no option takes$/m],
      [ALLOCATOR, ['--max-instances', '2', 'extra'], /^allocator: "extra": an argument that no option takes$/m]
    ] as const) {
      const stray = await cli(bin, [...args, '--no-psk'])
      assert.equal(stray.code, 2, stray.stderr)
      assert.match(stray.stderr, message)
    }
    const port = await cli(PROXY, ['http', '--no-psk'])
    assert.equal(port.code, 2)
    assert.match(port.stderr, /<port>: "http" is not a port/)
    // what was given, or that nothing was: never a value the parser made up ("missing", NaN)
    const noPort = await cli(PROXY, ['--no-psk'])
    assert.equal(noPort.code, 2)
    assert.match(noPort.stderr, /^proxy: <port>: missing: the client proxy's local HTTP port: run proxy <port>, e.g. proxy 4200$/m)
    for (const [args, message] of [
      [['4200', '--max-pending', 'abc'], /--max-pending: "abc" is not a whole number of at least 1/],
      [['--sidecar', '--service', 'x', '--service-port', '8080', '--client-port', 'abc'], /--client-port: "abc" is not a port \(1-65535\)/],
      [['--sidecar', '--service', 'x', '--service-port', 'abc'], /--service-port: "abc" is not a port \(1-65535\)/]
    ] as const) {
      const bad = await cli(PROXY, [...args, '--no-psk'])
      assert.equal(bad.code, 2, bad.stderr)
      assert.match(bad.stderr, message)
      assert.doesNotMatch(bad.stderr, /NaN|null/)
    }
    const sidecarAllocator = await cli(PROXY, ['--sidecar', '--service', 'x', '--service-port', '8080', '--allocator', '/ip4/127.0.0.1/tcp/4001', '--no-psk'])
    assert.equal(sidecarAllocator.code, 2)
    assert.match(sidecarAllocator.stderr, /--allocator: \/ip4\/127.0.0.1\/tcp\/4001 has no \/p2p\/<peer id>/)
    const sidecar = await cli(PROXY, ['--sidecar', '--service', 'x', '--no-psk'])
    assert.equal(sidecar.code, 2)
    assert.match(sidecar.stderr, /--service-port/)
  })

  it('exit 2 for values that would not work as asked: a free port to keep instances on, timers past Node\'s reach, a ready timeout past the callers\' deadline, a flag of the other mode', async () => {
    const refused: Array<[string, string[], RegExp]> = [
      [ALLOCATOR, ['--keep-instances', '--listen', '/ip4/127.0.0.1/tcp/0'], /--keep-instances: .* a free port \(--listen \/ip4\/127\.0\.0\.1\/tcp\/0\) does not keep: listen on a fixed port/],
      [ALLOCATOR, ['--keep-instances', '--ephemeral'], /--keep-instances: .* same identity, which --ephemeral does not keep/],
      [ALLOCATOR, ['--idle-timeout', '1s', '--stats-interval', '2s'], /--idle-timeout: 1s is not longer than --stats-interval 2s/],
      [ALLOCATOR, ['--ready-timeout', '700h'], /--ready-timeout: "700h" is too long/],
      [ALLOCATOR, ['--ready-timeout', '3m'], /--ready-timeout: 3m is longer than 90s: a cold start answers within the 2m deadline of its caller's Allocate/],
      // a pull with no bound is what the flag is there to prevent
      [ALLOCATOR, ['--pull-timeout', '0'], /--pull-timeout: "0" is too short \(at least 1s\)/],
      [ALLOCATOR, ['--pull-timeout', '600'], /--pull-timeout: "600" has no unit: write 600s or 600ms/],
      [PROXY, ['4200', '--cold-start-timeout', '3000000s'], /--cold-start-timeout: "3000000s" is too long \(at most 2147483647ms/],
      [PROXY, ['4200', '--cold-start-timeout', '30'], /--cold-start-timeout: "30" has no unit: write 30s or 30ms/],
      [ALLOCATOR, ['--idle-timeout', '60'], /--idle-timeout: "60" has no unit: write 60s or 60ms/],
      [PROXY, ['--sidecar', '--service', 'x', '--service-port', '8080', '--stats-interval', '1000'], /--stats-interval: "1000" has no unit/],
      [PROXY, ['4200', '--upstream-timeout', 'soon'], /--upstream-timeout: "soon" is not a duration/],
      [ALLOCATOR, ['--registry-id', 'registry-1'], /--registry-id: "registry-1" is not a peer id/],
      // refused as a usage error before anything starts, not as the engine's first call failing
      [ALLOCATOR, ['--docker-host', 'ftp://engine:2375'], /--docker-host: "ftp:\/\/engine:2375" is not unix:\/\/\/path\/docker.sock or tcp:\/\/host:port/],
      // what each sidecar refuses at its start: every cold start would fail while the allocator runs
      [ALLOCATOR, ['--sidecar-listen', '/dns4/localhost/tcp/4300', '--max-instances', '1'], /--sidecar-listen: \/dns4\/localhost\/tcp\/4300 is not an IP and TCP port/],
      [ALLOCATOR, ['--sidecar-listen', '/ip4/0.0.0.0/tcp/0/ws'], /--sidecar-listen: \/ip4\/0.0.0.0\/tcp\/0\/ws is not an IP and TCP port/],
      [ALLOCATOR, ['--sidecar-listen', '/ip4/0.0.0.0/tcp/4300', '--max-instances', '1', '--sidecar-announce', '/ip4/203.0.113.7/tcp/4300/p2p/12D3KooWCZUdVGQYe5NexGkPxnhpPmr3dKyduQY3udYLeyZWqpGn'], /--sidecar-announce: .* names a peer id/],
      [ALLOCATOR, ['--node-image', ''], /--node-image: must not be empty/],
      [ALLOCATOR, ['--sidecar-image', ' '], /--sidecar-image: must not be empty/],
      [ALLOCATOR, ['--sidecar-entry', ''], /--sidecar-entry: must not be empty/],
      [ALLOCATOR, ['--docker-host', 'tcp://127.0.0.1:99999'], /--docker-host: "tcp:\/\/127.0.0.1:99999" has no port from 1 to 65535/],
      [PROXY, ['--sidecar', '--service', 'x', '--service-port', '8080', '--registry-id', 'registry-1'], /--registry-id: "registry-1" is not a peer id/],
      [PROXY, ['4200', '--service', 'x'], /--service: a sidecar option: add --sidecar/],
      [PROXY, ['--sidecar', '--service', 'x', '--service-port', '8080', '--max-pending', '5'], /--max-pending: a client mode option, not for --sidecar/],
      [PROXY, ['--sidecar', '--service', 'x', '--service-port', '8080', '--metrics-listen', ':9200'], /--metrics-listen: a client mode option/],
      [PROXY, ['4200', '--sidecar', '--service', 'x', '--service-port', '8080'], /<port>: "4200": the sidecar serves no local port/],
      [PROXY, ['--sidecar', '--service', 'x', '--service-port', '8080', '--allocator', '/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWCZUdVGQYe5NexGkPxnhpPmr3dKyduQY3udYLeyZWqpGn'], /--instance: missing/]
    ]
    for (const [bin, args, message] of refused) {
      const answer = await cli(bin, [...args, '--no-psk'])
      assert.equal(answer.code, 2, `${args.join(' ')}: ${answer.stderr}`)
      assert.match(answer.stderr, message)
    }
  })
})

describe('allocator start', () => {
  it('says that this user needs access to the Docker socket when it may not use it', async () => {
    const dir = await tempDir('physarum-socket-access')
    const socket = join(dir.path, 'docker.sock')
    const engine = await refusingSocket(socket)
    try {
      const command = [...engine.prefix, process.execPath, ALLOCATOR,
        '--docker-host', `unix://${socket}`, '--no-psk', '--ephemeral', '--listen', '/ip4/127.0.0.1/tcp/0', '--metrics-listen', '127.0.0.1:0']
      const answer = await run(command[0]!, command.slice(1), { env: { PATH: process.env.PATH ?? '', HOME: dir.path }, timeout: 30_000 })
        .then(() => ({ code: 0, stderr: '' }), (err: { code: number, stderr: string }) => err)
      assert.equal(answer.code, 1, answer.stderr)
      assert.match(answer.stderr, new RegExp(`^allocator: The Docker engine does not answer: connect EACCES ${socket}: this user may not use the engine's socket; run the allocator as root or in the socket's group \\(docker: usermod -aG docker <user>`, 'm'))
    } finally {
      engine.close()
      await dir.remove()
    }
  })
})

describe('per-peer rate limit', () => {
  it('allows a burst, then refuses for a backoff that doubles while the bucket is emptied again, and resets after calm', () => {
    const limiter = new RateLimiter({ perSecond: 1, burst: 3, backoffMinMs: 1_000, backoffMaxMs: 8_000 })
    const t = 1_000_000
    const takes = (at: number, n: number): Array<number | undefined> => Array.from({ length: n }, () => limiter.take('a', at))
    assert.deepEqual(takes(t, 4), [undefined, undefined, undefined, 1_000])
    assert.equal(limiter.take('a', t + 600), 400, 'coming back early: what is left of the backoff')
    assert.equal(limiter.take('b', t), undefined, 'peers are limited separately')
    // the backoff over, the tokens it brought back are taken, and the next backoff is twice the last
    assert.deepEqual(takes(t + 1_000, 2), [undefined, 2_000])
    assert.deepEqual(takes(t + 3_000, 3), [undefined, undefined, 4_000])
    // 4 s brought the bucket back past half: calm, the backoff starts over
    assert.deepEqual(takes(t + 7_000, 4), [undefined, undefined, undefined, 1_000])
  })

  it('starts the backoff over after calm with a burst of one too', () => {
    const limiter = new RateLimiter({ perSecond: 1, burst: 1, backoffMinMs: 1_000, backoffMaxMs: 60_000 })
    const t = 1_000_000
    assert.deepEqual([limiter.take('a', t), limiter.take('a', t + 100)], [undefined, 1_000])
    // an hour of calm, then two requests at once again: the first backoff, not twice the last
    assert.deepEqual([limiter.take('a', t + 3_600_000), limiter.take('a', t + 3_600_010)], [undefined, 1_000])
    assert.deepEqual([limiter.take('a', t + 7_200_000), limiter.take('a', t + 7_200_010)], [undefined, 1_000])
  })

  it('keeps letting a peer in when the host\'s clock steps back', (t) => {
    const limiter = new RateLimiter({ perSecond: 5, burst: 30 })
    let wall = Date.now()
    t.mock.method(Date, 'now', () => wall)
    assert.equal(limiter.take('a'), undefined)
    // an hour back (an operator's date -s, NTP correcting a clock that ran ahead): the peer's
    // bucket must not be an hour from refilling
    wall -= 3_600_000
    for (let i = 0; i < 10; i++) {
      assert.equal(limiter.take('a'), undefined, `request ${i} after the step`)
    }
  })

  it('lets in a peer that waits out its backoff, however often it asked during it', () => {
    const limiter = new RateLimiter({ perSecond: 5, burst: 30, backoffMinMs: 1_000, backoffMaxMs: 60_000 })
    let t = 1_000_000
    for (let i = 0; i < 30; i++) {
      assert.equal(limiter.take('a', t), undefined)
    }
    // hammering: every refusal names the time left, never more
    assert.equal(limiter.take('a', t), 1_000)
    for (let i = 1; i <= 9; i++) {
      assert.equal(limiter.take('a', t + i * 100), 1_000 - i * 100)
    }
    // then one request every 30 s, far below the rate: each one is let in
    for (let i = 0; i < 40; i++) {
      t += 30_000
      assert.equal(limiter.take('a', t), undefined, `request ${i} of one every 30 s`)
    }
  })
})
