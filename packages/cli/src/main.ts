// `etcdkit <command>`: parses the command line, connects a kit, runs the command, and maps failures to exit
// codes (0 ok, 1 failed, 2 bad usage, 130 interrupted).
import { setTimeout as sleep } from 'node:timers/promises'
import { parseArgs } from 'node:util'
import { EtcdKit, EtcdKitError } from '@etcdkit/core'
import { commands, deadline, type Io } from './commands.js'
import {
  CONNECTION_HELP,
  CONNECTION_OPTIONS,
  kitOptions,
  reach,
  transportFailure,
  unreachable,
} from './connect.js'
import { UsageError } from './errors.js'
import { printable } from './table.js'

export type { Io } from './commands.js'

export const USAGE = `etcdkit: services, locks, elections and configuration in etcd, as etcdkit services see them

Usage: etcdkit <command> [arguments] [flags]

Commands:
  services [service]                  services, their instances and registry dialect, lease TTL left and owning
                                      process, in every registry dialect (--dialect etcd|kratos|kitex|hertz|go-micro:
                                      one dialect's only; go-zero with a service named)
  locks [prefix]                      lock holders and waiters, in queue order
  elections [prefix]                  election leaders and candidates, in queue order
  config list [prefix]                the config tree (keys and values)
  config get <key>                    one key's value          (--service s: the service's override)
  config set <key> <value>            write one key            (--service s)
  config delete <key>                 delete one key           (--service s)
  config history <key>                every value etcd still keeps, with who wrote it   (--service s --limit n)
  config rollback <key> <revision>    write a past value back, only if the key did not change meanwhile
                                      (--service s --expect r: or only if unchanged since revision r)
  drain <service> <address>           ask the instance's owning kit to take it out of traffic (it writes weight 0)
                                      (--undo: withdraw the request; the owner restores its weight)
  flags list|get|set|enable|disable|delete|history|rollback
                                      feature flags (OpenFeature, flagd format): \`etcdkit flags\` for its usage
  watch [services|config|locks]       a live stream of changes, one line each, until interrupted
  console                             a live web console       (--port 8087 --host 127.0.0.1 --write --token t)

Output: a table, or --json.

${CONNECTION_HELP}
`

const OPTIONS = {
  ...CONNECTION_OPTIONS,
  json: { type: 'boolean' },
  service: { type: 'string' },
  limit: { type: 'string' },
  expect: { type: 'string' },
  port: { type: 'string' },
  host: { type: 'string' },
  write: { type: 'boolean' },
  undo: { type: 'boolean' },
  token: { type: 'string' },
  dialect: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const

/** The exit code of a command the user interrupted before it was done starting (128 + SIGINT). */
export const INTERRUPTED = 130
/** How long an interrupted command may take to end by itself (a `watch` or `console` closing). */
const WIND_DOWN_MS = 500

/** Runs one command line; resolves with the exit code. */
export async function run(argv: readonly string[], io: Io): Promise<number> {
  let kit: EtcdKit | undefined
  let ms = deadline({})
  try {
    const { values, positionals } = parseArgs({
      args: [...argv],
      options: OPTIONS,
      allowPositionals: true,
      strict: true,
    })
    ms = deadline(values)
    const [name, ...args] = positionals
    if (values.help || name === undefined || name === 'help') {
      io.stdout.write(USAGE)
      return name === undefined && !values.help ? 2 : 0
    }
    const command = commands[name as keyof typeof commands]
    if (!Object.hasOwn(commands, name) || command === undefined)
      throw new UsageError(`unknown command ${JSON.stringify(name)}`)
    const k = new EtcdKit(await kitOptions(values, io.env, io.password))
    kit = k
    // every command: etcd asked for its status (one message for a refused port and a silent server) while
    // the command checks its arguments and starts
    const reached = reach(k, ms)
    const work = Promise.all([reached, command(k, args, values, io)]).then(([, code]) => code ?? 0)
    work.catch(() => {}) // abandoned on an interrupt: its failure is not news
    // the user's interrupt ends any command at any moment, starting up included
    const stop = io.interrupted.then(() => 'interrupted' as const)
    const first = await Promise.race([work, stop])
    if (first !== 'interrupted') return first
    const ended = await Promise.race([work, sleep(WIND_DOWN_MS, 'late' as const)])
    if (ended !== 'late') return ended
    io.stderr.write('etcdkit: interrupted\n')
    return INTERRUPTED
  } catch (err) {
    if (err instanceof UsageError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      io.stderr.write(`etcdkit: ${(err as Error).message}\nRun \`etcdkit --help\` for usage.\n`)
      return 2
    }
    if (err instanceof EtcdKitError && err.code === 'ETCDKIT_INVALID_ARGUMENT') {
      io.stderr.write(`etcdkit: ${printable(err.message)}\n`)
      return 2
    }
    const why = kit && transportFailure(err, ms)
    io.stderr.write(
      `etcdkit: ${printable(describe(kit && why ? unreachable(kit, why, undefined, err) : err))}\n`,
    )
    return 1
  } finally {
    await kit?.close()
  }
}

function describe(err: unknown): string {
  if (!(err instanceof Error)) return String(err)
  const code = (err as { code?: unknown }).code
  return typeof code === 'string' && code.startsWith('ETCDKIT_') ? `${err.message} (${code})` : err.message
}
