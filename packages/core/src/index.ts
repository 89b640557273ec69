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
  AlreadyCampaigningError,
  ClosedError,
  EtcdKitError,
  type EtcdKitErrorCode,
  EtcdUnavailableError,
  InvalidArgumentError,
  LockLostError,
  LockReleasedError,
  LockTimeoutError,
  NotLeaderError,
  NotLockOwnerError,
  SessionLostError,
} from './errors.js'
export type { Instance, InstanceMetadata } from './instance.js'
export { EtcdKit, type EtcdKitOptions } from './kit.js'
export { type AcquireOptions, type GuardedWrites, type HeldLock, Lock } from './lock.js'
export { defaultLogger, type Logger, silentLogger } from './logger.js'
export type { RegisterOptions, Registration } from './registry.js'
export type { Lease, Session, SessionEvents, SessionState } from './session.js'
