import assert from 'node:assert/strict'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { etcdSnapshot, startNode, startRegistry, stopAll, tempDir, TestEtcd } from '../../registry-service/test/helpers.ts'
import { FakeEngine } from './fake-engine.ts'
import { DEMOS, runCli, TEST_PASSPHRASE } from './helpers.ts'
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
      ['--cpu 0.001', await add('127.0.0.1:5000/hello:1.0', ['--cpu', '0.001']), /^hl-cli: --cpu: 0\.001 is not 0 \(no limit\) or a number from 0\.01 to 1024\n$/],
      ['--memory-mb 4', await add('127.0.0.1:5000/hello:1.0', ['--memory-mb', '4']), /^hl-cli: --memory-mb: 4 is not 0 \(no limit\) or a whole number from 6 to 1048576\n$/],
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
})
