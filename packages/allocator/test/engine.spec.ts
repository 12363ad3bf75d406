import assert from 'node:assert/strict'
import { once } from 'node:events'
import { mkdir, writeFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { after, before, describe, it } from 'node:test'
import { authFor, DockerRuntime, registryHost } from '../src/docker.ts'
import { tempDir } from './helpers.ts'
import type { Server, Socket } from 'node:net'

const CALL_TIMEOUT_MS = 300

describe('DockerRuntime against a wedged engine (a socket that takes requests and never answers)', () => {
  let server: Server
  let state: { path: string, remove: () => Promise<void> }
  let runtime: DockerRuntime
  const sockets = new Set<Socket>()

  before(async () => {
    state = await tempDir('physarum-wedged-engine')
    const path = join(state.path, 'docker.sock')
    server = createServer((socket) => {
      sockets.add(socket)
      socket.on('data', () => {})
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
  it('finds Docker Hub\'s under the key docker login writes, whatever name the image gives the Hub', async () => {
    const dir = await tempDir('physarum-docker-config')
    try {
      const basic = (user: string): string => Buffer.from(`${user}:secret`).toString('base64')
      // as `docker login` (the Hub) and `docker login 127.0.0.1:5000` write them
      await writeFile(join(dir.path, 'config.json'), JSON.stringify({ auths: { 'https://index.docker.io/v1/': { auth: basic('hub-user') }, '127.0.0.1:5000': { auth: basic('local-user') } } }))
      for (const image of [`docker.io/library/node@sha256:${'ab'.repeat(32)}`, 'index.docker.io/library/node:24-slim', 'registry-1.docker.io/library/node:24-slim']) {
        const auth = await authFor(registryHost(image), dir.path)
        assert.deepEqual([auth?.username, auth?.password], ['hub-user', 'secret'], image)
      }
      assert.equal((await authFor('127.0.0.1:5000', dir.path))?.username, 'local-user')
      assert.equal(await authFor('ghcr.io', dir.path), undefined)
      // not user:password: no credentials
      await writeFile(join(dir.path, 'config.json'), JSON.stringify({ auths: { '127.0.0.1:5000': { auth: Buffer.from('no-colon').toString('base64') } } }))
      assert.equal(await authFor('127.0.0.1:5000', dir.path), undefined)
      // an empty DOCKER_CONFIG is unset, as for the Docker client: ~/.docker, not the working folder
      await mkdir(join(dir.path, '.docker'))
      await writeFile(join(dir.path, '.docker', 'config.json'), JSON.stringify({ auths: { '127.0.0.1:5000': { auth: basic('home-user') } } }))
      const saved = { DOCKER_CONFIG: process.env.DOCKER_CONFIG, HOME: process.env.HOME }
      Object.assign(process.env, { DOCKER_CONFIG: '', HOME: dir.path })
      try {
        assert.equal((await authFor('127.0.0.1:5000'))?.username, 'home-user')
      } finally {
        for (const [name, value] of Object.entries(saved)) {
          if (value == null) {
            delete process.env[name]
          } else {
            process.env[name] = value
          }
        }
      }
    } finally {
      await dir.remove()
    }
  })
})
