// The console's feature flags (@etcdkit/openfeature): the rows its page shows, and the history and guarded
// rollback routes, which pass the same guard as every other write (read-only refusal, CSRF, Origin, Host).
import type { EtcdKit } from '@etcdkit/core'
import { FlagAdmin, type FlagEntry } from '@etcdkit/openfeature'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { ActionContext } from './actions.js'

/** One flag as the page shows it: its definition's parts, or the stored text and why it is refused. */
export interface FlagRow {
  key: string
  /** `INVALID`: the stored text is not a definition flagd accepts (`error` says why, `text` is it). */
  state: 'ENABLED' | 'DISABLED' | 'INVALID'
  defaultVariant?: string
  variants?: Record<string, unknown>
  /** The targeting rule as stored (JSON), when there is one. */
  targeting?: unknown
  error?: string
  /** The stored text of an invalid flag, cut at 2,000 characters. */
  text?: string
}

export function flagRow(entry: FlagEntry): FlagRow {
  const d = entry.definition
  if (!d)
    return {
      key: entry.key,
      state: 'INVALID',
      error: entry.error ?? 'not a flag definition',
      text: entry.text.length > 2_000 ? `${entry.text.slice(0, 2_000)}…` : entry.text,
    }
  return {
    key: entry.key,
    state: d.state,
    defaultVariant: d.defaultVariant,
    variants: d.variants,
    ...(d.targeting === undefined ? {} : { targeting: d.targeting }),
  }
}

/** Every flag stored under the kit's `flags/` (invalid ones too). */
export async function flagRows(kit: EtcdKit): Promise<FlagRow[]> {
  return (await new FlagAdmin(kit).list()).map(flagRow)
}

const badRequest = (message: string) => Object.assign(new Error(message), { statusCode: 400 })

function flagKey(value: unknown): string {
  if (typeof value !== 'string' || value === '') throw badRequest('expected a flag key')
  return value
}

/** `GET /api/flags/history?key=` and, guarded, `POST /api/flags/rollback { key, revision, expect }`. */
export function registerFlagRoutes(app: FastifyInstance, ctx: ActionContext) {
  const admin = new FlagAdmin(ctx.kit)
  app.get('/api/flags/history', async (req: FastifyRequest) => {
    const key = flagKey((req.query as { key?: unknown }).key)
    return admin.history(key)
  })
  app.post('/api/flags/rollback', { preHandler: ctx.guard }, async (req) => {
    const b = req.body as { key?: unknown; revision?: unknown; expect?: unknown } | undefined
    const key = flagKey(b?.key)
    const { revision, expect } = b ?? {}
    if (typeof revision !== 'string' || (expect !== undefined && typeof expect !== 'string'))
      throw badRequest('expected { key, revision, expect? } (revisions as strings)')
    // refused when the flag changed since `expect` (what the page showed), or when flagd's schema
    // refuses the old definition
    const done = await admin.rollback(key, revision, {
      writer: ctx.writer,
      ...(expect === undefined ? {} : { expect }),
    })
    ctx.audit({ action: 'flags.rollback', key: admin.keyOf(key), detail: `to revision ${revision}` })
    return done
  })
}
