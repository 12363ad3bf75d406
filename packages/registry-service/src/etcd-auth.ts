import { createHmac } from 'node:crypto'
import { Etcd3, EtcdUserExistsError } from 'etcd3'
import type { PreSharedKey } from '@physarum/p2p'

/** The etcd user the registry-services act as. */
export const ETCD_USER = 'root'
/**
 * Written once the users and roles were checked with the login on: a start cut short before checks
 * again. Anyone could write it while etcd had no login, so only a value made from the overlay's key
 * (usersCheckedMark) counts.
 */
const USERS_CHECKED_KEY = '/physarum/v1/etcd-users-checked'

export interface EtcdAuth {
  username: string
  password: string
}

/**
 * The credentials of the etcd a registry-service runs, derived from the overlay's key: every
 * registry host holds the key, so all of them know the password without it being handed around,
 * and it is never in an argv, an environment or a file. Someone who reaches etcd's client port
 * without the key is refused.
 */
export function etcdAuthFor (psk: PreSharedKey): EtcdAuth {
  return { username: ETCD_USER, password: createHmac('sha256', psk.bytes()).update('physarum etcd root password').digest('hex') }
}

/** The value of USERS_CHECKED_KEY: an HMAC keyed with the derived password, which nobody without the overlay's key can make. */
function usersCheckedMark (auth: EtcdAuth): string {
  return createHmac('sha256', auth.password).update('physarum etcd users checked').digest('hex')
}

/** What ensureEtcdAuth did. */
export interface EtcdAuthOutcome {
  /** This call turned authentication on (else it was on already). */
  turnedOn: boolean
  /**
   * Users and roles other than root found by the start that turned the login on (or the next,
   * when that one was cut short), and deleted: made by someone who reached the client port while
   * it was open (a user with the root role would keep full access).
   */
  removed: string[]
}

/**
 * Turns etcd's authentication on with `auth` as its root user, unless it is on already; then
 * checks that `auth` is let in (a cluster whose root password came from another key is not).
 */
export async function ensureEtcdAuth (endpoint: string, auth: EtcdAuth, timeoutMs: number): Promise<EtcdAuthOutcome> {
  const options = { hosts: endpoint, dialTimeout: timeoutMs, defaultCallOptions: () => ({ deadline: Date.now() + timeoutMs }) }
  const open = new Etcd3(options)
  let enabled = false
  try {
    await open.user(auth.username).create(auth.password).catch(async (err: Error) => {
      if (!(err instanceof EtcdUserExistsError)) {
        throw err
      }
      // made by a start cut short, or by anyone who reached the client port while it had no
      // login: the login must not be turned on with a password someone else chose
      await open.user(auth.username).setPassword(auth.password)
    })
    await open.user(auth.username).addRole('root')
    await open.auth.authEnable({})
    enabled = true
  } catch (err) {
    // with authentication on, an anonymous call is refused with this
    if (!/user name is empty/.test((err as Error).message)) {
      throw new Error(`Turning etcd's authentication on failed: ${(err as Error).message}`, { cause: err })
    }
  } finally {
    open.close()
  }
  const authed = new Etcd3({ ...options, auth })
  const removed: string[] = []
  try {
    try {
      await authed.kv.range({ key: Buffer.from('health'), count_only: true })
    } catch (err) {
      throw new Error(`etcd does not let this registry-service in (${(err as Error).message}): its root password was set from another overlay key (registry-service --show-etcd-password with that key prints it); with etcdctl, as root, set it again or turn authentication off`, { cause: err })
    }
    // checked by the start that turns the login on, whatever etcd held while it had none; checked
    // again by the next start when that one was cut short before it was done
    const checkedMark = usersCheckedMark(auth)
    if (enabled || await authed.get(USERS_CHECKED_KEY).string() !== checkedMark) {
      for (const user of await authed.getUsers()) {
        if (user.name !== ETCD_USER) {
          await user.delete()
          removed.push(`user ${user.name}`)
        }
      }
      for (const role of await authed.getRoles()) {
        if (role.name !== 'root') {
          await role.delete()
          removed.push(`role ${role.name}`)
        }
      }
      await authed.put(USERS_CHECKED_KEY).value(checkedMark)
    }
  } finally {
    authed.close()
  }
  return { turnedOn: enabled, removed }
}
