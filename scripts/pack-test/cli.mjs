// The `etcdkit` binary from the tarball (npm linked it into node_modules/.bin): it lists a registration.
import { execFileSync } from 'node:child_process'
import { EtcdKit } from '@etcdkit/core'
import common from './common.cjs'

const { assert, endpoints, namespace } = common
const ns = namespace('cli')
const kit = new EtcdKit({ endpoints, namespace: ns })
try {
  await kit.register({ service: 'clitest', address: '127.0.0.1:4003' })
  const out = execFileSync('node_modules/.bin/etcdkit', ['services', '--json', '--namespace', ns], {
    env: { ...process.env, ETCD_ENDPOINTS: endpoints.join(',') },
  }).toString()
  assert.match(out, /127\.0\.0\.1:4003/)
  assert.match(out, /clitest/)
  console.log('cli: ok')
} finally {
  await kit.close()
}
