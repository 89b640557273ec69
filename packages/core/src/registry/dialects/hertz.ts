// The `hertz` dialect: hertz-contrib/registry etcd/ (etcdRegistry, etcdResolver), the Kitex value shape.

import { cloudwegoDialect } from './kitex.js'

/**
 * hertz-contrib/registry etcd: key `hertz/registry-etcd/{service}/{host:port}` (option.go `serviceKey`, a
 * fixed prefix), value `instanceInfo` marshalled with sonic (no HTML escaping), lease 60 s.
 */
export const hertzDialect = cloudwegoDialect('hertz', 'hertz/registry-etcd', false, false)
