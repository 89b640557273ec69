// The commands: each reads through the kit, prints a table (or JSON with --json), and returns an exit code.
import type { EtcdKit } from '@etcdkit/core'
import { cliWriter, operator, within as reachWithin } from './connect.js'
import { startConsole } from './console.js'
import { cancelDrain, requestDrain } from './drain.js'
import { UsageError } from './errors.js'
import { flagsCommand } from './flags.js'
import { configEntries, queues, serviceRows } from './inspect.js'
import { RegistryView } from './registry.js'
import { printable, processLabel, seconds, table } from './table.js'

/** Where a command reads and writes: injectable for tests. */
export interface Io {
  stdout: { write(text: string): unknown }
  stderr: { write(text: string): unknown }
  env: NodeJS.ProcessEnv
  /** Asks for the etcd password when `--user` is given without ETCDKIT_PASSWORD. */
  password(user: string): Promise<string>
  /**
   * Resolves when the user interrupts (Ctrl-C, SIGTERM): a `watch` or `console` then ends cleanly, any
   * other command at once (exit 130). Never resolving means never interrupted.
   */
  interrupted: Promise<void>
}

export interface Flags {
  json?: boolean
  service?: string
  limit?: string
  expect?: string
  port?: string
  host?: string
  write?: boolean
  token?: string
  timeout?: string
  user?: string
  undo?: boolean
  /** The registry dialect `services` and `watch services` read (see docs/POLYGLOT.md). */
  dialect?: string
}

type Command = (kit: EtcdKit, args: string[], flags: Flags, io: Io) => Promise<number | undefined>

/** How long a command waits on etcd: twice the deadline of one call (`--timeout`). */
export const deadline = (flags: { timeout?: string | undefined }) => Number(flags.timeout ?? 5_000) * 2

/** Fails a command whose etcd does not answer in time, instead of retrying for ever (see `within`). */
const within = <T>(kit: EtcdKit, flags: Flags, what: string, p: Promise<T>): Promise<T> =>
  reachWithin(kit, deadline(flags), what, p)

function arity(args: string[], min: number, max: number, usage: string) {
  if (args.length < min || args.length > max) throw new UsageError(`usage: etcdkit ${usage}`)
}

const drain: Command = async (kit, args, flags, io) => {
  arity(args, 2, 2, 'drain <service> <address> [--undo]')
  const [service, address] = args as [string, string]
  const key = `${kit.registryPrefix}${service}/${address}`
  if (flags.undo) {
    const existed = await within(kit, flags, 'withdrawing the drain request', cancelDrain(kit, key))
    io.stdout.write(`${existed ? 'drain request withdrawn' : 'no drain request'} on ${printable(key)}\n`)
    return existed ? 0 : 1
  }
  const req = await within(
    kit,
    flags,
    'requesting the drain',
    requestDrain(kit, key, cliWriter(flags, io.env)),
  )
  if (flags.json) json(io, req)
  else
    io.stdout.write(
      `drain requested: ${printable(key)} (owner lease ${req.lease}); its owner writes weight 0\n`,
    )
  return 0
}

const json = (io: Io, value: unknown) => io.stdout.write(`${JSON.stringify(value, null, 2)}\n`)

/**
 * The registry (or one service) in the dialect `--dialect` names (core refuses an unknown one, or go-zero
 * without a service, naming it), else in every dialect with a common root (every dialect for one service);
 * a dialect left out for lack of permission is said on stderr.
 */
async function registryOf(kit: EtcdKit, flags: Flags, io: Io, service?: string): Promise<RegistryView> {
  const registry = new RegistryView(kit, flags.dialect, service)
  try {
    await within(kit, flags, 'reading the registry', registry.ready)
  } catch (err) {
    registry.close()
    throw err
  }
  for (const s of registry.skipped)
    io.stderr.write(
      `etcdkit: the ${s.dialect} registry (${printable(s.root)}) is not listed: ${printable(s.reason)}\n`,
    )
  return registry
}

const services: Command = async (kit, args, flags, io) => {
  arity(args, 0, 1, 'services [service] [--dialect d]')
  // one service: read in every dialect, go-zero's default Key `{service}.rpc` included
  const registry = await registryOf(kit, flags, io, args[0])
  try {
    const rows = await within(kit, flags, 'reading leases', serviceRows(kit, registry.services, args[0]))
    if (flags.json) json(io, rows)
    else if (args[0] === undefined) {
      // one line per service and dialect: a service registered in three dialects is three registries' entry
      const counts = new Map<string, [string, string, number]>()
      for (const r of rows) {
        const id = JSON.stringify([r.service, r.dialect])
        const c = counts.get(id)
        if (c) c[2]++
        else counts.set(id, [r.service, r.dialect, 1])
      }
      io.stdout.write(
        table(
          ['SERVICE', 'DIALECT', 'INSTANCES'],
          [...counts.values()].map(([s, d, n]) => [s, d, String(n)]),
          '(no services)',
        ),
      )
      io.stdout.write('\n')
    }
    if (!flags.json)
      io.stdout.write(
        table(
          ['SERVICE', 'DIALECT', 'ADDRESS', 'WEIGHT', 'VERSION', 'ZONE', 'TTL', 'PROCESS', 'METADATA'],
          rows.map((r) => [
            r.service,
            r.dialect,
            r.address,
            String(r.weight),
            typeof r.metadata.version === 'string' ? r.metadata.version : '',
            typeof r.metadata.zone === 'string' ? r.metadata.zone : '',
            r.lease === '' ? 'no lease' : seconds(r.ttl),
            processLabel(r.process),
            Object.keys(r.metadata).length === 0 ? '' : JSON.stringify(r.metadata),
          ]),
          args[0] === undefined ? '(no instances)' : `(no instances of ${JSON.stringify(args[0])})`,
        ),
      )
    return 0
  } finally {
    registry.close()
  }
}

const queueCommand =
  (kind: 'lock' | 'election'): Command =>
  async (kit, args, flags, io) => {
    arity(args, 0, 1, `${kind}s [prefix]`)
    const all = await within(kit, flags, `reading ${kind}s`, queues(kit, args[0] ?? ''))
    const list = all.filter((q) => q.kind === kind)
    if (flags.json) {
      json(io, list)
      return 0
    }
    const rows = list.flatMap((q) =>
      q.contenders.map((c, i) => [
        i === 0 ? q.name : '',
        i === 0 ? (kind === 'lock' ? 'holder' : 'leader') : `waiting #${i}`,
        c.lease,
        c.createRevision,
        processLabel(c.process),
        ...(kind === 'election' ? [c.value] : []),
      ]),
    )
    const headers = [kind === 'lock' ? 'LOCK' : 'ELECTION', 'ROLE', 'LEASE', 'REVISION', 'PROCESS']
    io.stdout.write(table(kind === 'election' ? [...headers, 'PROPOSAL'] : headers, rows, `(no ${kind}s)`))
    return 0
  }

const config: Command = async (kit, args, flags, io) => {
  const [sub, ...rest] = args
  const scope = flags.service === undefined ? undefined : { service: flags.service }
  switch (sub) {
    case 'get': {
      arity(rest, 1, 1, 'config get <key> [--service s]')
      const value = await within(kit, flags, 'reading', kit.config.get(rest[0]!, scope))
      if (value === undefined) {
        io.stderr.write(`etcdkit: config key ${JSON.stringify(rest[0])} does not exist\n`)
        return 1
      }
      if (flags.json) json(io, { key: rest[0], value })
      else io.stdout.write(`${printable(value)}\n`)
      return 0
    }
    case 'set':
      arity(rest, 2, 2, 'config set <key> <value> [--service s]')
      await within(
        kit,
        flags,
        'writing',
        kit.config.set(rest[0]!, rest[1]!, { ...scope, writer: cliWriter(flags, io.env) }),
      )
      return 0
    case 'history': {
      arity(rest, 1, 1, 'config history <key> [--service s] [--limit n]')
      const limit = flags.limit === undefined ? undefined : Number(flags.limit)
      if (limit !== undefined && !(Number.isInteger(limit) && limit > 0))
        throw new UsageError(`--limit ${JSON.stringify(flags.limit)}: expected a positive integer`)
      const entries = await within(
        kit,
        flags,
        'reading the history',
        kit.config.history(rest[0]!, { ...scope, ...(limit === undefined ? {} : { limit }) }),
      )
      if (flags.json) json(io, entries)
      else
        io.stdout.write(
          table(
            ['REVISION', 'VERSION', 'TIME', 'WRITER', 'VALUE'],
            entries.map((e) => [
              e.revision,
              e.version,
              e.time?.toISOString() ?? '',
              e.writer
                ? [e.writer.writer, e.writer.service, `${e.writer.hostname} pid ${e.writer.pid}`]
                    .filter(Boolean)
                    .join(', ')
                : 'unknown',
              e.value,
            ]),
            `(no history of ${JSON.stringify(rest[0])}: it does not exist, or etcd compacted it)`,
          ),
        )
      return 0
    }
    case 'rollback': {
      arity(rest, 2, 2, 'config rollback <key> <revision> [--service s] [--expect revision]')
      const done = await within(
        kit,
        flags,
        'rolling back',
        kit.config.rollback(rest[0]!, rest[1]!, {
          ...scope,
          writer: cliWriter(flags, io.env),
          ...(flags.expect === undefined ? {} : { expect: flags.expect }),
        }),
      )
      if (flags.json) json(io, done)
      else
        io.stdout.write(
          done.written
            ? `${rest[0]} holds the value of revision ${done.from} again (written at revision ${done.revision})\n`
            : `${rest[0]} already holds the value of revision ${done.from}: nothing written\n`,
        )
      return 0
    }
    case 'delete': {
      arity(rest, 1, 1, 'config delete <key> [--service s]')
      const existed = await within(kit, flags, 'deleting', kit.config.delete(rest[0]!, scope))
      if (!existed) io.stderr.write(`etcdkit: config key ${JSON.stringify(rest[0])} did not exist\n`)
      return existed ? 0 : 1
    }
    case 'list': {
      arity(rest, 0, 1, 'config list [prefix]')
      const watch = kit.config.watch(rest[0] ?? '')
      const catalog = kit.catalog()
      try {
        await within(kit, flags, 'reading the config', Promise.all([watch.ready, catalog.ready]))
        const entries = configEntries(watch.snapshot(), catalog.services.keys())
        if (flags.json) json(io, entries)
        else
          io.stdout.write(
            table(
              ['KEY', 'SERVICE', 'VALUE'],
              entries.map((e) => [e.key, e.service ?? '(shared)', e.value]),
              '(no config keys)',
            ),
          )
        return 0
      } finally {
        watch.close()
        catalog.close()
      }
    }
    default:
      throw new UsageError(
        sub === undefined
          ? 'usage: etcdkit config get|set|delete|list|history|rollback ...'
          : `unknown config command ${JSON.stringify(sub)}`,
      )
  }
}

const watch: Command = async (kit, args, flags, io) => {
  arity(args, 0, 1, 'watch [services|config|locks]')
  const what = args[0] ?? 'services'
  const line = (record: Record<string, unknown>, text: string) =>
    io.stdout.write(
      flags.json
        ? `${JSON.stringify({ at: new Date().toISOString(), ...record })}\n`
        : `${printable(text)}\n`,
    )
  const closers: (() => void)[] = []
  try {
    if (what === 'services') {
      const registry = await registryOf(kit, flags, io)
      closers.push(() => registry.close())
      type Seen = { service: string; address: string; dialect: string; metadata: string }
      const seen = () =>
        new Map<string, Seen>(
          [...registry.services.values()].flat().map((i) => [
            i.key,
            {
              service: i.service,
              address: i.address,
              dialect: i.dialect,
              metadata: JSON.stringify(i.metadata),
            },
          ]),
        )
      let known = seen()
      registry.on('change', () => {
        const now = seen()
        for (const instance of [...registry.services.values()].flat()) {
          const before = known.get(instance.key)
          const { service, address, dialect, metadata } = instance
          if (before === undefined)
            line({ type: 'up', service, address, dialect, metadata }, `+ ${service} ${address} (${dialect})`)
          else if (before.metadata !== now.get(instance.key)?.metadata)
            line(
              { type: 'update', service, address, dialect, metadata },
              `~ ${service} ${address} (${dialect}) ${now.get(instance.key)?.metadata}`,
            )
        }
        // what a key stood for is taken from when it was listed: keys of other dialects do not parse alike
        for (const [key, gone] of known)
          if (!now.has(key))
            line(
              { type: 'down', service: gone.service, address: gone.address, dialect: gone.dialect },
              `- ${gone.service} ${gone.address} (${gone.dialect})`,
            )
        known = now
      })
    } else if (what === 'config') {
      const cw = kit.config.watch()
      closers.push(() => cw.close())
      await within(kit, flags, 'reading the config', cw.ready)
      cw.on('change', (e) =>
        line({ ...e }, e.type === 'put' ? `put ${e.key} = ${e.value}` : `delete ${e.key}`),
      )
    } else if (what === 'locks') {
      const { LiveState } = await import('./live.js')
      const live = new LiveState(kit)
      closers.push(() => live.close())
      // a refresh that failed (etcd away for a moment) is said, and the watch goes on: the next change retries
      live.on('error', (err) => io.stderr.write(`etcdkit: ${printable(err.message)}\n`))
      let last = JSON.stringify((await within(kit, flags, 'reading', live.ready())).queues)
      live.on('snapshot', (s) => {
        const now = JSON.stringify(s.queues)
        if (now === last) return
        last = now
        for (const q of s.queues)
          line(
            { type: q.kind, name: q.name, contenders: q.contenders },
            `${q.kind} ${q.name}: ${q.contenders.map((c) => `${c.lease} ${processLabel(c.process)}`).join(' <- ') || '(free)'}`,
          )
      })
    } else throw new UsageError(`watch what? ${JSON.stringify(what)}: expected services, config or locks`)
    io.stderr.write(`watching ${what} (Ctrl-C to stop)\n`)
    await io.interrupted
    return 0
  } finally {
    for (const close of closers) close()
  }
}

const consoleCommand: Command = async (kit, args, flags, io) => {
  arity(args, 0, 0, 'console [--port 8087] [--host 127.0.0.1] [--write] [--token t]')
  const port = flags.port === undefined ? 8087 : Number(flags.port)
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw new UsageError(`--port ${JSON.stringify(flags.port)}: expected 0 to 65535`)
  const web = await startConsole(kit, {
    port,
    host: flags.host ?? '127.0.0.1',
    hostGiven: flags.host !== undefined,
    write: flags.write ?? false,
    token: flags.token ?? io.env.ETCDKIT_CONSOLE_TOKEN,
    user: operator(flags, io.env),
    // each write through the console, on its own line: who, what, which key
    audit: (e) =>
      io.stdout.write(
        `${e.at} ${printable(e.writer)} ${e.action} ${printable(e.key)}${e.detail ? ` (${printable(e.detail)})` : ''}\n`,
      ),
    startTimeout: deadline(flags),
  })
  io.stdout.write(`etcdkit console at ${web.url}${flags.write ? ' (read-write)' : ' (read-only)'}\n`)
  try {
    await io.interrupted
  } finally {
    await web.close()
  }
  return 0
}

export const commands: Record<string, Command> = {
  services,
  locks: queueCommand('lock'),
  elections: queueCommand('election'),
  config,
  watch,
  console: consoleCommand,
  flags: flagsCommand,
  drain,
}
