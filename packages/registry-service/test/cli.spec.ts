import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { existsSync } from 'node:fs'
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { PreSharedKey } from '@physarum/p2p'
import { etcdAuthFor } from '../src/etcd-auth.ts'
import { createRegistryClient, KEY_PREFIX } from '../src/index.ts'
import { Cli, eventually, FAST_ETCD_ENV, freePort, makeTestCertificates, sampleRecord, startNode, stopAll, tempDir, TEST_PASSPHRASE, TestEtcd } from './helpers.ts'
import type { PhysarumNode } from '@physarum/p2p'

async function runToEnd (args: string[], env: Record<string, string> = {}): Promise<{ code: number | null, output: string }> {
  const cli = new Cli(args, env)
  const code = await cli.ended()
  // the line reader may be a tick behind the exit
  await new Promise(resolve => setImmediate(resolve))
  return { code, output: cli.lines.join('\n') }
}

const CONFIGS = new URL('../../../configs/', import.meta.url).pathname

/**
 * The registry-service's arguments and environment as its systemd unit gives them, with `env` in
 * the environment file (the example's settings, then these): the unit's Environment= lines, then
 * the file's, which win; in ExecStart `${NAME}` replaced within a word, and `$NAME` a word of its
 * own split at white space (none when empty).
 */
async function asUnit (env: Record<string, string>): Promise<{ args: string[], env: Record<string, string> }> {
  const unit = await readFile(join(CONFIGS, 'systemd', 'physarum-registry-service.service'), 'utf8')
  const environment: Record<string, string> = {}
  const assignments = [...unit.matchAll(/^Environment=(.*)$/gm)].map(match => match[1]!)
  const file = (await readFile(join(CONFIGS, 'physarum.env.example'), 'utf8')).split('\n').filter(line => /^[A-Z_]+=/.test(line))
  for (const line of [...assignments, ...file]) {
    const at = line.indexOf('=')
    environment[line.slice(0, at)] = line.slice(at + 1)
  }
  Object.assign(environment, env)
  const words = (/^ExecStart=(.*)$/m.exec(unit)?.[1] ?? '').split(' ')
  assert.match(words[1] ?? '', /\/registry-service\.js$/, 'the unit runs the registry-service')
  const args = words.slice(2).flatMap(word => /^\$\w+$/.test(word)
    ? (environment[word.slice(1)] ?? '').split(/\s+/).filter(Boolean)
    : [word.replace(/\$\{(\w+)\}/g, (_match, name: string) => environment[name] ?? '')])
  return { args, env: environment }
}

describe('registry-service command line', () => {
  let state: Awaited<ReturnType<typeof tempDir>>
  let bootstrap: PhysarumNode
  let clientNode: PhysarumNode
  const running: Cli[] = []

  before(async () => {
    state = await tempDir('physarum-registry-cli')
    bootstrap = await startNode()
    clientNode = await startNode({ bootstrap: [bootstrap.multiaddrs()[0]!.toString()], dhtMode: 'client' })
  })
  after(async () => {
    await Promise.all(running.map(async cli => { await cli.kill('SIGKILL') }))
    await stopAll([clientNode, bootstrap])
    await state?.remove()
  })

  it('explains itself with --help and refuses bad usage with exit code 2 and the message only', async () => {
    const help = await runToEnd(['--help'])
    assert.equal(help.code, 0)
    for (const text of ['--new-etcd-cluster', '--join-etcd-cluster', '--etcd-endpoints', '--etcd-ip', '--admin', '--open-writes', '--show-etcd-password', '--etcd-user', '--etcd-password-file', '--etcd-ca', '--etcd-cert', '--etcd-key', '--etcd-auto-compaction', 'Examples:', 'ETCD_HEARTBEAT_INTERVAL', 'PHYSARUM_ETCD_CLUSTER', 'PHYSARUM_ETCD_IP']) {
      assert.ok(help.output.includes(text), `--help mentions ${text}`)
    }
    const managed = /^Managed etcd:\n([\s\S]*?)\n\n/m.exec(help.output)?.[1] ?? ''
    assert.ok(managed.includes('--etcd-ip') && !managed.includes('--etcd-timeout'), `the deadline of every etcd call, an external etcd's too, is not shown as the managed etcd's: ${managed}`)
    const emptyFile = join(state.path, 'empty')
    const notPem = join(state.path, 'not-pem')
    await writeFile(emptyFile, '\n', { mode: 0o600 })
    await writeFile(notPem, 'not a certificate\n')
    const external = ['--ephemeral', '--etcd-endpoints', 'http://127.0.0.1:1']
    const cases: Array<[string[], RegExp]> = [
      [[...external, '--etcd-user', 'bob'], /--etcd-user: "bob" needs --etcd-password-file/],
      [[...external, '--etcd-password-file', emptyFile], /--etcd-password-file: .*empty needs --etcd-user/],
      [[...external, '--etcd-user', 'bob', '--etcd-password-file', '/nonexistent/password'], /--etcd-password-file: cannot read \/nonexistent\/password: ENOENT/],
      [[...external, '--etcd-user', 'bob', '--etcd-password-file', emptyFile], /--etcd-password-file: .*empty is empty/],
      [[...external, '--etcd-ca', notPem], /--etcd-ca: the etcd endpoints are http:\/\/, which take no TLS/],
      [[...external, '--etcd-cert', notPem], /--etcd-cert: .* needs --etcd-key/],
      [[...external, '--etcd-key', notPem], /--etcd-key: .* needs --etcd-cert/],
      [['--ephemeral', '--etcd-endpoints', 'https://127.0.0.1:1,http://127.0.0.1:2'], /--etcd-endpoints: .* mixes https:\/\/ and http:\/\/ URLs/],
      [['--ephemeral', '--etcd-endpoints', 'https://127.0.0.1:1', '--etcd-ca', notPem], /--etcd-ca: .*not-pem is not a PEM certificate/],
      [['--ephemeral', '--etcd-endpoints', 'https://127.0.0.1:1', '--etcd-cert', notPem, '--etcd-key', notPem], /--etcd-cert, --etcd-key: .*not-pem are not a PEM certificate and its private key/],
      [['--ephemeral', '--new-etcd-cluster', '--etcd-ip', '127.0.0.1', '--etcd-user', 'bob'], /--etcd-user: for an etcd given with --etcd-endpoints, not with --new-etcd-cluster/],
      [['--ephemeral'], /Say where the records live/],
      [['--ephemeral', '--new-etcd-cluster', '--etcd-endpoints', 'http://127.0.0.1:1'], /only one of/],
      [['--ephemeral', '--new-etcd-cluster'], /--etcd-ip: missing/],
      [['--ephemeral', '--new-etcd-cluster', '--etcd-ip', '0.0.0.0'], /--etcd-ip: "0.0.0.0"/],
      // what was typed, never NaN
      [['--ephemeral', '--new-etcd-cluster', '--etcd-ip', '127.0.0.1', '--etcd-client-port', 'abc'], /^registry-service: --etcd-client-port: "abc" is not a port \(1-65535\)$/m],
      [['--ephemeral', '--new-etcd-cluster', '--etcd-ip', '127.0.0.1', '--etcd-peer-port', '65536'], /^registry-service: --etcd-peer-port: "65536" is not a port \(1-65535\)$/m],
      [['--ephemeral', '--etcd-endpoints', '127.0.0.1:2379'], /--etcd-endpoints: "127.0.0.1:2379"/],
      // gRPC would dial 443
      [['--ephemeral', '--etcd-endpoints', 'http://127.0.0.1:2379,http://etcd-2.example'], /^registry-service: --etcd-endpoints: "http:\/\/etcd-2.example" has no port: give etcd's client port/m],
      [['--ephemeral', '--etcd-endpoints', 'http://[::1]'], /--etcd-endpoints: "http:\/\/\[::1\]" has no port/],
      [['--ephemeral', '--etcd-endpoints', 'http://127.0.0.1:1', '--admin', 'bob'], /--admin: "bob" is not a peer id/],
      [['--ephemeral', '--etcd-endpoints', 'http://127.0.0.1:1', '--no-such-flag'], /Unknown argument/],
      [['--ephemeral', '--etcd-endpoints', 'http://127.0.0.1:1', 'extra'], /^registry-service: "extra": an argument that no option takes$/m],
      // a passphrase in words without quotes: refused, and its words not shown
      [['--ephemeral', '--etcd-endpoints', 'http://127.0.0.1:1', '--psk', 'correct', 'horse', 'battery'], /^registry-service: 2 arguments that no option takes, not shown(?![\s\S]*(horse|battery))/m],
      [['--ephemeral', '--etcd-endpoints', 'http://127.0.0.1:1', '--etcd-timeout', '2x'], /--etcd-timeout: "2x" is not a duration/],
      [['--ephemeral', '--etcd-endpoints', 'http://127.0.0.1:1', '--etcd-timeout', '1500'], /--etcd-timeout: "1500" has no unit: write 1500s or 1500ms/],
      // the client would give up before the registry answers UNAVAILABLE
      [['--ephemeral', '--etcd-endpoints', 'http://127.0.0.1:1', '--etcd-timeout', '5s'], /^registry-service: --etcd-timeout: "5s" is not shorter than the 5s a registry client waits for an answer$/m],
      [['--ephemeral', '--etcd-endpoints', 'http://127.0.0.1:1', '--etcd-peer-port', '2390'], /--etcd-peer-port: for the etcd this process runs .* not with --etcd-endpoints/],
      [['--ephemeral', '--new-etcd-cluster', '--etcd-ip', '127.0.0.1', '--join-via', '/ip4/127.0.0.1/tcp/4001'], /--join-via: with --join-etcd-cluster only/],
      [['--ephemeral', '--new-etcd-cluster', '--etcd-ip', '127.0.0.1', '--etcd-auto-compaction', '500ms'], /^registry-service: --etcd-auto-compaction: "500ms" is too short \(at least 1s, or 0 for never\)$/m],
      [['--ephemeral', '--new-etcd-cluster', '--etcd-ip', '127.0.0.1', '--etcd-auto-compaction', '60'], /--etcd-auto-compaction: "60" has no unit/],
      [['--ephemeral', '--etcd-endpoints', 'http://127.0.0.1:1', '--etcd-auto-compaction', '1h'], /--etcd-auto-compaction: for the etcd this process runs .* not with --etcd-endpoints/]
    ]
    // the etcd root password of the key given, and nothing else on stdout; no key, no password
    const shown = await runToEnd(['--show-etcd-password', '--state-dir', join(state.path, 'show')])
    assert.deepEqual(shown, { code: 0, output: etcdAuthFor(PreSharedKey.fromPassphrase(TEST_PASSPHRASE)).password })
    assert.ok(!existsSync(join(state.path, 'show')), 'no identity or state made')
    const noKey = await runToEnd(['--show-etcd-password', '--no-psk'])
    assert.equal(noKey.code, 2, noKey.output)
    assert.match(noKey.output, /--no-psk\) gives its etcd no login/)
    const fromEnv = await runToEnd(['--ephemeral', '--etcd-endpoints', 'http://127.0.0.1:1', '--state-dir', join(state.path, 'usage')], { PHYSARUM_ADMINS: '12D3KooWReplaceMe' })
    assert.equal(fromEnv.code, 2, fromEnv.output)
    assert.match(fromEnv.output, /PHYSARUM_ADMINS: "12D3KooWReplaceMe" is not a peer id/)
    const userFromEnv = await runToEnd([...external, '--state-dir', join(state.path, 'usage')], { PHYSARUM_ETCD_USER: 'bob' })
    assert.equal(userFromEnv.code, 2, userFromEnv.output)
    assert.match(userFromEnv.output, /PHYSARUM_ETCD_USER: "bob" needs --etcd-password-file/)
    const trust = await runToEnd(['--ephemeral', '--etcd-endpoints', 'http://127.0.0.1:1', '--state-dir', join(state.path, 'usage')], { PHYSARUM_REGISTRY_IDS: 'registry-1' })
    assert.equal(trust.code, 2, trust.output)
    assert.match(trust.output, /PHYSARUM_REGISTRY_IDS: "registry-1" is not a peer id/)
    for (const [args, message] of cases) {
      const { code, output } = await runToEnd([...args, '--state-dir', join(state.path, 'usage')])
      assert.equal(code, 2, `${args.join(' ')}: ${output}`)
      assert.match(output, message, args.join(' '))
      assert.doesNotMatch(output, /at .*\.ts:\d+/, 'no stack trace')
    }
    // where the records live, from the environment (as the systemd unit has it) when no flag says
    const endpoints = { PHYSARUM_ETCD_ENDPOINTS: 'http://127.0.0.1:1' }
    const envCases: Array<[string[], Record<string, string>, RegExp]> = [
      [[], { PHYSARUM_ETCD_CLUSTER: 'primary' }, /^registry-service: PHYSARUM_ETCD_CLUSTER: "primary" is not new, join or external$/m],
      [[], { PHYSARUM_ETCD_CLUSTER: 'external' }, /^registry-service: PHYSARUM_ETCD_CLUSTER=external: .*give its client URLs with --etcd-endpoints or PHYSARUM_ETCD_ENDPOINTS$/m],
      [[], { PHYSARUM_ETCD_CLUSTER: 'new' }, /^registry-service: --etcd-ip: missing: PHYSARUM_ETCD_CLUSTER=new needs the IP address .*in --etcd-ip or PHYSARUM_ETCD_IP$/m],
      [[], { PHYSARUM_ETCD_CLUSTER: 'join', PHYSARUM_ETCD_IP: '0.0.0.0' }, /^registry-service: PHYSARUM_ETCD_IP: "0.0.0.0": PHYSARUM_ETCD_CLUSTER=join needs/m],
      // another host's address (a copied environment file): its etcd answers there, which is no reason to change ports
      [[], { PHYSARUM_ETCD_CLUSTER: 'new', PHYSARUM_ETCD_IP: '198.51.100.7' }, /^registry-service: PHYSARUM_ETCD_IP: "198.51.100.7" is not an address of this host \(it has .*127\.0\.0\.1.*\), where its etcd is to listen: give this host's own$/m],
      [['--etcd-ip', '198.51.100.7'], { PHYSARUM_ETCD_CLUSTER: 'join' }, /^registry-service: --etcd-ip: "198.51.100.7" is not an address of this host/m],
      [[], { PHYSARUM_ETCD_CLUSTER: 'external', PHYSARUM_ETCD_ENDPOINTS: '127.0.0.1:2379' }, /^registry-service: PHYSARUM_ETCD_ENDPOINTS: "127.0.0.1:2379" is not a client URL/m],
      [['--etcd-bin', '/usr/bin/etcd'], { PHYSARUM_ETCD_CLUSTER: 'external', ...endpoints }, /^registry-service: --etcd-bin: for the etcd this process runs .*not with PHYSARUM_ETCD_CLUSTER=external$/m],
      // endpoints with an etcd of its own: refused, naming both, rather than one of them ignored
      [[], { PHYSARUM_ETCD_CLUSTER: 'new', PHYSARUM_ETCD_IP: '127.0.0.1', ...endpoints }, /^registry-service: PHYSARUM_ETCD_ENDPOINTS is set, but PHYSARUM_ETCD_CLUSTER=new runs an etcd of this process's own: .*set PHYSARUM_ETCD_CLUSTER=external/m],
      [['--join-etcd-cluster', '--etcd-ip', '127.0.0.1'], endpoints, /^registry-service: PHYSARUM_ETCD_ENDPOINTS is set, but --join-etcd-cluster runs an etcd of this process's own/m],
      // an external etcd's login with an etcd of its own, which takes the key's: refused, not ignored
      [[], { PHYSARUM_ETCD_CLUSTER: 'new', PHYSARUM_ETCD_IP: '127.0.0.1', PHYSARUM_ETCD_USER: 'physarum' }, /^registry-service: PHYSARUM_ETCD_USER is set, but PHYSARUM_ETCD_CLUSTER=new runs an etcd of this process's own, .*unset PHYSARUM_ETCD_USER, or set PHYSARUM_ETCD_CLUSTER=external/m],
      [['--join-etcd-cluster', '--etcd-ip', '127.0.0.1'], { PHYSARUM_ETCD_PASSWORD_FILE: '/etc/physarum/etcd-password' }, /^registry-service: PHYSARUM_ETCD_PASSWORD_FILE is set, but --join-etcd-cluster runs an etcd of this process's own/m],
      // etcd would refuse the setting given both ways, in its log only
      [['--new-etcd-cluster', '--etcd-ip', '127.0.0.1'], { ETCD_AUTO_COMPACTION_RETENTION: '1' }, /^registry-service: ETCD_AUTO_COMPACTION_RETENTION is set, but .*give --etcd-auto-compaction instead$/m],
      [['--join-etcd-cluster', '--etcd-ip', '127.0.0.1'], { ETCD_DATA_DIR: '' }, /^registry-service: ETCD_DATA_DIR is set, but the registry-service gives its etcd --data-dir itself, and etcd refuses a setting given both ways: unset ETCD_DATA_DIR$/m]
    ]
    for (const [args, env, message] of envCases) {
      const { code, output } = await runToEnd(['--ephemeral', ...args, '--state-dir', join(state.path, 'usage')], env)
      assert.equal(code, 2, `${JSON.stringify(env)}: ${output}`)
      assert.match(output, message, JSON.stringify(env))
    }
  })

  it('refuses an empty --admin instead of taking PHYSARUM_ADMINS, or no admin, in its place', async () => {
    const admins = { PHYSARUM_ADMINS: clientNode.peerId.toString() }
    for (const [args, env] of [[['--admin', ''], admins], [['--admin', ' , '], admins], [['--admin', ''], {}], [['--admin', clientNode.peerId.toString(), '--admin', ''], {}]] as Array<[string[], Record<string, string>]>) {
      const { code, output } = await runToEnd(['--ephemeral', '--etcd-endpoints', 'http://127.0.0.1:1', '--listen', '/ip4/127.0.0.1/tcp/0', '--metrics-listen', '127.0.0.1:0', ...args, '--state-dir', join(state.path, 'usage')], env)
      assert.equal(code, 2, `${JSON.stringify(args)}: ${output}`)
      assert.match(output, /^registry-service: --admin: an empty value names no peer id/m, JSON.stringify(args))
    }
  })

  it('refuses an empty --registry-id instead of trusting the registries of PHYSARUM_REGISTRY_IDS, or any, in its place', async () => {
    const trusted = { PHYSARUM_REGISTRY_IDS: clientNode.peerId.toString() }
    for (const [args, env] of [[['--registry-id', ''], trusted], [['--registry-id', ' '], {}], [['--registry-id', clientNode.peerId.toString(), '--registry-id', ''], {}]] as Array<[string[], Record<string, string>]>) {
      const { code, output } = await runToEnd(['--ephemeral', '--etcd-endpoints', 'http://127.0.0.1:1', '--listen', '/ip4/127.0.0.1/tcp/0', '--metrics-listen', '127.0.0.1:0', ...args, '--state-dir', join(state.path, 'usage')], env)
      assert.equal(code, 2, `${JSON.stringify(args)}: ${output}`)
      assert.match(output, /^registry-service: --registry-id: an empty value names no peer id: give one, or leave --registry-id out to take PHYSARUM_REGISTRY_IDS$/m, JSON.stringify(args))
    }
  })

  it('refuses to join through a --join-via peer that is not among the trusted registry-services', async () => {
    const other = `/ip4/127.0.0.1/tcp/1/p2p/${bootstrap.peerId.toString()}`
    const trusted = clientNode.peerId.toString()
    for (const [args, env] of [[['--registry-id', trusted], {}], [[], { PHYSARUM_REGISTRY_IDS: trusted }]] as Array<[string[], Record<string, string>]>) {
      const { code, output } = await runToEnd(['--ephemeral', '--join-etcd-cluster', '--etcd-ip', '127.0.0.1', '--join-via', other, '--listen', '/ip4/127.0.0.1/tcp/0', '--metrics-listen', '127.0.0.1:0', ...args, '--state-dir', join(state.path, 'usage')], env)
      assert.equal(code, 2, `${JSON.stringify(args)}: ${output}`)
      assert.match(output, new RegExp(`^registry-service: --join-via: ${other} is not one of the trusted registry-services \\(--registry-id, PHYSARUM_REGISTRY_IDS: ${trusted}\\)`, 'm'), JSON.stringify(args))
    }
  })

  it('starts a new etcd cluster, supervises etcd, and keeps the records across restarts', async () => {
    const dir = join(state.path, 'one')
    const args = [
      '--new-etcd-cluster', '--etcd-ip', '127.0.0.1', '--etcd-client-port', String(await freePort()), '--etcd-peer-port', String(await freePort()),
      '--state-dir', dir, '--listen', '/ip4/127.0.0.1/tcp/0', '--metrics-listen', '127.0.0.1:0',
      '-bootstrap', bootstrap.multiaddrs()[0]!.toString(), '--admin', clientNode.peerId.toString()
    ]
    let cli = new Cli(args, {})
    running.push(cli)
    let metricsUrl = (await cli.line(/metrics: (http:\S+)\/metrics/))[1]!
    const health = async (): Promise<{ ok: boolean, etcd: { process: { pid: number, restarts: number } } }> =>
      await (await fetch(`${metricsUrl}/healthz`)).json() as { ok: boolean, etcd: { process: { pid: number, restarts: number } } }
    assert.equal((await health()).ok, true)

    const client = createRegistryClient(clientNode, { cacheTtlMs: 0 })
    const added = await eventually('the registry through the DHT', async () => await client.add(sampleRecord('cli-server')), 15_000, 200)
    assert.match(await (await fetch(`${metricsUrl}/metrics`)).text(), /physarum_registry_records 1/)

    // etcd dies: the registry starts it again, on the same data
    const { pid, restarts } = (await health()).etcd.process
    assert.equal(restarts, 0)
    process.kill(pid, 'SIGKILL')
    await eventually('etcd restarted by its supervisor', async () => {
      const now = await health()
      return now.ok && now.etcd.process.pid !== pid ? now : undefined
    }, 15_000, 100)
    assert.equal((await health()).etcd.process.restarts, 1)
    assert.deepEqual(await client.get('cli-server'), added)

    // a requested stop stops etcd too
    const etcdPid = (await health()).etcd.process.pid
    assert.equal(await cli.stop(), 143)
    assert.equal(existsSync(`/proc/${etcdPid}`), false, 'etcd was stopped with the registry')

    // a new process on the same state folder: same identity, same etcd data
    cli = new Cli(args, {})
    running.push(cli)
    await cli.line(/registry-service etcd: /)
    metricsUrl = (await cli.line(/metrics: (http:\S+)\/metrics/))[1]!
    assert.deepEqual(await eventually('the restarted registry', async () => await client.get('cli-server', { fresh: true }), 15_000, 200), added)

    // killed outright (SIGKILL to the registry alone): its etcd lingers on the ports, and the next
    // start ends it through the pid file instead of mistaking it for its own
    const lingering = (await health()).etcd.process.pid
    cli.child.kill('SIGKILL')
    await cli.exited
    assert.equal(existsSync(`/proc/${lingering}`), true, 'etcd outlived its registry')
    cli = new Cli(args, {})
    running.push(cli)
    await cli.line(/registry-service etcd: /)
    metricsUrl = (await cli.line(/metrics: (http:\S+)\/metrics/))[1]!
    await eventually('the lingering etcd to be gone', () => existsSync(`/proc/${lingering}`) ? undefined : true, 5_000)
    assert.notEqual((await health()).etcd.process.pid, lingering)
    assert.deepEqual(await eventually('the registry after a kill', async () => await client.get('cli-server', { fresh: true }), 15_000, 200), added)
    assert.equal(await cli.stop(), 143)
  })

  it('names its etcd member again when the kept name is empty, as a first start on a full disk leaves it', async () => {
    const dir = join(state.path, 'unnamed')
    await mkdir(dir, { recursive: true })
    await writeFile(join(dir, 'etcd-name'), '')
    const cli = new Cli(['--new-etcd-cluster', '--etcd-ip', '127.0.0.1', '--etcd-client-port', String(await freePort()), '--etcd-peer-port', String(await freePort()),
      '--state-dir', dir, '--listen', '/ip4/127.0.0.1/tcp/0', '--metrics-listen', '127.0.0.1:0'], {})
    running.push(cli)
    const metricsUrl = (await cli.line(/metrics: (http:\S+)\/metrics/))[1]!
    const { pid } = ((await (await fetch(`${metricsUrl}/healthz`)).json()) as { etcd: { process: { pid: number } } }).etcd.process
    const args = (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0')
    const name = args[args.indexOf('--name') + 1]
    assert.match(name ?? '', /^etcd-[A-Za-z0-9]{12}$/)
    assert.equal((await readFile(join(dir, 'etcd-name'), 'utf8')).trim(), name, 'kept for the next start')
    // compacted by default: etcd would otherwise fill its space quota, and refuse every write
    assert.equal(args[args.indexOf('--auto-compaction-retention') + 1], '3600000ms')
    assert.equal(await cli.stop(), 143)
  })

  it('stops cleanly when stopped during its start: while it asks to join, and while its etcd waits for a quorum', async () => {
    // an overlay of its own, with no registry-service to ask
    const overlay = await startNode()
    try {
      const args = async (dir: string): Promise<string[]> => [
        '--join-etcd-cluster', '--etcd-ip', '127.0.0.1', '--etcd-client-port', String(await freePort()), '--etcd-peer-port', String(await freePort()),
        '--state-dir', dir, '--listen', '/ip4/127.0.0.1/tcp/0', '--metrics-listen', '127.0.0.1:0', '-bootstrap', overlay.multiaddrs()[0]!.toString()
      ]
      const asking = new Cli(await args(join(state.path, 'stopped-asking')), {})
      running.push(asking)
      await asking.line(/cannot join the etcd cluster yet/)
      const since = Date.now()
      assert.equal(await asking.stop(), 143, asking.lines.slice(-3).join('\n'))
      assert.ok(Date.now() - since < 5_000, 'not after the join gave up')
      assert.ok(asking.lines.some(line => line.includes('"msg":"stopped"')), 'the usual stop')
      assert.ok(!existsSync(join(state.path, 'stopped-asking', 'etcd')), 'no etcd data')

      // a member whose cluster lost its other member: its etcd runs, but is never healthy
      const dir = join(state.path, 'stopped-waiting')
      const waitingArgs = await args(dir)
      const dataDir = join(dir, 'etcd')
      const peerUrl = `http://127.0.0.1:${waitingArgs[waitingArgs.indexOf('--etcd-peer-port') + 1]!}`
      const clientUrl = `http://127.0.0.1:${waitingArgs[waitingArgs.indexOf('--etcd-client-port') + 1]!}`
      const made = spawn('etcd', ['--name', 'lonely', '--data-dir', dataDir, '--listen-client-urls', clientUrl, '--advertise-client-urls', clientUrl,
        '--listen-peer-urls', peerUrl, '--initial-advertise-peer-urls', peerUrl, '--initial-cluster', `lonely=${peerUrl},gone=http://127.0.0.1:${await freePort()}`], { stdio: 'ignore' })
      try {
        await eventually('its write-ahead log', async () => (await readdir(join(dataDir, 'member', 'wal'))).some(name => name.endsWith('.wal')) ? true : undefined, 10_000)
      } finally {
        made.kill('SIGKILL')
        await once(made, 'exit')
      }
      const waiting = new Cli([...waitingArgs, '--etcd-name', 'lonely'], FAST_ETCD_ENV)
      running.push(waiting)
      await waiting.line(/starting it without joining again/)
      const pid = await eventually('its etcd\'s pid file', async () => Number((await readFile(`${dataDir}.pid`, 'utf8')).trim()) || undefined, 10_000)
      assert.ok(existsSync(`/proc/${pid}`))
      assert.equal(await waiting.stop(), 143, waiting.lines.slice(-3).join('\n'))
      assert.ok(!existsSync(`/proc/${pid}`), 'its etcd stopped')
      assert.ok(!existsSync(`${dataDir}.pid`), 'its pid file removed')
    } finally {
      await overlay.stop()
    }
  })

  it('refuses to start its etcd on ports where something listens already, leaving that etcd as it was', async () => {
    const foreign = await TestEtcd.start()
    try {
      const common = ['--new-etcd-cluster', '--etcd-ip', '127.0.0.1', '--listen', '/ip4/127.0.0.1/tcp/0', '--metrics-listen', '127.0.0.1:0']
      const onClient = await runToEnd([...common, '--state-dir', join(state.path, 'taken-client'), '--etcd-client-port', String(foreign.clientPort), '--etcd-peer-port', String(await freePort())])
      assert.equal(onClient.code, 1, onClient.output)
      assert.match(onClient.output, new RegExp(`something already listens on http://127.0.0.1:${foreign.clientPort}.*give --etcd-client-port`))
      const onPeer = await runToEnd([...common, '--state-dir', join(state.path, 'taken-peer'), '--etcd-client-port', String(await freePort()), '--etcd-peer-port', String(foreign.peerPort)])
      assert.equal(onPeer.code, 1, onPeer.output)
      assert.match(onPeer.output, /give --etcd-peer-port/)
      // the foreign etcd still takes calls without a login
      const health = await (await fetch(`${foreign.endpoint}/v3/kv/range`, { method: 'POST', body: JSON.stringify({ key: Buffer.from('x').toString('base64') }) })).json() as { header?: unknown, error?: string }
      assert.ok(health.header != null, JSON.stringify(health))
    } finally {
      await foreign.remove()
    }
  })

  it('refuses a second start on the state folder of a registry-service that runs, leaving its etcd as it was', async () => {
    const args = [
      '--new-etcd-cluster', '--etcd-ip', '127.0.0.1', '--etcd-client-port', String(await freePort()), '--etcd-peer-port', String(await freePort()),
      '--state-dir', join(state.path, 'twice'), '--listen', '/ip4/127.0.0.1/tcp/0', '--metrics-listen', '127.0.0.1:0', '-bootstrap', bootstrap.multiaddrs()[0]!.toString()
    ]
    const first = new Cli(args, {})
    running.push(first)
    const metricsUrl = (await first.line(/metrics: (http:\S+)\/metrics/))[1]!
    const etcdPid = async (): Promise<number> => ((await (await fetch(`${metricsUrl}/healthz`)).json()) as { etcd: { process: { pid: number } } }).etcd.process.pid
    const pid = await etcdPid()
    const second = await runToEnd(args)
    assert.equal(second.code, 1, second.output)
    assert.match(second.output, new RegExp(`another registry-service \\(pid ${first.child.pid}\\) runs the etcd of .*: stop it first`))
    assert.equal(await etcdPid(), pid, 'the running one\'s etcd untouched')
    assert.equal(await first.stop(), 143)
  })

  it('serves an etcd run by someone else (--etcd-endpoints), admins from the environment in either peer id form, /healthz following etcd', async () => {
    const etcd = await TestEtcd.start()
    const stranger = await startNode({ bootstrap: [bootstrap.multiaddrs()[0]!.toString()], dhtMode: 'client' })
    try {
      const cli = new Cli([
        '--state-dir', join(state.path, 'external'), '--listen', '/ip4/127.0.0.1/tcp/0', '--metrics-listen', '127.0.0.1:0',
        '-bootstrap', bootstrap.multiaddrs()[0]!.toString()
      // a trailing slash as operators copy URLs; a peer id in its CID form (bafz...), as some tools print it
      ], { PHYSARUM_ETCD_ENDPOINTS: `${etcd.endpoint}/`, PHYSARUM_ADMINS: `${clientNode.peerId.toString()} ${stranger.peerId.toCID().toString()}` })
      running.push(cli)
      const addr = (await cli.line(/listening: (\S+)/))[1]!
      const metricsUrl = (await cli.line(/metrics: (http:\S+)\/metrics/))[1]!
      assert.equal((await fetch(`${metricsUrl}/healthz`)).status, 200)
      const added = await createRegistryClient(stranger, { peers: [addr] }).add(sampleRecord('external-server'))
      assert.deepEqual(await createRegistryClient(clientNode, { peers: [addr] }).get('external-server'), added)

      await etcd.stop()
      const down = await fetch(`${metricsUrl}/healthz`)
      assert.equal(down.status, 503)
      assert.match(JSON.stringify(await down.json()), /etcd is unreachable/)
      assert.match(await (await fetch(`${metricsUrl}/metrics`)).text(), /physarum_registry_etcd_up 0/)
      await etcd.start()
      await eventually('/healthz to recover', async () => (await fetch(`${metricsUrl}/healthz`)).status === 200 ? true : undefined, 10_000, 100)
      assert.equal(await cli.stop(), 143)
    } finally {
      await stranger.stop()
      await etcd.remove()
    }
  })

  it('answers a client\'s first request after a restart on another port, found again through the DHT', async () => {
    const etcd = await TestEtcd.start()
    try {
      const args = ['--etcd-endpoints', etcd.endpoint, '--state-dir', join(state.path, 'restarted'), '--listen', '/ip4/127.0.0.1/tcp/0', '--metrics-listen', '127.0.0.1:0', '-bootstrap', bootstrap.multiaddrs()[0]!.toString(), '--admin', clientNode.peerId.toString()]
      let cli = new Cli(args, {})
      running.push(cli)
      const before = (await cli.line(/listening: (\S+)/))[1]!
      const client = createRegistryClient(clientNode, { cacheTtlMs: 0 })
      const added = await eventually('the registry through the DHT', async () => await client.add(sampleRecord('restarted-server')), 15_000, 200)
      assert.equal(await cli.stop(), 143)

      // the same identity on a free port again, as the systemd unit has it
      cli = new Cli(args, {})
      running.push(cli)
      const now = (await cli.line(/listening: (\S+)/))[1]!
      assert.notEqual(now, before)
      assert.equal(now.split('/p2p/')[1], before.split('/p2p/')[1])
      // the registry's old address refuses the connection: the one found again is asked
      assert.deepEqual(await client.get('restarted-server'), added)
      assert.equal(await cli.stop(), 143)
    } finally {
      await etcd.remove()
    }
  })

  it('starts from its systemd unit\'s command line in the etcd kind the environment file says: external, or a new cluster of its own', async () => {
    const etcd = await TestEtcd.start()
    try {
      const host = {
        PHYSARUM_BOOTSTRAP: bootstrap.multiaddrs()[0]!.toString(),
        PHYSARUM_REGISTRY_SERVICE_ARGS: '--listen /ip4/127.0.0.1/tcp/0 --metrics-listen 127.0.0.1:0'
      }
      // an etcd run by someone else; the example's PHYSARUM_ETCD_IP, for an etcd of its own, is not read
      const external = await asUnit({ ...host, PHYSARUM_ETCD_CLUSTER: 'external', PHYSARUM_ETCD_ENDPOINTS: etcd.endpoint, STATE_DIRECTORY: join(state.path, 'unit-external') })
      assert.equal(external.env.PHYSARUM_ETCD_IP, '10.0.0.9')
      let cli = new Cli(external.args, external.env)
      running.push(cli)
      assert.equal((await cli.line(/^registry-service etcd: (\S+)$/))[1], etcd.endpoint)
      assert.equal(await cli.stop(), 143)

      // the unit's default, a new cluster, at PHYSARUM_ETCD_IP with the etcd on PATH
      const clientPort = await freePort()
      const managed = await asUnit({
        ...host,
        PHYSARUM_ETCD_IP: '127.0.0.1',
        PHYSARUM_REGISTRY_SERVICE_ARGS: `${host.PHYSARUM_REGISTRY_SERVICE_ARGS} --etcd-client-port ${clientPort} --etcd-peer-port ${await freePort()}`,
        STATE_DIRECTORY: join(state.path, 'unit-new')
      })
      assert.equal(managed.env.PHYSARUM_ETCD_CLUSTER, 'new')
      cli = new Cli(managed.args, managed.env)
      running.push(cli)
      assert.equal((await cli.line(/^registry-service etcd: (\S+)$/))[1], `http://127.0.0.1:${clientPort}`)
      assert.equal(await cli.stop(), 143)

      // endpoints in the file without PHYSARUM_ETCD_CLUSTER=external: the unit's default, new, is refused with them
      const both = await asUnit({ ...host, PHYSARUM_ETCD_ENDPOINTS: etcd.endpoint, STATE_DIRECTORY: join(state.path, 'unit-both') })
      const refused = await runToEnd(both.args, both.env)
      assert.equal(refused.code, 2, refused.output)
      assert.match(refused.output, /PHYSARUM_ETCD_ENDPOINTS is set, but PHYSARUM_ETCD_CLUSTER=new runs an etcd of this process's own/)
    } finally {
      await etcd.remove()
    }
  })

  it('logs in to an external etcd with --etcd-user and --etcd-password-file, and refuses to start with a wrong login', async () => {
    const etcd = await TestEtcd.start()
    try {
      // a user allowed the registry's keys only, as an operator would make it
      const open = etcd.client()
      try {
        await open.user('root').create('root-password')
        await open.user('root').addRole('root')
        await open.role('physarum').create()
        await open.role('physarum').grant({ permission: 'Readwrite', range: open.range({ prefix: KEY_PREFIX }) })
        await open.user('physarum').create('the-etcd-password')
        await open.user('physarum').addRole('physarum')
        await open.auth.authEnable({})
      } finally {
        open.close()
      }
      const passwordFile = join(state.path, 'etcd-password')
      const wrongFile = join(state.path, 'wrong-password')
      // readable by others: started, with a warning
      await writeFile(passwordFile, 'the-etcd-password\n', { mode: 0o644 })
      await writeFile(wrongFile, 'not-the-password\n', { mode: 0o600 })
      const common = ['--etcd-endpoints', etcd.endpoint, '--listen', '/ip4/127.0.0.1/tcp/0', '--metrics-listen', '127.0.0.1:0', '-bootstrap', bootstrap.multiaddrs()[0]!.toString()]
      const cli = new Cli([...common, '--state-dir', join(state.path, 'login'), '--etcd-user', 'physarum', '--etcd-password-file', passwordFile, '--admin', clientNode.peerId.toString()], {})
      running.push(cli)
      const addr = (await cli.line(/listening: (\S+)/))[1]!
      await cli.line(/chmod 600 .*etcd-password/)
      const client = createRegistryClient(clientNode, { peers: [addr], cacheTtlMs: 0 })
      const added = await client.add(sampleRecord('login-server'))
      assert.deepEqual(await client.get('login-server'), added)
      // a user allowed the registry's keys only may still list etcd's alarms: healthy
      const metricsUrl = (await cli.line(/metrics: (http:\S+)\/metrics/))[1]!
      assert.deepEqual(await (await fetch(`${metricsUrl}/healthz`)).json().then(report => (report as { ok: boolean }).ok), true)
      assert.equal(await cli.stop(), 143)
      assert.doesNotMatch(cli.lines.join('\n'), /the-etcd-password/, 'the password is never logged')

      // refused logins end the start with the reason, instead of a registry answering UNAVAILABLE
      for (const [login, reason] of [[['--etcd-user', 'physarum', '--etcd-password-file', wrongFile], /authentication failed/], [[], /user name is empty/]] as const) {
        const refused = await runToEnd([...common, '--state-dir', join(state.path, 'login'), ...login])
        assert.equal(refused.code, 1, refused.output)
        assert.match(refused.output, /does not let this registry-service in/)
        assert.match(refused.output, reason)
        assert.doesNotMatch(refused.output, /not-the-password/)
      }
    } finally {
      await etcd.remove()
    }
  })

  it('refuses to start with a login for an external etcd whose authentication is off, which fails every call', async () => {
    const etcd = await TestEtcd.start()
    try {
      const passwordFile = join(state.path, 'etcd-password')
      await writeFile(passwordFile, 'the-etcd-password\n', { mode: 0o600 })
      const refused = await runToEnd(['--etcd-endpoints', etcd.endpoint, '--listen', '/ip4/127.0.0.1/tcp/0', '--metrics-listen', '127.0.0.1:0', '-bootstrap', bootstrap.multiaddrs()[0]!.toString(),
        '--state-dir', join(state.path, 'auth-off'), '--etcd-user', 'physarum', '--etcd-password-file', passwordFile])
      assert.equal(refused.code, 1, refused.output)
      assert.match(refused.output, /does not let this registry-service in \(its authentication is off, and it takes no login: give no --etcd-user/)
      assert.match(refused.output, /authentication is not enabled/)
    } finally {
      await etcd.remove()
    }
  })

  it('reaches an external etcd over TLS with a client certificate (--etcd-ca, --etcd-cert, --etcd-key), and refuses to start without the CA', async () => {
    const certs = await tempDir('physarum-etcd-tls')
    const tls = await makeTestCertificates(certs.path)
    const etcd = await TestEtcd.start({ tls })
    try {
      const common = ['--etcd-endpoints', etcd.endpoint, '--listen', '/ip4/127.0.0.1/tcp/0', '--metrics-listen', '127.0.0.1:0', '-bootstrap', bootstrap.multiaddrs()[0]!.toString(), '--state-dir', join(state.path, 'tls')]
      const clientCert = ['--etcd-cert', tls.clientCert, '--etcd-key', tls.clientKey]
      const cli = new Cli([...common, '--etcd-ca', tls.ca, ...clientCert, '--admin', clientNode.peerId.toString()], {})
      running.push(cli)
      const addr = (await cli.line(/listening: (\S+)/))[1]!
      const metricsUrl = (await cli.line(/metrics: (http:\S+)\/metrics/))[1]!
      assert.equal((await fetch(`${metricsUrl}/healthz`)).status, 200)
      const client = createRegistryClient(clientNode, { peers: [addr], cacheTtlMs: 0 })
      const added = await client.add(sampleRecord('tls-server'))
      assert.deepEqual(await client.get('tls-server'), added)
      assert.equal(await cli.stop(), 143)

      // the system's CAs do not know the test CA
      const untrusted = await runToEnd([...common, ...clientCert])
      assert.equal(untrusted.code, 1, untrusted.output)
      assert.match(untrusted.output, /does not let this registry-service in .*unable to verify the first certificate/)
      // etcd asks for a client certificate
      const anonymous = await runToEnd([...common, '--etcd-ca', tls.ca])
      assert.equal(anonymous.code, 1, anonymous.output)
      assert.match(anonymous.output, /does not let this registry-service in .*bad certificate/)
      // gRPC says only that it failed to connect: the TLS the port answers with is named
      const plain = etcd.endpoint.replace(/^https:/, 'http:')
      const unencrypted = await runToEnd(common.map(arg => arg === etcd.endpoint ? plain : arg))
      assert.equal(unencrypted.code, 1, unencrypted.output)
      assert.ok(unencrypted.output.includes(`etcd at ${plain} answers with TLS: give its URLs as ${etcd.endpoint}`), unencrypted.output)
    } finally {
      await etcd.remove()
      await certs.remove()
    }
  })
})
