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
