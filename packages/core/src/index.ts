export { SmoothWeightedRoundRobin } from './balancer.js'
export { Catalog, type CatalogEvents, type CatalogInstance } from './catalog.js'
export {
  Config,
  type ConfigHistoryOptions,
  type ConfigKeyOptions,
  type ConfigRollbackOptions,
  type ConfigSetOptions,
} from './config.js'
export type { ConfigCacheOptions } from './config-cache.js'
export type { ConfigRevision, ConfigRollback } from './config-history.js'
export {
  ConfigObject,
  type ConfigObjectChange,
  type ConfigObjectEvents,
  type ConfigObjectOptions,
  type ConfigTreeObject,
} from './config-object.js'
export {
  type ConfigIssue,
  checkSchema,
  isStandardSchema,
  type StandardSchemaV1,
} from './config-schema.js'
export type { ConfigEvent } from './config-tree.js'
export {
  type ConfigChange,
  type ConfigSchemaOptions,
  ConfigValue,
  type ConfigValueEvents,
  type ConfigValueOptions,
} from './config-value.js'
export { ConfigWatch, type ConfigWatchEvents } from './config-watch.js'
export { type ConfigWriteOptions, type ConfigWriter, WRITERS_PREFIX } from './config-writer.js'
export { clearDefaultKit, getDefaultKit, setDefaultKit } from './default-kit.js'
export { Discovery, type DiscoveryEvents, type InvalidEntry } from './discovery.js'
export {
  type CampaignOptions,
  Election,
  ElectionObserver,
  type ElectionObserverEvents,
  type Leader,
  type Leadership,
} from './election.js'
export {
  AllEndpointsOpenError,
  AlreadyCampaigningError,
  AuthFailedError,
  ClosedError,
  ConfigConflictError,
  ConfigRevisionUnavailableError,
  EtcdCallError,
  EtcdKitError,
  type EtcdKitErrorCode,
  EtcdUnavailableError,
  InvalidArgumentError,
  InvalidConfigValueError,
  LockLostError,
  LockReleasedError,
  LockTimeoutError,
  NoEtcdKitError,
  NoInstancesError,
  NotLeaderError,
  NotLockOwnerError,
  PermissionDeniedError,
  RequestFailedError,
  RetriesExhaustedError,
  SessionLostError,
  TooLargeError,
} from './errors.js'
export type { AuthOptions, PemInput, TlsOptions } from './etcd-options.js'
export {
  type HealthSnapshot,
  healthResponse,
  type RegistrationHealth,
  type ViewHealth,
} from './health.js'
export type { QueueEntry } from './holders.js'
export type { Instance, InstanceMetadata } from './instance.js'
export { EtcdKit, type EtcdKitEvents, type EtcdKitOptions } from './kit.js'
export {
  advertisedAddress,
  ConnectionDrain,
  type DrainableServer,
  formatAddress,
  hostAddress,
  ServerRegistration,
  type ServerRegistrationContext,
  type ServerRegistrationOptions,
} from './lifecycle.js'
export { type AcquireOptions, type GuardedWrites, type HeldLock, Lock } from './lock.js'
export type { OwnQueueState } from './lock-activity.js'
export {
  defaultLogger,
  isNoopLogger,
  type Logger,
  type LoggerLike,
  silentLogger,
  toLogger,
} from './logger.js'
export type { RegisterOptions, Registration } from './registry.js'
export type { InstanceSelect, InstanceSelector } from './select.js'
export {
  type BreakerEvent,
  type BreakerOptions,
  type BreakerState,
  type EndpointStats,
  ServiceClient,
  type ServiceClientEvents,
  type ServiceClientOptions,
  type ServiceRequestOptions,
} from './service-client.js'
export type { Lease, Session, SessionEvents, SessionState } from './session.js'
export { parseSessionRecord, SESSIONS_PREFIX, type SessionRecord } from './session-record.js'
export { checkAddress, checkConfigKey, checkLockName, checkServiceName } from './validate.js'
