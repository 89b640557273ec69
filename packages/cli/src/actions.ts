// The console's operator actions on registrations (only with --write): drain (a request its owner
// honours), withdraw a drain, deregister a stale key. Each is recorded with the operator's identity.
import type { EtcdKit } from '@etcdkit/core'
import { SESSIONS_PREFIX } from '@etcdkit/core/integration'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { cancelDrain, DrainRefusedError, requestDrain } from './drain.js'

/** One action as the console records it (printed by `etcdkit console`, kept by the caller of `startConsole`). */
export interface AuditEntry {
  /** ISO 8601, UTC. */
  at: string
  /** Who: `etcdkit-console:{user}`. */
  writer: string
  action:
    | 'config.set'
    | 'config.delete'
    | 'config.rollback'
    | 'flags.rollback'
    | 'drain'
    | 'undrain'
    | 'deregister'
  /** The key acted on (namespace-relative). */
  key: string
  detail?: string
}

export interface ActionContext {
  kit: EtcdKit
  writer: string
  audit(entry: Omit<AuditEntry, 'at' | 'writer'>): void
  /** Runs before each write route (read-only refusal, content type, CSRF). */
  guard(req: FastifyRequest, reply: FastifyReply): Promise<unknown>
}

const badRequest = (message: string) => Object.assign(new Error(message), { statusCode: 400 })

function registrationKey(kit: EtcdKit, req: FastifyRequest): string {
  const b = req.body as { key?: unknown } | undefined
  if (!b || typeof b.key !== 'string' || !b.key.startsWith(kit.registryPrefix))
    throw badRequest(`expected { key } naming a registration (under ${JSON.stringify(kit.registryPrefix)})`)
  return b.key
}

export function registerActions(app: FastifyInstance, ctx: ActionContext) {
  const { kit } = ctx
  const at = (name: string) => `${kit.namespace}${name}`
  app.post('/api/drain', { preHandler: ctx.guard }, async (req) => {
    const key = registrationKey(kit, req)
    const drain = await requestDrain(kit, key, ctx.writer)
    ctx.audit({ action: 'drain', key, detail: `owner lease ${drain.lease}` })
    return { ok: true, drain }
  })
  app.delete('/api/drain', { preHandler: ctx.guard }, async (req) => {
    const key = registrationKey(kit, req)
    const existed = await cancelDrain(kit, key)
    if (existed) ctx.audit({ action: 'undrain', key })
    return { ok: true, existed }
  })
  app.post('/api/deregister', { preHandler: ctx.guard }, async (req) => {
    const key = registrationKey(kit, req)
    // the key as the page saw it: its revision, or (an unreadable value, which the page has no revision of)
    // its value; a key that changed since is not deleted
    const { modRevision, value } = req.body as { modRevision?: unknown; value?: unknown }
    const byRevision = typeof modRevision === 'string' && /^\d+$/.test(modRevision)
    if (!byRevision && typeof value !== 'string')
      throw badRequest('expected { key, modRevision } or { key, value }: what the page showed, as strings')
    const [kv] = (await kit.client.get(at(key)).exec()).kvs
    if (!kv) return { ok: true, existed: false }
    if (kv.lease !== '0') {
      const lease = BigInt(kv.lease).toString(16)
      const [ttl, record] = await Promise.all([
        kit.client.leaseClient.leaseTimeToLive({ ID: kv.lease }).then(
          (r) => Number(r.TTL),
          () => -1,
        ),
        kit.client.get(at(`${SESSIONS_PREFIX}${lease}`)).exec(),
      ])
      // a live etcdkit writes a key deleted under it again at once: deleting it would only flicker
      if (ttl > 0 && record.kvs.length > 0)
        throw new DrainRefusedError(
          `${JSON.stringify(key)} is owned by a live etcdkit (lease ${lease}), which would register it again: drain it instead`,
        )
    }
    const res = await kit.client
      .if(
        at(key),
        byRevision ? 'Mod' : 'Value',
        '==',
        byRevision ? (modRevision as string) : (value as string),
      )
      .then(kit.client.delete().key(at(key)))
      .commit()
    if (!res.succeeded)
      throw Object.assign(new Error(`${JSON.stringify(key)} changed since the page showed it: look again`), {
        statusCode: 409,
        code: 'ETCDKIT_CONFLICT',
      })
    ctx.audit({ action: 'deregister', key, ...(byRevision ? { detail: `at revision ${modRevision}` } : {}) })
    return { ok: true, existed: true }
  })
}
