// `etcdkit flags ...`: feature flags (flagd definitions in etcd, @etcdkit/openfeature) listed and written.
import { readFile } from 'node:fs/promises'
import type { EtcdKit } from '@etcdkit/core'
import { booleanFlag, FlagAdmin, type FlagDefinition, rolloutFlag } from '@etcdkit/openfeature'
import { cliWriter, within as reachWithin } from './connect.js'
import { UsageError } from './errors.js'
import { printable, table } from './table.js'

interface FlagsIo {
  stdout: { write(text: string): unknown }
  stderr: { write(text: string): unknown }
  env?: NodeJS.ProcessEnv
}

interface FlagsOptions {
  json?: boolean
  limit?: string
  expect?: string
  timeout?: string
  /** The etcd auth user: also who the definitions written are recorded as (see `flags history`). */
  user?: string
}

export const FLAGS_USAGE = `Usage: etcdkit flags <command>   (flags live at {namespace}flags/{key}: see docs/FLAGS.md)
  flags list                          every flag: state, default variant, targeting, revision (invalid ones too)
  flags get <key>                     one flag's definition (JSON)
  flags set <key> <definition>        write a flag, checked against flagd's schema first; <definition> is
                                        on | off                 a boolean flag, on or off for everyone
                                        <n>%                     a boolean flag on for n% of targeting keys
                                        variants:a,b,c           string variants, the first one the default
                                        <file.json>              a flagd definition, or a flagd document
                                                                 whose flags.<key> is taken
                                        '{...}'                  a flagd definition as JSON
  flags enable <key> | disable <key>  set the flag's state
  flags delete <key>                  delete the flag (evaluations get FLAG_NOT_FOUND and their default)
  flags history <key>                 every definition etcd still keeps, with who wrote it   (--limit n)
  flags rollback <key> <revision>     write a past definition back, only if the flag did not change meanwhile
                                                                 (--expect revision)
`

function arity(args: string[], min: number, max: number, usage: string) {
  if (args.length < min || args.length > max) throw new UsageError(`usage: etcdkit ${usage}`)
}

/** Fails when etcd does not answer in time, as the other commands do (their deadline: twice --timeout). */
function within<T>(kit: EtcdKit, options: FlagsOptions, what: string, p: Promise<T>): Promise<T> {
  return reachWithin(kit, Number(options.timeout ?? 5_000) * 2, what, p)
}

/** The definition `set` writes, from its shorthand, a file or inline JSON. */
async function definitionOf(key: string, spec: string): Promise<FlagDefinition> {
  if (spec === 'on' || spec === 'off') return booleanFlag(spec === 'on')
  const percent = /^(\d+(?:\.\d+)?)%$/.exec(spec)
  if (percent) return rolloutFlag(Number(percent[1]))
  if (spec.startsWith('variants:')) {
    const names = spec.slice('variants:'.length).split(',')
    if (names.length === 0 || names.some((n) => n === '') || new Set(names).size !== names.length)
      throw new UsageError(
        `variants ${JSON.stringify(spec)}: expected variants:a,b,... (distinct, non-empty)`,
      )
    return {
      state: 'ENABLED',
      variants: Object.fromEntries(names.map((n) => [n, n])),
      defaultVariant: names[0]!,
    }
  }
  let text = spec
  if (!spec.trimStart().startsWith('{')) {
    try {
      text = await readFile(spec, 'utf8')
    } catch (err) {
      throw new UsageError(
        `definition ${JSON.stringify(spec)}: not on, off, n%, variants:..., JSON, or a readable file (${(err as Error).message})`,
      )
    }
  }
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch (err) {
    throw new UsageError(`definition ${JSON.stringify(spec)}: not JSON (${(err as Error).message})`)
  }
  // a whole flagd document: its entry for this key
  const flags = (value as { flags?: unknown } | null)?.flags
  if (typeof flags === 'object' && flags !== null) {
    const entry = (flags as Record<string, unknown>)[key]
    if (entry === undefined)
      throw new UsageError(`the flagd document ${JSON.stringify(spec)} has no flag ${JSON.stringify(key)}`)
    return entry as FlagDefinition
  }
  return value as FlagDefinition
}

/** One line of a targeting rule for a table: its JSON, shortened. */
function rule(definition: FlagDefinition | undefined): string {
  if (!definition?.targeting) return ''
  const text = JSON.stringify(definition.targeting)
  return text.length > 60 ? `${text.slice(0, 59)}…` : text
}

/** `etcdkit flags <sub> ...`. */
export async function flagsCommand(
  kit: EtcdKit,
  args: string[],
  options: FlagsOptions,
  io: FlagsIo,
): Promise<number> {
  const [sub, ...rest] = args
  const admin = new FlagAdmin(kit)
  const writer = cliWriter(options, io.env)
  const json = (value: unknown) => io.stdout.write(`${JSON.stringify(value, null, 2)}\n`)
  switch (sub) {
    case 'list': {
      arity(rest, 0, 0, 'flags list')
      const flags = await within(kit, options, 'reading the flags', admin.list())
      if (options.json) json(flags)
      else
        io.stdout.write(
          table(
            ['FLAG', 'STATE', 'DEFAULT', 'VARIANTS', 'TARGETING', 'REVISION'],
            flags.map((f) =>
              f.definition
                ? [
                    f.key,
                    f.definition.state,
                    f.definition.defaultVariant,
                    Object.keys(f.definition.variants).join(','),
                    rule(f.definition),
                    f.revision,
                  ]
                : [f.key, 'INVALID', '', '', f.error ?? '', f.revision],
            ),
            '(no flags)',
          ),
        )
      return 0
    }
    case 'get': {
      arity(rest, 1, 1, 'flags get <key>')
      const flag = await within(kit, options, 'reading', admin.get(rest[0]!))
      if (!flag) {
        io.stderr.write(`etcdkit: no flag ${JSON.stringify(rest[0])}\n`)
        return 1
      }
      if (options.json) json(flag)
      // JSON escapes control characters itself; text that is not a definition is shown escaped
      else
        io.stdout.write(
          `${flag.definition ? JSON.stringify(flag.definition, null, 2) : printable(flag.text)}\n`,
        )
      if (flag.error)
        io.stderr.write(`etcdkit: flag ${JSON.stringify(rest[0])} is invalid: ${printable(flag.error)}\n`)
      return flag.error ? 1 : 0
    }
    case 'set': {
      arity(rest, 2, 2, 'flags set <key> on|off|<n>%|variants:a,b|<file.json>|<json>')
      const definition = await definitionOf(rest[0]!, rest[1]!)
      const revision = await within(kit, options, 'writing', admin.set(rest[0]!, definition, { writer }))
      if (options.json) json({ key: rest[0], revision, definition })
      else io.stdout.write(`${rest[0]} written at revision ${revision}\n`)
      return 0
    }
    case 'enable':
    case 'disable': {
      arity(rest, 1, 1, `flags ${sub} <key>`)
      const write =
        sub === 'enable' ? admin.enable(rest[0]!, { writer }) : admin.disable(rest[0]!, { writer })
      const revision = await within(kit, options, 'writing', write)
      if (options.json) json({ key: rest[0], revision })
      else io.stdout.write(`${rest[0]} ${sub}d at revision ${revision}\n`)
      return 0
    }
    case 'delete': {
      arity(rest, 1, 1, 'flags delete <key>')
      const existed = await within(kit, options, 'deleting', admin.delete(rest[0]!))
      if (!existed) io.stderr.write(`etcdkit: no flag ${JSON.stringify(rest[0])}\n`)
      return existed ? 0 : 1
    }
    case 'history': {
      arity(rest, 1, 1, 'flags history <key> [--limit n]')
      const limit = options.limit === undefined ? undefined : Number(options.limit)
      if (limit !== undefined && !(Number.isInteger(limit) && limit > 0))
        throw new UsageError(`--limit ${JSON.stringify(options.limit)}: expected a positive integer`)
      const entries = await within(
        kit,
        options,
        'reading the history',
        admin.history(rest[0]!, limit === undefined ? {} : { limit }),
      )
      if (options.json) json(entries)
      else
        io.stdout.write(
          table(
            ['REVISION', 'TIME', 'WRITER', 'STATE', 'DEFAULT', 'TARGETING'],
            entries.map((e) => [
              e.revision,
              e.time?.toISOString() ?? '',
              e.writer
                ? [e.writer.writer, e.writer.rollbackOf ? `rollback of ${e.writer.rollbackOf}` : '']
                    .filter(Boolean)
                    .join(', ')
                : 'unknown',
              e.definition?.state ?? 'INVALID',
              e.definition?.defaultVariant ?? '',
              rule(e.definition),
            ]),
            `(no history of ${JSON.stringify(rest[0])}: it does not exist, or etcd compacted it)`,
          ),
        )
      return 0
    }
    case 'rollback': {
      arity(rest, 2, 2, 'flags rollback <key> <revision> [--expect revision]')
      const done = await within(
        kit,
        options,
        'rolling back',
        admin.rollback(rest[0]!, rest[1]!, {
          writer,
          ...(options.expect === undefined ? {} : { expect: options.expect }),
        }),
      )
      if (options.json) json(done)
      else
        io.stdout.write(
          done.written
            ? `${rest[0]} holds the definition of revision ${done.from} again (written at revision ${done.revision})\n`
            : `${rest[0]} already holds the definition of revision ${done.from}: nothing written\n`,
        )
      return 0
    }
    default:
      if (sub === undefined) {
        io.stdout.write(FLAGS_USAGE)
        return 2
      }
      throw new UsageError(`unknown flags command ${JSON.stringify(sub)}\n${FLAGS_USAGE}`)
  }
}
