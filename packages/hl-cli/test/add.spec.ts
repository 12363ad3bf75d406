import assert from 'node:assert/strict'
import { once } from 'node:events'
import { mkdir, writeFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { etcdSnapshot, startNode, startRegistry, stopAll, tempDir, TestEtcd } from '../../registry-service/test/helpers.ts'
import { ensureNodeImage, NODE_IMAGE, startDocker, startImageRegistry } from '../../allocator/test/helpers.ts'
import { PreSharedKey } from '@physarum/p2p'
import { DEMOS, eventually, freePort, runCli, TEST_PASSPHRASE } from './helpers.ts'
import { buildImage, createBuildContext } from '../src/build.ts'
import type { AddSummary, StatusReport } from '../src/index.ts'
import type { CliResult } from './helpers.ts'
import type { AddressInfo } from 'node:net'
import type { TestDocker, TestImageRegistry } from '../../allocator/test/helpers.ts'
import type { PhysarumNode } from '@physarum/p2p'
import type { InProcessRegistry } from '../../registry-service/test/helpers.ts'
import type { ServiceRecord } from '@physarum/registry-service'

const HELLO_CONF = join(DEMOS, 'helloworld', 'image-conf.json')
const HELLO_DIR = join(DEMOS, 'helloworld')
const CALC_CONF = join(DEMOS, 'calculator', 'image-conf.json')
const CALC_DIR = join(DEMOS, 'calculator')

function ok (result: CliResult, what: string): CliResult {
  assert.equal(result.code, 0, `${what}: exit ${result.code}\n${result.stderr}`)
  return result
}

/**
 * The seed's step 6 with the real pieces: a private dockerd, Debian's docker-registry on loopback,
 * etcd and a registry-service; hl-cli runs as a separate process, the PSK only in PHYSARUM_PSK.
 * (The allocator and proxy half of the first test waits for those packages.)
 */
describe('hl-cli add, get, list, delete and status against real Docker, docker-registry, etcd and registry-service', { timeout: 240_000 }, () => {
  let state: Awaited<ReturnType<typeof tempDir>>
  let engine: TestDocker | undefined
  let imageRegistry: TestImageRegistry | undefined
  let etcd: TestEtcd | undefined
  let bootstrap: PhysarumNode | undefined
  let lonelyBootstrap: PhysarumNode | undefined
  let registry: InProcessRegistry | undefined
  let env: Record<string, string>
  let overlayArgs: string[]
  let cliPeerId: string

  const keysInEtcd = async (): Promise<string[]> => Object.keys((await etcdSnapshot(etcd!.endpoint)).keys).sort()

  before(async () => {
    state = await tempDir('hlc-e2e')
    const [docker, images, store] = await Promise.allSettled([
      (async () => {
        const started = await startDocker()
        engine = started
        await ensureNodeImage(started)
        // the demos' base image cannot be pulled here: the local Node image stands in for it
        await started.docker.getImage(NODE_IMAGE).tag({ repo: 'node', tag: '24-slim' })
        return started
      })(),
      startImageRegistry(),
      TestEtcd.start()
    ])
    if (images.status === 'fulfilled') {
      imageRegistry = images.value
    }
    if (store.status === 'fulfilled') {
      etcd = store.value
    }
    for (const result of [docker, images, store]) {
      if (result.status === 'rejected') {
        throw result.reason
      }
    }
    bootstrap = await startNode()
    lonelyBootstrap = await startNode()
    env = { PHYSARUM_PSK: TEST_PASSPHRASE, DOCKER_HOST: engine!.host, PHYSARUM_STATE_DIR: join(state.path, 'hl-cli') }
    cliPeerId = ok(await runCli(['id'], env), 'id').stdout.trim()
    registry = await startRegistry(bootstrap, [etcd!.endpoint], { admins: [cliPeerId] })
    overlayArgs = ['-bootstrap', bootstrap.multiaddrs()[0]!.toString(), '--listen', '/ip4/127.0.0.1/tcp/0']
    // the registry's provider record must be findable before a CLI looks for it
    await eventually('the registry-service in the DHT', async () => {
      const result = await runCli(['list', '--json', '--timeout', '5s', ...overlayArgs], env)
      return result.code === 0 ? true : undefined
    }, 30_000, 200)
  })

  after(async () => {
    await registry?.stop().catch(() => {})
    await stopAll([bootstrap, lonelyBootstrap]).catch(() => {})
    await etcd?.remove().catch(() => {})
    await imageRegistry?.stop().catch(() => {})
    await engine?.stop().catch(() => {})
    await state?.remove()
  })

  it('builds, pushes (to a registry with a port in its name) and registers demos/helloworld; the image serves "Hello, world" pulled by digest', async () => {
    const imageName = `${imageRegistry!.host}/hello:1.0`
    const added = ok(await runCli(['add', HELLO_CONF, HELLO_DIR, imageName, 'hello-world-server', '--json', ...overlayArgs], env), 'add')
    const summary = JSON.parse(added.stdout) as AddSummary
    // progress went to stderr, as plain lines: the context sent, build steps, layer states and bytes
    assert.match(added.stderr, /Sent the build context: \d+(\.\d)? (B|KiB)\n[\s\S]*Step 1\/\d+ : FROM node:24-slim/)
    assert.match(added.stderr, /: Pushed/)
    assert.match(added.stderr, /layers done, .* of /)
    assert.ok(!added.stderr.includes('\r') && !added.stderr.includes('\u001b['), 'no terminal control characters when stderr is not a TTY')

    const digest = await imageRegistry!.digest('hello', '1.0')
    assert.match(digest ?? '', /^sha256:[0-9a-f]{64}$/, 'the image is in the image registry')
    assert.equal(summary.digest, digest)
    assert.equal(summary.image, `${imageRegistry!.host}/hello@${digest}`)
    assert.equal(summary.contentHash, digest!.slice('sha256:'.length))
    assert.equal(summary.registered, true)
    assert.equal(summary.registryPeer, registry!.node.peerId.toString())

    const record = JSON.parse(ok(await runCli(['get', 'hello-world-server', '--json', ...overlayArgs], env), 'get --json').stdout) as ServiceRecord
    assert.deepEqual({ ...record, createdAt: '', updatedAt: '', revision: '' }, {
      name: 'hello-world-server',
      contentHash: summary.contentHash,
      image: summary.image,
      softRttMs: 100,
      hardRttMs: 1000,
      cpu: 0,
      memoryMb: 0,
      proxyClientMode: true,
      createdAt: '',
      updatedAt: '',
      revision: ''
    })
    const shown = ok(await runCli(['get', 'hello-world-server', ...overlayArgs], env), 'get').stdout
    assert.match(shown, new RegExp(`image:\\s+${summary.image.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`))
    assert.deepEqual(await keysInEtcd(), ['/physarum/v1/services/hello-world-server'])

    // what an allocator on an engine without the image does: pull by digest, run with SERVICE_PORT
    const docker = engine!.docker
    await docker.getImage(imageName).remove({ force: true })
    await assert.rejects(docker.getImage(summary.image).inspect(), 'the engine lacks the image now')
    const pulling = await docker.pull(summary.image)
    await new Promise<void>((resolve, reject) => {
      docker.modem.followProgress(pulling, (err: Error | null) => { if (err != null) { reject(err) } else { resolve() } })
    })
    const port = await freePort()
    const container = await docker.createContainer({ Image: summary.image, Env: [`SERVICE_PORT=${port}`], HostConfig: { NetworkMode: 'host' } })
    try {
      await container.start()
      const body = await eventually('the hello world service', async () => {
        const response = await fetch(`http://127.0.0.1:${port}/anything`, { signal: AbortSignal.timeout(1000) })
        return await response.text()
      }, 20_000, 100)
      assert.equal(body, 'Hello, world\n')
      const info = await container.inspect()
      assert.equal(info.Config.Labels['org.opencontainers.image.title'], 'hello-world-server')
    } finally {
      await container.remove({ force: true })
    }
  })

  it('leaves out of the image what the service folder\'s .dockerignore excludes, by Docker\'s rules, and takes back what a ! line names', async () => {
    const svc = join(state.path, 'ignoring')
    const files: Record<string, string> = {
      'server.js': 'console.log(1)\n',
      'node_modules/dep/index.js': 'dep\n',
      'node_modules/keep.js': 'kept\n',
      '.git/HEAD': 'ref: refs/heads/main\n',
      'db.secret': 'hunter2\n',
      'config/deep/api.secret': 'hunter3\n',
      'config/app.json': '{}\n',
      // an overlay key left out is no error: it is not in the image
      'keys/swarm.key': PreSharedKey.fromPassphrase(TEST_PASSPHRASE).toSwarmKey(),
      '.dockerignore': '# what the service does not need\nnode_modules\n!node_modules/keep.js\n.git\n**/*.secret\nkeys\n'
    }
    for (const [name, body] of Object.entries(files)) {
      await mkdir(join(svc, name, '..'), { recursive: true })
      await writeFile(join(svc, name), body)
    }
    const conf = join(state.path, 'ignoring.json')
    await writeFile(conf, JSON.stringify({ PerfConf: { Perf: { SoftReq: { RTT: 100 }, HardReq: { RTT: 1000 } } }, DockerConf: { Copy: [['.', '.']], Cmd: 'node server.js' } }))
    const imageName = `${imageRegistry!.host}/ignoring:1.0`
    ok(await runCli(['add', conf, svc, imageName, 'ignoring', '--no-add', '--quiet'], env), 'add --no-add')
    // what is in the image's /app, asked of a container never started
    const container = await engine!.docker.createContainer({ Image: imageName })
    try {
      const present = async (name: string): Promise<boolean> => await container.infoArchive({ path: `/app/${name}` }).then(() => true, () => false)
      const inImage: Record<string, boolean> = {}
      for (const name of Object.keys(files)) {
        inImage[name] = await present(name)
      }
      assert.deepEqual(inImage, {
        'server.js': true,
        'node_modules/dep/index.js': false,
        'node_modules/keep.js': true,
        '.git/HEAD': false,
        'db.secret': false,
        'config/deep/api.secret': false,
        'config/app.json': true,
        'keys/swarm.key': false,
        '.dockerignore': true
      })
    } finally {
      await container.remove({ force: true })
    }
    // a Copy source left out: Docker would not find it in the context
    await writeFile(conf, JSON.stringify({ PerfConf: { Perf: { SoftReq: { RTT: 100 }, HardReq: { RTT: 1000 } } }, DockerConf: { Copy: [['db.secret', '.']], Cmd: 'node server.js' } }))
    const refused = await runCli(['add', conf, svc, imageName, 'ignoring', '--no-add'], env)
    assert.equal(refused.code, 2, refused.stderr)
    assert.match(refused.stderr, /DockerConf\.Copy\[0\]\[0\]: "db\.secret" is left out of the build context by .*\/\.dockerignore/)
  })

  it('names a file of the build context that cannot be read, as the engine takes the context', async () => {
    const lines: string[] = []
    const progress = { line: (text: string) => { lines.push(text) }, transfer: () => {}, done: () => {} }
    const context = createBuildContext([{ path: 'gone.txt', absolute: join(state.path, 'gone.txt'), directory: false }], 'FROM scratch\nCOPY gone.txt /\n')
    await assert.rejects(buildImage(engine!.docker, context, { tag: 'physarum-test/gone:1' }, progress), { name: 'BuildError', message: /Reading gone\.txt for the build context failed: ENOENT/ })
  })

  it('builds and pushes only (--no-add), registers later from the pushed image (--use-existing-image), and deletes', async () => {
    const imageName = `${imageRegistry!.host}/team/calc:1.1`
    const pushed = JSON.parse(ok(await runCli(['add', CALC_CONF, CALC_DIR, imageName, 'calc-server:1.1', '--no-add', '--json'], { DOCKER_HOST: env.DOCKER_HOST!, PHYSARUM_STATE_DIR: env.PHYSARUM_STATE_DIR! }), 'add --no-add').stdout) as AddSummary
    assert.equal(pushed.registered, false)
    assert.equal(pushed.digest, await imageRegistry!.digest('team/calc', '1.1'))
    const missing = await runCli(['get', 'calc-server:1.1', ...overlayArgs], env)
    assert.equal(missing.code, 1)
    assert.match(missing.stderr, /No service named calc-server:1\.1 in the registry/)

    // the engine forgets the image: --use-existing-image finds it in the image registry
    await engine!.docker.getImage(imageName).remove({ force: true })
    const registered = JSON.parse(ok(await runCli(['add', CALC_CONF, CALC_DIR, imageName, 'calc-server:1.1', '--use-existing-image', '--cpu', '0.5', '--memory-mb', '64', '--content-id', 'calc-v1', '--json', ...overlayArgs], env), 'add --use-existing-image').stdout) as AddSummary
    assert.equal(registered.digest, pushed.digest)
    assert.equal(registered.contentHash, 'calc-v1')
    const record = JSON.parse(ok(await runCli(['get', 'calc-server:1.1', '--json', ...overlayArgs], env), 'get').stdout) as ServiceRecord
    assert.deepEqual([record.image, record.softRttMs, record.hardRttMs, record.cpu, record.memoryMb, record.proxyClientMode, record.contentHash],
      [`${imageRegistry!.host}/team/calc@${pushed.digest}`, 20, 250, 0.5, 64, false, 'calc-v1'])

    const list = JSON.parse(ok(await runCli(['list', '--json', ...overlayArgs], env), 'list --json').stdout) as ServiceRecord[]
    assert.deepEqual(list.map(r => r.name), ['calc-server:1.1', 'hello-world-server'])
    const table = ok(await runCli(['list', ...overlayArgs], env), 'list').stdout
    assert.match(table, /^NAME\s+IMAGE/)
    assert.match(table, /\ncalc-server:1\.1\s+127\.0\.0\.1:\d+\/team\/calc@sha256:/)

    ok(await runCli(['delete', 'calc-server:1.1', ...overlayArgs], env), 'delete')
    assert.equal((await runCli(['get', 'calc-server:1.1', ...overlayArgs], env)).code, 1)
    const again = await runCli(['delete', 'calc-server:1.1', ...overlayArgs], env)
    assert.equal(again.code, 1)
    assert.match(again.stderr, /No service named calc-server:1\.1/)
    assert.deepEqual(await keysInEtcd(), ['/physarum/v1/services/hello-world-server'])
  })

  it('status --json shows the bootstrap, the registry with RTTs, and the services', async () => {
    const answer = ok(await runCli(['status', '--json', ...overlayArgs], env), 'status --json')
    // what it waits for goes to stderr as it goes
    assert.match(answer.stderr, /Looking for registries and allocators\n.*Reading the services from the registry\n.*Looking for the instances of 1 service\n.*Measuring the RTT to \d+ peers/s)
    const report = JSON.parse(answer.stdout) as StatusReport
    assert.equal(report.self.peerId, cliPeerId)
    const boot = report.peers.find(p => p.peerId === bootstrap!.peerId.toString())
    assert.ok(boot != null, 'the bootstrap is a peer')
    assert.ok(typeof boot.rttMs === 'number' && boot.rttMs >= 0, 'with an RTT')
    assert.equal(boot.host, 'test-host')
    const reg = report.registries.find(p => p.peerId === registry!.node.peerId.toString())
    assert.ok(reg != null && typeof reg.rttMs === 'number', 'the registry-service, with an RTT')
    assert.deepEqual(report.allocators, [])
    assert.deepEqual(report.services.map(s => [s.name, s.instances?.length]), [['hello-world-server', 0]])
    assert.deepEqual(report.notes, [])
    const text = ok(await runCli(['status', ...overlayArgs], env), 'status').stdout
    assert.match(text, /Registries \(1\):/)
    assert.match(text, /hello-world-server \(soft 100 ms, hard 1000 ms\): no instances/)
    // trusting another peer than the registry: it is listed, said to be untrusted, and not asked;
    // --announce is what the node tells the others (an address of its own, never dialed here)
    const announced = `/ip4/127.0.0.1/tcp/${await freePort()}`
    const wary = JSON.parse(ok(await runCli(['status', '--json', '--timeout', '3s', '--registry-id', cliPeerId, '--announce', announced, ...overlayArgs], env), 'status --registry-id').stdout) as StatusReport
    assert.deepEqual(wary.self.addrs.map(a => a.replace(/\/p2p\/.*$/, '')), [announced])
    const notes = wary.notes.join('\n')
    assert.match(notes, new RegExp(`registry ${registry!.node.peerId.toString()} announces itself but is not trusted`))
    assert.match(notes, /services: the registry could not be read \(No registry-service was found .* none of them a trusted registry/)
  })

  it('pushes to a registry that wants credentials: from --registry-user and stdin, or the Docker config file; never prompts without them', async () => {
    const alice = { name: 'alice', password: 's3cret' }
    const guarded = await startImageRegistry(alice)
    try {
      const args = ['add', HELLO_CONF, HELLO_DIR, `${guarded.host}/hello:1.0`, 'hello-world-server', '--no-add', '--json']
      const base = { DOCKER_HOST: env.DOCKER_HOST!, PHYSARUM_STATE_DIR: env.PHYSARUM_STATE_DIR!, DOCKER_CONFIG: join(state.path, 'no-docker-config') }
      const anonymous = await runCli(args, base)
      assert.equal(anonymous.code, 1, anonymous.stderr)
      assert.match(anonymous.stderr, /no basic auth credentials.*credentials: none found; give --registry-user/)
      const wrong = await runCli(args, { ...base, PHYSARUM_REGISTRY_USER: 'alice', PHYSARUM_REGISTRY_PASSWORD: 'guess' })
      assert.equal(wrong.code, 1, wrong.stderr)
      assert.match(wrong.stderr, /credentials: env/)
      assert.equal(await guarded.digest('hello', '1.0', alice), undefined, 'nothing pushed yet')

      // with the Docker client's debug output asked for too: it would print the credentials
      const debugged = ok(await runCli([...args, '--registry-user', 'alice', '--registry-password-stdin'], { ...base, DEBUG: '*' }, { stdin: 's3cret\n' }), 'add with --registry-password-stdin')
      // in the clear, or in the X-Registry-Auth header's base64
      const header = Buffer.from(JSON.stringify({ username: 'alice', password: 's3cret' })).toString('base64').slice(0, 16)
      assert.ok(!debugged.stderr.includes('s3cret') && !/x-registry-auth|authconfig/i.test(debugged.stderr) && !debugged.stderr.includes(header), 'the credentials are in the debug output')
      const pushed = JSON.parse(debugged.stdout) as AddSummary
      assert.equal(pushed.digest, await guarded.digest('hello', '1.0', alice))

      const dockerConfig = join(state.path, 'docker-config')
      await mkdir(dockerConfig, { recursive: true })
      await writeFile(join(dockerConfig, 'config.json'), JSON.stringify({ auths: { [guarded.host]: { auth: Buffer.from('alice:s3cret').toString('base64') } } }))
      const fromConfig = JSON.parse(ok(await runCli([...args, '--use-existing-image'], { ...base, DOCKER_CONFIG: dockerConfig }), 'add with the Docker config file').stdout) as AddSummary
      assert.equal(fromConfig.digest, pushed.digest)
    } finally {
      await guarded.stop()
    }
  })

  it('fails clearly, with exit 1 and no record, when the image registry, the registry-service or the overlay cannot be reached, or the registry refuses', async () => {
    const before = await keysInEtcd()
    const closed = await freePort()
    // a registry-service whose host went silent: connections open, nothing ever answers
    const silent = createServer((socket) => { socket.on('error', () => {}) })
    silent.listen(0, '127.0.0.1')
    await once(silent, 'listening')
    const silentRegistry = `/ip4/127.0.0.1/tcp/${(silent.address() as AddressInfo).port}/p2p/${lonelyBootstrap!.peerId.toString()}`
    const cases: Array<{ what: string, args: string[], env: Record<string, string>, message: RegExp, built: boolean }> = [
      {
        what: 'image registry unreachable',
        args: ['add', HELLO_CONF, HELLO_DIR, `127.0.0.1:${closed}/hello:1.0`, 'hello-unreachable', ...overlayArgs],
        env,
        message: new RegExp(`push of 127\\.0\\.0\\.1:${closed}/hello:1\\.0 failed: .*(refused|reachable)`),
        built: true
      },
      {
        what: 'no registry-service in the overlay',
        args: ['add', HELLO_CONF, HELLO_DIR, `${imageRegistry!.host}/hello:1.0`, 'hello-lonely', '--timeout', '3s', '-bootstrap', lonelyBootstrap!.multiaddrs()[0]!.toString(), '--listen', '/ip4/127.0.0.1/tcp/0'],
        env,
        message: /No registry-service was found in the overlay/,
        built: false
      },
      {
        // asked whether it may write before the build (add-checks.spec.ts has a write left unanswered)
        what: 'a registry-service that does not answer',
        args: ['add', HELLO_CONF, HELLO_DIR, `${imageRegistry!.host}/hello:1.0`, 'hello-silent', '--timeout', '2s', '--registry', silentRegistry, ...overlayArgs],
        env,
        message: /No answer from the overlay within --timeout/,
        built: false
      },
      {
        // past the PSK handshake's deadline (3 s), inside the default --timeout (15 s)
        what: 'a registry-service that does not answer, with the default --timeout',
        args: ['add', HELLO_CONF, HELLO_DIR, `${imageRegistry!.host}/hello:1.0`, 'hello-silent', '--registry', silentRegistry, ...overlayArgs],
        env,
        message: /sent no PSK handshake within 3000 ms/,
        built: false
      },
      {
        what: 'a deletion that registry-service does not answer',
        args: ['delete', 'hello-world-server', '--registry', silentRegistry, ...overlayArgs],
        env,
        message: /Deleting hello-world-server ended with .*sent no PSK handshake within 3000 ms: .*: it may have been deleted or not/,
        built: false
      },
      {
        what: 'a lookup that registry-service does not answer',
        args: ['get', 'hello-world-server', '--timeout', '2s', '--registry', silentRegistry, ...overlayArgs],
        env,
        message: /No answer from the overlay within --timeout: check that a registry-service runs and is reachable from here/,
        built: false
      },
      {
        what: 'wrong PSK',
        args: ['add', HELLO_CONF, HELLO_DIR, `${imageRegistry!.host}/hello:1.0`, 'hello-wrong-psk', '--timeout', '3s', ...overlayArgs],
        env: { ...env, PHYSARUM_PSK: 'not the overlay\'s passphrase' },
        message: /No bootstrap peer could be reached within 3000 ms.*pre-shared key/,
        built: false
      },
      {
        what: 'not an admin',
        args: ['add', HELLO_CONF, HELLO_DIR, `${imageRegistry!.host}/hello:1.0`, 'hello-intruder', '--ephemeral', ...overlayArgs],
        env,
        message: /refused the write: .*--admin/,
        built: false
      }
    ]
    try {
      for (const c of cases) {
        const result = await runCli(c.args, c.env)
        assert.equal(result.code, 1, `${c.what}: ${result.stderr}`)
        assert.match(result.stderr, c.message, c.what)
        assert.doesNotMatch(result.stderr, /at .*\.ts:\d+/, `${c.what}: no stack trace`)
        assert.equal(/Building /.test(result.stderr), c.built, `${c.what}: ${c.built ? 'built' : 'failed before building'}`)
      }
    } finally {
      silent.close()
    }
    assert.deepEqual(await keysInEtcd(), before, 'no record was written')
  })
})
