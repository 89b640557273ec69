export {
  booleanFlag,
  FlagAdmin,
  type FlagAdminOptions,
  type FlagEntry,
  type FlagRevision,
  type FlagWriteOptions,
  type RolloutOptions,
  rolloutFlag,
} from './admin.js'
export {
  checkFlagKey,
  EVALUATORS_KEY,
  type FlagDefinition,
  type FlagEvaluators,
} from './definition.js'
export { METER_NAME } from './metrics.js'
export {
  EtcdKitFlagProvider,
  type EtcdKitFlagProviderEvents,
  type EtcdKitFlagProviderOptions,
  type FlagProviderState,
} from './provider.js'
