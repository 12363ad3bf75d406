import assert from 'node:assert/strict'
import { once } from 'node:events'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { DockerRuntime } from '../src/docker.ts'
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
