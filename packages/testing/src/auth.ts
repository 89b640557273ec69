// etcd users and roles for auth tests, through etcdctl as `root`: least-privilege roles, a permission
// revoked or a password changed while a service runs.
import { randomBytes } from 'node:crypto'
import { type EtcdctlAccess, etcdctl } from './etcdctl.js'

export type EtcdPermission = 'read' | 'write' | 'readwrite'

/** One permission of a role: `prefix` (every key starting with it) or, with `exact`, the one key. */
export interface EtcdGrant {
  prefix: string
  permission: EtcdPermission
  /** The key itself, not a prefix. @default false */
  exact?: boolean
}

/** Credentials as `EtcdKitOptions.auth` takes them. */
export interface EtcdCredentials {
  readonly username: string
  readonly password: string
}

/** User and role administration of an etcd started with `auth: true`; every call runs etcdctl as root. */
export interface EtcdAuthAdmin {
  /** The `root` user (all permissions). */
  readonly root: EtcdCredentials
  addUser(name: string, password?: string): Promise<EtcdCredentials>
  deleteUser(name: string): Promise<void>
  changePassword(name: string, password: string): Promise<void>
  addRole(role: string): Promise<void>
  deleteRole(role: string): Promise<void>
  grant(role: string, grant: EtcdGrant): Promise<void>
  revoke(role: string, grant: Omit<EtcdGrant, 'permission'>): Promise<void>
  grantRole(user: string, role: string): Promise<void>
  revokeRole(user: string, role: string): Promise<void>
  /**
   * A user with a role of the same name holding exactly `grants` (made or replaced). Resolves with the
   * credentials; the password is random unless given.
   */
  user(name: string, grants: readonly EtcdGrant[], password?: string): Promise<EtcdCredentials>
}

type Run = (args: readonly string[], input?: string) => Promise<string>

/** Adds `root` with `password` and turns authentication on (etcd needs root to exist first). */
export async function enableAuth(
  endpoints: readonly string[],
  access: EtcdctlAccess,
  password: string,
): Promise<void> {
  const { user: _user, ...tlsOnly } = access
  await etcdctl(endpoints, ['user', 'add', 'root', '--interactive=false'], {
    access: tlsOnly,
    input: `${password}\n`,
  })
  await etcdctl(endpoints, ['auth', 'enable'], { access: tlsOnly })
}

const keyArgs = (g: Omit<EtcdGrant, 'permission'>) => (g.exact ? [g.prefix] : [g.prefix, '--prefix=true'])

/** @internal */
export function makeAuthAdmin(run: Run, rootPassword: string): EtcdAuthAdmin {
  const admin: EtcdAuthAdmin = {
    root: { username: 'root', password: rootPassword },
    async addUser(name, password = randomBytes(9).toString('hex')) {
      await run(['user', 'add', name, '--interactive=false'], `${password}\n`)
      return { username: name, password }
    },
    async deleteUser(name) {
      await run(['user', 'delete', name])
    },
    async changePassword(name, password) {
      await run(['user', 'passwd', name, '--interactive=false'], `${password}\n`)
    },
    async addRole(role) {
      await run(['role', 'add', role])
    },
    async deleteRole(role) {
      await run(['role', 'delete', role])
    },
    async grant(role, g) {
      await run(['role', 'grant-permission', role, g.permission, ...keyArgs(g)])
    },
    async revoke(role, g) {
      await run(['role', 'revoke-permission', role, ...keyArgs(g)])
    },
    async grantRole(user, role) {
      await run(['user', 'grant-role', user, role])
    },
    async revokeRole(user, role) {
      await run(['user', 'revoke-role', user, role])
    },
    async user(name, grants, password) {
      await run(['user', 'delete', name]).catch(() => {})
      await run(['role', 'delete', name]).catch(() => {})
      const creds = await admin.addUser(name, password)
      await admin.addRole(name)
      for (const g of grants) await admin.grant(name, g)
      await admin.grantRole(name, name)
      return creds
    },
  }
  return admin
}
