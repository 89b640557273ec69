import { AsyncLocalStorage } from 'node:async_hooks'
import { type EtcdKit, type HeldLock, InvalidArgumentError } from '@etcdkit/core'
import { checkLockName } from '@etcdkit/core/integration'
import { kitFor, registerMember } from './binding.js'
import {
  copyFunctionMetadata,
  isStandardContext,
  type Member,
  recordLegacy,
  recordStandard,
} from './metadata.js'

/** A method `@WithLock` can decorate: it returns a promise (the lock is held until it settles). */
export type LockedMethod = (...args: never[]) => Promise<unknown>

export interface WithLockOptions {
  /**
   * Whether a call waits its turn for the lock (first come, first served across the cluster). With
   * `false`, a call made while another instance (or another call here) holds or waits for the lock does
   * not run the method: it resolves to `onBusy`'s result, or `undefined`. @default true
   */
  wait?: boolean
  /**
   * With `wait`, how long a call waits for the lock before it rejects with `ETCDKIT_LOCK_TIMEOUT`, in ms.
   * @default no limit
   */
  timeout?: number
  /**
   * With `wait: false`, called instead of the method when the lock is busy, with the same `this` and
   * arguments; the call resolves to its result. @default none: the call resolves to `undefined`
   */
  onBusy?: (...args: never[]) => unknown
}

/** Applies to a method in either decorator mode. */
export interface WithLockDecorator {
  /** Standard (TC39) decorators. */
  <This, F extends LockedMethod>(target: F, context: ClassMethodDecoratorContext<This>): F
  /** `experimentalDecorators`. */
  <F extends LockedMethod>(
    target: object,
    member: string | symbol,
    descriptor: TypedPropertyDescriptor<F>,
  ): TypedPropertyDescriptor<F>
}

interface Frame {
  readonly kit: EtcdKit
  readonly held: HeldLock
  readonly parent: Frame | undefined
}

const frames = new AsyncLocalStorage<Frame>()

/**
 * The lock held by the `@WithLock` method this code runs in (the innermost one, or the one named `name`),
 * or `undefined` outside of one. Its `signal` aborts the moment the lock is lost (or released), its
 * `fencingToken` grows with every holder, and `ifOwner()` writes only while the lock is still held.
 */
export function currentLock(name?: string): HeldLock | undefined {
  for (let frame = frames.getStore(); frame; frame = frame.parent)
    if (name === undefined || frame.held.name === name) return frame.held
  return undefined
}

function checkOptions(
  name: string,
  options: unknown,
): Required<Pick<WithLockOptions, 'wait'>> & WithLockOptions {
  const bad = (why: string) => new InvalidArgumentError(`@WithLock(${JSON.stringify(name)}): ${why}`)
  if (options === undefined) return { wait: true }
  if (typeof options !== 'object' || options === null) throw bad(`invalid options ${String(options)}`)
  const known = new Set(['wait', 'timeout', 'onBusy'])
  for (const key of Object.keys(options))
    if (!known.has(key)) throw bad(`unknown option ${JSON.stringify(key)} (known: wait, timeout, onBusy)`)
  const { wait = true, timeout, onBusy } = options as WithLockOptions
  if (typeof wait !== 'boolean') throw bad(`invalid wait ${String(wait)}: expected a boolean`)
  if (timeout !== undefined && !(typeof timeout === 'number' && Number.isFinite(timeout) && timeout > 0))
    throw bad(`invalid timeout ${String(timeout)}: expected a positive number of milliseconds`)
  if (timeout !== undefined && !wait) throw bad('timeout applies only when waiting (wait: true)')
  if (onBusy !== undefined && typeof onBusy !== 'function')
    throw bad(`invalid onBusy ${String(onBusy)}: expected a function`)
  if (onBusy !== undefined && wait) throw bad('onBusy applies only with wait: false')
  return { wait, timeout, onBusy }
}

/**
 * Runs the method only while this process holds the cluster-wide lock `name` (`kit.lock(name)`: fair,
 * compatible with `etcdctl lock` and Go's `concurrency.Mutex`). The kit is the one bound to the instance
 * (`bindEtcdKit`) or the default kit. Inside the method, `currentLock()` gives the held lock. A call made
 * while the same lock is already held by an enclosing `@WithLock` call on the same kit runs at once (no
 * self-deadlock).
 */
export function WithLock(name: string, options?: WithLockOptions): WithLockDecorator {
  checkLockName(name, '@WithLock lock name')
  const { wait, timeout, onBusy } = checkOptions(name, options)
  const decorator = (target: unknown, context: unknown, descriptor?: PropertyDescriptor): unknown => {
    if (isStandardContext(context)) {
      if (context.kind !== 'method' || typeof target !== 'function')
        throw new InvalidArgumentError(
          `@WithLock(${JSON.stringify(name)}) applies to methods, not to a ${context.kind}`,
        )
      const member = context.name
      const record: Member = { kind: 'lock', member, name }
      recordStandard(context.metadata, record)
      context.addInitializer(function (this: unknown) {
        if ((typeof this === 'object' && this !== null) || typeof this === 'function')
          registerMember(this, record)
      })
      return wrap(target, member)
    }
    const member = context as string | symbol
    if (typeof descriptor?.value !== 'function')
      throw new InvalidArgumentError(
        `@WithLock(${JSON.stringify(name)}) applies to methods: ${String(member)} is not one`,
      )
    recordLegacy(target as object, { kind: 'lock', member, name })
    descriptor.value = wrap(descriptor.value as Function, member)
    return descriptor
  }

  function wrap(method: Function, member: string | symbol): Function {
    const decoratorName = `@WithLock(${JSON.stringify(name)})`
    const run = (self: unknown, args: unknown[], kit: EtcdKit, held: HeldLock) =>
      frames.run({ kit, held, parent: frames.getStore() }, () => method.apply(self, args) as unknown)
    const locked = async function (this: unknown, ...args: unknown[]): Promise<unknown> {
      const kit = kitFor(this, member, decoratorName)
      for (let frame = frames.getStore(); frame; frame = frame.parent) {
        if (frame.kit === kit && frame.held.name === name && frame.held.held) return method.apply(this, args)
      }
      const lock = kit.lock(name)
      if (wait)
        return lock.run((held) => run(this, args, kit, held), timeout === undefined ? undefined : { timeout })
      const held = await lock.tryAcquire()
      if (!held) return onBusy ? (onBusy as Function).apply(this, args) : undefined
      try {
        return await run(this, args, kit, held)
      } finally {
        await held.release()
      }
    }
    copyFunctionMetadata(method, locked)
    return locked
  }

  return decorator as WithLockDecorator
}
