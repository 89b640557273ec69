// The `etcdkit_least_loaded` load-balancing policy for grpc-js: the HTTP client's least-loaded balancer
// (`LeastLoaded` of @etcdkit/core, the same pure code) over one pick_first leaf per endpoint, the way
// grpc-js's own round_robin is built. The picker counts each call in flight on its endpoint from
// `onCallStarted` to `onCallEnded` and feeds its time to the endpoint's latency estimate.
import { InvalidArgumentError } from '@etcdkit/core'
import { EndpointLoad, LeastLoaded, show } from '@etcdkit/core/integration'
import { type ChannelOptions, connectivityState, experimental, status } from '@grpc/grpc-js'

type Endpoint = experimental.Endpoint
type LoadBalancer = experimental.LoadBalancer
type ChannelControlHelper = experimental.ChannelControlHelper
type Picker = experimental.Picker
type PickArgs = experimental.PickArgs
type PickResult = experimental.PickResult
type StatusOr<T> = experimental.StatusOr<T>
type TypedLoadBalancingConfig = experimental.TypedLoadBalancingConfig

/** The policy's name in a service config: `{"loadBalancingConfig":[{"etcdkit_least_loaded":{}}]}`. */
export const LEAST_LOADED_POLICY = 'etcdkit_least_loaded'

/**
 * Statuses that are the endpoint's fault: counted as slow answers (at least 5x the set's typical latency),
 * so an endpoint that fails fast does not attract calls. Any other status is an answer of the service
 * (NOT_FOUND, INVALID_ARGUMENT, ...), and CANCELLED is the caller giving up: the endpoint was at least that slow.
 */
const FAILURES = new Set<number>([
  status.UNAVAILABLE,
  status.INTERNAL,
  status.UNKNOWN,
  status.DEADLINE_EXCEEDED,
  status.RESOURCE_EXHAUSTED,
])

/** The policy's settings (its JSON object in the service config). */
export interface LeastLoadedPolicyConfig {
  /** Decay time of the latency estimate, in ms. @default 200 */
  decay?: number
  /** How long an endpoint that joins later ramps up to its full share, in ms. @default 10_000 */
  warmUp?: number
}

class LeastLoadedConfig implements TypedLoadBalancingConfig {
  constructor(readonly settings: LeastLoadedPolicyConfig) {}

  getLoadBalancerName(): string {
    return LEAST_LOADED_POLICY
  }

  toJsonObject(): object {
    return { [LEAST_LOADED_POLICY]: { ...this.settings } }
  }

  /** grpc-js calls this for each service config naming the policy; a bad one is refused with its reason. */
  static createFromJson(obj: unknown): LeastLoadedConfig {
    if (obj === null || typeof obj !== 'object' || Array.isArray(obj))
      throw new InvalidArgumentError(`invalid ${LEAST_LOADED_POLICY} config ${show(obj)}: expected an object`)
    const settings: LeastLoadedPolicyConfig = {}
    for (const [key, value] of Object.entries(obj)) {
      if (key !== 'decay' && key !== 'warmUp')
        throw new InvalidArgumentError(
          `invalid ${LEAST_LOADED_POLICY} config: unknown key ${show(key)} (known: decay, warmUp)`,
        )
      if (typeof value !== 'number' || !Number.isFinite(value) || value < (key === 'decay' ? 1 : 0))
        throw new InvalidArgumentError(
          `invalid ${LEAST_LOADED_POLICY} ${key} ${show(value)}: expected a number of ms`,
        )
      settings[key] = value
    }
    return new LeastLoadedConfig(settings)
  }
}

/** An endpoint as the balancer sees it: its load, and once ready, its leaf's picker. */
interface Ready {
  picker?: Picker
  load: EndpointLoad
}

class LeastLoadedPicker implements Picker {
  constructor(
    private readonly lb: LeastLoaded<Ready>,
    private readonly ready: readonly Ready[],
  ) {}

  pick(args: PickArgs): PickResult {
    const chosen = this.lb.next(performance.now(), undefined, this.ready) ?? this.ready[0]!
    const result = chosen.picker!.pick(args)
    if (result.pickResultType !== experimental.PickResultType.COMPLETE) return result
    const { lb } = this
    const { load } = chosen
    const onStarted = result.onCallStarted
    const onEnded = result.onCallEnded
    let started = Number.NaN
    return {
      ...result,
      onCallStarted: () => {
        started = performance.now()
        lb.started(load, started)
        onStarted?.()
      },
      onCallEnded: (code, details, metadata) => {
        if (!Number.isNaN(started)) {
          const now = performance.now()
          if (code === status.CANCELLED) lb.abandoned(load, now - started, now)
          else lb.finished(load, now - started, now, FAILURES.has(code))
        }
        onEnded?.(code, details, metadata)
      },
    }
  }
}

/** One leaf (pick_first over the endpoint's addresses) per endpoint; picks among the ready ones. */
class LeastLoadedBalancer implements LoadBalancer {
  readonly #helper: ChannelControlHelper
  readonly #childHelper: ChannelControlHelper
  #children: experimental.LeafLoadBalancer[] = []
  /** What the balancer knows of each endpoint, kept across address updates (by endpoint). */
  #loads = new Map<string, EndpointLoad>()
  #lb: LeastLoaded<Ready> | undefined
  #settings = ''
  #state = connectivityState.IDLE
  #updatesPaused = false
  #lastError: string | null = null

  constructor(helper: ChannelControlHelper) {
    this.#helper = helper
    this.#childHelper = experimental.createChildChannelControlHelper(helper, {
      updateState: (state, _picker, errorMessage) => {
        // as round_robin does: ask for a new resolution when a connection that was ready is lost
        if (this.#state === connectivityState.READY && state !== connectivityState.READY)
          this.#helper.requestReresolution()
        if (errorMessage) this.#lastError = errorMessage
        this.#update()
      },
    })
  }

  updateAddressList(
    endpoints: StatusOr<Endpoint[]>,
    config: TypedLoadBalancingConfig,
    options: ChannelOptions,
    resolutionNote: string,
  ): boolean {
    if (!(config instanceof LeastLoadedConfig)) return false
    if (!endpoints.ok) {
      if (this.#children.length === 0)
        this.#setState(
          connectivityState.TRANSIENT_FAILURE,
          new experimental.UnavailablePicker(endpoints.error),
          endpoints.error.details,
        )
      return true
    }
    const settings = JSON.stringify(config.settings)
    if (this.#lb === undefined || settings !== this.#settings) {
      this.#settings = settings
      this.#lb = new LeastLoaded<Ready>((r) => r.load, config.settings)
      this.#loads = new Map()
    }
    const loads = new Map<string, EndpointLoad>()
    for (const endpoint of endpoints.value) {
      const key = experimental.endpointToString(endpoint)
      loads.set(key, this.#loads.get(key) ?? new EndpointLoad())
    }
    this.#loads = loads
    // every endpoint of the list, ready or not: one that joins the list later warms up, while endpoints
    // whose connections become ready one after the other at the start do not
    this.#lb.update(
      [...loads.values()].map((load) => ({ load })),
      () => 1,
      performance.now(),
    )
    for (const child of this.#children) child.destroy()
    if (endpoints.value.length === 0) {
      const message = `No addresses resolved. Resolution note: ${resolutionNote}`
      this.#children = []
      this.#setState(
        connectivityState.TRANSIENT_FAILURE,
        new experimental.UnavailablePicker({ details: message }),
        message,
      )
      return true
    }
    this.#updatesPaused = true
    this.#children = endpoints.value.map(
      (endpoint) => new experimental.LeafLoadBalancer(endpoint, this.#childHelper, options, resolutionNote),
    )
    for (const child of this.#children) child.startConnecting()
    this.#updatesPaused = false
    this.#update()
    return true
  }

  /** Recomputes the channel's state and picker from the children's states. */
  #update() {
    if (this.#updatesPaused || this.#lb === undefined) return
    const ready = this.#children.filter((c) => c.getConnectivityState() === connectivityState.READY)
    if (ready.length > 0) {
      const items = ready.map((c) => ({
        picker: c.getPicker(),
        load: this.#loads.get(experimental.endpointToString(c.getEndpoint())) ?? new EndpointLoad(),
      }))
      this.#setState(connectivityState.READY, new LeastLoadedPicker(this.#lb, items), null)
    } else if (this.#children.some((c) => c.getConnectivityState() === connectivityState.CONNECTING)) {
      this.#setState(connectivityState.CONNECTING, new experimental.QueuePicker(this), null)
    } else if (this.#children.some((c) => c.getConnectivityState() === connectivityState.TRANSIENT_FAILURE)) {
      const message = `${LEAST_LOADED_POLICY}: no connection established. Last error: ${this.#lastError}`
      this.#setState(
        connectivityState.TRANSIENT_FAILURE,
        new experimental.UnavailablePicker({ details: message }),
        message,
      )
    } else {
      this.#setState(connectivityState.IDLE, new experimental.QueuePicker(this), null)
    }
    // keep every endpoint connected, as round_robin does: a pick needs ready endpoints to choose from
    for (const child of this.#children)
      if (child.getConnectivityState() === connectivityState.IDLE) child.exitIdle()
  }

  #setState(state: connectivityState, picker: Picker, errorMessage: string | null) {
    this.#state = state
    this.#helper.updateState(state, picker, errorMessage)
  }

  exitIdle(): void {
    // IDLE only with no endpoint to connect to: nothing to do until the resolver gives some
  }

  resetBackoff(): void {
    // no backoff of its own (the leaves' connection backoff is grpc-js's)
  }

  destroy(): void {
    for (const child of this.#children) child.destroy()
    this.#children = []
  }

  getTypeName(): string {
    return LEAST_LOADED_POLICY
  }
}

/**
 * Registers the `etcdkit_least_loaded` policy with grpc-js (process-wide, like resolvers; again on each
 * call, which is harmless). `registerEtcdResolver` calls it.
 */
export function registerLeastLoadedPolicy(): void {
  experimental.registerLoadBalancerType(LEAST_LOADED_POLICY, LeastLoadedBalancer, LeastLoadedConfig)
}
