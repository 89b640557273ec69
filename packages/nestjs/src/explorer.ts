// Finds every provider and controller that uses @WithLock, @Config or @OnConfigChange and binds it to the
// module's kit, then waits (bounded) for the first read of their configuration.
import { type EtcdKit, EtcdUnavailableError } from '@etcdkit/core'
import { bindEtcdKit, configReady, decoratedMembers, unbindEtcdKit } from '@etcdkit/decorators'
import type { OnModuleInit } from '@nestjs/common'
import type { DiscoveryService } from '@nestjs/core'
import { type CheckedModuleOptions, NAME } from './options.js'

/** One provider or controller instance the explorer bound. */
interface Bound {
  readonly instance: object
  readonly name: string
  /** Configuration keys it reads (`@Config`, `@OnConfigChange`). */
  readonly keys: readonly string[]
}

/**
 * Binds the decorated providers and controllers to the kit at module init. This module's init runs before
 * every other module's, global or not (hook-order.ts), so their `onModuleInit` already reads etcd's values.
 * Request- and transient-scoped providers have no single instance to bind: they are reported, and their
 * members use the default kit (this one) when called.
 */
export class EtcdKitExplorer implements OnModuleInit {
  readonly #bound: Bound[] = []
  #ready = false

  constructor(
    private readonly discovery: DiscoveryService,
    private readonly kit: EtcdKit,
    private readonly options: CheckedModuleOptions,
  ) {}

  /** The instances bound, for diagnostics. */
  get bound(): readonly Bound[] {
    return this.#bound
  }

  /** Whether every bound `@Config` value has been read from etcd. */
  get configLoaded(): boolean {
    return this.#ready
  }

  async onModuleInit(): Promise<void> {
    const seen = new Set<object>()
    for (const wrapper of [...this.discovery.getProviders(), ...this.discovery.getControllers()]) {
      const instance: unknown = wrapper.instance
      if (typeof instance !== 'object' || instance === null || seen.has(instance)) continue
      seen.add(instance)
      const members = decoratedMembers(instance)
      if (members.length === 0) continue
      const name = String(wrapper.name)
      if (!wrapper.isDependencyTreeStatic()) {
        this.kit.logger.warn(
          { provider: name },
          `${NAME}: a request- or transient-scoped provider is not bound; its decorated members use the default kit`,
        )
        continue
      }
      bindEtcdKit(instance, this.kit)
      const keys = [...new Set(members.flatMap((m) => (m.kind === 'lock' ? [] : [m.key])))]
      this.#bound.push({ instance, name, keys })
    }
    await this.#waitForConfig()
  }

  async #waitForConfig() {
    const { timeout, required } = this.options.configReady
    const reading = this.#bound.filter((b) => b.keys.length > 0)
    const signal = AbortSignal.timeout(timeout)
    const results = await Promise.allSettled(reading.map((b) => configReady(b.instance, { signal })))
    const late = reading.filter((_b, i) => results[i]!.status === 'rejected')
    if (late.length === 0) {
      this.#ready = true
      return
    }
    const keys = [...new Set(late.flatMap((b) => b.keys))]
    const what = `the configuration (${keys.map((k) => JSON.stringify(k)).join(', ')}) of ${late
      .map((b) => b.name)
      .join(', ')} was not read from etcd within ${timeout} ms`
    if (required) {
      // startup fails: nothing of this kit may outlive it
      for (const b of this.#bound) unbindEtcdKit(b.instance)
      await this.kit.close()
      throw new EtcdUnavailableError(`${NAME}: ${what} (configReady.required is set)`)
    }
    this.kit.logger.warn(
      { keys },
      `${NAME}: ${what}: starting with the defaults; the values apply as soon as etcd answers`,
    )
    void Promise.all(late.map((b) => configReady(b.instance))).then(
      () => {
        this.#ready = true
      },
      () => {},
    )
  }
}
