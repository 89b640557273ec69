import {
  ClosedError,
  type ConfigChange,
  type ConfigValue,
  EtcdKit,
  EtcdUnavailableError,
  InvalidArgumentError,
  NoEtcdKitError,
} from '@etcdkit/core'
import { getDefaultKit } from '@etcdkit/core/integration'
import { className, label, legacyMembers, type Member } from './metadata.js'

type ConfigMember = Extract<Member, { kind: 'config' }>

/** One `@Config` member of one instance: the handle its reads come from. */
interface ConfigSlot {
  readonly member: ConfigMember
  /** The handle in use, or the last one (closed with its kit: it keeps its last good value). */
  handle: ConfigValue<unknown> | undefined
  /** Whether `handle` is open: reads take the fast path. */
  live: boolean
}

/** What an instance (or a class, for static members) is bound to, and the handles it holds. */
class Binding {
  /** The kit given to `bindEtcdKit`; `undefined`: the default kit. */
  explicit: EtcdKit | undefined
  /** The kit the handles below are open on. */
  kit: EtcdKit | undefined
  /** Members registered by standard decorators as the instance was constructed. */
  readonly registered: Member[] = []
  readonly configs = new Map<string | symbol, ConfigSlot>()
  handles: ConfigValue<unknown>[] = []
}

const bindings = new WeakMap<object, Binding>()

function bindingOf(instance: object): Binding {
  let binding = bindings.get(instance)
  if (!binding) {
    binding = new Binding()
    bindings.set(instance, binding)
  }
  return binding
}

function membersOf(instance: object, binding: Binding): Member[] {
  const seen = new Set<string>()
  const out: Member[] = []
  for (const m of [...legacyMembers(instance), ...binding.registered]) {
    const id = `${m.kind}:${String(m.member)}:${m.kind === 'lock' ? m.name : m.key}`
    if (seen.has(id)) continue
    seen.add(id)
    out.push(m)
  }
  return out
}

function checkInstance(instance: unknown, what: string): object {
  if ((typeof instance !== 'object' && typeof instance !== 'function') || instance === null)
    throw new InvalidArgumentError(
      `${what}: expected an object with decorated members, got ${String(instance)}`,
    )
  return instance
}

/**
 * Binds the decorated members of `instance` to `kit`: its `@Config` properties read `kit`'s configuration,
 * its `@OnConfigChange` methods are called on its changes (from now on), its `@WithLock` methods take
 * `kit`'s locks. Without `kit`, the instance follows the default kit (the one @etcdkit/fastify or
 * @etcdkit/express created or was given), and is bound now if there is one. Binding again replaces the
 * previous binding. In legacy mode with class fields defined on the instance (`useDefineForClassFields`,
 * TypeScript's default from target ES2022), call this in the constructor: it turns the fields into the
 * live getters.
 */
export function bindEtcdKit(instance: object, kit?: EtcdKit): void {
  checkInstance(instance, 'bindEtcdKit')
  if (kit !== undefined) {
    if (!(kit instanceof EtcdKit))
      throw new InvalidArgumentError(`bindEtcdKit: invalid kit ${String(kit)}: expected an EtcdKit`)
    if (kit.closed) throw new InvalidArgumentError('bindEtcdKit: the kit given is already closed')
  }
  const binding = bindingOf(instance)
  binding.explicit = kit
  deactivate(binding)
  installAccessors(instance, binding)
  const use = kit ?? getDefaultKit()
  if (use) activate(instance, binding, use)
}

/**
 * Stops `@OnConfigChange` calls and closes the instance's config handles; `@Config` properties keep their
 * last value until the instance is used again (then it follows the default kit). Idempotent.
 */
export function unbindEtcdKit(instance: object): void {
  const binding = bindings.get(checkInstance(instance, 'unbindEtcdKit'))
  if (!binding) return
  binding.explicit = undefined
  deactivate(binding)
}

export interface ConfigReadyOptions {
  /**
   * How long to wait for the first read from etcd, in ms; then the call rejects with
   * `ETCDKIT_ETCD_UNAVAILABLE` (the properties keep their defaults meanwhile). @default no limit
   */
  timeout?: number
  /** Stops waiting: the call rejects with the signal's reason. */
  signal?: AbortSignal
}

/**
 * Resolves once every `@Config` property and `@OnConfigChange` handler of `instance` reflects etcd (the
 * kit's first read of the config prefix is done), binding the instance first if it is not bound (to the
 * default kit, as a read would). Until then the properties hold their defaults. Resolves at once for an
 * instance with no such members; rejects with `ETCDKIT_ETCD_UNAVAILABLE` after `timeout`, and with
 * `ETCDKIT_CLOSED` when the kit closes first.
 */
export async function configReady(instance: object, options: ConfigReadyOptions = {}): Promise<void> {
  const target = checkInstance(instance, 'configReady')
  const { timeout, signal } = options
  if (timeout !== undefined && !(typeof timeout === 'number' && timeout > 0 && timeout <= 2 ** 31 - 1))
    throw new InvalidArgumentError(
      `configReady: invalid timeout ${String(timeout)}: expected milliseconds in (0, 2^31 - 1]`,
    )
  const binding = bindingOf(target)
  const members = membersOf(target, binding).flatMap((m) => (m.kind === 'lock' ? [] : [m]))
  if (members.length === 0) return
  const keys = [...new Set(members.map((m) => m.key))]
  signal?.throwIfAborted()
  let timer: NodeJS.Timeout | undefined
  let onAbort: (() => void) | undefined
  const stop = new Promise<never>((_resolve, reject) => {
    if (timeout !== undefined) {
      timer = setTimeout(
        () =>
          reject(
            new EtcdUnavailableError(
              `configReady: the configuration of ${className(target)} ` +
                `(${keys.map((k) => JSON.stringify(k)).join(', ')}) was not read from etcd within ${timeout} ms`,
            ),
          ),
        timeout,
      )
    }
    onAbort = () => reject(signal?.reason)
    signal?.addEventListener('abort', onAbort, { once: true })
  })
  stop.catch(() => {})
  try {
    for (;;) {
      if (!binding.kit || binding.kit.closed) {
        const kit = binding.explicit ?? getDefaultKit()
        if (!kit) throw noKit(target, members[0]!.member, 'configReady')
        if (kit.closed) throw new ClosedError('the kit')
        rebind(target, binding, kit)
      }
      const handles = binding.handles
      try {
        await Promise.race([Promise.all(handles.map((h) => h.ready)), stop])
        return
      } catch (err) {
        // rebound meanwhile (the handles awaited were closed for new ones): wait for the new ones
        if (binding.handles !== handles && binding.kit && !binding.kit.closed && err instanceof ClosedError)
          continue
        throw err
      }
    }
  } finally {
    clearTimeout(timer)
    if (onAbort) signal?.removeEventListener('abort', onAbort)
  }
}

/** The kit `instance`'s members use right now, binding it to the default kit if it is not bound yet. */
export function kitFor(instance: unknown, member: string | symbol, decorator: string): EtcdKit {
  const target = checkInstance(instance, `${decorator} ${String(member)}`)
  const binding = bindingOf(target)
  if (binding.explicit) return binding.explicit // a closed one makes the call fail with ETCDKIT_CLOSED
  if (binding.kit && !binding.kit.closed) return binding.kit
  const kit = getDefaultKit()
  if (!kit) throw noKit(target, member, decorator)
  rebind(target, binding, kit)
  return kit
}

/** Registers a member of a standard-decorated instance as it is constructed. */
export function registerMember(instance: object, member: Member) {
  const binding = bindingOf(instance)
  binding.registered.push(member)
  if (member.kind === 'config') installAccessor(instance, binding, member)
}

/** A `@Config` read through the prototype's getter (legacy mode, before the instance got its own). */
export function readConfig(instance: object, member: ConfigMember): unknown {
  const binding = bindingOf(instance)
  installAccessors(instance, binding)
  return slowRead(instance, binding, slotOf(binding, member))
}

/** Why assigning a `@Config` property fails. */
export function readOnly(instance: object, member: ConfigMember): InvalidArgumentError {
  return new InvalidArgumentError(
    `${label(instance, member.member)} is the live @Config(${JSON.stringify(member.key)}) value and cannot be ` +
      'assigned: give a fallback as the default option, and write configuration to etcd (kit.config.set)',
  )
}

function noKit(instance: object, member: string | symbol, decorator: string): NoEtcdKitError {
  return new NoEtcdKitError(
    `${label(instance, member)} (${decorator}) has no EtcdKit: bind one with bindEtcdKit(instance, kit), or ` +
      'register @etcdkit/fastify or @etcdkit/express first (their kit becomes the default)',
  )
}

function slotOf(binding: Binding, member: ConfigMember): ConfigSlot {
  let slot = binding.configs.get(member.member)
  if (!slot) {
    slot = { member, handle: undefined, live: false }
    binding.configs.set(member.member, slot)
  }
  return slot
}

function installAccessors(instance: object, binding: Binding) {
  for (const member of membersOf(instance, binding))
    if (member.kind === 'config') installAccessor(instance, binding, member)
}

const kOurs = Symbol('@etcdkit/decorators.accessor')

/**
 * Gives `instance` its own getter for a `@Config` member, replacing the data property a class field put
 * there (standard decorators; legacy ones with define semantics). The getter is the whole cost of a read
 * while the handle is open: a closure variable, a flag and the handle's `current`.
 */
function installAccessor(instance: object, binding: Binding, member: ConfigMember) {
  const slot = slotOf(binding, member)
  const own = Object.getOwnPropertyDescriptor(instance, member.member)
  if (own?.get && (own.get as { [kOurs]?: boolean })[kOurs]) return
  if (own && 'value' in own && own.value !== undefined) throw readOnly(instance, member)
  const get = () => (slot.live ? slot.handle!.current : slowRead(instance, binding, slot))
  ;(get as { [kOurs]?: boolean })[kOurs] = true
  Object.defineProperty(instance, member.member, {
    get,
    set(_value: unknown) {
      throw readOnly(instance, member)
    },
    enumerable: own?.enumerable ?? false,
    configurable: true,
  })
}

function slowRead(instance: object, binding: Binding, slot: ConfigSlot): unknown {
  if (slot.live) return slot.handle!.current
  const { explicit } = binding
  let kit: EtcdKit | undefined
  if (explicit) kit = explicit.closed ? undefined : explicit
  else kit = binding.kit && !binding.kit.closed ? binding.kit : getDefaultKit()
  if (kit) {
    rebind(instance, binding, kit)
    if (slot.live) return slot.handle!.current
  }
  // the kit closed: its values stay at their last good value, like a closed ConfigValue
  if (slot.handle) return slot.handle.current
  if (explicit) return slot.member.options.default
  throw noKit(instance, slot.member.member, `@Config(${JSON.stringify(slot.member.key)})`)
}

function rebind(instance: object, binding: Binding, kit: EtcdKit) {
  deactivate(binding)
  installAccessors(instance, binding)
  activate(instance, binding, kit)
}

function deactivate(binding: Binding) {
  for (const slot of binding.configs.values()) slot.live = false
  const handles = binding.handles
  binding.handles = []
  binding.kit = undefined
  for (const handle of handles) handle.close()
}

function activate(instance: object, binding: Binding, kit: EtcdKit) {
  binding.kit = kit
  const members = membersOf(instance, binding)
  const byKey = new Map<string, ConfigValue<unknown>>()
  const open = (key: string, options: ConfigMember['options']) => {
    const handle = kit.config.value(key, options as { parse: (text: string) => unknown })
    binding.handles.push(handle)
    return handle
  }
  for (const member of members) {
    if (member.kind !== 'config') continue
    const slot = slotOf(binding, member)
    const handle = open(member.key, member.options)
    slot.handle = handle
    slot.live = true
    handle.once('close', () => {
      if (slot.handle === handle) slot.live = false
    })
    if (!byKey.has(member.key)) byKey.set(member.key, handle)
  }
  for (const member of members) {
    if (member.kind !== 'change') continue
    // a handler with no options of its own gets the value as the instance's @Config of that key parses it
    const handle =
      member.options === undefined
        ? (byKey.get(member.key) ?? open(member.key, {}))
        : open(member.key, member.options)
    const where = label(instance, member.member)
    handle.on('change', (value: unknown, change: ConfigChange) => {
      const fail = (err: unknown) =>
        kit.logger.error({ err, key: member.key, handler: where }, '@OnConfigChange handler failed')
      try {
        const method = (instance as Record<string | symbol, unknown>)[member.member]
        if (typeof method !== 'function') throw new TypeError(`${where} is not a method`)
        const result: unknown = method.call(instance, value, change)
        if (result instanceof Promise) result.catch(fail)
      } catch (err) {
        fail(err)
      }
    })
  }
}
