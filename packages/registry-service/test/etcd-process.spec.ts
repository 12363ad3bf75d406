import assert from 'node:assert/strict'
import { appendFile, readFile, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { EtcdProcess } from '../src/etcd-process.ts'
import { eventually, FAST_ETCD_ENV, freePort, silentLog, tempDir } from './helpers.ts'

describe('the etcd a registry-service runs', () => {
  let state: { path: string, remove: () => Promise<void> }

  before(async () => {
    state = await tempDir('physarum-etcd-process')
  })

  after(async () => {
    await state?.remove()
  })

  it('keeps its log file below its size, the part before kept in <log>.1', async () => {
    const logFile = join(state.path, 'etcd.log')
    const logMaxBytes = 64 * 1024
    // what an etcd of an earlier start left: trimmed before this one writes
    await appendFile(logFile, 'an earlier start\n'.repeat(5_000))
    const etcd = new EtcdProcess({
      name: 'trimmed', dataDir: join(state.path, 'etcd'), ip: '127.0.0.1', clientPort: await freePort(), peerPort: await freePort(),
      clusterState: 'new', logFile, logMaxBytes, logCheckMs: 100, env: { PATH: process.env.PATH, ...FAST_ETCD_ENV }, log: silentLog
    })
    try {
      await etcd.start()
      assert.match(await readFile(`${logFile}.1`, 'utf8'), /^an earlier start\n/)
      const written = await readFile(logFile, 'utf8')
      assert.doesNotMatch(written, /an earlier start/)
      assert.match(written, /"msg":/, 'etcd writes to the emptied file')

      // a log that grows past the size while etcd runs
      await appendFile(logFile, 'this run\n'.repeat(10_000))
      await eventually('the log to be trimmed', async () => (await stat(logFile)).size < logMaxBytes ? true : undefined, 5_000, 50)
      assert.match(await readFile(`${logFile}.1`, 'utf8'), /this run\n$/)
    } finally {
      await etcd.stop()
    }
    // its shutdown lines start the emptied file: appended, no hole of zeros where the old end was
    const after = await readFile(logFile, 'utf8')
    assert.match(after, /^\{/)
    assert.ok(!after.includes('\0'))
  })
})
