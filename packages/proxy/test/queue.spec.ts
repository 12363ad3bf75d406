import assert from 'node:assert/strict'
import { createServer } from 'node:http'
import { after, before, describe, it } from 'node:test'
import { eventually } from '../../registry-service/test/helpers.ts'
import { MAX_QUEUED_PER_INSTANCE, MAX_STREAMS_PER_INSTANCE } from '../src/constants.ts'
import { startProxiedService } from './helpers.ts'
import type { ServerResponse } from 'node:http'
import type { ClientProxy } from '../src/client.ts'
import type { ProxiedService } from './helpers.ts'

const SERVICE = 'streaming-server'
const UPSTREAM_TIMEOUT_MS = 1_500

describe('client proxy: a request queued behind an instance\'s busy streams', { timeout: 120_000 }, () => {
  let proxied: ProxiedService
  let proxy: ClientProxy
  /** The responses /stream holds open, as a server of events does. */
  const open = new Set<ServerResponse>()

  before(async () => {
    const service = createServer((req, res) => {
      if (req.url === '/stream') {
        res.writeHead(200, { 'content-type': 'text/event-stream' })
        res.write('data: started\n\n')
        open.add(res)
        return
      }
      res.end('quick\n')
    })
    proxied = await startProxiedService(SERVICE, 'streaming', service, { upstreamTimeoutMs: UPSTREAM_TIMEOUT_MS })
    proxy = proxied.proxy
    await eventually('the instance answers', async () => (await fetch(`http://127.0.0.1:${proxy.port}/${SERVICE}/`).catch(() => undefined))?.status === 200 ? true : undefined, 30_000, 200)
  })

  after(async () => { await proxied?.stop() })

  /** Holds every stream to the instance with a response that goes on until the service ends it. */
  const holdEveryStream = async (signal: AbortSignal): Promise<void> => {
    open.clear()
    await Promise.all(Array.from({ length: MAX_STREAMS_PER_INSTANCE }, async () => {
      const response = await fetch(`http://127.0.0.1:${proxy.port}/${SERVICE}/stream`, { signal })
      await response.body?.getReader().read()
    }))
    await eventually('every stream held', () => open.size === MAX_STREAMS_PER_INSTANCE ? true : undefined, 10_000, 50)
  }

  /** Requests at once, one a signal (none: it waits for its answer), and their answers (a status, or the fetch's error's name); `refused` comes with the first 503. */
  const crowd = (signals: Array<AbortSignal | undefined>): { answers: Promise<Array<number | string>>, refused: Promise<void> } => {
    const refused = Promise.withResolvers<void>()
    const answers = Promise.all(signals.map(async signal => {
      try {
        const response = await fetch(`http://127.0.0.1:${proxy.port}/${SERVICE}/`, { signal })
        await response.text()
        if (response.status === 503) {
          refused.resolve()
        }
        return response.status
      } catch (err) {
        return (err as Error).name
      }
    }))
    return { answers, refused: refused.promise }
  }

  it('answers 504 once the upstream timeout passed without a stream coming free, not never, and counts a client that left meanwhile as 499', async () => {
    const streams = new AbortController()
    await holdEveryStream(streams.signal)
    const began = performance.now()
    // a client that gives up while queued is counted as gone, not as a timeout
    const leaving = new AbortController()
    const left = fetch(`http://127.0.0.1:${proxy.port}/${SERVICE}/`, { signal: leaving.signal }).catch((err: Error) => err.name)
    setTimeout(() => { leaving.abort() }, UPSTREAM_TIMEOUT_MS / 3)
    const queued = await fetch(`http://127.0.0.1:${proxy.port}/${SERVICE}/`, { signal: AbortSignal.timeout(4 * UPSTREAM_TIMEOUT_MS) })
    assert.equal(queued.status, 504)
    assert.match(await queued.text(), /No stream to the instance of streaming-server came free within 1500 ms/)
    assert.ok(performance.now() - began >= UPSTREAM_TIMEOUT_MS - 50, 'not before the timeout')
    assert.equal(await left, 'AbortError')
    await eventually('the client that left counted', async () => {
      const codes = (await proxied.metrics.metrics()).split('\n').filter(line => line.startsWith(`physarum_proxy_requests_total{service="${SERVICE}",code="`))
      return codes.some(line => line.endsWith('code="499"} 1')) ? codes : undefined
    }, 4 * UPSTREAM_TIMEOUT_MS, 50)
    // the queue behind the busy streams is bounded: past it, 503 at once, with Retry-After
    const crowd = await Promise.all(Array.from({ length: MAX_QUEUED_PER_INSTANCE + 20 }, async () => {
      const response = await fetch(`http://127.0.0.1:${proxy.port}/${SERVICE}/`, { signal: AbortSignal.timeout(4 * UPSTREAM_TIMEOUT_MS) })
      return { status: response.status, retryAfter: response.headers.get('retry-after'), text: await response.text() }
    }))
    const refused = crowd.filter(answer => answer.status === 503)
    assert.ok(refused.length >= 20, `${refused.length} refused`)
    assert.ok(refused.every(answer => answer.retryAfter != null && /has all its 256 streams busy and \d+ requests waiting for one/.test(answer.text)), JSON.stringify(refused[0]))
    assert.equal(crowd.filter(answer => answer.status === 504).length, crowd.length - refused.length)
    // once streams come free, requests go again
    streams.abort()
    for (const res of open) {
      res.end()
    }
    await eventually('a request answered again', async () => (await fetch(`http://127.0.0.1:${proxy.port}/${SERVICE}/`).catch(() => undefined))?.status === 200 ? true : undefined, 10_000, 100)
  })

  it('queues a request behind a full queue whose requests all left (their clients gone, or timed out), not 503, and serves it once a stream frees', async () => {
    const streams = new AbortController()
    await holdEveryStream(streams.signal)
    // a full queue and one past it: once that one is refused, the others all wait
    const leaving = new AbortController()
    const gone = crowd(Array.from({ length: MAX_QUEUED_PER_INSTANCE + 1 }, (_, i) => i % 2 === 0 ? leaving.signal : undefined))
    await gone.refused
    leaving.abort()
    const left = await gone.answers
    assert.equal(left.filter(answer => answer === 503).length, 1, JSON.stringify(left))
    assert.ok(left.every(answer => answer === 503 || answer === 504 || answer === 'AbortError'), JSON.stringify(left))
    // none waits now: a full queue again, and one past it
    const next = crowd(Array.from({ length: MAX_QUEUED_PER_INSTANCE + 1 }, () => undefined))
    await next.refused
    for (const res of open) {
      res.end()
    }
    const served = await next.answers
    assert.equal(served.filter(answer => answer === 200).length, MAX_QUEUED_PER_INSTANCE, JSON.stringify(served))
    streams.abort()
  })
})
