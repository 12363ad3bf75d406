import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { Etcd3 } from 'etcd3'
import { ensureEtcdAuth, etcdAuthFor } from '../src/etcd-auth.ts'
import { TEST_PSK, TestEtcd } from './helpers.ts'

/**
 * What anyone who reached an etcd with no login could leave: a user with full access, and the
 * note that the users were checked; then `more`.
 */
async function forgeAccess (endpoint: string, more: (open: Etcd3) => Promise<void> = async () => { await Promise.resolve() }): Promise<void> {
  const open = new Etcd3({ hosts: endpoint })
  try {
    await open.user('bob').create('their-password')
    await open.user('bob').addRole('root')
    await open.put('/physarum/v1/etcd-users-checked').value(new Date().toISOString())
    await more(open)
  } finally {
    open.close()
  }
}

describe('etcd authentication turned on by a registry-service', () => {
  let etcd: TestEtcd
  before(async () => { etcd = await TestEtcd.start() })
  after(async () => { await etcd?.remove() })

  it('deletes the users and roles someone made while the client port had no login', async () => {
    // what a host that reached port 2379 before the login was on could do: a user with full access
    const open = new Etcd3({ hosts: etcd.endpoint })
    try {
      await open.user('intruder').create('their-password')
      await open.role('sneaky').create()
      await open.user('intruder').addRole('sneaky')
      await open.role('sneaky').grant({ permission: 'Readwrite', range: open.range({ prefix: '' }) })
    } finally {
      open.close()
    }
    const auth = etcdAuthFor(TEST_PSK)
    const outcome = await ensureEtcdAuth(etcd.endpoint, auth, 5_000)
    assert.deepEqual(outcome, { turnedOn: true, removed: ['user intruder', 'role sneaky'] })

    const intruder = new Etcd3({ hosts: etcd.endpoint, auth: { username: 'intruder', password: 'their-password' } })
    try {
      await assert.rejects(async () => await intruder.put('/physarum/v1/services/x').value('{}'), /authentication failed/)
    } finally {
      intruder.close()
    }
    // on already: nothing turned on, nothing removed
    assert.deepEqual(await ensureEtcdAuth(etcd.endpoint, auth, 5_000), { turnedOn: false, removed: [] })
  })

  it('takes over a root user someone made while the client port had no login', async () => {
    const other = await TestEtcd.start()
    const auth = etcdAuthFor(TEST_PSK)
    try {
      // a host that reached port 2379 first made root with its own password: the login must not take it
      const open = new Etcd3({ hosts: other.endpoint })
      try {
        await open.user(auth.username).create('their-password')
      } finally {
        open.close()
      }
      assert.deepEqual(await ensureEtcdAuth(other.endpoint, auth, 5_000), { turnedOn: true, removed: [] })

      const registry = new Etcd3({ hosts: other.endpoint, auth })
      const intruder = new Etcd3({ hosts: other.endpoint, auth: { username: auth.username, password: 'their-password' } })
      try {
        await registry.put('/physarum/v1/services/x').value('{}')
        await assert.rejects(async () => await intruder.put('/physarum/v1/services/x').value('{}'), /authentication failed/)
      } finally {
        registry.close()
        intruder.close()
      }
    } finally {
      await other.remove()
    }
  })

  it('deletes them when it turns the login on even if etcd says they were checked', async () => {
    const other = await TestEtcd.start()
    const auth = etcdAuthFor(TEST_PSK)
    try {
      await forgeAccess(other.endpoint)
      assert.deepEqual(await ensureEtcdAuth(other.endpoint, auth, 5_000), { turnedOn: true, removed: ['user bob'] })

      const bob = new Etcd3({ hosts: other.endpoint, auth: { username: 'bob', password: 'their-password' } })
      try {
        await assert.rejects(async () => await bob.put('/physarum/v1/services/x').value('{}'), /authentication failed/)
      } finally {
        bob.close()
      }
    } finally {
      await other.remove()
    }
  })

  it('deletes them at a later start when the note that they were checked was not made with the overlay\'s key', async () => {
    const other = await TestEtcd.start()
    const auth = etcdAuthFor(TEST_PSK)
    try {
      // forged while etcd was open, then a start that turned the login on and stopped before checking
      await forgeAccess(other.endpoint, async (open) => {
        await open.user(auth.username).create(auth.password)
        await open.user(auth.username).addRole('root')
        await open.auth.authEnable({})
      })
      assert.deepEqual(await ensureEtcdAuth(other.endpoint, auth, 5_000), { turnedOn: false, removed: ['user bob'] })
      // the note this call wrote is believed
      assert.deepEqual(await ensureEtcdAuth(other.endpoint, auth, 5_000), { turnedOn: false, removed: [] })
    } finally {
      await other.remove()
    }
  })

  it('deletes them at the next start when the one that turned the login on stopped before it did', async () => {
    const other = await TestEtcd.start()
    const auth = etcdAuthFor(TEST_PSK)
    try {
      // an intruder's user, then a start cut short right after it turned the login on
      const open = new Etcd3({ hosts: other.endpoint })
      try {
        await open.user('intruder').create('their-password')
        await open.user(auth.username).create(auth.password)
        await open.user(auth.username).addRole('root')
        await open.auth.authEnable({})
      } finally {
        open.close()
      }
      assert.deepEqual(await ensureEtcdAuth(other.endpoint, auth, 5_000), { turnedOn: false, removed: ['user intruder'] })
      assert.deepEqual(await ensureEtcdAuth(other.endpoint, auth, 5_000), { turnedOn: false, removed: [] })
    } finally {
      await other.remove()
    }
  })
})
