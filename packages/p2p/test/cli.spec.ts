import assert from 'node:assert/strict'
import { chmod, mkdir, mkdtemp, readdir, rm, stat, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, it } from 'node:test'
import yargs from 'yargs'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { checkPeerAddresses, loadOrCreateIdentity, PreSharedKey, parseHostPort, resolveNodeConfig, withNodeOptions } from '../src/index.ts'
import type { NodeArgs } from '../src/index.ts'

const DEFAULTS = { name: 'test-daemon', p2pPort: 4001, metricsPort: 9100 }

function parse (argv: string[]): NodeArgs {
  return withNodeOptions(yargs(argv), DEFAULTS).exitProcess(false).fail((message) => { throw new Error(message) }).parseSync()
}

describe('shared node options', () => {
  const dir = mkdtemp(join(tmpdir(), 'physarum-cli-'))
  after(async () => { await rm(await dir, { recursive: true, force: true }) })
  const base = async (): Promise<Record<string, string>> => ({ PHYSARUM_STATE_DIR: join(await dir, 'state') })
  const peer = '/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWGRUVh5JLWYmmzTZ3wE8p2Bch4JPWgGa2s2DCWVxo4pEx'

  it('takes the seed\'s single-dash spellings', () => {
    const args = parse(['-bootstrap', peer, '-bootstrap', peer.replace('4001', '4002'), '-psk', 'x', '-p2p-listen-addr', '/ip4/127.0.0.1/tcp/0', '-prom-listen-addr', ':9200'])
    assert.deepEqual(args.bootstrap, [peer, peer.replace('4001', '4002')])
    assert.equal(args.psk, 'x')
    assert.deepEqual(args.listen, ['/ip4/127.0.0.1/tcp/0'])
    assert.equal(args['metrics-listen'], ':9200')
    // a repeatable flag takes one value each time: the word after it is the command's own
    const port = parse(['-bootstrap', peer, '4200', '--listen', '/ip4/127.0.0.1/tcp/0', 'hello'])
    assert.deepEqual(port.bootstrap, [peer])
    assert.deepEqual(port.listen, ['/ip4/127.0.0.1/tcp/0'])
    assert.deepEqual((port as NodeArgs & { _: unknown[] })._, ['4200', 'hello'])
  })

  it('resolves flags over environment over defaults', async () => {
    const env = { ...await base(), P2P_BOOTSTRAPS: `${peer} ${peer.replace('4001', '4002')}`, P2P_PSK: 'physarum-test-network' }
    const fromEnv = await resolveNodeConfig(parse(['--ephemeral']), env, DEFAULTS)
    assert.deepEqual(fromEnv.bootstrap, [peer, peer.replace('4001', '4002')])
    assert.ok(fromEnv.psk?.equals(PreSharedKey.fromPassphrase('physarum-test-network')))
    // an emptied PHYSARUM_PSK (a placeholder cleared in the environment file) does not hide P2P_PSK
    assert.ok((await resolveNodeConfig(parse(['--ephemeral']), { ...env, PHYSARUM_PSK: '' }, DEFAULTS)).psk?.equals(PreSharedKey.fromPassphrase('physarum-test-network')))
    assert.deepEqual(fromEnv.listen, ['/ip4/0.0.0.0/tcp/4001'])
    assert.deepEqual(fromEnv.metricsListen, { host: '', port: 9100 })
    assert.deepEqual(fromEnv.warnings, [])

    const fromFlags = await resolveNodeConfig(parse(['--ephemeral', '--psk', 'other', '--bootstrap', peer]), { ...env, PHYSARUM_BOOTSTRAP: 'ignored' }, DEFAULTS)
    assert.deepEqual(fromFlags.bootstrap, [peer])
    assert.ok(fromFlags.psk?.equals(PreSharedKey.fromPassphrase('other')))
    assert.match(fromFlags.warnings.join(), /process list/)
  })

  it('reads the key from a swarm key or passphrase file, and creates the identity in the state folder', async () => {
    const key = PreSharedKey.generate()
    const swarm = join(await dir, 'swarm.key')
    await writeFile(swarm, key.toSwarmKey())
    const config = await resolveNodeConfig(parse(['--swarm-key', swarm]), await base(), DEFAULTS)
    assert.ok(config.psk?.equals(key))
    assert.equal(config.identityPath, join(await dir, 'state', 'identity.key'))
    assert.ok(config.privateKey != null)

    const passphrase = join(await dir, 'passphrase')
    await writeFile(passphrase, 'physarum-test-network\n')
    // a relative state folder is taken from the working folder, and kept absolute
    assert.equal((await resolveNodeConfig(parse(['--swarm-key', swarm, '--ephemeral', '--state-dir', 'state']), await base(), DEFAULTS)).stateDir, join(process.cwd(), 'state'))

    const fromFile = await resolveNodeConfig(parse(['--psk-file', passphrase, '--ephemeral']), await base(), DEFAULTS)
    assert.ok(fromFile.psk?.equals(PreSharedKey.fromPassphrase('physarum-test-network')))
    // an editor's byte-order mark is part of no key: the same key as without it, a swarm.key too
    const withMark = join(await dir, 'passphrase-with-mark')
    await writeFile(withMark, '\uFEFFphysarum-test-network\r\n')
    assert.ok((await resolveNodeConfig(parse(['--psk-file', withMark, '--ephemeral']), await base(), DEFAULTS)).psk?.equals(PreSharedKey.fromPassphrase('physarum-test-network')))
    const swarmWithMark = join(await dir, 'swarm-with-mark.key')
    await writeFile(swarmWithMark, `\uFEFF${key.toSwarmKey()}`)
    assert.ok((await resolveNodeConfig(parse(['--swarm-key', swarmWithMark, '--ephemeral']), await base(), DEFAULTS)).psk?.equals(key))
    // a swarm.key, or a second line, would be hashed into a key no other node has
    const twoLines = join(await dir, 'two-lines')
    await writeFile(twoLines, 'physarum-test-network\n\n')
    await assert.rejects(resolveNodeConfig(parse(['--psk-file', swarm, '--ephemeral']), await base(), DEFAULTS), { name: 'ConfigError', message: /--psk-file: .*swarm\.key is a swarm\.key: give it with --swarm-key/ })
    await assert.rejects(resolveNodeConfig(parse(['--psk-file', twoLines, '--ephemeral']), await base(), DEFAULTS), { name: 'ConfigError', message: /--psk-file: .*two-lines holds more than one line/ })
  })

  it('warns about a key file that users other than its owner may read or change, naming the file and the fix', async () => {
    const folder = join(await dir, 'modes')
    await mkdir(folder)
    const swarm = join(folder, 'swarm.key')
    await writeFile(swarm, PreSharedKey.generate().toSwarmKey())
    await chmod(swarm, 0o644)
    const passphrase = join(folder, 'passphrase')
    await writeFile(passphrase, 'physarum-test-network\n')
    await chmod(passphrase, 0o640)
    const identity = join(folder, 'identity.key')
    await loadOrCreateIdentity(identity)
    await chmod(identity, 0o604)
    const env = { PHYSARUM_STATE_DIR: join(folder, 'state') }
    const warnings = async (argv: string[]): Promise<string[]> => (await resolveNodeConfig(parse(argv), env, DEFAULTS)).warnings
    assert.deepEqual(await warnings(['--swarm-key', swarm, '--ephemeral']), [`--swarm-key: ${swarm} has mode 0644, so users other than its owner may read or change it: chmod 600 ${swarm}`])
    assert.deepEqual(await warnings(['--psk-file', passphrase, '--ephemeral']), [`--psk-file: ${passphrase} has mode 0640, so users other than its owner may read or change it: chmod 600 ${passphrase}`])
    assert.deepEqual(await warnings(['--no-psk', '--identity', identity]).then(w => w.slice(1)), [`--identity: ${identity} has mode 0604, so users other than its owner may read or change it: chmod 600 ${identity}`])
    // the default identity key too; a key the node creates is its owner's alone
    await chmod(swarm, 0o600)
    assert.deepEqual(await warnings(['--swarm-key', swarm]), [])
    await chmod(join(folder, 'state', 'identity.key'), 0o620)
    assert.match((await warnings(['--swarm-key', swarm])).join('\n'), /^the identity key: .*\/state\/identity\.key has mode 0620, .*: chmod 600 /)
  })

  it('creates one identity for starts that race, and leaves only the key file', async () => {
    const folder = join(await dir, 'race')
    const keys = await Promise.all(Array.from({ length: 8 }, async () => await loadOrCreateIdentity(join(folder, 'identity.key'))))
    assert.equal(new Set(keys.map(k => peerIdFromPrivateKey(k).toString())).size, 1)
    assert.deepEqual(await readdir(folder), ['identity.key'])
    assert.equal((await stat(join(folder, 'identity.key'))).mode & 0o777, 0o600)
  })

  it('refuses an identity key that is a symbolic link to nothing, leaving nothing behind', async () => {
    const folder = join(await dir, 'dangling')
    await mkdir(folder)
    await symlink(join(folder, 'not-mounted', 'identity.key'), join(folder, 'identity.key'))
    await assert.rejects(loadOrCreateIdentity(join(folder, 'identity.key')), { name: 'IdentityError', message: /identity\.key is a symbolic link to a file that does not exist/ })
    assert.deepEqual(await readdir(folder), ['identity.key'])
  })

  it('refuses bad input with an error naming the flag', async () => {
    const env = await base()
    const emptyPskFile = join(await dir, 'empty-passphrase')
    await writeFile(emptyPskFile, '\n', { mode: 0o600 })
    const cases: Array<[string[], Record<string, string>, RegExp]> = [
      [['--ephemeral'], env, /No pre-shared key/],
      [['--ephemeral', '--psk', ''], env, /empty/],
      [['--ephemeral', '--psk', 'a', '--no-psk'], env, /only one of --psk/],
      [['--ephemeral', '--no-psk', '--bootstrap', 'nonsense'], env, /--bootstrap: "nonsense"/],
      [['--ephemeral', '--no-psk', '--bootstrap', '/ip4/127.0.0.1/tcp/4001'], env, /no \/p2p\/<peer id>/],
      [['--ephemeral', '--no-psk'], { ...env, PHYSARUM_BOOTSTRAP: '/ip4/10.0.0.9/tcp/4001/p2p/12D3KooWReplaceMe' }, /^PHYSARUM_BOOTSTRAP: .*"12D3KooWReplaceMe" is not a peer id/],
      [['--ephemeral'], { ...env, PHYSARUM_PSK: '', P2P_PSK: '' }, /No pre-shared key/],
      [['--ephemeral', '--no-psk', '--listen', 'tcp://x'], env, /--listen/],
      [['--ephemeral', '--no-psk', '--listen', '/ip4/127.0.0.1/udp/4001/quic-v1'], env, /--listen: \/ip4\/127\.0\.0\.1\/udp\/4001\/quic-v1 is not an IP and TCP port/],
      [['--ephemeral', '--no-psk', '--listen', '/dns4/localhost/tcp/4001'], env, /--listen: \/dns4\/localhost\/tcp\/4001 is not an IP and TCP port/],
      [['--ephemeral', '--no-psk', '--metrics-listen', 'localhost:http'], env, /--metrics-listen/],
      [['--ephemeral', '--no-psk', '--identity', 'x'], env, /either --identity or --ephemeral/],
      [['--ephemeral', '--swarm-key', '/nonexistent/swarm.key'], env, /nonexistent/],
      [['--ephemeral', '--psk-file', emptyPskFile], env, new RegExp(`^--psk-file: ${emptyPskFile} is empty`)],
      // a device read to its end would fill the memory
      [['--ephemeral', '--psk-file', '/dev/zero'], env, /^--psk-file: cannot read \/dev\/zero: it holds more than 65536 bytes, so it is no key file/],
      [['--ephemeral', '--swarm-key', '/dev/zero'], env, /^Cannot read the swarm key file \/dev\/zero: it holds more than 65536 bytes/],
      [['--no-psk', '--identity', '/dev/zero'], env, /^Cannot read the identity key file \/dev\/zero: it holds more than 65536 bytes/],
      [['--ephemeral', '--no-psk'], { ...env, PHYSARUM_LOG_LEVEL: 'loud' }, /PHYSARUM_LOG_LEVEL/]
    ]
    for (const [argv, caseEnv, message] of cases) {
      await assert.rejects(resolveNodeConfig(parse(argv), caseEnv, DEFAULTS), { message }, argv.join(' '))
    }
    const peer = '12D3KooWGRUVh5JLWYmmzTZ3wE8p2Bch4JPWgGa2s2DCWVxo4pEx'
    checkPeerAddresses('--registry', [`/ip4/127.0.0.1/tcp/4001/p2p/${peer}`, `/dns4/registry.example/tcp/4001/p2p/${peer}`])
    checkPeerAddresses('--registry', [peer, `/ip6/::1/tcp/4001/p2p/${peer}`], { peerIdAlone: true })
    assert.throws(() => { checkPeerAddresses('--registry', [peer]) }, { name: 'ConfigError', message: `--registry: "${peer}" is not a multiaddr` })
    assert.throws(() => { checkPeerAddresses('--registry', ['12D3KooWnope'], { peerIdAlone: true }) }, { message: /--registry: "12D3KooWnope" is neither a multiaddr with \/p2p\/<peer id> nor a peer id/ })
    assert.throws(() => { checkPeerAddresses('--registry', ['/ip4/127.0.0.1/tcp/4001'], { peerIdAlone: true, hint: 'see its log' }) }, { message: '--registry: /ip4/127.0.0.1/tcp/4001 has no /p2p/<peer id>: see its log' })
    assert.throws(() => { checkPeerAddresses('--allocator', ['/ip4/127.0.0.1/tcp/4001/p2p/nonsense']) }, { message: /--allocator: \/ip4\/127.0.0.1\/tcp\/4001\/p2p\/nonsense: "nonsense" is not a peer id/ })

    const open = await resolveNodeConfig(parse(['--ephemeral', '--no-psk']), env, DEFAULTS)
    assert.equal(open.psk, null)
    assert.match(open.warnings.join(), /without a pre-shared key/)
  })

  it('parses listen addresses in every accepted form', () => {
    assert.deepEqual(parseHostPort('--x', '127.0.0.1:9100'), { host: '127.0.0.1', port: 9100 })
    assert.deepEqual(parseHostPort('--x', '[::1]:9100'), { host: '::1', port: 9100 })
    assert.deepEqual(parseHostPort('--x', ':9100'), { host: '', port: 9100 })
    assert.deepEqual(parseHostPort('--x', '9100'), { host: '', port: 9100 })
    assert.throws(() => parseHostPort('--x', '127.0.0.1:70000'), { name: 'ConfigError', message: /--x/ })
  })
})
