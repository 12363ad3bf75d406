import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { appendFile, readFile, rename, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { after, before, describe, it } from 'node:test'
import { Etcd3 } from 'etcd3'
import { discardFailedJoin, EtcdProcess, hasEtcdData } from '../src/etcd-process.ts'
import { eventually, FAST_ETCD_ENV, freePort, silentLog, tempDir } from './helpers.ts'

describe('the etcd a registry-service runs', () => {
  let state: { path: string, remove: () => Promise<void> }

  before(async () => {
    state = await tempDir('physarum-etcd-process')
  })

  after(async () => {
    await state?.remove()
  })

  it('restarts an etcd that died even when its pid file cannot be removed, as on a file system gone read-only', async () => {
    const pidFile = join(state.path, 'stuck.pid')
    const etcd = new EtcdProcess({
      name: 'stuck', dataDir: join(state.path, 'stuck'), ip: '127.0.0.1', clientPort: await freePort(), peerPort: await freePort(),
      clusterState: 'new', pidFile, env: { PATH: process.env.PATH, ...FAST_ETCD_ENV }, log: silentLog, restartMinMs: 50
    })
    const chattr = async (flag: string): Promise<void> => { await promisify(execFile)('chattr', [flag, pidFile]) }
    let unhandled: unknown
    const onUnhandled = (reason: unknown): void => { unhandled = reason }
    process.on('unhandledRejection', onUnhandled)
    try {
      await etcd.start()
      const { pid } = etcd.status()
      await eventually('the pid file', async () => (await readFile(pidFile, 'utf8')).trim() === String(pid) ? true : undefined, 5_000, 20)
      // immutable: its removal fails (EPERM) as it would on a read-only file system (EROFS)
      await chattr('+i')
      process.kill(pid!, 'SIGKILL')
      await eventually('etcd restarted', () => etcd.status().running && etcd.status().pid !== pid ? true : undefined, 10_000, 50)
      assert.equal(etcd.status().restarts, 1)
      assert.equal(unhandled, undefined, `no unhandled rejection: ${String(unhandled)}`)
    } finally {
      process.off('unhandledRejection', onUnhandled)
      await chattr('-i').catch(() => {})
      await etcd.stop().catch(() => {})
    }
  })

  it('takes a member whose log is in ETCD_WAL_DIR for one, and never discards its data as a failed join', async () => {
    const dataDir = join(state.path, 'wal-elsewhere')
    const env = { PATH: process.env.PATH, ...FAST_ETCD_ENV, ETCD_WAL_DIR: join(state.path, 'wal-elsewhere-wal') }
    /** Starts the member, gives `use` a client of it, and stops it. */
    const withMember = async (use: (client: Etcd3) => Promise<void>): Promise<void> => {
      const etcd = new EtcdProcess({
        name: 'wal', dataDir, ip: '127.0.0.1', clientPort: await freePort(), peerPort: await freePort(), clusterState: 'new', env, log: silentLog
      })
      try {
        await etcd.start()
        const client = new Etcd3({ hosts: etcd.clientUrl })
        try {
          await use(client)
        } finally {
          client.close()
        }
      } finally {
        await etcd.stop()
      }
    }
    await withMember(async client => { await client.put('kept').value('yes') })
    assert.equal(hasEtcdData(dataDir, env), true)
    assert.equal(await discardFailedJoin(dataDir, env), false)
    // its database is still there, with what was written
    await withMember(async client => { assert.equal(await client.get('kept').string(), 'yes') })
  })

  it('compacts the revisions its writes replaced once they are older than its auto-compaction', async () => {
    const etcd = new EtcdProcess({
      name: 'compacting', dataDir: join(state.path, 'compacting'), ip: '127.0.0.1', clientPort: await freePort(), peerPort: await freePort(),
      clusterState: 'new', autoCompactionMs: 1_000, env: { PATH: process.env.PATH, ...FAST_ETCD_ENV }, log: silentLog
    })
    const client = new Etcd3({ hosts: etcd.clientUrl })
    try {
      await etcd.start()
      const first = await client.put('/physarum/v1/services/compacted-server').value('1').exec()
      for (let i = 2; i <= 10; i++) {
        await client.put('/physarum/v1/services/compacted-server').value(String(i)).exec()
      }
      assert.equal(await client.get('/physarum/v1/services/compacted-server').revision(first.header.revision).string(), '1', 'kept at first')
      const compacted = await eventually('the first revision to be compacted', async () => {
        try {
          await client.get('/physarum/v1/services/compacted-server').revision(first.header.revision).string()
          return undefined
        } catch (err) {
          return err as Error
        }
      }, 15_000, 200)
      assert.match(compacted.message, /required revision has been compacted/)
      assert.equal(await client.get('/physarum/v1/services/compacted-server').string(), '10', 'the latest value stays')
    } finally {
      client.close()
      await etcd.stop()
    }
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

  it('keeps the whole log in <log>.1 when copying it takes longer than the checks\' interval', async () => {
    const logFile = join(state.path, 'slow.log')
    const etcd = new EtcdProcess({
      name: 'slow', dataDir: join(state.path, 'slow'), ip: '127.0.0.1', clientPort: await freePort(), peerPort: await freePort(),
      clusterState: 'new', logFile, logMaxBytes: 64 * 1024, logCheckMs: 1, env: { PATH: process.env.PATH, ...FAST_ETCD_ENV }, log: silentLog
    })
    try {
      await etcd.start()
      // tens of milliseconds to copy: checks every millisecond come meanwhile. Put in place whole,
      // so that no check sees it half written
      const big = 'a long run\n'.repeat(2_000_000)
      await writeFile(`${logFile}.new`, big)
      await rename(`${logFile}.new`, logFile)
      await eventually('the log to be trimmed', async () => (await stat(logFile)).size < 64 * 1024 ? true : undefined, 10_000, 20)
      const kept = await readFile(`${logFile}.1`, 'utf8')
      assert.ok(kept.endsWith(big), `<log>.1 holds what was appended (${kept.length} characters)`)
    } finally {
      await etcd.stop()
    }
  })
})
