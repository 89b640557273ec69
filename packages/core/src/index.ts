export type { ConfigCacheOptions } from './config/cache.js'
export {
  Config,
  type ConfigHistoryOptions,
  type ConfigKeyOptions,
  type ConfigRollbackOptions,
  type ConfigSetKeyOptions,
  type ConfigSetOptions,
} from './config/config.js'
export type { ConfigRevision, ConfigRollback } from './config/history.js'
export {
  ConfigObject,
  type ConfigObjectChange,
  type ConfigObjectEvents,
  type ConfigObjectOptions,
  type ConfigTreeObject,
} from './config/object.js'
export type { ConfigIssue, StandardSchemaV1 } from './config/schema.js'
export type { ConfigEvent } from './config/tree.js'
export {
  type ConfigChange,
  type ConfigSchemaOptions,
  ConfigValue,
  type ConfigValueEvents,
  type ConfigValueOptions,
} from './config/value.js'
export { ConfigWatch, type ConfigWatchEvents } from './config/watch.js'
export type { ConfigWriteOptions, ConfigWriter } from './config/writer.js'
export {
  type CampaignOptions,
  Election,
  ElectionObserver,
  type ElectionObserverEvents,
  type Leader,
  type Leadership,
} from './coordination/election.js'
export type { QueueEntry } from './coordination/holders.js'
export { type AcquireOptions, type GuardedWrites, type HeldLock, Lock } from './coordination/lock.js'
export type { OwnQueueState } from './coordination/lock-activity.js'
export {
  AllEndpointsOpenError,
  AlreadyCampaigningError,
  AuthFailedError,
  ClosedError,
  ConfigConflictError,
  ConfigRevisionUnavailableError,
  DeadlineExceededError,
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
  TooLargeError,
} from './errors.js'
export type { AuthOptions, PemInput, TlsOptions } from './etcd/etcd-options.js'
export type { Lease, Session, SessionEvents, SessionState } from './etcd/session.js'
export { EtcdKit, type EtcdKitEvents, type EtcdKitOptions } from './kit.js'
export type {
  HealthSnapshot,
  RegistrationHealth,
  RegistrationKeyHealth,
  ViewHealth,
} from './ops/health.js'
export { defaultLogger, type Logger, type LoggerLike, silentLogger } from './ops/logger.js'
export type { SessionRecord } from './ops/session-record.js'
export { Catalog, type CatalogEvents, type CatalogInstance } from './registry/catalog.js'
export type {
  DialectName,
  DialectReadSpec,
  DialectWriteSpec,
  KratosScheme,
} from './registry/dialects/index.js'
export { DIALECT_NAMES } from './registry/dialects/index.js'
export {
  type DiscoverOptions,
  Discovery,
  type DiscoveryEvents,
  type InvalidEntry,
} from './registry/discovery.js'
export type { Instance, InstanceMetadata } from './registry/instance.js'
export type { RegisterOptions, Registration } from './registry/registry.js'
export type { InstanceSelect, InstanceSelector } from './registry/select.js'
export {
  type BalancerName,
  type BreakerEvent,
  type BreakerOptions,
  type BreakerState,
  DEADLINE_HEADER,
  type EndpointStats,
  type HedgeOptions,
  type LeastLoadedSettings,
  type RetryBudgetSettings,
  ServiceClient,
  type ServiceClientEvents,
  type ServiceClientOptions,
  type ServiceRequestOptions,
} from './registry/service-client.js'
