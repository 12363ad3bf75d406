import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { EventEmitter, once } from 'node:events'
import { describe, it } from 'node:test'
import { pino } from 'pino'
import { onShutdown } from '../src/index.ts'
import { eventually, startNode } from './helpers.ts'

describe('shutdown', () => {
  const log = pino({ level: 'silent' })

  it('runs every step once and in order on SIGTERM, past a failing one, then exits 143; a second signal exits at once', async () => {
    const ran: string[] = []
    const exits: number[] = []
    const signals = new EventEmitter()
    const stopped = Promise.withResolvers<void>()
    onShutdown([
      { name: 'stop taking work', run: () => { ran.push('a') } },
      { name: 'broken', run: () => { throw new Error('boom') } },
      { name: 'stop node', run: async () => { await Promise.resolve(); ran.push('c'); stopped.resolve() } }
    ], { log, exit: code => exits.push(code), signals })
    signals.emit('SIGTERM')
    await stopped.promise
    await new Promise(resolve => setImmediate(resolve))
    assert.deepEqual(ran, ['a', 'c'])
    assert.deepEqual(exits, [143])
    signals.emit('SIGINT')
    assert.deepEqual(exits, [143, 130])
    assert.deepEqual(ran, ['a', 'c'], 'the steps ran once')
  })

  it('exits 1 when a step hangs past the deadline', async () => {
    const exited = Promise.withResolvers<number>()
    const signals = new EventEmitter()
    onShutdown([{ name: 'hangs', run: async () => await new Promise(() => {}) }], { log, deadlineMs: 50, exit: exited.resolve, signals })
    signals.emit('SIGTERM')
    assert.equal(await exited.promise, 1)
  })

  it('exits 1, not 0, when a step hangs once nothing else keeps the process alive', async () => {
    // a daemon's servers close in its first steps: a later step that waits for what never comes
    // leaves the process nothing to do but the deadline
    const script = `
      import { createServer } from 'node:net'
      import { pino } from 'pino'
      import { onShutdown } from ${JSON.stringify(new URL('../src/index.ts', import.meta.url).href)}
      const server = createServer().listen(0, '127.0.0.1', () => { process.stdout.write('ready\\n') })
      onShutdown([
        { name: 'close the server', run: () => { server.close() } },
        { name: 'hangs', run: async () => await new Promise(() => {}) }
      ], { log: pino({ base: undefined }), deadlineMs: 300 })`
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { cwd: new URL('..', import.meta.url), stdio: ['ignore', 'pipe', 'inherit'] })
    let output = ''
    child.stdout.on('data', (chunk: Buffer) => { output += chunk.toString() })
    await eventually('the child to start', () => output.includes('ready') ? true : undefined, 10_000, 20)
    child.kill('SIGTERM')
    const [code] = await once(child, 'close') as [number | null]
    assert.equal(code, 1, output)
    assert.match(output, /shutdown took too long, exiting now/)
  })

  it('stops a daemon during its start, as after it: a SIGTERM while its node waits for a bootstrap exits 143 at once', async () => {
    // a bootstrap that is gone: the start would wait its 15 s for it
    const gone = await startNode()
    const bootstrap = gone.multiaddrs()[0]!.toString()
    await gone.stop()
    const script = `
      import { createPhysarumNode, launchDaemon } from ${JSON.stringify(new URL('../src/index.ts', import.meta.url).href)}
      await launchDaemon({
        name: 'test-daemon',
        resolve: async () => ({ config: {}, logLevel: 'info', warnings: [] }),
        start: async (_config, _log, options) => {
          const node = await createPhysarumNode({ psk: null, dhtMode: 'client', listen: ['/ip4/127.0.0.1/tcp/0'], bootstrap: [${JSON.stringify(bootstrap)}] })
          process.stdout.write('starting\\n')
          await node.start(options)
          return node
        },
        announce: () => ({ log: {} })
      })`
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { cwd: new URL('..', import.meta.url), stdio: ['ignore', 'pipe', 'pipe'] })
    let output = ''
    child.stdout.on('data', (chunk: Buffer) => { output += chunk.toString() })
    child.stderr.on('data', (chunk: Buffer) => { output += chunk.toString() })
    await eventually('the start to wait for the bootstrap', () => output.includes('starting') ? true : undefined, 10_000, 20)
    await new Promise(resolve => setTimeout(resolve, 300))
    const since = Date.now()
    child.kill('SIGTERM')
    const [code, signal] = await once(child, 'close') as [number | null, NodeJS.Signals | null]
    assert.equal(signal, null, 'ended by the signal, not by its shutdown')
    assert.equal(code, 143, output)
    assert.ok(Date.now() - since < 5_000, 'not after the bootstrap wait gave up')
    assert.match(output, /"msg":"stopped"/)
    assert.doesNotMatch(output, /start failed|No bootstrap peer/)
  })
})
