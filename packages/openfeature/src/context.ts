// What the kit knows about this instance, as OpenFeature evaluation context (the user's context wins).
import { hostname } from 'node:os'
import type { EtcdKit, Registration } from '@etcdkit/core'
import type { EvaluationContext, EvaluationContextValue } from '@openfeature/server-sdk'
import type { InstanceKey } from './reads.js'

/** Where the instance facts come from; see `EtcdKitFlagProviderOptions`. */
export interface InstanceSource {
  kit: EtcdKit
  registration: Registration | (() => Registration | undefined) | undefined
  instanceId: string | undefined
}

/** How long the facts read from `kit.health()` are reused: registrations change rarely, evaluations often. */
const REFRESH_MS = 1_000

/**
 * The instance context: `service`, `address`, `zone`, `version`, `metadata` (the registration's metadata)
 * and `targetingKey` (the instance id: `{service}/{address}` once registered, else `{hostname}/{pid}`).
 * Built from the kit without I/O and reused for a second; only flags with targeting rules read it.
 */
export class InstanceContext {
  readonly #source: InstanceSource
  #context: EvaluationContext | undefined
  #timer: NodeJS.Timeout | undefined

  constructor(source: InstanceSource) {
    this.#source = source
  }

  /** The instance context now (rebuilt at most once a second: a timer marks it out of date, not a clock read per call). */
  get current(): EvaluationContext {
    if (this.#context === undefined) {
      this.#context = this.#build()
      this.#timer ??= setInterval(() => {
        this.#context = undefined
      }, REFRESH_MS)
      this.#timer.unref()
    }
    return this.#context
  }

  /**
   * The evaluation context for a rule that may read the instance facts `keys`: the caller's context as is
   * when it already has each of them (or the instance has none of them), else a copy of it with the
   * missing ones added. The caller wins: a key it sets (not `undefined`) is never replaced.
   */
  fill(context: EvaluationContext, keys: readonly InstanceKey[]): EvaluationContext {
    const instance = this.current
    let out: Record<string, EvaluationContextValue> | undefined
    for (const key of keys) {
      const value = instance[key]
      if (value === undefined || context[key] !== undefined) continue
      out ??= Object.assign({}, context)
      out[key] = value
    }
    return (out as EvaluationContext | undefined) ?? context
  }

  /** Stops the refresh timer. */
  close() {
    clearInterval(this.#timer)
    this.#timer = undefined
    this.#context = undefined
  }

  #build(): EvaluationContext {
    const { kit, instanceId } = this.#source
    const given = this.#source.registration
    const registration = typeof given === 'function' ? given() : given
    const out: Record<string, EvaluationContextValue> = {}
    let service = registration?.service ?? kit.serviceName
    let address = registration?.address
    if (address === undefined && !kit.closed) {
      // registrations made by a framework integration: service and address only (core keeps their metadata)
      const own = kit.health().registrations.find((r) => service === undefined || r.service === service)
      service ??= own?.service
      address = own?.address
    }
    if (service !== undefined) out.service = service
    if (address !== undefined) out.address = address
    const metadata = registration?.metadata
    if (metadata !== undefined) {
      const plain: Record<string, EvaluationContextValue> = {}
      for (const [name, value] of Object.entries(metadata)) {
        if (value === undefined || value === null) continue
        if (['string', 'number', 'boolean'].includes(typeof value))
          plain[name] = value as string | number | boolean
        else if (Array.isArray(value)) plain[name] = value.filter((v) => typeof v === 'string')
      }
      out.metadata = plain
      if (typeof metadata.zone === 'string') out.zone = metadata.zone
      if (typeof metadata.version === 'string') out.version = metadata.version
    }
    out.targetingKey =
      instanceId ??
      (service !== undefined && address !== undefined
        ? `${service}/${address}`
        : `${hostname()}/${process.pid}`)
    return out
  }
}
