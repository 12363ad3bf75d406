import assert from 'node:assert/strict'
import { once } from 'node:events'
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { after, before, describe, it } from 'node:test'
import { DockerRuntime, registryHost } from '../src/docker.ts'
import { dockerConfigAuth } from '../src/docker-config.ts'
import { tempDir } from './helpers.ts'
import type { Server, Socket } from 'node:net'

const CALL_TIMEOUT_MS = 300

describe('DockerRuntime against a wedged engine (a socket that takes requests and never answers)', () => {
  let server: Server
  let state: { path: string, remove: () => Promise<void> }
  let runtime: DockerRuntime
  const sockets = new Set<Socket>()
  /** What the engine was sent: the requests' heads, with the X-Registry-Auth of pulls. */
  let received = ''

  before(async () => {
    state = await tempDir('physarum-wedged-engine')
    const path = join(state.path, 'docker.sock')
    server = createServer((socket) => {
      sockets.add(socket)
      socket.on('data', (data: Buffer) => { received += data.toString('latin1') })
      socket.on('error', () => {})
      socket.on('close', () => sockets.delete(socket))
    })
    server.listen(path)
    await once(server, 'listening')
    runtime = new DockerRuntime(`unix://${path}`, { callTimeoutMs: CALL_TIMEOUT_MS })
  })

  after(async () => {
    for (const socket of sockets) {
      socket.destroy()
    }
    server.close()
    await state.remove()
  })

  const calls: Array<[string, () => Promise<unknown>, RegExp]> = [
    ['hasImage', async () => await runtime.hasImage('img'), /Inspecting the image img failed/],
    ['imageLabels', async () => await runtime.imageLabels('img'), /Inspecting the image img failed/],
    ['create', async () => await runtime.create({ name: 'wedged', Image: 'img' }), /Creating the container wedged failed/],
    ['start', async () => { await runtime.start('c0ffee') }, /Starting the container c0ffee failed/],
    ['stop', async () => { await runtime.stop('c0ffee', 0) }, /Stopping the container c0ffee failed/],
    ['restart', async () => { await runtime.restart('c0ffee', 0) }, /Restarting the container c0ffee failed/],
    ['remove', async () => { await runtime.remove('c0ffee') }, /Removing the container c0ffee failed/],
    ['running', async () => await runtime.running('c0ffee'), /Inspecting the container c0ffee failed/],
    ['list', async () => await runtime.list('io.physarum.allocator', 'x'), /Listing containers failed/]
  ]
  it('fails a ping at the call deadline when given no signal', async () => {
    const began = performance.now()
    await assert.rejects(runtime.ping(), { name: 'DockerError', message: /The Docker engine does not answer: the engine did not answer in time/ })
    assert.ok(performance.now() - began < CALL_TIMEOUT_MS + 5_000)
  })

  // the engine answers a pull only once it has the registry's manifest: the stall counts from the request
  it('fails a pull, and a build, that get no answer at all once they stalled', async () => {
    await assert.rejects(runtime.pull('127.0.0.1:5000/x@sha256:' + 'ab'.repeat(32), { stallMs: CALL_TIMEOUT_MS, timeoutMs: 60_000 }), {
      name: 'ImageError',
      message: /Pulling 127\.0\.0\.1:5000\/x@sha256:a+b.* failed: no progress for 300 ms: the engine or the registry stopped sending/
    })
    const build = runtime.streamed(async (signal) => await runtime.docker.buildImage(Readable.from([Buffer.alloc(1024)]), { t: 'wedged', abortSignal: signal }), { stallMs: CALL_TIMEOUT_MS })
    await assert.rejects(build, { message: /no progress for 300 ms/ })
  })

  it('pulls with the credentials of the Docker client\'s credential helper', async () => {
    const dir = await tempDir('physarum-pull-helper')
    try {
      const bin = join(dir.path, 'bin')
      await mkdir(bin)
      await writeFile(join(bin, 'docker-credential-physarumpull'), '#!/bin/sh\ncat >/dev/null\necho \'{"Username":"helper-user","Secret":"helper-secret"}\'\n', { mode: 0o755 })
      await writeFile(join(dir.path, 'config.json'), JSON.stringify({ credHelpers: { '127.0.0.1:5000': 'physarumpull' } }))
      const withHelper = new DockerRuntime(`unix://${join(state.path, 'docker.sock')}`, {
        callTimeoutMs: CALL_TIMEOUT_MS,
        env: { DOCKER_CONFIG: dir.path, PATH: `${bin}:${process.env.PATH ?? ''}` }
      })
      received = ''
      await assert.rejects(withHelper.pull('127.0.0.1:5000/x@sha256:' + 'cd'.repeat(32), { stallMs: CALL_TIMEOUT_MS, timeoutMs: 60_000 }), { name: 'ImageError', message: /no progress/ })
      const header = /^X-Registry-Auth: (\S+)$/im.exec(received)?.[1]
      assert.ok(header != null, 'the pull was sent without credentials')
      assert.deepEqual(JSON.parse(Buffer.from(header, 'base64').toString('utf8')), { username: 'helper-user', password: 'helper-secret', serveraddress: '127.0.0.1:5000' })
    } finally {
      await dir.remove()
    }
  })

  it('fails a pull at once, naming the file and not quoting it, when the Docker client\'s config.json is not valid JSON', async () => {
    const dir = await tempDir('physarum-pull-bad-config')
    try {
      await writeFile(join(dir.path, 'config.json'), '{"auths":{"127.0.0.1:5000":{"auth":YWxpY2U6czNjcmV0}}}')
      const broken = new DockerRuntime(`unix://${join(state.path, 'docker.sock')}`, { callTimeoutMs: CALL_TIMEOUT_MS, env: { DOCKER_CONFIG: dir.path } })
      const ref = '127.0.0.1:5000/x@sha256:' + 'ef'.repeat(32)
      const err = await broken.pull(ref, { stallMs: 10_000, timeoutMs: 10_000 }).then(() => undefined, (e: Error) => e)
      assert.equal(err?.name, 'ImageError')
      assert.equal(err.message, `Pulling ${ref} failed: The Docker config file ${join(dir.path, 'config.json')} cannot be read: it is not valid JSON`)
    } finally {
      await dir.remove()
    }
  })

  for (const [name, call, message] of calls) {
    it(`fails ${name} at its deadline, saying the engine did not answer`, async () => {
      const began = performance.now()
      await assert.rejects(call(), (err: Error) => {
        assert.equal(err.name, 'DockerError')
        assert.match(err.message, message)
        assert.match(err.message, /the engine did not answer in time/)
        return true
      })
      const ms = performance.now() - began
      assert.ok(ms >= CALL_TIMEOUT_MS - 20 && ms < CALL_TIMEOUT_MS + 5_000, `failed after ${ms.toFixed(0)} ms`)
    })
  }
})

describe('registry credentials from the Docker client\'s config.json', () => {
  const basic = (user: string): string => Buffer.from(`${user}:secret`).toString('base64')

  it('finds Docker Hub\'s under the key docker login writes, whatever name the image gives the Hub', async () => {
    const dir = await tempDir('physarum-docker-config')
    try {
      const env = { DOCKER_CONFIG: dir.path }
      // as `docker login` (the Hub) and `docker login 127.0.0.1:5000` write them
      await writeFile(join(dir.path, 'config.json'), JSON.stringify({ auths: { 'https://index.docker.io/v1/': { auth: basic('hub-user') }, '127.0.0.1:5000': { auth: basic('local-user') } } }))
      for (const image of [`docker.io/library/node@sha256:${'ab'.repeat(32)}`, 'index.docker.io/library/node:24-slim', 'registry-1.docker.io/library/node:24-slim']) {
        const found = await dockerConfigAuth(registryHost(image), { env })
        assert.deepEqual(found, { auth: { username: 'hub-user', password: 'secret', serveraddress: 'https://index.docker.io/v1/' }, source: 'docker-config' }, image)
      }
      assert.equal((await dockerConfigAuth('127.0.0.1:5000', { env }))?.auth.username, 'local-user')
      assert.equal(await dockerConfigAuth('ghcr.io', { env }), undefined)
      // a key with a scheme, and an identity token
      await writeFile(join(dir.path, 'config.json'), JSON.stringify({ auths: { 'https://127.0.0.1:5000': { identitytoken: 'token-1' } } }))
      assert.deepEqual(await dockerConfigAuth('127.0.0.1:5000', { env }), { auth: { identitytoken: 'token-1', serveraddress: '127.0.0.1:5000' }, source: 'docker-config' })
      // a missing file: no credentials
      assert.equal(await dockerConfigAuth('127.0.0.1:5000', { env: { DOCKER_CONFIG: join(dir.path, 'none') } }), undefined)
      // an empty DOCKER_CONFIG is unset, as for the Docker client: ~/.docker, not the working folder
      await mkdir(join(dir.path, '.docker'))
      await writeFile(join(dir.path, '.docker', 'config.json'), JSON.stringify({ auths: { '127.0.0.1:5000': { auth: basic('home-user') } } }))
      assert.equal((await dockerConfigAuth('127.0.0.1:5000', { env: { DOCKER_CONFIG: '', HOME: dir.path } }))?.auth.username, 'home-user')
    } finally {
      await dir.remove()
    }
  })

  it('runs the credential helper config.json names, without physarum\'s settings, before its auths', async () => {
    const dir = await tempDir('physarum-docker-helper')
    try {
      const bin = join(dir.path, 'bin')
      await mkdir(bin)
      const seen = join(dir.path, 'seen')
      // it answers for the registry it is asked about on stdin; it knows none other
      await writeFile(join(bin, 'docker-credential-physarumtest'), `#!/bin/sh
server=$(cat)
env > '${seen}.env'
echo "$server" >> '${seen}.servers'
case "$server" in
  127.0.0.1:5000) echo '{"ServerURL":"127.0.0.1:5000","Username":"helper-user","Secret":"helper-secret"}' ;;
  https://index.docker.io/v1/) echo '{"ServerURL":"https://index.docker.io/v1/","Username":"<token>","Secret":"hub-token"}' ;;
  *) echo 'credentials not found in native keychain'; exit 1 ;;
esac
`, { mode: 0o755 })
      await writeFile(join(dir.path, 'config.json'), JSON.stringify({
        credHelpers: { '127.0.0.1:5000': 'physarumtest' },
        credsStore: 'physarumtest',
        auths: { '127.0.0.1:5000': { auth: basic('stale-user') }, '127.0.0.1:6000': { auth: basic('file-user') } }
      }))
      const env = { DOCKER_CONFIG: dir.path, PATH: `${bin}:${process.env.PATH ?? ''}`, PHYSARUM_PSK: 'overlay-key', P2P_PSK: 'overlay-key' }
      assert.deepEqual(await dockerConfigAuth('127.0.0.1:5000', { env }), { auth: { username: 'helper-user', password: 'helper-secret', serveraddress: '127.0.0.1:5000' }, source: 'credential-helper' })
      assert.deepEqual(await dockerConfigAuth('docker.io', { env }), { auth: { identitytoken: 'hub-token', serveraddress: 'https://index.docker.io/v1/' }, source: 'credential-helper' })
      // the helper has none: the auths
      assert.deepEqual(await dockerConfigAuth('127.0.0.1:6000', { env }), { auth: { username: 'file-user', password: 'secret', serveraddress: '127.0.0.1:6000' }, source: 'docker-config' })
      assert.equal(await dockerConfigAuth('ghcr.io', { env }), undefined)
      assert.deepEqual((await readFile(`${seen}.servers`, 'utf8')).trim().split('\n'), ['127.0.0.1:5000', 'https://index.docker.io/v1/', '127.0.0.1:6000', 'ghcr.io'])
      const helperEnv = await readFile(`${seen}.env`, 'utf8')
      assert.doesNotMatch(helperEnv, /PHYSARUM_|P2P_PSK|overlay-key/, 'the helper got the overlay\'s key')
      assert.match(helperEnv, new RegExp(`^DOCKER_CONFIG=${dir.path}$`, 'm'), 'the rest of the environment')

      // a helper that fails: an error naming it, not an anonymous pull
      await writeFile(join(dir.path, 'config.json'), JSON.stringify({ credsStore: 'missing-physarumtest' }))
      await assert.rejects(dockerConfigAuth('127.0.0.1:5000', { env }), { name: 'DockerConfigError', message: /credential helper docker-credential-missing-physarumtest failed for 127\.0\.0\.1:5000/ })
    } finally {
      await dir.remove()
    }
  })

  it('refuses a config.json that cannot be used, naming the file and never quoting it: it holds secrets', async () => {
    const dir = await tempDir('physarum-docker-config-bad')
    try {
      const env = { DOCKER_CONFIG: dir.path }
      const file = join(dir.path, 'config.json')
      await writeFile(file, '{"auths":{"127.0.0.1:5000":{"auth":YWxpY2U6czNjcmV0}}}')
      const invalid = await dockerConfigAuth('127.0.0.1:5000', { env }).then(() => undefined, (err: Error) => err)
      assert.equal(invalid?.name, 'DockerConfigError')
      assert.equal(invalid.message, `The Docker config file ${file} cannot be read: it is not valid JSON`)
      await writeFile(file, '["YWxpY2U6czNjcmV0"]')
      await assert.rejects(dockerConfigAuth('127.0.0.1:5000', { env }), { name: 'DockerConfigError', message: `The Docker config file ${file} cannot be read: it is not a JSON object` })
      // not user:password: refused, rather than a user name cut short or an anonymous pull
      await writeFile(file, JSON.stringify({ auths: { '127.0.0.1:5000': { auth: Buffer.from('YWxpY2U-no-colon').toString('base64') } } }))
      const noColon = await dockerConfigAuth('127.0.0.1:5000', { env }).then(() => undefined, (err: Error) => err)
      assert.equal(noColon?.name, 'DockerConfigError')
      assert.equal(noColon.message, `${file}: auths.127.0.0.1:5000.auth is not base64 of user:password`)
      // unreadable: a folder where the file should be
      await rm(file)
      await mkdir(file)
      await assert.rejects(dockerConfigAuth('127.0.0.1:5000', { env }), { name: 'DockerConfigError', message: new RegExp(`^The Docker config file ${file} cannot be read: EISDIR`) })
    } finally {
      await dir.remove()
    }
  })
})
