import assert from 'node:assert/strict'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { etcdSnapshot, startNode, startRegistry, stopAll, tempDir, TestEtcd } from '../../registry-service/test/helpers.ts'
import { handleRpc, RpcFailureError } from '@physarum/p2p'
import { registryRpc } from '@physarum/registry-service'
import { refusingSocket } from '../../p2p/test/helpers.ts'
import { FAKE_DIGEST, FakeEngine } from './fake-engine.ts'
import { BIN, DEMOS, runCli, TEST_PASSPHRASE } from './helpers.ts'
import type { AddSummary } from '../src/index.ts'
import type { CliResult } from './helpers.ts'
import type { PhysarumNode } from '@physarum/p2p'
import type { InProcessRegistry } from '../../registry-service/test/helpers.ts'

const HELLO_CONF = join(DEMOS, 'helloworld', 'image-conf.json')
const HELLO_DIR = join(DEMOS, 'helloworld')

/**
 * `hl-cli add` as a separate process against real etcd, a real registry-service and a fake Docker
 * engine (fake-engine.ts) that records what it is asked: what can fail the command is found out
 * before anything is built or pushed.
 */
describe('hl-cli add checks what it can before it builds', { timeout: 120_000 }, () => {
  let state: Awaited<ReturnType<typeof tempDir>>
  let etcd: TestEtcd | undefined
  let bootstrap: PhysarumNode | undefined
  let registry: InProcessRegistry | undefined
  let engine: FakeEngine | undefined
  let env: Record<string, string>
  let overlayArgs: string[]

  const keysInEtcd = async (): Promise<string[]> => Object.keys((await etcdSnapshot(etcd!.endpoint)).keys).sort()

  before(async () => {
    state = await tempDir('hlc-checks')
    etcd = await TestEtcd.start()
    bootstrap = await startNode()
    engine = await FakeEngine.start()
    // no Docker config file of this host's user: no credentials
    env = { PHYSARUM_PSK: TEST_PASSPHRASE, DOCKER_HOST: engine.host, DOCKER_CONFIG: join(state.path, 'no-docker-config'), PHYSARUM_STATE_DIR: join(state.path, 'hl-cli') }
    const id = await runCli(['id'], env)
    assert.equal(id.code, 0, id.stderr)
    registry = await startRegistry(bootstrap, [etcd.endpoint], { admins: [id.stdout.trim()] })
    overlayArgs = ['-bootstrap', bootstrap.multiaddrs()[0]!.toString(), '--listen', '/ip4/127.0.0.1/tcp/0', '--registry', registry.node.multiaddrs()[0]!.toString()]
  })

  after(async () => {
    await registry?.stop().catch(() => {})
    await stopAll([bootstrap]).catch(() => {})
    await engine?.stop().catch(() => {})
    await etcd?.remove().catch(() => {})
    await state?.remove()
  })

  it('refuses --cpu and --memory-mb below the engines\' minimums, and a record the registry would refuse, before joining the overlay or building', async () => {
    const add = async (imageName: string, flags: string[]): Promise<CliResult> => await runCli(['add', HELLO_CONF, HELLO_DIR, imageName, 'hello-world-server', ...flags, ...overlayArgs], env)
    const cases: Array<[string, CliResult, RegExp]> = [
      ['--cpu 0.001', await add('127.0.0.1:5000/hello:1.0', ['--cpu', '0.001']), /^hl-cli: --cpu: "0\.001" is not 0 \(no limit\) or a number from 0\.01 to 1024\n$/],
      ['--memory-mb 4', await add('127.0.0.1:5000/hello:1.0', ['--memory-mb', '4']), /^hl-cli: --memory-mb: "4" is not 0 \(no limit\) or a whole number from 6 to 1048576\n$/],
      ['an image name too long for a record', await add(`127.0.0.1:5000/${'a'.repeat(480)}:1.0`, []), /^hl-cli: <image-name>: the record's image: is 567 characters long, more than 512\n$/]
    ]
    for (const [what, result, message] of cases) {
      assert.equal(result.code, 2, `${what}: ${result.stderr}`)
      assert.match(result.stderr, message, what)
    }
    assert.deepEqual(engine!.asked(), [], 'the Docker engine was not asked anything')
    assert.deepEqual(await keysInEtcd(), [])
    // and --help says the minimums
    const help = await runCli(['add', '--help'])
    assert.match(help.stdout, /--cpu .*: 0 \(no limit\) or 0\.01 to 1024/)
    assert.match(help.stdout, /--memory-mb .*: 0 \(no limit\) or 6 to 1048576/)
  })

  it('asks the registry whether it may write before it builds: an identity it does not know fails at once, an admin builds, pushes and registers', async () => {
    const args = ['add', HELLO_CONF, HELLO_DIR, '127.0.0.1:5000/hello:1.0', 'hello-world-server', ...overlayArgs]
    engine!.requests.length = 0
    const intruder = await runCli([...args, '--ephemeral'], env)
    assert.equal(intruder.code, 1, intruder.stderr)
    assert.match(intruder.stderr, /The registry refused the write: 12D3\w+ may not write: writes are allowed only from the registry's --admin peers\. This hl-cli's peer id is 12D3\w+: start registry-service with --admin <that id>/)
    assert.doesNotMatch(intruder.stderr, /Building /)
    assert.deepEqual(engine!.asked(), ['GET /_ping'], 'nothing was built or pushed')
    assert.deepEqual(await keysInEtcd(), [])

    engine!.requests.length = 0
    const admin = await runCli([...args, '--json'], env)
    assert.equal(admin.code, 0, admin.stderr)
    assert.deepEqual(engine!.asked(), ['GET /_ping', 'POST /build', 'POST /images/127.0.0.1:5000/hello/push'])
    assert.equal((JSON.parse(admin.stdout) as AddSummary).image, `127.0.0.1:5000/hello@${FAKE_DIGEST}`)
    assert.deepEqual(await keysInEtcd(), ['/physarum/v1/services/hello-world-server'])
  })

  it('tells that the Docker engine cannot be reached before it joins the overlay', async () => {
    const result = await runCli(['add', HELLO_CONF, HELLO_DIR, '127.0.0.1:5000/hello:1.0', 'hello-world-server', ...overlayArgs], { ...env, DOCKER_HOST: `unix://${join(state.path, 'no-docker.sock')}` })
    assert.equal(result.code, 1, result.stderr)
    assert.match(result.stderr, /^hl-cli: The Docker engine cannot be reached \(connect ENOENT .*no-docker\.sock\); is dockerd running, and DOCKER_HOST right\?\n$/)
  })

  it('goes on as before with a registry from before MayWrite: the write itself tells', async () => {
    const older = await startNode({ bootstrap: [bootstrap!.multiaddrs()[0]!.toString()] })
    const asked: string[] = []
    let release!: () => void
    const held = new Promise<void>(resolve => { release = resolve })
    await handleRpc(older.libp2p, registryRpc, async (request) => {
      if (request.add?.record != null) {
        asked.push(`add ${request.add.record.name}`)
        if (request.add.record.name === 'hello-silent') {
          await held
        }
        return { record: { ...request.add.record, createdAt: '2026-11-25T00:00:00.000Z', updatedAt: '2026-11-25T00:00:00.000Z', revision: 5n } }
      }
      asked.push(Object.keys(request).join(','))
      // what a registry from before it answers a request with its field
      throw new RpcFailureError('BAD_REQUEST', 'Malformed request: unknown field 7 in Request')
    }, { log: older.libp2p.logger.forComponent('test:older-registry') })
    try {
      const args = (name: string): string[] => ['add', HELLO_CONF, HELLO_DIR, '127.0.0.1:5000/hello:1.0', name, '-bootstrap', bootstrap!.multiaddrs()[0]!.toString(), '--listen', '/ip4/127.0.0.1/tcp/0', '--registry', older.multiaddrs()[0]!.toString()]
      engine!.requests.length = 0
      const added = await runCli(args('hello-world-server'), env)
      assert.equal(added.code, 0, added.stderr)
      assert.deepEqual(asked.splice(0), ['mayWrite', 'add hello-world-server'])
      assert.deepEqual(engine!.asked(), ['GET /_ping', 'POST /build', 'POST /images/127.0.0.1:5000/hello/push'])

      // a registry that takes the write and never answers: the record may be there or not
      const silent = await runCli([...args('hello-silent'), '--timeout', '2s'], env)
      assert.equal(silent.code, 1, silent.stderr)
      assert.match(silent.stderr, new RegExp(`127\\.0\\.0\\.1:5000/hello@${FAKE_DIGEST} is pushed, but registering hello-silent ended with no answer within --timeout \\(2s\\): the record may have been written or not\\. See with hl-cli get hello-silent`))
      assert.deepEqual(asked, ['mayWrite', 'add hello-silent'])
    } finally {
      release()
      await older.stop()
    }
  })
})

describe('hl-cli and what a registry answers', { timeout: 60_000 }, () => {
  it('prints a registry\'s records and refusals without their control characters: they would drive the terminal', async () => {
    const state = await tempDir('hlc-rogue')
    const bootstrap = await startNode()
    // a member of the overlay that answers as a registry: any, unless --registry-id names them
    const rogue = await startNode({ bootstrap: [bootstrap.multiaddrs()[0]!.toString()] })
    const record = {
      name: 'evil\u001b[2J', contentHash: 'c\u009b31m', image: `127.0.0.1:5000/x@sha256:${'0'.repeat(64)}`, softRttMs: 1, hardRttMs: 2, cpu: 0, memoryMb: 0,
      proxyClientMode: false, createdAt: '\u001b]0;owned\u0007', updatedAt: 'now\r', revision: 1n
    }
    await handleRpc(rogue.libp2p, registryRpc, async (request) => {
      if (request.list != null) {
        return await Promise.resolve({ list: { records: [record], nextPageToken: '' } })
      }
      if (request.get != null) {
        // a record of the name asked, whose timestamps hold what names may not; any other name:
        // the evil one, which the client refuses as an answer
        return await Promise.resolve({ record: request.get.name === 'x' ? { ...record, name: 'x', contentHash: 'cx' } : record })
      }
      throw new RpcFailureError('INTERNAL', 'no \u001b[31mway\u001b[0m')
    }, { log: rogue.libp2p.logger.forComponent('test:rogue-registry') })
    try {
      const overlay = ['-bootstrap', bootstrap.multiaddrs()[0]!.toString(), '--listen', '/ip4/127.0.0.1/tcp/0', '--registry', rogue.multiaddrs()[0]!.toString()]
      const env = { PHYSARUM_PSK: TEST_PASSPHRASE, PHYSARUM_STATE_DIR: state.path }
      const list = await runCli(['list', ...overlay], env)
      const get = await runCli(['get', 'x', ...overlay], env)
      const json = await runCli(['get', 'x', '--json', ...overlay], env)
      const broken = await runCli(['get', 'y', ...overlay], env)
      const refused = await runCli(['delete', 'x', ...overlay], env)
      for (const [what, result, code] of [['list', list, 0], ['get', get, 0], ['get --json', json, 0], ['get of another name', broken, 1], ['delete', refused, 1]] as const) {
        assert.equal(result.code, code, `${what}: ${result.stderr}`)
        // eslint-disable-next-line no-control-regex
        assert.doesNotMatch(result.stdout + result.stderr, /[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/, `${what}: a control character reached the terminal`)
      }
      assert.match(list.stdout, /\nevil\\x1b\[2J {2}127\.0\.0\.1:5000\/x@.* c\\x9b31m +now\\x0d\n$/)
      assert.match(get.stdout, /^created: +\\x1b\]0;owned\\x07$/m)
      assert.match(get.stdout, /^updated: +now\\x0d$/m)
      // --json: the strings as they were answered, escaped as JSON
      assert.deepEqual((JSON.parse(json.stdout) as { createdAt: string }).createdAt, '\u001b]0;owned\u0007')
      assert.match(broken.stderr, /answered the record of "evil\\u001b\[2J" for "y"/)
      assert.match(refused.stderr, /no \\x1b\[31mway\\x1b\[0m \(INTERNAL\)/)
    } finally {
      await rogue.stop()
      await bootstrap.stop()
      await state.remove()
    }
  })
})

/** `hl-cli add --no-add` (no overlay) against the fake engine. */
describe('hl-cli add --no-add, its credential helper and its terminal', { timeout: 60_000 }, () => {
  let state: Awaited<ReturnType<typeof tempDir>>
  let engine: FakeEngine | undefined
  const args = ['add', HELLO_CONF, HELLO_DIR, '127.0.0.1:5000/hello:1.0', 'hello-world-server', '--no-add']

  before(async () => {
    state = await tempDir('hlc-no-add')
    engine = await FakeEngine.start()
  })
  after(async () => {
    await engine?.stop()
    await state?.remove()
  })

  it('runs the Docker credential helper without physarum\'s settings: it never sees the overlay\'s key', async () => {
    const bin = join(state.path, 'bin')
    const seen = join(state.path, 'helper-env')
    await mkdir(bin)
    await writeFile(join(bin, 'docker-credential-physarumtest'), `#!/bin/sh\nenv > '${seen}'\ncat >/dev/null\necho '{"Username":"alice","Secret":"s3cret"}'\n`, { mode: 0o755 })
    const dockerConfig = join(state.path, 'docker-config')
    await mkdir(dockerConfig)
    await writeFile(join(dockerConfig, 'config.json'), JSON.stringify({ credsStore: 'physarumtest' }))
    const result = await runCli(args, {
      PHYSARUM_PSK: TEST_PASSPHRASE,
      P2P_PSK: TEST_PASSPHRASE,
      PHYSARUM_STATE_DIR: state.path,
      DOCKER_HOST: engine!.host,
      DOCKER_CONFIG: dockerConfig,
      PATH: `${bin}:${process.env.PATH ?? ''}`
    })
    assert.equal(result.code, 0, result.stderr)
    const env = await readFile(seen, 'utf8')
    assert.doesNotMatch(env, /PHYSARUM_|P2P_PSK|physarum-test-network/, 'the helper got the overlay\'s key')
    assert.match(env, new RegExp(`^DOCKER_CONFIG=${dockerConfig}$`, 'm'), 'the rest of the environment')
    assert.deepEqual(engine!.requests.find(r => r.path.endsWith('/push'))?.auth, { username: 'alice', password: 's3cret', serveraddress: '127.0.0.1:5000' })
  })

  it('refuses --cpu, --memory-mb and --content-id: without a record they would be dropped without a word', async () => {
    const env = { DOCKER_HOST: engine!.host, DOCKER_CONFIG: join(state.path, 'no-docker-config'), PHYSARUM_STATE_DIR: state.path }
    const asked = engine!.requests.length
    for (const flag of [['--cpu', '2'], ['--memory-mb', '0'], ['--content-id', 'v1']]) {
      const result = await runCli([...args, ...flag], env)
      assert.equal(result.code, 2, `${flag.join(' ')}: ${result.stderr}`)
      assert.equal(result.stderr, `hl-cli: ${flag[0]}: only the registry's record has it, and --no-add writes none; leave one of them out\n`)
    }
    assert.deepEqual(engine!.asked().slice(asked), [], 'nothing was built or pushed')
  })

  it('refuses the overlay options: --no-add joins no overlay, and would drop them without a word', async () => {
    const env = { DOCKER_HOST: engine!.host, DOCKER_CONFIG: join(state.path, 'no-docker-config'), PHYSARUM_STATE_DIR: state.path }
    const asked = engine!.requests.length
    const bootstrap = '/ip4/127.0.0.1/tcp/1/p2p/12D3KooWKM1kHJP2NBDmDvt7ppcA2m7MvffuXuz2kYqVVM53P5SW'
    for (const [flag, ...value] of [['-bootstrap', bootstrap], ['--registry', bootstrap], ['--timeout', '3s'], ['--state-dir', state.path], ['--ephemeral'], ['--registry-id', '12D3KooWKM1kHJP2NBDmDvt7ppcA2m7MvffuXuz2kYqVVM53P5SW']]) {
      const result = await runCli([...args, flag!, ...value], env)
      assert.equal(result.code, 2, `${flag!}: ${result.stderr}`)
      assert.equal(result.stderr, `hl-cli: --${flag!.replace(/^-+/, '')}: only joining the overlay uses it, and --no-add joins none; leave one of them out\n`)
    }
    assert.deepEqual(engine!.asked().slice(asked), [], 'nothing was built or pushed')
    // the environment's overlay settings are no flags given with it
    const result = await runCli([...args, '--quiet'], { ...env, PHYSARUM_PSK: TEST_PASSPHRASE, PHYSARUM_BOOTSTRAP: bootstrap })
    assert.equal(result.code, 0, result.stderr)
  })

  it('pushes an existing image without the service folder (--use-existing-image): nothing in it is used', async () => {
    // a host with the image-conf.json (for the record) but not the files it names, or their folder
    const conf = join(state.path, 'image-conf.json')
    await writeFile(conf, await readFile(HELLO_CONF, 'utf8'))
    const asked = engine!.requests.length
    const result = await runCli(['add', conf, join(state.path, 'no-such-folder'), '127.0.0.1:5000/hello:1.0', 'hello-world-server', '--no-add', '--use-existing-image', '--json'],
      { DOCKER_HOST: engine!.host, DOCKER_CONFIG: join(state.path, 'no-docker-config'), PHYSARUM_STATE_DIR: state.path })
    assert.equal(result.code, 0, result.stderr)
    assert.equal((JSON.parse(result.stdout) as AddSummary).digest, FAKE_DIGEST)
    assert.deepEqual(engine!.asked().slice(asked), ['GET /_ping', 'GET /images/127.0.0.1:5000/hello:1.0/json', 'POST /images/127.0.0.1:5000/hello/push'])
  })

  it('exits 130, as a shell expects of Ctrl-C, when the password prompt is interrupted', async () => {
    // under script(1), stdin is a terminal: the prompt reads keys, Ctrl-C among them
    const asked = engine!.requests.length
    const result = await runCli(['-qec', [process.execPath, BIN, ...args, '--registry-user', 'alice', '--registry-password-stdin'].map(arg => `'${arg}'`).join(' '), '/dev/null'],
      { DOCKER_HOST: engine!.host, DOCKER_CONFIG: join(state.path, 'no-docker-config'), PHYSARUM_STATE_DIR: state.path }, { program: 'script', answer: { after: 'Password for 127.0.0.1:5000: ', keys: '\u0003' } })
    assert.equal(result.code, 130, result.stdout)
    assert.deepEqual(engine!.asked().slice(asked), [], 'nothing was built or pushed')
  })

  it('ends the transfers\' status line before the error when a build or a push breaks mid-stream', async () => {
    // under script(1), stdout and stderr are a terminal: the transfers share one redrawn line
    const add = async (): Promise<string[]> => {
      const result = await runCli(['-qec', [process.execPath, BIN, ...args].map(arg => `'${arg}'`).join(' '), '/dev/null'],
        { DOCKER_HOST: engine!.host, DOCKER_CONFIG: join(state.path, 'no-docker-config'), PHYSARUM_STATE_DIR: state.path }, { program: 'script' })
      assert.equal(result.code, 1, result.stdout)
      return result.stdout.split('\r\n')
    }
    engine!.breaks = 'build'
    const build = await add()
    assert.ok(build.some(line => line.startsWith('hl-cli: The build stopped: ')), `the error on a line of its own: ${JSON.stringify(build)}`)
    assert.ok(build.some(line => line.endsWith('0/1 layers done, 512 B of 4.0 KiB')), 'the status line was drawn')
    engine!.breaks = 'push'
    const push = await add()
    assert.ok(push.some(line => line.startsWith('hl-cli: The push of 127.0.0.1:5000/hello:1.0 stopped: ')), `the error on a line of its own: ${JSON.stringify(push)}`)
  })
})

describe('hl-cli add and the Docker engine\'s socket', () => {
  it('says that this user needs access to the socket when it may not use it', async () => {
    const dir = await tempDir('hlc-socket-access')
    const socket = join(dir.path, 'docker.sock')
    const engine = await refusingSocket(socket)
    try {
      const args = ['add', HELLO_CONF, HELLO_DIR, '127.0.0.1:5000/hello:1.0', 'hello-world-server', '--no-add', '--quiet']
      const env = { DOCKER_HOST: `unix://${socket}`, DOCKER_CONFIG: join(dir.path, 'no-docker-config') }
      const [program, ...prefix] = engine.prefix
      const result = await runCli(program == null ? args : [...prefix, process.execPath, BIN, ...args], env, program == null ? {} : { program })
      assert.equal(result.code, 1, result.stderr)
      assert.match(result.stderr, /^hl-cli: This user may not use the Docker engine's socket \(connect EACCES .*docker\.sock\): run hl-cli as root or as a member of the socket's group/)
    } finally {
      engine.close()
      await dir.remove()
    }
  })
})
