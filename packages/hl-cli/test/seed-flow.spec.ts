import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { ensureNodeImage, NODE_IMAGE, startDocker, startImageRegistry, startOverlay, startTestAllocator, tempDir, waitForAllocator } from '../../allocator/test/helpers.ts'
import { DEMOS, eventually, freePort, ROOT, runCli, TEST_PASSPHRASE } from './helpers.ts'
import type { TestDocker, TestImageRegistry, TestOverlay } from '../../allocator/test/helpers.ts'
import type { ChildProcess } from 'node:child_process'

/**
 * The seed's flow end to end: hl-cli builds demos/helloworld on one Docker engine and pushes it
 * to a local image registry (a port in its name) and registers it; an allocator on another engine,
 * which lacks the image, pulls it by digest when the proxy asks for an instance; and
 * `curl 127.0.0.1:<port>/hello-world-server` answers "Hello, world". hl-cli and the proxy run as
 * their own processes, the PSK only in their environment.
 */
describe('the seed\'s flow: hl-cli add, then the proxy reaches a freshly allocated instance', { timeout: 300_000 }, () => {
  let builder: TestDocker
  let runner: TestDocker
  let images: TestImageRegistry
  let overlay: TestOverlay
  let allocator: Awaited<ReturnType<typeof startTestAllocator>>
  let state: Awaited<ReturnType<typeof tempDir>>
  let proxy: ChildProcess | undefined
  let port: number
  let bootstrap: string
  let env: Record<string, string>

  before(async () => {
    state = await tempDir('physarum-seed-flow')
    // each engine kept as soon as it is up: one that fails to start must not leave the other running
    const engines = await Promise.allSettled([startDocker().then(d => (builder = d)), startDocker().then(d => (runner = d))])
    for (const result of engines) {
      if (result.status === 'rejected') {
        throw result.reason
      }
    }
    images = await startImageRegistry()
    await Promise.all([ensureNodeImage(builder), ensureNodeImage(runner)])
    overlay = await startOverlay()
    allocator = await startTestAllocator(runner, overlay, state.path)
    await waitForAllocator(overlay, allocator)
    bootstrap = overlay.bootstrap.multiaddrs()[0]!.toString()
    env = { PHYSARUM_PSK: TEST_PASSPHRASE, PHYSARUM_STATE_DIR: join(state.path, 'hl-cli'), DOCKER_HOST: builder.host }
  })

  after(async () => {
    if (proxy != null && proxy.exitCode == null) {
      const exited = once(proxy, 'exit')
      proxy.kill('SIGTERM')
      await exited
    }
    await allocator?.stop()
    await overlay?.stop()
    await images?.stop()
    await Promise.all([builder?.stop(), runner?.stop()])
    await state?.remove()
  })

  it('answers "Hello, world" through the proxy, from an image the allocator pulled by digest', async () => {
    const image = `${images.host}/hello:1.0`
    const added = await runCli(['add', join(DEMOS, 'helloworld/image-conf.json'), join(DEMOS, 'helloworld'), image, 'hello-world-server',
      '--from', NODE_IMAGE, '--json', '-bootstrap', bootstrap], env)
    assert.equal(added.code, 0, added.stderr)
    const { digest } = JSON.parse(added.stdout) as { digest: string }

    // the allocator's engine has not seen the image (when both engines are one, forget it there)
    await runner.docker.getImage(image).remove({ force: true }).catch(() => {})
    await assert.rejects(runner.docker.getImage(`${images.host}/hello@${digest}`).inspect())

    port = await freePort()
    proxy = spawn(process.execPath, [join(ROOT, 'packages/proxy/bin/proxy.js'), String(port), '-bootstrap', bootstrap,
      '--ephemeral', '--metrics-listen', '127.0.0.1:0', '--log-level', 'warn'], { env: { ...process.env, PHYSARUM_PSK: TEST_PASSPHRASE }, stdio: ['ignore', 'ignore', 'inherit'] })
    const answer = await eventually('the proxy to answer', async () => {
      const response = await fetch(`http://127.0.0.1:${port}/hello-world-server`, { signal: AbortSignal.timeout(60_000) })
      return { status: response.status, coldStartMs: response.headers.get('x-physarum-cold-start-ms'), body: await response.text() }
    }, 90_000, 500)
    assert.equal(answer.status, 200, answer.body)
    assert.match(answer.body, /Hello, world/)
    assert.ok(Number(answer.coldStartMs) > 0, `x-physarum-cold-start-ms: ${answer.coldStartMs}`)
    await runner.docker.getImage(`${images.host}/hello@${digest}`).inspect()

    const again = await fetch(`http://127.0.0.1:${port}/hello-world-server`)
    assert.equal(again.status, 200)
    assert.match(await again.text(), /Hello, world/)
    assert.equal(again.headers.get('x-physarum-cold-start-ms'), null, 'the second request needed no new instance')
    assert.equal(allocator.allocator.instances().length, 1)

    // status shows the allocator with the instance it runs, and the instance of the service
    const status = await runCli(['status', '--json', '-bootstrap', bootstrap], env)
    assert.equal(status.code, 0, status.stderr)
    const report = JSON.parse(status.stdout) as { allocators: Array<{ peerId: string, capacity: { instances: number, maxInstances: number } | null }>, services: Array<{ name: string, instances: unknown[] }> }
    const mine = report.allocators.find(a => a.peerId === allocator.node.peerId.toString())
    assert.equal(mine?.capacity?.instances, 1, status.stdout)
    assert.ok((mine?.capacity?.maxInstances ?? 0) >= 1)
    assert.deepEqual(report.services.map(s => [s.name, s.instances.length]), [['hello-world-server', 1]])
  })

  it('runs the demos\' chain, each stage allocated on first use through the client port of the stage before', async () => {
    const stages = ['sensor', 'aggregator', 'predictor']
    await Promise.all(stages.map(async (stage) => {
      const added = await runCli(['add', join(DEMOS, `chain/${stage}/image-conf.json`), join(DEMOS, `chain/${stage}`), `${images.host}/chain-${stage}:1.0`,
        `chain-${stage}`, '--from', NODE_IMAGE, '--json', '-bootstrap', bootstrap], env)
      assert.equal(added.code, 0, added.stderr)
    }))
    const running = (): string[] => allocator.allocator.instances().map(i => i.service).filter(name => name.startsWith('chain-')).sort()
    assert.deepEqual(running(), [])
    const response = await fetch(`http://127.0.0.1:${port}/chain-predictor/`, { signal: AbortSignal.timeout(90_000) })
    const body = await response.text()
    assert.equal(response.status, 200, body)
    assert.ok(Number(response.headers.get('x-physarum-cold-start-ms')) > 0)
    const prediction = JSON.parse(body) as { celsius: number, basedOn: { count: number, mean: number } }
    assert.equal(prediction.basedOn.count, 5)
    assert.ok(Number.isFinite(prediction.celsius))
    assert.deepEqual(running(), ['chain-aggregator', 'chain-predictor', 'chain-sensor'])
  })
})
