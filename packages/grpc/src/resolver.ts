import {
  DIALECT_NAMES,
  type DialectName,
  type DialectReadSpec,
  type Discovery,
  type EtcdKit,
  type Instance,
  InvalidArgumentError,
} from '@etcdkit/core'
import { checkKeys, checkServiceName } from '@etcdkit/core/integration'
import { type ChannelOptions, experimental, status } from '@grpc/grpc-js'
import { LEAST_LOADED_POLICY, registerLeastLoadedPolicy } from './least-loaded.js'
import { goZeroTarget, serviceOfPrefix, targetPath } from './target.js'

type Resolver = experimental.Resolver
type ResolverListener = experimental.ResolverListener
type GrpcUri = experimental.GrpcUri
type Endpoint = experimental.Endpoint
type ServiceConfig = Extract<NonNullable<Parameters<ResolverListener>[2]>, { ok: true }>['value']

export interface EtcdResolverOptions {
  /** The scheme of targets naming a service under the kit's `registryPrefix` (`etcdv3:///hello`). @default "etcdv3" */
  serviceScheme?: string
  /**
   * The scheme of targets naming the whole key prefix, like Go's naming/resolver (`etcd:///services/hello`).
   * The prefix must be `{registryPrefix}{service}`. go-zero's own target form,
   * `etcd:///{etcd hosts}?key={Key}`, is read as the go-zero dialect (the kit's etcd is used, whatever the
   * hosts say). Registry dialects have a scheme each, `{prefixScheme}+{dialect}`:
   * `etcd+kratos:///orders`, `etcd+go-zero:///user` (go-zero Key `user.rpc`), `etcd+kitex`, `etcd+hertz`,
   * `etcd+go-micro`. @default "etcd"
   */
  prefixScheme?: string
  /**
   * How channels on these schemes balance calls, unless a channel has a `grpc.service_config` of its own:
   * `'round-robin'` (grpc-js's `round_robin`), or `'least-loaded'` (`etcdkit_least_loaded`: the HTTP
   * client's least-loaded balancer, fed by each call's time and the calls in flight; docs/GRPC.md).
   * @default "round-robin"
   */
  balancer?: 'round-robin' | 'least-loaded'
}

/** Registered resolvers: which kit serves which scheme (grpc-js keeps one resolver class per scheme, globally). */
export interface EtcdResolverRegistration {
  readonly schemes: readonly string[]
  /**
   * Stops new channels on these schemes from using this kit (they fail to be created), unless another kit
   * has been registered for them since. Channels already resolving keep their watch until they are closed.
   */
  unregister(): void
}

interface SchemeBinding {
  kit: EtcdKit
  /**
   * Whether the target's path is the service name (`etcdv3`), the full key prefix (`etcd`), or the service
   * name in a registry dialect (`etcd+kratos`).
   */
  form: 'service' | 'prefix' | 'dialect'
  dialect?: DialectName
  /** The service config given to channels that have none of their own. */
  serviceConfig: ServiceConfig
}

/** The kit per scheme: the one resolver class, registered for every scheme, looks its kit up here. */
const bindings = new Map<string, SchemeBinding>()

const ROUND_ROBIN: ServiceConfig = { loadBalancingConfig: [{ round_robin: {} }], methodConfig: [] }
const LEAST_LOADED: ServiceConfig = {
  loadBalancingConfig: [{ [LEAST_LOADED_POLICY]: {} }],
  methodConfig: [],
}

const SCHEME = /^[A-Za-z][A-Za-z0-9+.-]*$/

const show = (value: unknown) => JSON.stringify(value) ?? String(value)

/** The kit, service and dialect a target names; throws an error naming the target when it names none. */
function resolveTarget(target: GrpcUri): { kit: EtcdKit; service: string; dialect?: DialectReadSpec } {
  const uri = experimental.uriToString(target)
  const binding = target.scheme === undefined ? undefined : bindings.get(target.scheme)
  if (!binding) throw new Error(`no EtcdKit is registered for the scheme of target ${show(uri)}`)
  const { kit } = binding
  if (binding.form === 'prefix') {
    // go-zero's "etcd:///h1:2379,h2:2379?key=user.rpc": a prefix never has a query
    const goZero = goZeroTarget(target.path, uri)
    if (goZero) return { kit, service: goZero.service, dialect: { name: 'go-zero', key: goZero.key } }
    const path = targetPath(target.path)
    const service = serviceOfPrefix(path, kit.registryPrefix, uri)
    return { kit, service: checkServiceName(service, `service in target ${show(uri)}`) }
  }
  const service = checkServiceName(targetPath(target.path), `service name in target ${show(uri)}`)
  return binding.dialect ? { kit, service, dialect: binding.dialect } : { kit, service }
}

/** `host:port` or `[v6]:port` as a grpc-js endpoint; undefined for an address with no port (Go allows any `Addr`). */
function endpointOf(address: string): Endpoint | undefined {
  const hostPort = experimental.splitHostPort(address)
  if (!hostPort || hostPort.port === undefined || hostPort.host === '') return undefined
  return { addresses: [{ host: hostPort.host, port: hostPort.port }] }
}

/** gRPC clients skip instances that say they speak another protocol; Go servers usually say nothing. */
function speaksGrpc(instance: Instance): boolean {
  const protocol = instance.metadata.protocol
  return protocol === undefined || protocol === 'grpc'
}

/**
 * A grpc-js resolver over a kit's Discovery: one live view per channel (the kit's one watch stream
 * underneath), every change pushed to the channel's load balancer.
 */
class EtcdResolver implements Resolver {
  readonly #uri: string
  readonly #target: GrpcUri
  readonly #listener: ResolverListener
  readonly #serviceConfig: ServiceConfig | null
  #discovery: Discovery | undefined
  #kit: EtcdKit | undefined
  /** Keys already reported as unusable (warned about once each). */
  readonly #unusable = new Set<string>()
  #failure: string | undefined
  #pending = false

  constructor(target: GrpcUri, listener: ResolverListener, options: ChannelOptions) {
    this.#target = target
    this.#uri = experimental.uriToString(target)
    this.#listener = listener
    // A service config given to the channel is only used when the resolver returns none: leave the choice to it.
    const userConfig =
      options['grpc.service_config'] !== undefined || options['grpc.service_config_disable_resolution'] === 1
    this.#serviceConfig = userConfig
      ? null
      : (bindings.get(target.scheme ?? '')?.serviceConfig ?? ROUND_ROBIN)
  }

  static getDefaultAuthority(target: GrpcUri): string {
    return resolveTarget(target).service
  }

  /**
   * Opens the watch the first time (and after `destroy()`). Later calls do nothing: the watch already pushes
   * every change, and a push answering grpc-js's re-resolution request (sent whenever a connection drops)
   * resets its backoff, so answering each one would loop.
   */
  updateResolution(): void {
    if (this.#discovery || this.#failure !== undefined) return
    this.#open()
    if (this.#failure !== undefined) this.#schedule()
  }

  destroy(): void {
    const discovery = this.#discovery
    this.#discovery = undefined
    discovery?.close()
    this.#failure = undefined
    this.#pending = false
  }

  #open() {
    let discovery: Discovery
    try {
      const { kit, service, dialect } = resolveTarget(this.#target)
      this.#kit = kit
      // as the etcd dialect always was, or in a registry dialect (Kratos: its grpc:// or grpcs:// endpoint)
      discovery = dialect ? kit.discover(service, { dialect, protocol: 'grpc' }) : kit.discover(service)
    } catch (err) {
      const message = (err as Error).message
      this.#failure = message.includes(this.#uri) ? message : `target ${show(this.#uri)}: ${message}`
      return
    }
    this.#discovery = discovery
    discovery.on('change', () => this.#schedule())
    // The kit closed: the channel keeps its last list (round robin ignores an error while it has
    // connections), and a channel that has none fails its calls with this.
    discovery.on('close', () => {
      if (this.#discovery !== discovery) return
      this.#discovery = undefined
      this.#failure = `target ${show(this.#uri)}: the EtcdKit resolving it is closed`
      this.#schedule()
    })
    discovery.ready.then(
      () => this.#schedule(),
      () => {},
    )
  }

  /** Pushes the current state once, after the current tick (grpc-js forbids synchronous callbacks). */
  #schedule() {
    if (this.#pending) return
    this.#pending = true
    process.nextTick(() => {
      if (!this.#pending) return // destroyed meanwhile
      this.#pending = false
      this.#push()
    })
  }

  #push() {
    // the same config with every result: with none, grpc-js would switch the channel to its default policy
    const serviceConfig =
      this.#serviceConfig === null ? null : experimental.statusOrFromValue(this.#serviceConfig)
    if (this.#failure !== undefined) {
      this.#listener(
        experimental.statusOrFromError({ code: status.UNAVAILABLE, details: this.#failure }),
        {},
        serviceConfig,
        this.#failure,
      )
      return
    }
    const discovery = this.#discovery
    // not listed yet: calls wait (up to their deadline) for the first list
    if (!discovery?.loaded) return
    const seen = new Set<string>()
    const endpoints: Endpoint[] = []
    for (const instance of discovery.instances) {
      // weight 0: registered, sent no traffic (a drain without deregistering)
      if (!speaksGrpc(instance) || instance.weight === 0 || seen.has(instance.address)) continue
      seen.add(instance.address)
      const endpoint = endpointOf(instance.address)
      if (endpoint) endpoints.push(endpoint)
      else if (!this.#unusable.has(instance.key)) {
        this.#unusable.add(instance.key)
        this.#kit?.logger.warn(
          { key: instance.key, address: instance.address, target: this.#uri },
          'skipping a registered address that is not "host:port"',
        )
      }
    }
    this.#listener(experimental.statusOrFromValue(endpoints), {}, serviceConfig, '')
    if (endpoints.length === 0) {
      // An empty list alone leaves grpc-js's balancers idle, queueing calls until their deadline; an error
      // (now that the old connections are dropped) makes them fail calls at once with UNAVAILABLE.
      const details = `target ${show(this.#uri)}: no instances of service ${show(discovery.service)} are registered in etcd`
      this.#listener(
        experimental.statusOrFromError({ code: status.UNAVAILABLE, details }),
        {},
        serviceConfig,
        details,
      )
    }
  }
}

/**
 * Makes grpc-js resolve `etcdv3:///{service}` and `etcd:///{registryPrefix}{service}` targets through
 * `kit`'s Discovery, balancing calls round robin (unless the channel has its own `grpc.service_config`).
 *
 * grpc-js keeps one resolver per scheme for the whole process: the kit registered last for a scheme serves
 * every channel created afterwards. Give other kits other schemes (`serviceScheme`, `prefixScheme`).
 */
export function registerEtcdResolver(
  kit: EtcdKit,
  options: EtcdResolverOptions = {},
): EtcdResolverRegistration {
  if (typeof kit?.discover !== 'function')
    throw new InvalidArgumentError(`invalid kit ${show(kit)}: expected an EtcdKit`)
  if (options === null || typeof options !== 'object')
    throw new InvalidArgumentError(`invalid resolver options ${show(options)}: expected an object`)
  checkKeys(options, ['serviceScheme', 'prefixScheme', 'balancer'], 'registerEtcdResolver')
  const serviceScheme = options.serviceScheme ?? 'etcdv3'
  const prefixScheme = options.prefixScheme ?? 'etcd'
  for (const [what, scheme] of [
    ['serviceScheme', serviceScheme],
    ['prefixScheme', prefixScheme],
  ] as const) {
    if (typeof scheme !== 'string' || !SCHEME.test(scheme))
      throw new InvalidArgumentError(
        `invalid ${what} ${show(scheme)}: expected a URI scheme such as "etcdv3"`,
      )
  }
  const balancer = options.balancer ?? 'round-robin'
  if (balancer !== 'round-robin' && balancer !== 'least-loaded')
    throw new InvalidArgumentError(
      `invalid balancer ${show(balancer)}: expected "round-robin" or "least-loaded"`,
    )
  const serviceConfig = balancer === 'least-loaded' ? LEAST_LOADED : ROUND_ROBIN
  registerLeastLoadedPolicy()
  if (serviceScheme === prefixScheme)
    throw new InvalidArgumentError(
      `serviceScheme and prefixScheme must differ (both are ${show(serviceScheme)})`,
    )
  const mine: Array<[string, SchemeBinding]> = [
    [serviceScheme, { kit, form: 'service', serviceConfig }],
    [prefixScheme, { kit, form: 'prefix', serviceConfig }],
    ...DIALECT_NAMES.filter((d) => d !== 'etcd').map((dialect): [string, SchemeBinding] => [
      `${prefixScheme}+${dialect}`,
      { kit, form: 'dialect', dialect, serviceConfig },
    ]),
  ]
  for (const [scheme, binding] of mine) {
    bindings.set(scheme, binding)
    // again each time: another library may have taken the scheme since
    experimental.registerResolver(scheme, EtcdResolver)
  }
  return {
    schemes: mine.map(([scheme]) => scheme),
    unregister() {
      for (const [scheme, binding] of mine) if (bindings.get(scheme) === binding) bindings.delete(scheme)
    },
  }
}
