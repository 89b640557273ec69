// `@etcdkit/core/integration`: what etcdkit's own packages (fastify, express, nestjs, grpc, decorators,
// cli) build on. Not the user's contract (that is `@etcdkit/core`): it may change in a minor release.
export { checkValueOptions } from '../config/config.js'
export { checkSchema } from '../config/schema.js'
export { show } from '../errors.js'
export { checkKitOptions } from '../kit.js'
export { healthResponse } from '../ops/health.js'
export { parseSessionRecord, SESSIONS_PREFIX, type SessionRecord } from '../ops/session-record.js'
export {
  DRAIN_PREFIX,
  type DrainRecord,
  type DrainRequest,
  drainKey,
  parseDrainRequest,
} from '../registry/drain-requests.js'
export { EndpointLoad, LeastLoaded, type LeastLoadedOptions } from '../registry/least-loaded.js'
export {
  checkAddress,
  checkConfigKey,
  checkKeys,
  checkLockName,
  checkMs,
  checkServiceName,
  isPlainObject,
} from '../validate.js'
export { callerDeadline, DEADLINE_HEADER } from './deadline.js'
export { clearDefaultKit, getDefaultKit, setDefaultKit } from './default-kit.js'
export {
  type Contender,
  type InspectedKey,
  inspect,
  KitInspector,
  type NamespaceChange,
  type NamespaceFreshnessListener,
  type Owner,
  type Queue,
} from './inspection.js'
export {
  advertisedAddress,
  ConnectionDrain,
  checkServerRegistrationOptions,
  type DrainableServer,
  formatAddress,
  hostAddress,
  ServerRegistration,
  type ServerRegistrationContext,
  type ServerRegistrationOptions,
} from './lifecycle.js'
export { prefixConfig } from './prefix-config.js'
