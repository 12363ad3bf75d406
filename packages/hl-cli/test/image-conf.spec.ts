import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { once } from 'node:events'
import { chmod, mkdir, readdir, readFile, stat, symlink, truncate, writeFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { basename, dirname, join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { promisify } from 'node:util'
import { loadOrCreateIdentity, PreSharedKey } from '@physarum/p2p'
import { extract } from 'tar-stream'
import { WITHOUT_ROOT_FILE_ACCESS } from '../../p2p/test/helpers.ts'
import { tempDir } from '../../registry-service/test/helpers.ts'
import { createBuildContext } from '../src/build.ts'
import type { ImageConfError } from '../src/errors.ts'
import { generateDockerfile } from '../src/dockerfile.ts'
import { loadImageConf, MAX_IMAGE_CONF_BYTES, parseDuration, parseImageConf, readImageConf } from '../src/image-conf.ts'
import { imageByDigest, parseImageRef } from '../src/image-ref.ts'
import { resolveRegistryAuth } from '../src/push.ts'
import { BIN, DEMOS, freePort, runCli } from './helpers.ts'
import type { CliResult } from './helpers.ts'

const run = promisify(execFile)

const GOOD = {
  PerfConf: { Perf: { SoftReq: { RTT: 100 }, HardReq: { RTT: 1000 } }, Bootstraps: [] },
  DockerConf: { From: 'node:24-slim', Copy: [['server', '.']], Run: [], Cmd: './server $SERVICE_PORT', ProxyClientMode: true }
}

interface Conf {
  PerfConf: { Perf: { SoftReq: Record<string, unknown>, HardReq?: Record<string, unknown>, [key: string]: unknown }, Bootstraps?: unknown }
  DockerConf: Record<string, unknown>
  [key: string]: unknown
}

function variant (change: (conf: Conf) => void): string {
  const conf = structuredClone(GOOD) as Conf
  change(conf)
  return JSON.stringify(conf)
}

describe('image-conf.json', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>
  before(async () => {
    dir = await tempDir('hlc-conf')
    await mkdir(join(dir.path, 'svc', 'lib'), { recursive: true })
    await writeFile(join(dir.path, 'svc', 'server'), '#!/bin/sh\n', { mode: 0o755 })
    await writeFile(join(dir.path, 'svc', 'lib', 'a.js'), 'export {}\n')
    await writeFile(join(dir.path, 'svc', 'secret.txt'), 'not for the image\n')
    await writeFile(join(dir.path, 'outside.txt'), 'outside\n')
    await symlink(join(dir.path, 'outside.txt'), join(dir.path, 'svc', 'escape'))
    // copied folders whose links loop, lead nowhere or lead out
    await mkdir(join(dir.path, 'svc', 'looped', 'sub'), { recursive: true })
    await symlink('..', join(dir.path, 'svc', 'looped', 'sub', 'up'))
    await mkdir(join(dir.path, 'svc', 'dangling'))
    await symlink('nowhere', join(dir.path, 'svc', 'dangling', 'link'))
    await mkdir(join(dir.path, 'svc', 'leaky'))
    await symlink(join(dir.path, 'outside.txt'), join(dir.path, 'svc', 'leaky', 'out'))
    // a name in Latin-1, as old archives hold them: no UTF-8 string names that file
    await mkdir(join(dir.path, 'svc', 'latin'))
    await writeFile(Buffer.concat([Buffer.from(join(dir.path, 'svc', 'latin', 'caf')), Buffer.from([0xe9]), Buffer.from('.txt')]), 'x\n')
    // what hl-cli keygen writes by default, in the folder it was run in
    await mkdir(join(dir.path, 'svc', 'keyed'))
    await writeFile(join(dir.path, 'svc', 'keyed', 'swarm.key'), PreSharedKey.generate().toSwarmKey(), { mode: 0o600 })
    // what every physarum node and hl-cli keeps in its state folder (hl-cli id --state-dir state)
    await loadOrCreateIdentity(join(dir.path, 'svc', 'state', 'identity.key'))
  })
  after(async () => { await dir?.remove() })

  it('parses every seed-format example in demos/', async () => {
    // every folder with an image-conf.json, however deep (the chain's stages are one level down)
    const demos = (await readdir(DEMOS, { recursive: true })).filter(path => basename(path) === 'image-conf.json').map(path => dirname(path)).sort()
    assert.deepEqual(demos, ['calculator', 'chain/aggregator', 'chain/predictor', 'chain/sensor', 'helloworld'])
    for (const demo of demos) {
      const { conf, sources } = await loadImageConf(join(DEMOS, demo, 'image-conf.json'), join(DEMOS, demo))
      assert.ok(conf.softRttMs > 0 && conf.softRttMs <= conf.hardRttMs, demo)
      assert.ok(sources.length > 0, `${demo} copies something`)
      assert.match(conf.cmd, /\$SERVICE_PORT/, `${demo} listens on $SERVICE_PORT`)
    }
    const hello = parseImageConf(await readFile(join(DEMOS, 'helloworld', 'image-conf.json'), 'utf8'), 'hello')
    assert.deepEqual([hello.softRttMs, hello.hardRttMs, hello.proxyClientMode, hello.cmd], [100, 1000, true, './helloworldserver $SERVICE_PORT'])
    const calc = parseImageConf(await readFile(join(DEMOS, 'calculator', 'image-conf.json'), 'utf8'), 'calc')
    assert.deepEqual([calc.softRttMs, calc.hardRttMs], [20, 250], 'RTTs with a unit')
  })

  it('reads RTTs as milliseconds, or durations with a unit', () => {
    assert.equal(parseDuration('100ms'), 100)
    assert.equal(parseDuration('1.5s'), 1500)
    assert.equal(parseDuration('1m30s'), 90_000)
    assert.equal(parseDuration('250us'), 0.25)
    assert.equal(parseDuration('100'), undefined)
    assert.equal(parseDuration('fast'), undefined)
    const conf = parseImageConf(variant(c => { c.PerfConf.Perf.SoftReq.RTT = '50ms'; c.PerfConf.Perf.HardReq!.RTT = '2s' }), 'f.json')
    assert.deepEqual([conf.softRttMs, conf.hardRttMs], [50, 2000])
  })

  it('reads null and a From of "" as the seed did: not given', () => {
    // as Go writes a struct with nil slices and an empty string, and the seed's hl-cli read it
    const conf = parseImageConf(variant(c => {
      c.PerfConf.Bootstraps = null
      Object.assign(c.DockerConf, { From: '', Copy: null, Run: null, ProxyClientMode: null })
    }), 'svc/image-conf.json')
    assert.deepEqual([conf.from, conf.bootstraps, conf.copy, conf.run, conf.proxyClientMode], [undefined, [], [], [], false])
    assert.equal(generateDockerfile(conf, { service: 's' }).split('\n')[0], 'FROM node:24-slim')
  })

  it('refuses broken configs, naming the file, the key path and the problem', () => {
    const cases: Array<[string, string, RegExp]> = [
      [variant(c => { delete c.DockerConf.Cmd }), 'DockerConf.Cmd', /missing/],
      [variant(c => { c.DockerConf.Cmd = '  ' }), 'DockerConf.Cmd', /empty/],
      [variant(c => { c.DockerConf.Cmd = null }), 'DockerConf.Cmd', /missing/],
      [variant(c => { c.PerfConf.Perf.SoftReq.RTT = null }), 'PerfConf.Perf.SoftReq.RTT', /missing/],
      [variant(c => { c.PerfConf.Perf.SoftReq.RTT = 2000 }), 'PerfConf.Perf.SoftReq.RTT', /more than the hard one/],
      [variant(c => { c.PerfConf.Perf.SoftReq.RTT = '2s'; c.PerfConf.Perf.HardReq!.RTT = '1s' }), 'PerfConf.Perf.SoftReq.RTT', /more than the hard one/],
      [variant(c => { c.DockerConf.Cmnd = 'x' }), 'DockerConf.Cmnd', /unknown key/],
      [variant(c => { c.PerfConf.Perf.SoftReq.Latency = 1 }), 'PerfConf.Perf.SoftReq.Latency', /unknown key/],
      [variant(c => { c.Extra = {} }), 'Extra', /unknown key/],
      [variant(c => { c.DockerConf = { ...c.DockerConf, constructor: 'x' } }), 'DockerConf.constructor', /unknown key/],
      [variant(c => { c.PerfConf.Perf = { ...c.PerfConf.Perf, toString: 1 } }), 'PerfConf.Perf.toString', /unknown key/],
      [variant(c => { c.DockerConf.ProxyClientMode = 'yes' }), 'DockerConf.ProxyClientMode', /true or false, not string "yes"/],
      [variant(c => { c.DockerConf.Copy = [['server']] }), 'DockerConf.Copy[0]', /pair/],
      [variant(c => { c.DockerConf.Copy = [['server', 7]] }), 'DockerConf.Copy[0][1]', /a string, not number 7/],
      [variant(c => { c.DockerConf.Run = 'make' }), 'DockerConf.Run', /array of strings/],
      [variant(c => { c.PerfConf.Perf.HardReq!.RTT = 'soon' }), 'PerfConf.Perf.HardReq.RTT', /not a duration/],
      [variant(c => { c.PerfConf.Perf.HardReq!.RTT = -5 }), 'PerfConf.Perf.HardReq.RTT', /more than 0/],
      [variant(c => { delete c.PerfConf.Perf.HardReq }), 'PerfConf.Perf.HardReq.RTT', /missing/],
      [variant(c => { (c.PerfConf as Record<string, unknown>).Perf = [] }), 'PerfConf.Perf', /must be an object, not an array/],
      [variant(c => { c.PerfConf.Bootstraps = ['/ip4/127.0.0.1/tcp/4001'] }), 'PerfConf.Bootstraps[0]', /\/p2p\//],
      [variant(c => { c.DockerConf.From = 'node 24' }), 'DockerConf.From', /not an image reference/],
      ['{ "PerfConf": ', '', /not valid JSON/]
    ]
    for (const [text, keyPath, problem] of cases) {
      assert.throws(() => parseImageConf(text, 'svc/image-conf.json'), (thrown: unknown) => {
        const err = thrown as ImageConfError
        assert.equal(err.name, 'ImageConfError')
        assert.equal(err.keyPath, keyPath)
        assert.equal(err.file, 'svc/image-conf.json')
        assert.ok(err.message.startsWith(`svc/image-conf.json: ${keyPath === '' ? '' : `${keyPath}: `}`), err.message)
        assert.match(err.message, problem)
        return true
      }, keyPath)
    }
  })

  it('refuses a file too large to be an image-conf.json without reading it whole, and reads one from a pipe', async () => {
    const big = join(dir.path, 'model.bin')
    await writeFile(big, variant(() => {}).padEnd(MAX_IMAGE_CONF_BYTES + 1, ' '))
    for (const file of [big, '/dev/zero']) {
      // /dev/zero never ends: read whole, it would fill the memory
      await assert.rejects(readImageConf(file), (err: ImageConfError) => err.name === 'ImageConfError' && /cannot be read \(it holds more than 1048576 bytes, so it is no image-conf\.json\)/.test(err.message), file)
    }
    const pipe = join(dir.path, 'conf.pipe')
    await run('mkfifo', [pipe])
    const [conf] = await Promise.all([readImageConf(pipe), writeFile(pipe, variant(() => {}))])
    assert.equal(conf.cmd, GOOD.DockerConf.Cmd)
  })

  it('refuses Copy sources outside the folder or missing, before building anything', async () => {
    const file = join(dir.path, 'image-conf.json')
    const cases: Array<[unknown[], string, RegExp]> = [
      [[['../outside.txt', '.']], 'DockerConf.Copy[0][0]', /outside the service folder/],
      [[['server', '.'], ['/etc/passwd', '.']], 'DockerConf.Copy[1][0]', /absolute path/],
      [[['missing', '.']], 'DockerConf.Copy[0][0]', /does not exist/],
      [[['escape', '.']], 'DockerConf.Copy[0][0]', /leads outside the service folder/],
      [[['*.js', '.']], 'DockerConf.Copy[0][0]', /wildcards/],
      [[['price$list.txt', '.']], 'DockerConf.Copy[0][0]', /"price\$list\.txt": a \$ is taken by Docker for a variable/],
      [[['server', '${HOME}/app']], 'DockerConf.Copy[0][1]', /a \$ is taken by Docker/],
      [[['server', '.'], ['looped', 'looped']], 'DockerConf.Copy[1][0]', /looped\/sub\/up is a symbolic link to a folder that holds it/],
      [[['dangling', 'd']], 'DockerConf.Copy[0][0]', /dangling\/link is a broken symbolic link/],
      [[['leaky', 'l']], 'DockerConf.Copy[0][0]', /leaky\/out is a symbolic link out of the service folder/],
      [[['server', '.'], ['keyed', '.']], 'DockerConf.Copy[1][0]', /keyed\/swarm\.key is an overlay key \(a swarm\.key\)/],
      [[['keyed/swarm.key', 'k']], 'DockerConf.Copy[0][0]', /keyed\/swarm\.key is an overlay key/],
      [[['server', '.'], ['state', 'state']], 'DockerConf.Copy[1][0]', /state\/identity\.key is a peer's private key \(an identity\.key, as every physarum node and hl-cli keeps\)/],
      [[['state/identity.key', 'id']], 'DockerConf.Copy[0][0]', /state\/identity\.key is a peer's private key/],
      [[['server', '.'], ['latin', 'latin']], 'DockerConf.Copy[1][0]', /latin\/caf\\xe9\.txt has a name that is not UTF-8/]
    ]
    for (const [copy, keyPath, problem] of cases) {
      await writeFile(file, variant(c => { c.DockerConf.Copy = copy }))
      await assert.rejects(loadImageConf(file, join(dir.path, 'svc')), (thrown: unknown) => {
        const err = thrown as ImageConfError
        assert.equal(err.name, 'ImageConfError')
        assert.equal(err.keyPath, keyPath)
        assert.match(err.message, problem)
        return true
      }, keyPath)
    }
  })

  it('refuses a file of the service folder named as hl-cli\'s own Dockerfile in the build context, unless .dockerignore leaves it out', async () => {
    const svc = join(dir.path, 'own-dockerfile')
    await mkdir(svc)
    await writeFile(join(svc, 'server'), '#!/bin/sh\n')
    await writeFile(join(svc, '.physarum.Dockerfile'), 'FROM scratch\n')
    const file = join(dir.path, 'own-dockerfile.json')
    for (const [copy, keyPath] of [[[['.', '.']], 'DockerConf.Copy[0][0]'], [[['server', '.'], ['.physarum.Dockerfile', 'x']], 'DockerConf.Copy[1][0]']] as const) {
      await writeFile(file, variant(c => { c.DockerConf.Copy = copy }))
      await assert.rejects(loadImageConf(file, svc), (thrown: unknown) => {
        const err = thrown as ImageConfError
        assert.equal(err.name, 'ImageConfError')
        assert.equal(err.keyPath, keyPath)
        assert.match(err.message, /\.physarum\.Dockerfile is the name hl-cli gives the Dockerfile it writes into the build context, and this one would be built instead: rename it, or leave it out with a line \.physarum\.Dockerfile in .*\/\.dockerignore$/)
        return true
      }, keyPath)
    }
    await writeFile(join(svc, '.dockerignore'), '.physarum.Dockerfile\n')
    await writeFile(file, variant(c => { c.DockerConf.Copy = [['.', '.']] }))
    const { files } = await loadImageConf(file, svc)
    assert.deepEqual(files.map(f => f.path), ['.', '.dockerignore', 'server'])
  })

  it('generates a Dockerfile whose Cmd runs in a shell, and a context of only the named files', async () => {
    const file = join(dir.path, 'good.json')
    await writeFile(file, variant(c => { c.DockerConf.Copy = [['server', '.'], ['lib', 'lib']]; c.DockerConf.Run = ['chmod +x server'] }))
    const { conf, files } = await loadImageConf(file, join(dir.path, 'svc'))
    const dockerfile = generateDockerfile(conf, { service: 'hello-world-server', version: '1.0' })
    const lines = dockerfile.split('\n')
    assert.equal(lines[0], 'FROM node:24-slim')
    assert.equal(lines[1], 'WORKDIR /app')
    assert.ok(lines.includes('COPY ["server","."]'))
    assert.ok(lines.includes('COPY ["lib","lib"]'))
    assert.ok(lines.includes('RUN ["/bin/sh","-c","chmod +x server"]'))
    assert.match(dockerfile, /org\.opencontainers\.image\.title="hello-world-server"/)
    assert.match(dockerfile, /io\.physarum\.image\.service-name="hello-world-server"/)
    assert.doesNotMatch(dockerfile, /io\.physarum\.service=/, 'not the allocator\'s container label')
    assert.equal(lines.at(-2), 'CMD ["/bin/sh","-c","exec ./server $SERVICE_PORT"]')
    assert.equal(generateDockerfile({ ...conf, cmd: 'a && b $SERVICE_PORT' }, { service: 's', from: 'physarum/node:24' }).split('\n').at(-2), 'CMD ["/bin/sh","-c","a && b $SERVICE_PORT"]')
    assert.equal(generateDockerfile(conf, { service: 's', from: 'physarum/node:24' }).split('\n')[0], 'FROM physarum/node:24', '--from wins')
    // the shell replaced by the service also after variable assignments, never exec twice
    for (const [cmd, shell] of [
      ['PORT=$SERVICE_PORT A=1 env', 'PORT=$SERVICE_PORT A=1 exec env'],
      ['exec env', 'exec env'],
      ['A=1 exec env', 'A=1 exec env']
    ] as const) {
      const line = generateDockerfile({ ...conf, cmd }, { service: 's' }).split('\n').at(-2)!
      const argv = JSON.parse(line.slice('CMD '.length)) as string[]
      assert.deepEqual(argv, ['/bin/sh', '-c', shell])
      const { stdout } = await run(argv[0]!, argv.slice(1), { env: { SERVICE_PORT: '7' } })
      assert.match(stdout, cmd.startsWith('PORT') ? /^PORT=7$/m : /^SERVICE_PORT=7$/m, cmd)
    }

    const context = createBuildContext(files, dockerfile)
    const entries = new Map<string, { mode: number, body: string }>()
    const reader = extract()
    context.pipe(reader)
    for await (const entry of reader) {
      const chunks: Buffer[] = []
      for await (const chunk of entry) {
        chunks.push(chunk as Buffer)
      }
      entries.set(entry.header.name, { mode: entry.header.mode ?? 0, body: Buffer.concat(chunks).toString() })
    }
    assert.deepEqual([...entries.keys()].sort(), ['.physarum.Dockerfile', 'lib', 'lib/a.js', 'server'])
    assert.equal(entries.get('.physarum.Dockerfile')!.body, dockerfile)
    assert.equal(entries.get('server')!.mode & 0o111, 0o111, 'the executable bit stays')
  })
})

describe('the build context', () => {
  it('streams a file larger than Node reads whole (2 GiB), and names a file that cannot be read', async () => {
    const dir = await tempDir('hlc-context')
    try {
      // sparse: no disk space taken
      const big = join(dir.path, 'model.bin')
      const size = 2 ** 31 + 4096
      await writeFile(big, '')
      await truncate(big, size)
      let bytes = 0
      for await (const chunk of createBuildContext([{ path: 'model.bin', absolute: big, directory: false }], 'FROM scratch\n')) {
        bytes += (chunk as Buffer).byteLength
      }
      assert.ok(bytes > size, `${bytes} bytes of context`)

      const gone = createBuildContext([{ path: 'gone.txt', absolute: join(dir.path, 'gone.txt'), directory: false }], 'FROM scratch\n')
      await assert.rejects(async () => { for await (const chunk of gone) { assert.ok(chunk != null) } }, { name: 'BuildError', message: /Reading gone\.txt for the build context failed: ENOENT/ })
    } finally {
      await dir.remove()
    }
  })
})

describe('image names and registry credentials', () => {
  it('parses image names with a registry port, and names images by digest', () => {
    const ref = parseImageRef('127.0.0.1:5000/hello:1.0')
    assert.deepEqual(ref, { host: '127.0.0.1:5000', repository: 'hello', tag: '1.0', local: '127.0.0.1:5000/hello:1.0', localRepository: '127.0.0.1:5000/hello' })
    const digest = `sha256:${'ab'.repeat(32)}`
    assert.equal(imageByDigest(ref, digest), `127.0.0.1:5000/hello@${digest}`)
    assert.equal(parseImageRef('localhost:5000/team/calc').tag, 'latest')
    assert.equal(parseImageRef('hello').host, 'docker.io')
    assert.equal(imageByDigest(parseImageRef('hello:2'), digest), `docker.io/library/hello@${digest}`)
    assert.equal(parseImageRef('[::1]:5000/hello:1').host, '[::1]:5000')
    for (const bad of ['Hello', '127.0.0.1:5000/hello@sha256:ab', '127.0.0.1:5000/', 'a b', 'reg.example.com/x:bad tag']) {
      assert.throws(() => parseImageRef(bad), { name: 'UsageError' }, bad)
    }
  })

  it('takes credentials from the flags, the environment or the Docker config file, and never prompts', async () => {
    const dir = await tempDir('hlc-auth')
    try {
      const config = { auths: { '127.0.0.1:5000': { auth: Buffer.from('alice:s3cret').toString('base64') }, 'https://index.docker.io/v1/': { auth: Buffer.from('bob:hub').toString('base64') } } }
      await writeFile(join(dir.path, 'config.json'), JSON.stringify(config))
      const env = { DOCKER_CONFIG: dir.path }
      assert.deepEqual(await resolveRegistryAuth('127.0.0.1:5000', { env }), { auth: { username: 'alice', password: 's3cret', serveraddress: '127.0.0.1:5000' }, source: 'docker-config' })
      assert.equal((await resolveRegistryAuth('docker.io', { env })).auth.username, 'bob')
      // an empty DOCKER_CONFIG is unset, as for the Docker client: ~/.docker
      await mkdir(join(dir.path, '.docker'))
      await writeFile(join(dir.path, '.docker', 'config.json'), JSON.stringify(config))
      assert.equal((await resolveRegistryAuth('127.0.0.1:5000', { env: { DOCKER_CONFIG: '', HOME: dir.path } })).source, 'docker-config')
      assert.deepEqual(await resolveRegistryAuth('127.0.0.1:6000', { env }), { auth: { serveraddress: '127.0.0.1:6000' }, source: 'none' })
      assert.equal((await resolveRegistryAuth('127.0.0.1:5000', { user: 'carol', readPassword: () => Promise.resolve('pw'), env })).auth.username, 'carol')
      assert.equal((await resolveRegistryAuth('127.0.0.1:5000', { readPassword: () => Promise.resolve('pw'), env: { ...env, PHYSARUM_REGISTRY_USER: 'erin' } })).auth.username, 'erin')
      assert.equal((await resolveRegistryAuth('127.0.0.1:5000', { env: { ...env, PHYSARUM_REGISTRY_USER: 'dave', PHYSARUM_REGISTRY_PASSWORD: 'pw' } })).source, 'env')
      await assert.rejects(resolveRegistryAuth('127.0.0.1:5000', { user: 'carol', env }), { name: 'UsageError', message: /--registry-password-stdin/ })
      // the flag's user with the environment's password; a password with no user is refused, not dropped
      assert.deepEqual(await resolveRegistryAuth('127.0.0.1:5000', { user: 'carol', env: { ...env, PHYSARUM_REGISTRY_PASSWORD: 'from-env' } }), { auth: { username: 'carol', password: 'from-env', serveraddress: '127.0.0.1:5000' }, source: 'flags' })
      await assert.rejects(resolveRegistryAuth('127.0.0.1:5000', { env: { ...env, PHYSARUM_REGISTRY_PASSWORD: 'alone' } }), { name: 'UsageError', message: /PHYSARUM_REGISTRY_PASSWORD is set but no user/ })
      // refused as the flags' empty password is, not sent to fail the push after the build
      await assert.rejects(resolveRegistryAuth('127.0.0.1:5000', { env: { ...env, PHYSARUM_REGISTRY_USER: 'dave', PHYSARUM_REGISTRY_PASSWORD: '' } }), { name: 'UsageError', message: /PHYSARUM_REGISTRY_USER is set but PHYSARUM_REGISTRY_PASSWORD is empty/ })
      assert.equal((await resolveRegistryAuth('127.0.0.1:5000', { env: { DOCKER_CONFIG: join(dir.path, 'none') } })).source, 'none')
      // with no user the password is not even asked for; an empty one is refused, not sent
      let asked = false
      await assert.rejects(resolveRegistryAuth('127.0.0.1:5000', { readPassword: () => { asked = true; return Promise.resolve('pw') }, env }), { name: 'UsageError', message: /--registry-password-stdin: give the user name/ })
      assert.equal(asked, false, 'the password was read before the user name was checked')
      await assert.rejects(resolveRegistryAuth('127.0.0.1:5000', { user: 'carol', readPassword: () => Promise.resolve(''), env }), { name: 'UsageError', message: /--registry-password-stdin: the password is empty/ })
    } finally {
      await dir.remove()
    }
  })

  it('never quotes a broken Docker config file or a credential helper\'s answer: they hold secrets', async () => {
    const dir = await tempDir('hlc-auth-bad')
    try {
      const bad = join(dir.path, 'bad')
      await mkdir(bad)
      await writeFile(join(bad, 'config.json'), '{"auths":{"127.0.0.1:5000":{"auth":YWxpY2U6czNjcmV0}}}')
      const broken = await resolveRegistryAuth('127.0.0.1:5000', { env: { DOCKER_CONFIG: bad } }).then(() => undefined, (err: Error) => err)
      assert.equal(broken?.name, 'UsageError')
      assert.match(broken.message, /config\.json cannot be read: it is not valid JSON/)
      assert.doesNotMatch(broken.message, /YWxp/)

      // helpers: one that fails without reading its input (its stdin is closed under the write),
      // one that answers the secret as plain text
      const bin = join(dir.path, 'bin')
      await mkdir(bin)
      await writeFile(join(bin, 'docker-credential-failing'), '#!/bin/sh\necho "helper: not configured" >&2\nexit 1\n', { mode: 0o755 })
      await writeFile(join(bin, 'docker-credential-chatty'), '#!/bin/sh\ncat >/dev/null\necho "Secret=hunter2-top-secret"\n', { mode: 0o755 })
      for (const [store, message] of [['failing', /credential helper docker-credential-failing failed for 127\.0\.0\.1:5000/], ['chatty', /docker-credential-chatty answered something other than JSON/]] as const) {
        const configDir = join(dir.path, store)
        await mkdir(configDir)
        await writeFile(join(configDir, 'config.json'), JSON.stringify({ credsStore: store }))
        for (let i = 0; i < 20; i++) {
          // the helpers are found on the PATH of the environment given, which they run with
          const err = await resolveRegistryAuth('127.0.0.1:5000', { env: { DOCKER_CONFIG: configDir, PATH: `${bin}:${process.env.PATH ?? ''}` } }).then(() => undefined, (e: Error) => e)
          assert.equal(err?.name, 'UsageError', store)
          assert.match(err.message, message)
          assert.doesNotMatch(err.message, /hunter2/)
        }
      }
    } finally {
      await dir.remove()
    }
  })
})

describe('hl-cli command line (no overlay, no Docker)', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>
  before(async () => { dir = await tempDir('hlc-cli') })
  after(async () => { await dir?.remove() })

  it('has --help on every command, and exits 2 on usage errors', async () => {
    const commands = [[], ['add'], ['list'], ['get'], ['delete'], ['status'], ['id'], ['keygen']]
    const helps = await Promise.all(commands.map(async cmd => await runCli([...cmd, '--help'])))
    commands.forEach((cmd, i) => {
      assert.equal(helps[i]!.code, 0, cmd.join(' '))
      assert.match(helps[i]!.stdout, /--help/, cmd.join(' '))
    })
    const usage: Array<[string[], RegExp]> = [
      [[], /Give a command/],
      [['frobnicate'], /Unknown command/],
      [['get'], /Not enough non-option arguments/],
      [['get', 'hello-world-server', 'calc-server', '--no-psk'], /^hl-cli: "calc-server": an argument that no option takes$/m],
      // without the words: they may be the rest of the passphrase
      [['list', '--psk', 'correct', 'horse', 'battery'], /^hl-cli: 2 arguments that no option takes, not shown(?![\s\S]*(horse|battery))/m],
      [['list', '--no-such-flag'], /Unknown argument/],
      // not the option's default (15 s), which no one chose
      [['list', '--timeout', '--no-psk'], /^hl-cli: Not enough arguments following: timeout$/m],
      [['add', 'a', 'b', 'c'], /Not enough non-option arguments/],
      [['add', join(DEMOS, 'helloworld/image-conf.json'), join(DEMOS, 'helloworld'), 'Bad/Name', 'hello'], /<image-name>: "Bad\/Name"/],
      [['add', join(DEMOS, 'helloworld/image-conf.json'), join(DEMOS, 'helloworld'), '127.0.0.1:5000/hello:1.0', 'Hello World'], /<service-name>/],
      [['add', join(DEMOS, 'helloworld/image-conf.json'), join(DEMOS, 'helloworld'), '127.0.0.1:5000/hello:1.0', 'hello', '--cpu', '2000'], /--cpu: "2000" is not 0 \(no limit\) or a number from 0\.01 to 1024/],
      // what was typed, never NaN
      [['add', join(DEMOS, 'helloworld/image-conf.json'), join(DEMOS, 'helloworld'), '127.0.0.1:5000/hello:1.0', 'hello', '--cpu', 'abc'], /^hl-cli: --cpu: "abc" is not a number of at least 0$/m],
      [['add', join(DEMOS, 'helloworld/image-conf.json'), join(DEMOS, 'helloworld'), '127.0.0.1:5000/hello:1.0', 'hello', '--memory-mb', 'lots'], /^hl-cli: --memory-mb: "lots" is not a whole number of at least 0$/m],
      [['status', '--max-services', 'abc', '--no-psk'], /^hl-cli: --max-services: "abc" is not a whole number of at least 1$/m],
      [['add', join(DEMOS, 'helloworld/image-conf.json'), join(DEMOS, 'helloworld'), '127.0.0.1:5000/hello:1.0', 'hello', '--from', 'node:24\nRUN rm -rf /'], /--from: "node:24\\nRUN rm -rf \/" is not an image reference/],
      [['status', '--max-services', '-1', '--no-psk'], /--max-services: "-1" is not a whole number of at least 1/],
      [['add', join(DEMOS, 'helloworld/image-conf.json'), join(DEMOS, 'helloworld'), '127.0.0.1:5000/hello:1.0', 'hello', '--use-existing-image', '--from', 'node:22-slim'], /^hl-cli: --from: nothing is built with --use-existing-image/m],
      [['add', join(DEMOS, 'helloworld/image-conf.json'), join(DEMOS, 'helloworld'), '127.0.0.1:5000/hello:1.0', 'hello', '--use-existing-image', '--build-network', 'host'], /^hl-cli: --build-network: nothing is built with --use-existing-image/m],
      [['list'], /No pre-shared key/],
      [['list', '--timeout', '5000', '--no-psk'], /--timeout: "5000" has no unit: write 5000s or 5000ms/],
      [['list', '--registry', 'registry-host:4001', '--no-psk'], /--registry: "registry-host:4001" is neither a multiaddr with \/p2p\/<peer id> nor a peer id/],
      // a repeatable flag takes one value: the name after -bootstrap is get's (the error is the next check's)
      [['get', '-bootstrap', '/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWCZUdVGQYe5NexGkPxnhpPmr3dKyduQY3udYLeyZWqpGn', 'hello-world-server', '--registry', 'registry-host:4001', '--no-psk'], /^hl-cli: --registry: "registry-host:4001" is neither/],
      [['list', '--registry-id', 'registry-1', '--no-psk'], /--registry-id: "registry-1" is not a peer id/],
      // told before the overlay is joined: its bootstrap here cannot be reached
      [['get', 'Hello World', '-bootstrap', '/ip4/127.0.0.1/tcp/1/p2p/12D3KooWKM1kHJP2NBDmDvt7ppcA2m7MvffuXuz2kYqVVM53P5SW', '--timeout', '300ms', '--no-psk'], /^hl-cli: <name>: /m],
      [['delete', 'x'.repeat(200), '-bootstrap', '/ip4/127.0.0.1/tcp/1/p2p/12D3KooWKM1kHJP2NBDmDvt7ppcA2m7MvffuXuz2kYqVVM53P5SW', '--timeout', '300ms', '--no-psk'], /^hl-cli: <name>: /m],
      [['id', '--ephemeral'], /--ephemeral: an ephemeral identity has no lasting peer id/],
      [['list', '-psk', '--s3cr3t'], /^hl-cli: -psk: the value after it starts with "-"(?![\s\S]*s3cr3t)/]
    ]
    const results = await Promise.all(usage.map(async ([args]) => await runCli([...args, '--state-dir', dir.path])))
    for (const [i, [args, message]] of usage.entries()) {
      const { code, stderr } = results[i]!
      assert.equal(code, 2, `${args.join(' ')}: ${stderr}`)
      assert.match(stderr, message, args.join(' '))
      assert.doesNotMatch(stderr, /at .*\.ts:\d+/, 'no stack trace')
    }
    // keygen, which takes no overlay options: a second file is refused, and nothing is written
    const keygen = await runCli(['keygen', join(dir.path, 'first.key'), join(dir.path, 'second.key')])
    assert.equal(keygen.code, 2, keygen.stderr)
    assert.match(keygen.stderr, /^hl-cli: ".*second\.key": an argument that no option takes$/m)
    assert.deepEqual((await readdir(dir.path)).filter(file => /^(first|second)\.key$/.test(file)), [])
  })

  it('logs at the level of PHYSARUM_LOG_LEVEL, warnings and worse without it', async () => {
    const closed = `/ip4/127.0.0.1/tcp/${await freePort()}/p2p/12D3KooWGRUVh1Ddo1o4kgmrLdVZ7cE6ZD4VwvCG6ZGCr4JnCyD4`
    const args = ['list', '--no-psk', '--timeout', '300ms', '-bootstrap', closed, '--state-dir', dir.path]
    // --no-psk is logged as a warning (level 40), the bootstrap that cannot be reached as the error
    const envs: Array<Record<string, string>> = [{}, { PHYSARUM_LOG_LEVEL: 'error' }, { PHYSARUM_LOG_LEVEL: 'debug' }]
    const [plain, quiet, chatty] = await Promise.all(envs.map(async env => await runCli(args, env)))
    for (const run of [plain, quiet, chatty]) {
      assert.equal(run!.code, 1, run!.stderr)
      assert.match(run!.stderr, /No bootstrap peer could be reached/)
    }
    assert.match(plain!.stderr, /"level":40.*Running without a pre-shared key/)
    assert.doesNotMatch(plain!.stderr, /"level":(20|30)/)
    assert.doesNotMatch(quiet!.stderr, /"level":40/)
    assert.match(chatty!.stderr, /"level":40.*Running without a pre-shared key/)
  })

  it('fails on a broken image-conf.json before it touches Docker or the overlay', async () => {
    const svc = join(dir.path, 'svc')
    await mkdir(svc, { recursive: true })
    await writeFile(join(svc, 'server'), '#!/bin/sh\n')
    const cases: Array<[string, RegExp]> = [
      [variant(c => { delete c.DockerConf.Cmd }), /DockerConf\.Cmd: missing/],
      [variant(c => { c.PerfConf.Perf.SoftReq.RTT = '2s' }), /PerfConf\.Perf\.SoftReq\.RTT: the soft requirement \(2000 ms\) is more than the hard one/],
      [variant(c => { c.DockerConf.Colour = 'blue' }), /DockerConf\.Colour: unknown key/],
      [variant(c => { c.DockerConf.Copy = [['../server', '.']] }), /DockerConf\.Copy\[0\]\[0\]: "\.\.\/server" is outside the service folder/],
      [variant(c => { c.DockerConf.Copy = [['nothing-here', '.']] }), /DockerConf\.Copy\[0\]\[0\]: "nothing-here" does not exist/]
    ]
    await Promise.all(cases.map(async ([text, message], i) => {
      const file = join(dir.path, `image-conf-${i}.json`)
      await writeFile(file, text)
      // Docker and the overlay are unreachable: a config problem must be told first, and alone
      const { code, stderr } = await runCli(['add', file, svc, '127.0.0.1:1/never:1.0', 'never', '-bootstrap', '/ip4/127.0.0.1/tcp/1/p2p/12D3KooWKM1kHJP2NBDmDvt7ppcA2m7MvffuXuz2kYqVVM53P5SW', '--state-dir', dir.path],
        { PHYSARUM_PSK: 'x', DOCKER_HOST: `unix://${join(dir.path, 'no-docker.sock')}` })
      assert.equal(code, 2, stderr)
      assert.match(stderr, new RegExp(`${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: `), 'names the file')
      assert.match(stderr, message)
      assert.doesNotMatch(stderr, /Building|Joining|Docker engine/)
    }))
  })

  it('names a copied folder or file this user may not read, and what to do, before it touches Docker', async () => {
    const svc = join(dir.path, 'unreadable')
    await mkdir(join(svc, 'private'), { recursive: true })
    await writeFile(join(svc, 'server'), '#!/bin/sh\n')
    await writeFile(join(svc, 'private', 'data.txt'), 'x\n')
    await mkdir(join(svc, 'shared'))
    await writeFile(join(svc, 'shared', 'model.bin'), 'x\n', { mode: 0 })
    await chmod(join(svc, 'private'), 0)
    const cases: Array<[unknown[], string]> = [
      [[['server', '.'], ['.', '.']], 'DockerConf\\.Copy\\[1\\]\\[0\\]: private'],
      [[['private/data.txt', '.']], 'DockerConf\\.Copy\\[0\\]\\[0\\]: private/data\\.txt'],
      // a file, found before the build rather than while the engine takes the context
      [[['shared', 'shared']], 'DockerConf\\.Copy\\[0\\]\\[0\\]: shared/model\\.bin']
    ]
    const [program, ...prefix] = WITHOUT_ROOT_FILE_ACCESS
    try {
      for (const [copy, named] of cases) {
        const file = join(dir.path, 'image-conf-unreadable.json')
        await writeFile(file, variant(c => { c.DockerConf.Copy = copy }))
        const args = ['add', file, svc, '127.0.0.1:1/never:1.0', 'never', '--no-add']
        const { code, stderr } = await runCli(program == null ? args : [...prefix, process.execPath, BIN, ...args],
          { DOCKER_HOST: `unix://${join(dir.path, 'no-docker.sock')}` }, program == null ? {} : { program })
        assert.equal(code, 2, stderr)
        assert.match(stderr, new RegExp(`^hl-cli: .*: ${named} cannot be read by this user \\(EACCES\\): give this user read access to .*/unreadable/.+ \\(chmod, chown\\) or run hl-cli as one who has it, or leave it out with a line .* in .*/unreadable/\\.dockerignore\n$`))
      }
    } finally {
      // a folder of mode 0 is one that only root can remove
      await chmod(join(svc, 'private'), 0o755)
    }
  })

  it('refuses a Copy source that is neither a file nor a folder: read for the build, it would never end', async () => {
    const svc = join(dir.path, 'special')
    await mkdir(svc)
    await writeFile(join(svc, 'server'), '#!/bin/sh\n')
    await run('mkfifo', [join(svc, 'pipe')])
    const socket = createServer().listen(join(svc, 'sock'))
    await once(socket, 'listening')
    try {
      for (const [source, kind] of [['pipe', 'a FIFO \\(named pipe\\)'], ['sock', 'a socket']]) {
        const file = join(dir.path, `image-conf-${source}.json`)
        await writeFile(file, variant(c => { c.DockerConf.Copy = [['server', '.'], [source, '.']] }))
        const { code, stderr } = await runCli(['add', file, svc, '127.0.0.1:1/never:1.0', 'never', '--no-add'],
          { DOCKER_HOST: `unix://${join(dir.path, 'no-docker.sock')}` }, { timeoutMs: 15_000 })
        assert.equal(code, 2, `${source}: ${stderr}`)
        assert.match(stderr, new RegExp(`: DockerConf\\.Copy\\[1\\]\\[0\\]: "${source}" is ${kind}, not a file or a folder`))
      }
    } finally {
      socket.close()
    }
  })

  it('keeps a persistent identity (id) and writes swarm keys (keygen)', async () => {
    const state = join(dir.path, 'state')
    const first = await runCli(['id'], { PHYSARUM_STATE_DIR: state })
    assert.equal(first.code, 0, first.stderr)
    assert.match(first.stdout, /^12D3KooW[1-9A-HJ-NP-Za-km-z]+\n$/)
    const again = await runCli(['id', '--json', '--state-dir', state])
    assert.equal((JSON.parse(again.stdout) as { peerId: string }).peerId, first.stdout.trim(), 'the same peer id every time')
    assert.equal((await stat(join(state, 'identity.key'))).mode & 0o777, 0o600)

    const keyFile = join(dir.path, 'swarm.key')
    const made = await runCli(['keygen', keyFile])
    assert.equal(made.code, 0, made.stderr)
    const key = await readFile(keyFile, 'utf8')
    assert.match(key, /^\/key\/swarm\/psk\/1\.0\.0\/\n\/base16\/\n[0-9a-f]{64}\n$/)
    assert.equal((await stat(keyFile)).mode & 0o777, 0o600)
    const refused = await runCli(['keygen', keyFile])
    assert.equal(refused.code, 2)
    assert.match(refused.stderr, /exists/)
    assert.equal(await readFile(keyFile, 'utf8'), key, 'not overwritten')
    assert.equal((await runCli(['keygen', keyFile, '--force'])).code, 0)
    assert.notEqual(await readFile(keyFile, 'utf8'), key)
  })

  it('keygen that cannot write its key leaves no file behind, and --force then keeps the old key', async () => {
    const folder = join(dir.path, 'full')
    await mkdir(folder)
    // a file size limit of 0: every write fails (EFBIG), as on a full disk
    const keygen = async (...args: string[]): Promise<CliResult> => await runCli(['-c', 'ulimit -f 0 && exec "$@"', 'sh', process.execPath, BIN, 'keygen', ...args], {}, { program: 'sh' })
    const failed = await keygen(join(folder, 'swarm.key'))
    assert.equal(failed.code, 1, failed.stderr)
    assert.match(failed.stderr, /^hl-cli: Cannot write .*swarm\.key: EFBIG/)
    assert.deepEqual(await readdir(folder), [], 'nothing left in the folder')

    const old = PreSharedKey.generate().toSwarmKey()
    await writeFile(join(folder, 'swarm.key'), old, { mode: 0o600 })
    const forced = await keygen(join(folder, 'swarm.key'), '--force')
    assert.equal(forced.code, 1, forced.stderr)
    assert.equal(await readFile(join(folder, 'swarm.key'), 'utf8'), old, 'the old key is whole')
    assert.deepEqual(await readdir(folder), ['swarm.key'])
    // a FIFO (as /dev/stdout can be) is written into, not replaced: the key alone goes there
    const pipe = join(folder, 'pipe')
    await run('mkfifo', [pipe])
    const [printed, read] = await Promise.all([runCli(['keygen', pipe, '--force']), readFile(pipe, 'utf8')])
    assert.equal(printed.code, 0, printed.stderr)
    assert.match(read, /^\/key\/swarm\/psk\/1\.0\.0\/\n\/base16\/\n[0-9a-f]{64}\n$/)
    assert.ok((await stat(pipe)).isFIFO(), 'still a FIFO')
  })
})
