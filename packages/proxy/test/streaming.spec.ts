import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { readFile } from 'node:fs/promises'
import { createServer, request } from 'node:http'
import { Readable } from 'node:stream'
import { after, before, describe, it } from 'node:test'
import { eventually, freePort, TEST_PASSPHRASE } from '../../registry-service/test/helpers.ts'
import { DEFAULT_MAX_BUFFERED_BYTES, STREAM_READ_BUFFER_BYTES } from '../src/duplex.ts'
import { startLocalInstance } from './helpers.ts'
import type { ChildProcess } from 'node:child_process'
import type { IncomingMessage, Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { LocalInstance } from './helpers.ts'

const GiB = 1024 ** 3
const RSS_LIMIT = 200 * 1024 * 1024
const SERVICE = 'bulk-server'
const PROXY_BIN = new URL('../bin/proxy.js', import.meta.url).pathname

/**
 * The resident memory of a process, in bytes: all of it, and the private part (anonymous and
 * shared-memory pages). The rest is file-backed, mostly the Node binary (about 60 MB), whose pages
 * every Node process of the host shares.
 */
async function rssOf (pid: number): Promise<{ total: number, private: number }> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8')
  const kB = (field: string): number => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)?.[1] ?? 0) * 1024
  return { total: kB('VmRSS'), private: kB('RssAnon') + kB('RssShmem') }
}

/** Samples a process's memory every 100 ms until stopped; resolves with the largest samples. */
function watchRss (pid: number): { stop: () => Promise<{ total: number, private: number }> } {
  const peak = { total: 0, private: 0 }
  let running = true
  const loop = (async () => {
    while (running) {
      const now = await rssOf(pid)
      peak.total = Math.max(peak.total, now.total)
      peak.private = Math.max(peak.private, now.private)
      await new Promise(resolve => setTimeout(resolve, 100))
    }
  })()
  return { stop: async () => { running = false; await loop; return peak } }
}

/** The proxy's memory stayed flat: its private part below the limit (the whole RSS in the message). */
function assertFlat (peak: { total: number, private: number }): void {
  assert.ok(peak.private < RSS_LIMIT, `the proxy's private RSS reached ${Math.round(peak.private / 1e6)} MB (${Math.round(peak.total / 1e6)} MB in all)`)
}

function zeros (bytes: number): Readable {
  const chunk = Buffer.alloc(64 * 1024)
  let left = bytes
  return new Readable({
    read () {
      if (left <= 0) {
        this.push(null)
        return
      }
      const part = left >= chunk.length ? chunk : chunk.subarray(0, left)
      left -= part.length
      this.push(part)
    }
  })
}

describe('client proxy streaming 1 GiB each way (the proxy is the real CLI in its own process)', { timeout: 300_000 }, () => {
  let service: Server
  let instance: LocalInstance
  let proxy: ChildProcess
  let base: string
  /** Bytes the service has handed to its socket for the latest download. */
  let sent = 0
  let downloads = 0

  before(async () => {
    // the service: GET /bytes?n= streams n zero bytes (honouring backpressure), POST counts the body
    service = createServer((req, res) => {
      if (req.method === 'POST') {
        let received = 0
        req.on('data', (part: Buffer) => { received += part.length })
        req.on('end', () => { res.end(String(received)) })
        return
      }
      // counts the latest download only: a retried request leaves an earlier response behind
      const id = ++downloads
      sent = 0
      const n = Number(new URL(req.url ?? '/', 'http://x').searchParams.get('n'))
      res.writeHead(200, { 'content-length': n })
      const body = zeros(n)
      body.on('data', (part: Buffer) => {
        if (id === downloads) {
          sent += part.length
        }
      })
      res.on('close', () => { body.destroy() })
      body.pipe(res)
    })
    service.listen(0, '127.0.0.1')
    await once(service, 'listening')
    instance = await startLocalInstance(SERVICE, 'bulk', (service.address() as AddressInfo).port)

    const port = await freePort()
    proxy = spawn(process.execPath, [PROXY_BIN, String(port),
      '--listen', '/ip4/127.0.0.1/tcp/0', '--bootstrap', instance.bootstrap.multiaddrs()[0]!.toString(),
      '--registry', instance.registry.node.multiaddrs()[0]!.toString(), '--metrics-listen', '127.0.0.1:0', '--log-level', 'warn',
      // a client proxy keeps its identity in its state folder: none is written for the test
      '--ephemeral'
    ], { env: { ...process.env, PHYSARUM_PSK: TEST_PASSPHRASE }, stdio: ['ignore', 'ignore', 'inherit'] })
    base = `http://127.0.0.1:${port}/${SERVICE}`
    await eventually('the proxy serves', async () => {
      const response = await fetch(`${base}/bytes?n=5`).catch(() => undefined)
      return response?.status === 200 ? await response.text() : undefined
    }, 30_000, 200)
  })

  after(async () => {
    if (proxy != null && proxy.exitCode == null) {
      proxy.kill('SIGTERM')
      await once(proxy, 'exit')
    }
    await instance?.stop()
    service?.closeAllConnections()
    service?.close()
  })

  it('downloads 1 GiB with the proxy\'s private RSS below 200 MB', async () => {
    const rss = watchRss(proxy.pid!)
    const received = await new Promise<number>((resolve, reject) => {
      request(`${base}/bytes?n=${GiB}`, (res) => {
        let count = 0
        res.on('data', (part: Buffer) => { count += part.length })
        res.on('end', () => { resolve(count) })
        res.on('error', reject)
      }).on('error', reject).end()
    })
    const peak = await rss.stop()
    assert.equal(received, GiB)
    assertFlat(peak)
  })

  it('uploads 1 GiB, chunked, with the proxy\'s private RSS below 200 MB', async () => {
    const rss = watchRss(proxy.pid!)
    const answer = await new Promise<string>((resolve, reject) => {
      const req = request(`${base}/sink`, { method: 'POST' }, (res) => {
        let text = ''
        res.setEncoding('utf8')
        res.on('data', (part: string) => { text += part })
        res.on('end', () => { resolve(text) })
        res.on('error', reject)
      })
      req.on('error', reject)
      zeros(GiB).pipe(req)
    })
    const peak = await rss.stop()
    assert.equal(answer, String(GiB))
    assertFlat(peak)
  })

  it('slows the service down to a client that does not read', async (t) => {
    const response = await new Promise<IncomingMessage>((resolve, reject) => {
      request(`${base}/bytes?n=${GiB}`, resolve).on('error', reject).end()
    })
    response.pause()
    await new Promise(resolve => setTimeout(resolve, 2_000))
    const early = sent
    await new Promise(resolve => setTimeout(resolve, 1_000))
    // what the buffers on the way may hold and no more: two loopback connections (service to
    // sidecar, proxy to client) at the kernel's largest buffers, whose receive side autotunes up
    // to tcp_rmem's maximum, the stream's read buffer (the Yamux window) and the duplexes' bounds
    const kernelMax = async (name: string): Promise<number> => Number((await readFile(`/proc/sys/net/ipv4/${name}`, 'utf8')).trim().split(/\s+/)[2])
    const bound = 2 * (await kernelMax('tcp_rmem') + await kernelMax('tcp_wmem')) + STREAM_READ_BUFFER_BYTES + 2 * DEFAULT_MAX_BUFFERED_BYTES + 2 ** 20
    t.diagnostic(`the service sent ${(sent / 2 ** 20).toFixed(1)} MiB to a client that read nothing (the buffers hold at most ${(bound / 2 ** 20).toFixed(1)} MiB)`)
    assert.ok(sent < bound, `the service sent ${(sent / 2 ** 20).toFixed(1)} MiB to a client that read nothing, more than the ${(bound / 2 ** 20).toFixed(1)} MiB the buffers hold`)
    assert.equal(sent, early, 'the service kept sending to a client that read nothing')
    response.destroy()
  })
})
