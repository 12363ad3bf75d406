import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { createServer, request } from 'node:http'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { after, describe, it } from 'node:test'
import { DEMOS } from './helpers.ts'
import type { ChildProcess } from 'node:child_process'
import type { AddressInfo } from 'node:net'
import type { Server } from 'node:http'

/**
 * The demos' programs as plain host processes (their images run the same files): what each
 * answers, and the chain's stages calling each other through PROXY_PORT, here a small router in
 * place of the sidecar's client proxy (seed-flow.spec runs the chain through real sidecars).
 */
describe('the demos\' services', () => {
  const children: ChildProcess[] = []
  const servers: Server[] = []

  /** Starts a demo program on a free port; resolves with the port it printed. */
  const start = async (program: string, args: string[] = [], env: Record<string, string> = {}): Promise<number> => {
    const child = spawn(process.execPath, [join(DEMOS, program), '0', ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] })
    children.push(child)
    const first = await once(createInterface({ input: child.stdout }), 'line') as string[]
    return Number(/listening on port (\d+)/.exec(first[0] ?? '')![1])
  }
  const get = async (port: number, path: string): Promise<{ status: number, body: string }> => {
    const response = await fetch(`http://127.0.0.1:${port}${path}`)
    return { status: response.status, body: await response.text() }
  }

  after(() => {
    for (const child of children) {
      child.kill('SIGTERM')
    }
    for (const server of servers) {
      server.close()
    }
  })

  it('helloworld answers Hello, world', async () => {
    const port = await start('helloworld/helloworldserver')
    assert.deepEqual(await get(port, '/any/path'), { status: 200, body: 'Hello, world\n' })
  })

  it('calculator adds, subtracts, multiplies and divides num1 and num2, and refuses bad input', async () => {
    const port = await start('calculator/calcserver')
    assert.deepEqual(await get(port, '/add?num1=1&num2=2'), { status: 200, body: '3\n' })
    assert.deepEqual(await get(port, '/sub?num1=1.5&num2=4'), { status: 200, body: '-2.5\n' })
    assert.deepEqual(await get(port, '/mul?num1=-3&num2=7'), { status: 200, body: '-21\n' })
    assert.deepEqual(await get(port, '/div?num1=1&num2=4&format=json'), { status: 200, body: '{"operation":"div","result":0.25}\n' })
    assert.deepEqual(await get(port, '/div?num1=1&num2=0'), { status: 400, body: 'division by zero\n' })
    assert.deepEqual(await get(port, '/add?num1=one&num2=2'), { status: 400, body: 'give two numbers: ?num1=<number>&num2=<number>\n' })
    assert.deepEqual(await get(port, '/add?num1=1'), { status: 400, body: 'give two numbers: ?num1=<number>&num2=<number>\n' })
    assert.equal((await get(port, '/pow?num1=2&num2=3')).status, 404)
  })

  it('the chain: the predictor asks the aggregator, which asks the sensor, each through PROXY_PORT', async () => {
    const ports = new Map<string, number>()
    // what the sidecar's client proxy does: /<service>/<rest> to the service
    const router = createServer((req, res) => {
      const [, service, ...rest] = (req.url ?? '/').split('/')
      const port = ports.get(service ?? '')
      if (port == null) {
        res.writeHead(404)
        res.end(`no service ${service}`)
        return
      }
      req.pipe(request({ host: '127.0.0.1', port, path: `/${rest.join('/')}`, method: req.method }, (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers)
        answer.pipe(res)
      }))
    })
    servers.push(router)
    router.listen(0, '127.0.0.1')
    await once(router, 'listening')
    const proxyEnv = { PROXY_PORT: String((router.address() as AddressInfo).port) }
    ports.set('chain-sensor', await start('chain/sensor/sensor'))
    ports.set('chain-aggregator', await start('chain/aggregator/aggregator', ['chain-sensor'], proxyEnv))
    const predictor = await start('chain/predictor/predictor', ['chain-aggregator'], proxyEnv)

    const reading = JSON.parse((await get(ports.get('chain-sensor')!, '/')).body) as { celsius: number, at: number }
    assert.ok(reading.celsius >= 18 && reading.celsius <= 24, String(reading.celsius))
    const summary = JSON.parse((await get(ports.get('chain-aggregator')!, '/?n=3')).body) as { count: number, mean: number, min: number, max: number }
    assert.equal(summary.count, 3)
    assert.ok(summary.min <= summary.mean && summary.mean <= summary.max)
    assert.equal((await get(ports.get('chain-aggregator')!, '/?n=0')).status, 400)
    const answer = await get(predictor, '/')
    assert.equal(answer.status, 200, answer.body)
    const prediction = JSON.parse(answer.body) as { celsius: number, basedOn: { count: number } }
    assert.equal(prediction.basedOn.count, 5)
    assert.ok(prediction.celsius >= 18 && prediction.celsius <= 27, String(prediction.celsius))

    // a stage whose next one is gone says so
    ports.delete('chain-sensor')
    const broken = await get(predictor, '/')
    assert.equal(broken.status, 502)
    assert.match(broken.body, /the aggregator failed: chain-aggregator answered 502: the sensor failed: chain-sensor answered 404/)
  })
})
