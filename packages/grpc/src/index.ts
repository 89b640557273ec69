export {
  LEAST_LOADED_POLICY,
  type LeastLoadedPolicyConfig,
  registerLeastLoadedPolicy,
} from './least-loaded.js'
export {
  type EtcdResolverOptions,
  type EtcdResolverRegistration,
  registerEtcdResolver,
} from './resolver.js'
export {
  type GrpcServerRegistration,
  type GrpcServerRegistrationOptions,
  registerGrpcServer,
} from './server.js'
